//! Registering, logging in (and backing off), refreshing, logging out.

use axum::http::{Method, StatusCode};
use integration_tests::PASSWORD;
use serde_json::json;
use uuid::Uuid;

use crate::conformance::Conformance;

const REGISTER: &str = "/api/v1/auth/register";
const LOGIN: &str = "/api/v1/auth/login";
const REFRESH: &str = "/api/v1/auth/refresh";
const LOGOUT: &str = "/api/v1/auth/logout";
const VERIFY: &str = "/api/v1/auth/verify-email";
const RESEND: &str = "/api/v1/auth/verify-email/resend";
const RESET: &str = "/api/v1/auth/password-reset/request";
const CONFIRM: &str = "/api/v1/auth/password-reset/confirm";

#[tokio::test]
async fn auth_operations_answer_as_documented() {
    let mut c = Conformance::spawn().await;
    let email = format!("ada-{}@example.com", Uuid::new_v4().simple());
    let credentials = json!({ "email": email, "password": PASSWORD });

    let created = c.post(REGISTER, None, credentials.clone()).await;
    assert_eq!(created.status, StatusCode::CREATED);
    // The check is not vacuous: a body of another shape would fail it.
    let mut wrong_shape = created.body.clone();
    wrong_shape["user_id"] = json!(5);
    assert!(!c.matches("post", REGISTER, 201, &wrong_shape));
    assert!(!c.matches("post", REGISTER, 201, &json!({ "user_id": Uuid::new_v4() })));
    let again = c.post(REGISTER, None, credentials.clone()).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let invalid = c.post(REGISTER, None, json!({ "email": 5 })).await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    let unreadable = c
        .app
        .request(Method::POST, REGISTER, None, Some("{"), &[])
        .await;
    assert_eq!(unreadable.status, StatusCode::BAD_REQUEST);
    c.check(&Method::POST, REGISTER, &unreadable);

    let logged_in = c.post(LOGIN, None, credentials).await;
    assert_eq!(logged_in.status, StatusCode::OK);
    let wrong_password = json!({ "email": email, "password": "not the password" });
    let wrong = c.post(LOGIN, None, wrong_password).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);

    let refresh = json!({ "refresh_token": logged_in.body["refresh_token"] });
    let renewed = c.post(REFRESH, None, refresh.clone()).await;
    assert_eq!(renewed.status, StatusCode::OK);
    let spent = c.post(REFRESH, None, refresh).await;
    assert_eq!(spent.status, StatusCode::UNAUTHORIZED);

    let session = json!({ "refresh_token": renewed.body["refresh_token"] });
    let logged_out = c.post(LOGOUT, None, session.clone()).await;
    assert_eq!(logged_out.status, StatusCode::NO_CONTENT);
    let unknown = c
        .post(LOGOUT, None, json!({ "refresh_token": "unknown" }))
        .await;
    assert_eq!(unknown.status, StatusCode::NO_CONTENT);
    let invalid = c.post(LOGOUT, None, json!({ "token": "x" })).await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    let revoked = c.post(REFRESH, None, session).await;
    assert_eq!(revoked.status, StatusCode::UNAUTHORIZED);

    // Four more wrong passwords (five in all) back the account off.
    for _ in 0..4 {
        let wrong_password = json!({ "email": email, "password": "not the password" });
        assert_eq!(
            c.post(LOGIN, None, wrong_password).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let credentials = json!({ "email": email, "password": PASSWORD });
    let backed_off = c.post(LOGIN, None, credentials).await;
    assert_eq!(backed_off.status, StatusCode::TOO_MANY_REQUESTS);

    // Codes: the right ones arrive by mail (tests/write_path/accounts.rs);
    // here the refusals and the acceptances that need none.
    let wrong_code = json!({ "email": email, "code": "000000" });
    let refused = c.post(VERIFY, None, wrong_code).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    c.post(VERIFY, None, json!({ "email": email })).await;
    let resend = json!({ "email": email });
    let accepted = c.post(RESEND, None, resend.clone()).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
    let too_soon = c.post(RESEND, None, resend).await;
    assert_eq!(too_soon.status, StatusCode::TOO_MANY_REQUESTS);
    c.post(RESEND, None, json!({ "email": "not an email" }))
        .await;
    let reset = json!({ "email": format!("nobody-{}@example.com", Uuid::new_v4().simple()) });
    let accepted = c.post(RESET, None, reset.clone()).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
    c.post(RESET, None, reset).await;
    let confirm =
        json!({ "email": email, "code": "123456", "new_password": "another long password" });
    let refused = c.post(CONFIRM, None, confirm).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    let short = json!({ "email": email, "code": "123456", "new_password": "short" });
    let invalid = c.post(CONFIRM, None, short).await;
    assert_eq!(
        invalid.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        invalid.body
    );
    c.finish("auth");
}
