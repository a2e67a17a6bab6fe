//! Failed log-ins in the log, and the back-off computed from them.

use axum::http::StatusCode;
use integration_tests::{TestApp, TestResponse, PASSWORD};
use serde_json::json;

const WRONG: &str = "not the password at all";

async fn log_in(app: &TestApp, email: &str, password: &str) -> TestResponse {
    app.post(
        "/api/v1/auth/login",
        None,
        json!({ "email": email, "password": password }),
    )
    .await
}

fn retry_after(response: &TestResponse) -> u64 {
    response.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn failed_logins_are_recorded_and_five_of_them_back_the_account_off_with_429() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let bystander = app.user().await;

    for attempt in 1..=5 {
        let failed = log_in(&app, &user.email, WRONG).await;
        assert_eq!(failed.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let stream = app.stream("User", user.id).await;
    let failures: Vec<_> = stream
        .iter()
        .filter(|event| event.event_type == "user.login_failed")
        .collect();
    assert_eq!(failures.len(), 5);
    for failure in &failures {
        let payload = failure.payload_json();
        let source = app
            .open_personal(user.id, "source", &payload["source"])
            .await;
        assert!(source.unwrap().starts_with("ip:"), "{payload}");
        assert!(payload["at"].is_string());
        assert_eq!(payload.as_object().unwrap().len(), 3, "{payload}");
        assert!(!failure.payload.contains(WRONG) && !failure.metadata.contains(WRONG));
        let metadata = failure.metadata_json();
        assert_eq!(metadata["command_type"], "user.record_failed_login");
        assert_eq!(metadata["user_id"], user.id.to_string());
    }

    // Backed off: even the right password is refused, with Retry-After up
    // to the 5-minute back-off, and nothing more is recorded.
    let refused = log_in(&app, &user.email, PASSWORD).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.body
    );
    assert_eq!(refused.body["error"]["code"], "rate_limited");
    let wait = retry_after(&refused);
    assert!((290..=300).contains(&wait), "Retry-After {wait}");
    let refused_wrong = log_in(&app, &user.email, WRONG).await;
    assert_eq!(refused_wrong.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(app.stream("User", user.id).await.len(), stream.len());

    // Another account is not affected.
    let other = log_in(&app, &bystander.email, PASSWORD).await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.body);

    // An email nobody holds answers the same way, at the same count.
    let nobody = "nobody-at-all@example.com";
    for attempt in 1..=5 {
        let failed = log_in(&app, nobody, WRONG).await;
        assert_eq!(failed.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
        assert_eq!(failed.body["error"]["code"], "unauthorized");
    }
    let unknown = log_in(&app, nobody, PASSWORD).await;
    assert_eq!(
        unknown.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        unknown.body
    );
    assert_eq!(unknown.body["error"], refused.body["error"]);
    assert!((290..=300).contains(&retry_after(&unknown)));
}

#[tokio::test]
async fn the_back_off_ends_and_a_successful_login_forgets_the_failures() {
    let app =
        TestApp::spawn_with(&[("LOGIN_BACKOFF_FAILURES", "2"), ("LOGIN_BACKOFF_SECS", "1")]).await;
    let user = app.user().await;
    for _ in 0..2 {
        assert_eq!(
            log_in(&app, &user.email, WRONG).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let refused = log_in(&app, &user.email, PASSWORD).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&refused), 1);

    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let attempt = log_in(&app, &user.email, PASSWORD).await;
        if attempt.status == StatusCode::OK {
            break;
        }
        assert_eq!(attempt.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the back-off never ended"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The success cleared the count: one failure is a 401 again.
    let failed = log_in(&app, &user.email, WRONG).await;
    assert_eq!(failed.status, StatusCode::UNAUTHORIZED);
    let ok = log_in(&app, &user.email, PASSWORD).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
}
