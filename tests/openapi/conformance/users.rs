//! The caller's own user: its profile and its onboarding.

use axum::http::StatusCode;
use serde_json::json;

use crate::conformance::Conformance;

const ME: &str = "/api/v1/user/me";
const ONBOARDING: &str = "/api/v1/user/onboarding";
const SESSIONS: &str = "/api/v1/user/me/sessions";
const PASSWORD: &str = "/api/v1/user/me/password";

/// The session `token` belongs to, from its own list.
async fn other_session(c: &Conformance, token: &str) -> String {
    let listed = c.app.get(SESSIONS, Some(token)).await;
    listed.body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|session| session["current"] == true)
        .unwrap()["session_id"]
        .as_str()
        .unwrap()
        .to_string()
}

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
    let profile = json!({ "timezone": "Europe/Paris", "notifications":
        { "trade_fills": true, "bot_errors": true, "security": false } });
    let changed = c.patch(ME, token, profile).await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    c.patch(ME, token, json!({ "timezone": "Not a zone" }))
        .await;

    let sessions = c.get(SESSIONS, token).await;
    assert_eq!(sessions.status, StatusCode::OK, "{}", sessions.body);
    let other = c.app.login(&user.email).await;
    let ended = c
        .delete(
            &format!("{SESSIONS}/{}", other_session(&c, &other.token).await),
            token,
        )
        .await;
    assert_eq!(ended.status, StatusCode::NO_CONTENT, "{}", ended.body);
    c.delete(&format!("{SESSIONS}/{}", uuid::Uuid::new_v4()), token)
        .await;
    c.delete(&format!("{SESSIONS}/not-a-uuid"), token).await;

    let wrong =
        json!({ "current_password": "not the password", "new_password": "a new long password" });
    let refused = c.post(PASSWORD, token, wrong).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    let change = json!({ "current_password": integration_tests::PASSWORD, "new_password": "a new long password" });
    let changed = c.post(PASSWORD, token, change).await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    c.finish("users");
}
