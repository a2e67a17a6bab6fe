use axum::http::{Method, StatusCode};
use integration_tests::{TestApp, PASSWORD};
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn register_appends_user_created_with_full_metadata() {
    let app = TestApp::spawn().await;
    let response = app
        .request(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(r#"{"email": "Alice@Example.com", "password": "correct horse battery", "display_name": "Alice"}"#),
            &[
                ("idempotency-key", "register-alice-1"),
                ("x-request-id", "req-123"),
                ("x-correlation-id", "corr-456"),
                ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            ],
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    assert_eq!(response.headers["x-request-id"], "req-123");
    let user_id: Uuid = response.body["user_id"].as_str().unwrap().parse().unwrap();
    let position = response.body["position"].as_str().unwrap();
    assert!(position.contains('.'), "opaque position token: {position}");

    let events = app.stream("User", user_id).await;
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.event_type, "user.created");
    assert_eq!(event.event_version, "2.0");
    let payload = event.payload_json();
    assert_eq!(payload["type"], "user.created");
    assert!(!event.payload.contains("alice"), "sealed: {payload}");
    assert_eq!(
        app.open_personal(user_id, "email", &payload["email"])
            .await
            .as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(payload["role"], "user");
    let metadata = event.metadata_json();
    assert!(Uuid::parse_str(metadata["command_id"].as_str().unwrap()).is_ok());
    assert_eq!(metadata["command_type"], "user.register");
    assert_eq!(metadata["idempotency_key"], "register-alice-1");
    assert_eq!(metadata["user_id"], user_id.to_string());
    assert_eq!(metadata["request_id"], "req-123");
    assert_eq!(metadata["correlation_id"], "corr-456");
    assert_eq!(metadata["causation_id"], "req-123");
    // The caller's trace, continued with a span of the request's own.
    let traceparent = metadata["traceparent"].as_str().expect("a traceparent");
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        ("00", "4bf92f3577b34da6a3ce929d0e0e4736", "01"),
        "{traceparent}"
    );
    assert_eq!(parts[2].len(), 16);
    assert_ne!(parts[2], "00f067aa0ba902b7");
    assert_eq!(metadata["source"], "rest");
}

#[tokio::test]
async fn register_refuses_bad_input_naming_the_field() {
    let app = TestApp::spawn().await;
    let cases: Vec<(&str, StatusCode, Option<&str>)> = vec![
        ("{not json", StatusCode::BAD_REQUEST, None),
        ("", StatusCode::BAD_REQUEST, None),
        ("[1, 2]", StatusCode::UNPROCESSABLE_ENTITY, Some("[0]")),
        ("{}", StatusCode::UNPROCESSABLE_ENTITY, Some("email")),
        (
            r#"{"password": "correct horse battery"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("email"),
        ),
        (
            r#"{"email": "a@example.com"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("password"),
        ),
        (
            r#"{"email": 5, "password": "correct horse battery"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("email"),
        ),
        (
            r#"{"email": "not-an-email", "password": "correct horse battery"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("email"),
        ),
        (
            r#"{"email": "a@example.com", "password": "short"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("password"),
        ),
        (
            r#"{"email": "a@example.com", "password": "correct horse battery", "admin": true}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("admin"),
        ),
        (
            r#"{"email": "a@example.com", "password": "correct horse battery", "display_name": ""}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("display_name"),
        ),
    ];
    for (body, status, field) in cases {
        let response = app
            .request(Method::POST, "/api/v1/auth/register", None, Some(body), &[])
            .await;
        assert_eq!(response.status, status, "body {body:?}: {}", response.body);
        assert_eq!(response.field(), field, "body {body:?}: {}", response.body);
        assert!(response.body["error"]["message"].is_string());
    }
    assert_eq!(app.event_count().await, 0, "refused input appends nothing");
}

#[tokio::test]
async fn registering_an_email_twice_is_a_conflict_on_email() {
    let app = TestApp::spawn().await;
    let body = json!({ "email": "bob@example.com", "password": PASSWORD });
    assert_eq!(
        app.post("/api/v1/auth/register", None, body.clone())
            .await
            .status,
        StatusCode::CREATED
    );
    let again = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({ "email": "BOB@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.field(), Some("email"));
    assert_eq!(app.event_count().await, 1);
}

#[tokio::test]
async fn login_issues_tokens_and_records_the_login() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let login = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": user.email, "password": PASSWORD }),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK);
    assert_eq!(login.body["token_type"], "Bearer");
    assert_eq!(login.body["expires_in"], 900);
    assert!(
        login.body["access_token"]
            .as_str()
            .unwrap()
            .split('.')
            .count()
            == 3
    );
    let types = app.event_types("User", user.id).await;
    assert_eq!(types, ["user.created", "user.logged_in", "user.logged_in"]);

    let wrong = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": user.email, "password": "wrong password!" }),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let unknown = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": "nobody@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.body["error"]["message"],
        unknown.body["error"]["message"]
    );
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_its_family() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let first = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({ "refresh_token": user.refresh_token }),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let successor = first.body["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(successor, user.refresh_token);
    let access = first.body["access_token"].as_str().unwrap();
    let me = app
        .patch(
            "/api/v1/user/me",
            Some(access),
            json!({ "display_name": "Refreshed" }),
        )
        .await;
    assert_eq!(me.status, StatusCode::OK);

    // Presenting the spent token again revokes the whole family.
    let reused = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({ "refresh_token": user.refresh_token }),
        )
        .await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED);
    let after_theft = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({ "refresh_token": successor }),
        )
        .await;
    assert_eq!(after_theft.status, StatusCode::UNAUTHORIZED);
    let garbage = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({ "refresh_token": "nope" }),
        )
        .await;
    assert_eq!(garbage.status, StatusCode::UNAUTHORIZED);
    // No refresh token is stored in clear.
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM refresh_tokens WHERE token_hash = $1")
            .bind(&successor)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn commands_need_a_valid_bearer_token() {
    let app = TestApp::spawn().await;
    let none = app
        .patch("/api/v1/user/me", None, json!({ "display_name": "X" }))
        .await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.headers["www-authenticate"], "Bearer");
    let forged = app
        .patch(
            "/api/v1/user/me",
            Some("eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl"),
            json!({ "display_name": "X" }),
        )
        .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    let health = app.get("/health", None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "ok");
    let missing = app.get("/api/v1/nowhere", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}
