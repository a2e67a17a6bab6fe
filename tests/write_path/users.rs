use axum::http::StatusCode;
use command_side::CommandMetadata;
use domain::{Actor, Role};
use integration_tests::TestApp;
use serde_json::json;

#[tokio::test]
async fn profile_update_and_onboarding_once() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let updated = app
        .patch(
            "/api/v1/user/me",
            Some(&user.token),
            json!({ "display_name": "  Ada  " }),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    let blank = app
        .patch(
            "/api/v1/user/me",
            Some(&user.token),
            json!({ "display_name": "   " }),
        )
        .await;
    assert_eq!(blank.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(blank.field(), Some("display_name"));

    let onboarding =
        json!({ "risk_profile": "balanced", "experience": "beginner", "terms_version": "2026-01" });
    let first = app
        .post(
            "/api/v1/user/onboarding",
            Some(&user.token),
            onboarding.clone(),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let second = app
        .post("/api/v1/user/onboarding", Some(&user.token), onboarding)
        .await;
    assert_eq!(second.status, StatusCode::CONFLICT);
    assert_eq!(
        second.body["error"]["message"],
        "onboarding already completed"
    );
    let bad = app
        .post(
            "/api/v1/user/onboarding",
            Some(&user.token),
            json!({ "risk_profile": "yolo", "experience": "beginner", "terms_version": "1" }),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.field(), Some("risk_profile"));

    let events = app.stream("User", user.id).await;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "user.created",
            "user.logged_in",
            "user.updated",
            "onboarding.completed"
        ]
    );
    let name = &events[2].payload_json()["display_name"];
    assert_eq!(
        app.open_personal(user.id, "display_name", name)
            .await
            .as_deref(),
        Some("Ada")
    );
}

#[tokio::test]
async fn roles_are_granted_by_admins_and_bind_auditors() {
    let app = TestApp::spawn().await;
    let admin = app.user().await;
    let other = app.user().await;

    // A plain user may not grant roles.
    let refused = app
        .post(
            &format!("/api/v1/admin/users/{}/role", other.id),
            Some(&other.token),
            json!({ "role": "admin" }),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    // The first admin is made by the operator command (the System actor).
    let metadata =
        CommandMetadata::new("cli", Some(Actor::System)).with_command_type("user.assign_role");
    muckard::operator::grant_role(&app.state.commands, &admin.email, Role::Admin, &metadata)
        .await
        .expect("grant the first admin");
    let admin = app.login(&admin.email).await;

    let granted = app
        .post(
            &format!("/api/v1/admin/users/{}/role", other.id),
            Some(&admin.token),
            json!({ "role": "auditor" }),
        )
        .await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.body);
    let bad_role = app
        .post(
            &format!("/api/v1/admin/users/{}/role", other.id),
            Some(&admin.token),
            json!({ "role": "root" }),
        )
        .await;
    assert_eq!(bad_role.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_role.field(), Some("role"));
    let unknown_user = app
        .post(
            &format!("/api/v1/admin/users/{}/role", uuid::Uuid::new_v4()),
            Some(&admin.token),
            json!({ "role": "auditor" }),
        )
        .await;
    assert_eq!(unknown_user.status, StatusCode::NOT_FOUND);

    let events = app.stream("User", other.id).await;
    let grant = events
        .iter()
        .find(|e| e.event_type == "user.role_assigned")
        .expect("grant event");
    assert_eq!(grant.payload_json()["role"], "auditor");
    assert_eq!(grant.payload_json()["assigned_by"], admin.id.to_string());
    let first_admin = app.stream("User", admin.id).await;
    let cli_grant = first_admin
        .iter()
        .find(|e| e.event_type == "user.role_assigned")
        .unwrap();
    assert_eq!(cli_grant.metadata_json()["source"], "cli");
    assert!(cli_grant.payload_json()["assigned_by"].is_null());

    // The auditor's new token carries the role; auditors issue no trading commands.
    let auditor = app.login(&other.email).await;
    let connect = app
        .post(
            "/api/v1/kraken/connect",
            Some(&auditor.token),
            json!({ "api_key": "k", "api_secret": integration_tests::GOOD_SECRET }),
        )
        .await;
    assert_eq!(connect.status, StatusCode::FORBIDDEN, "{}", connect.body);
}
