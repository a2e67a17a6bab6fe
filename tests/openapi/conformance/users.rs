//! The caller's own user: its profile and its onboarding.

use axum::http::StatusCode;
use serde_json::json;

use crate::conformance::Conformance;

const ME: &str = "/api/v1/user/me";
const ONBOARDING: &str = "/api/v1/user/onboarding";

#[tokio::test]
async fn user_operations_answer_as_documented() {
    let mut c = Conformance::spawn().await;
    let user = c.app.user().await;
    let token = Some(user.token.as_str());

    let changed = c.patch(ME, token, json!({ "display_name": "Ada" })).await;
    assert_eq!(changed.status, StatusCode::OK);
    let position = changed.body["position"].as_str().unwrap().to_string();
    c.patch(ME, token, json!({ "nickname": "A" })).await;
    c.patch(ME, None, json!({ "display_name": "A" })).await;

    let answers =
        json!({ "risk_profile": "balanced", "experience": "beginner", "terms_version": "2026-01" });
    let onboarded = c.post(ONBOARDING, token, answers.clone()).await;
    assert_eq!(onboarded.status, StatusCode::OK);
    let position_after = onboarded.body["position"].as_str().unwrap().to_string();
    c.post(ONBOARDING, token, answers).await;

    let read = c
        .get(&format!("{ME}?min_position={position_after}"), token)
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["risk_profile"], "balanced");
    c.get(&format!("{ME}?min_position={position}&x=1"), token)
        .await;
    c.finish("users");
}
