//! Authority from the log: admin and auditor powers follow the role a user
//! holds now, whatever an access token claims; a role change ends the
//! user's sessions (refresh tokens, and the access tokens that name them);
//! a log-out ends a session's.

use axum::http::StatusCode;
use domain::Role;
use integration_tests::{TestApp, TestUser};
use serde_json::json;

fn role_path(user: &TestUser) -> String {
    format!("/api/v1/admin/users/{}/role", user.id)
}

async fn refresh(app: &TestApp, refresh_token: &str) -> integration_tests::TestResponse {
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({ "refresh_token": refresh_token }),
    )
    .await
}

#[tokio::test]
async fn a_demoted_admins_old_token_is_refused_admin_powers_at_once() {
    let app = TestApp::spawn().await;
    let demoted = app.user_with_role(Role::Admin).await;
    let other_admin = app.user_with_role(Role::Admin).await;
    let bystander = app.user().await;

    // While an admin, the token does what an admin's does.
    let before = app
        .post(
            &role_path(&bystander),
            Some(&demoted.token),
            json!({ "role": "auditor" }),
        )
        .await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.body);

    let demotion = app
        .post(
            &role_path(&demoted),
            Some(&other_admin.token),
            json!({ "role": "user" }),
        )
        .await;
    assert_eq!(demotion.status, StatusCode::OK, "{}", demotion.body);
    let events_after_demotion = app.event_types("User", demoted.id).await;

    // The same token, unexpired and still claiming admin, right after:
    // re-promoting oneself, promoting someone else, listing users, reading
    // the audit trail are all refused: the role change ended its session.
    for (path, body) in [
        (role_path(&demoted), json!({ "role": "admin" })),
        (role_path(&bystander), json!({ "role": "admin" })),
    ] {
        let refused = app.post(&path, Some(&demoted.token), body).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    }
    let users = app.get("/api/v1/admin/users", Some(&demoted.token)).await;
    assert_eq!(users.status, StatusCode::UNAUTHORIZED, "{}", users.body);
    let audit = app
        .get(
            &format!("/api/v1/audit/streams/User/{}/events", bystander.id),
            Some(&demoted.token),
        )
        .await;
    assert_eq!(audit.status, StatusCode::UNAUTHORIZED, "{}", audit.body);
    // Nothing was recorded by the refused attempts.
    assert_eq!(
        app.event_types("User", demoted.id).await,
        events_after_demotion
    );
    let bystander_roles: Vec<String> = app
        .stream("User", bystander.id)
        .await
        .iter()
        .filter(|event| event.event_type == "user.role_assigned")
        .map(|event| event.payload_json()["role"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(bystander_roles, ["auditor"]);

    // A new log-in serves the user as a user, and an admin's powers are
    // checked against the role held now.
    let again = app.login(&demoted.email).await;
    let me = app.get("/api/v1/user/me", Some(&again.token)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    let refused = app
        .post(
            &role_path(&bystander),
            Some(&again.token),
            json!({ "role": "admin" }),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "forbidden");
}

#[tokio::test]
async fn a_demoted_auditors_old_token_no_longer_reads_the_audit_trail() {
    let app = TestApp::spawn().await;
    let auditor = app.user_with_role(Role::Auditor).await;
    let path = format!("/api/v1/audit/streams/User/{}/events", auditor.id);
    let allowed = app.get(&path, Some(&auditor.token)).await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.body);

    app.grant_role(&auditor.email, Role::User).await;
    // The role change ended the session its token names.
    let refused = app.get(&path, Some(&auditor.token)).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    let again = app.login(&auditor.email).await;
    let refused = app.get(&path, Some(&again.token)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
}

#[tokio::test]
async fn a_role_change_revokes_the_users_refresh_tokens() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let second_session = app.login(&user.email).await;
    let unrelated = app.user().await;

    app.grant_role(&user.email, Role::Auditor).await;

    for token in [&user.refresh_token, &second_session.refresh_token] {
        let refused = refresh(&app, token).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    }
    // Another user's session is untouched.
    let renewed = refresh(&app, &unrelated.refresh_token).await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.body);

    // A new log-in carries the new role and renews.
    let again = app.login(&user.email).await;
    let renewed = refresh(&app, &again.refresh_token).await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.body);
    assert_eq!(renewed.body["role"], "auditor");

    // Granting the role already held changes nothing and revokes nothing.
    app.grant_role(&user.email, Role::Auditor).await;
    let next = renewed.body["refresh_token"].as_str().unwrap();
    let renewed = refresh(&app, next).await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.body);
}

#[tokio::test]
async fn a_role_change_through_rest_revokes_too() {
    let app = TestApp::spawn().await;
    let admin = app.user_with_role(Role::Admin).await;
    let user = app.user().await;
    let promoted = app
        .post(
            &role_path(&user),
            Some(&admin.token),
            json!({ "role": "admin" }),
        )
        .await;
    assert_eq!(promoted.status, StatusCode::OK, "{}", promoted.body);
    let refused = refresh(&app, &user.refresh_token).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
}

#[tokio::test]
async fn logout_revokes_the_refresh_family_and_nothing_else() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let other_session = app.login(&user.email).await;

    // The session renews once: its family is now two tokens.
    let renewed = refresh(&app, &user.refresh_token).await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.body);
    let current = renewed.body["refresh_token"].as_str().unwrap().to_string();

    // Logging out with the spent first token ends the whole family.
    let logout = app
        .post(
            "/api/v1/auth/logout",
            None,
            json!({ "refresh_token": user.refresh_token }),
        )
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT, "{}", logout.body);
    assert!(logout.body.is_null(), "204 has no body: {}", logout.body);
    let refused = refresh(&app, &current).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);

    // The user's other session is another family: it still renews, and
    // logs out with its current token.
    let renewed = refresh(&app, &other_session.refresh_token).await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.body);
    let other_current = renewed.body["refresh_token"].as_str().unwrap().to_string();
    let logout = app
        .post(
            "/api/v1/auth/logout",
            None,
            json!({ "refresh_token": other_current }),
        )
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    let refused = refresh(&app, &other_current).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);

    // An unknown token, or the same log-out again: 204, telling nothing.
    for token in ["not-a-token", other_current.as_str()] {
        let logout = app
            .post(
                "/api/v1/auth/logout",
                None,
                json!({ "refresh_token": token }),
            )
            .await;
        assert_eq!(logout.status, StatusCode::NO_CONTENT, "{}", logout.body);
    }
    let malformed = app
        .post("/api/v1/auth/logout", None, json!({ "token": "x" }))
        .await;
    assert_eq!(malformed.status, StatusCode::UNPROCESSABLE_ENTITY);
}
