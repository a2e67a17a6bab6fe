//! Erasure by crypto-shredding on the write path: who may erase, what an
//! erased user can still do (nothing), an erasure interrupted between its
//! event and the key's destruction, and a user registered before personal
//! data was sealed (their version 1.0 events, upcast on read by the
//! command side and the projector alike).

use axum::http::StatusCode;
use command_side::CommandMetadata;
use domain::{Actor, Role};
use integration_tests::{TestApp, PASSWORD};
use serde_json::json;
use uuid::Uuid;

async fn has_data_key(app: &TestApp, user_id: Uuid) -> bool {
    event_log::data_keys::fetch(&app.pool, user_id)
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn only_an_admin_erases_and_an_erased_user_can_do_nothing_more() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let auditor = app.user_with_role(Role::Auditor).await;
    let admin = app.user_with_role(Role::Admin).await;
    assert!(has_data_key(&app, user.id).await, "registration made a key");
    let erase = |id: Uuid| format!("/api/v1/admin/users/{id}/erase");

    for caller in [&user, &auditor] {
        let refused = app.post_empty(&erase(user.id), Some(&caller.token)).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    }
    let unknown = app
        .post_empty(&erase(Uuid::new_v4()), Some(&admin.token))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);
    let malformed = app
        .post_empty("/api/v1/admin/users/not-an-id/erase", Some(&admin.token))
        .await;
    assert_eq!(
        malformed.status,
        StatusCode::BAD_REQUEST,
        "{}",
        malformed.body
    );
    assert_eq!(malformed.field(), Some("user_id"));

    let erased = app.post_empty(&erase(user.id), Some(&admin.token)).await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.body);
    assert_eq!(erased.body["user_id"], json!(user.id));
    let types = app.event_types("User", user.id).await;
    assert_eq!(types.last().map(String::as_str), Some("user.erased"));
    let stream = app.stream("User", user.id).await;
    let event = stream.last().unwrap();
    assert_eq!(event.payload_json()["erased_by"], json!(admin.id));
    assert_eq!(event.metadata_json()["command_type"], "user.erase");
    assert!(!has_data_key(&app, user.id).await, "the key is destroyed");
    let credentials: i64 =
        sqlx::query_scalar("SELECT count(*) FROM user_credentials WHERE user_id = $1")
            .bind(user.id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(credentials, 0);

    // The erased user's unexpired access token is refused: their
    // credentials and sessions are gone.
    let renamed = app
        .patch(
            "/api/v1/user/me",
            Some(&user.token),
            json!({ "display_name": "Back again" }),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::UNAUTHORIZED, "{}", renamed.body);
    assert!(
        !has_data_key(&app, user.id).await,
        "no new key for an erased user"
    );
    let login = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": user.email, "password": PASSWORD }),
        )
        .await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED, "{}", login.body);
    // Nor can an admin give them a role.
    let role = app
        .post(
            &format!("/api/v1/admin/users/{}/role", user.id),
            Some(&admin.token),
            json!({ "role": "auditor" }),
        )
        .await;
    assert_eq!(role.status, StatusCode::NOT_FOUND, "{}", role.body);
    // An erased admin's token is refused outright.
    app.state
        .commands
        .erase_user(
            Actor::System,
            admin.id,
            &CommandMetadata::new("test", Some(Actor::System)).with_command_type("user.erase"),
        )
        .await
        .unwrap();
    let listed = app.get("/api/v1/admin/users", Some(&admin.token)).await;
    assert_eq!(listed.status, StatusCode::UNAUTHORIZED, "{}", listed.body);
}

#[tokio::test]
async fn an_erasure_interrupted_after_its_event_is_finished_at_start_up() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    // The process dies after `user.erased` committed and before the key
    // was destroyed: the event alone is in the log.
    let metadata =
        CommandMetadata::new("test", Some(Actor::System)).with_command_type("user.erase");
    app.state
        .commands
        .execute_user(
            &user.id.to_string(),
            domain::user::UserCommand::Erase {
                actor: Actor::System,
                at: chrono::Utc::now(),
            },
            &metadata,
        )
        .await
        .unwrap();
    assert!(has_data_key(&app, user.id).await);
    let other = app.user().await;
    let finished = app
        .state
        .commands
        .finish_interrupted_erasures()
        .await
        .unwrap();
    assert_eq!(finished, 1);
    assert!(!has_data_key(&app, user.id).await);
    assert!(
        has_data_key(&app, other.id).await,
        "other users keep their keys"
    );
    assert_eq!(
        app.state
            .commands
            .finish_interrupted_erasures()
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_user_registered_in_clear_is_upcast_and_can_still_be_erased() {
    let app = TestApp::spawn().await;
    let user_id = Uuid::new_v4();
    let email = format!("legacy-{}@example.com", Uuid::new_v4().simple());
    // What the service wrote before personal data was sealed: a version 1.0
    // user.created in clear, and the credentials.
    let hash =
        command_side::passwords::Passwords::new(command_side::passwords::PasswordHashingSettings {
            concurrency: 1,
            wait: std::time::Duration::from_secs(30),
        })
        .hash(domain::SecretString::new(PASSWORD.to_string()))
        .await
        .unwrap();
    sqlx::query("INSERT INTO user_credentials (user_id, email, password_hash) VALUES ($1, $2, $3)")
        .bind(user_id)
        .bind(&email)
        .bind(hash)
        .execute(&app.pool)
        .await
        .unwrap();
    let payload = json!({
        "type": "user.created", "user_id": user_id, "email": email,
        "display_name": "Legacy Name", "role": "user", "at": chrono::Utc::now()
    });
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata) VALUES ('User', $1, 1, 'user.created', '1.0', $2, '{}')",
    )
    .bind(user_id.to_string())
    .bind(&payload)
    .execute(&app.pool)
    .await
    .unwrap();

    // The command side loads it (upcast) and logs the user in; the
    // projector shows the clear email and name.
    let user = app.login(&email).await;
    assert_eq!(user.id, user_id);
    app.eventually(10, "the legacy user's row", || async {
        let me = app.get("/api/v1/user/me", Some(&user.token)).await;
        me.body["email"] == json!(email) && me.body["display_name"] == "Legacy Name"
    })
    .await;
    // Their next personal data is sealed under a key made for them then.
    assert!(!has_data_key(&app, user_id).await);
    let renamed = app
        .patch(
            "/api/v1/user/me",
            Some(&user.token),
            json!({ "display_name": "Sealed Name" }),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert!(has_data_key(&app, user_id).await);
    let stream = app.stream("User", user_id).await;
    let updated = stream
        .iter()
        .find(|e| e.event_type == "user.updated")
        .unwrap();
    assert_eq!(updated.event_version, "2.0");
    assert!(
        !updated.payload.contains("Sealed Name"),
        "{}",
        updated.payload
    );
    app.eventually(10, "the sealed name, opened", || async {
        let me = app.get("/api/v1/user/me", Some(&user.token)).await;
        me.body["display_name"] == "Sealed Name"
    })
    .await;

    // Erased: the read model forgets both; the version 1.0 event keeps its
    // clear text, as the log is immutable (ARCHITECTURE.md says so).
    let admin = app.user_with_role(Role::Admin).await;
    let erased = app
        .post_empty(
            &format!("/api/v1/admin/users/{user_id}/erase"),
            Some(&admin.token),
        )
        .await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.body);
    app.eventually(10, "the erased row", || async {
        let listed = app
            .get("/api/v1/admin/users?limit=100", Some(&admin.token))
            .await;
        listed.body["users"].as_array().is_some_and(|users| {
            users.iter().any(|u| {
                u["user_id"] == json!(user_id) && u["email"].is_null() && u["erased_at"].is_string()
            })
        })
    })
    .await;
    let first: String = sqlx::query_scalar(
        "SELECT payload::text FROM events WHERE aggregate_id = $1 AND sequence = 1",
    )
    .bind(user_id.to_string())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(first.contains(&email), "the log is not rewritten");
}
