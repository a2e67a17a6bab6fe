//! Admins: listing users, assigning roles, erasing a user.

use axum::http::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::conformance::Conformance;

const USERS: &str = "/api/v1/admin/users";

#[tokio::test]
async fn admin_operations_answer_as_documented() {
    let mut c = Conformance::spawn().await;
    let user = c.app.user().await;
    let admin = c.app.user_with_role(domain::Role::Admin).await;
    let (as_admin, as_user) = (Some(admin.token.as_str()), Some(user.token.as_str()));

    let page = c.get(&format!("{USERS}?limit=2"), as_admin).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    c.get(USERS, as_user).await;

    let auditor = json!({ "role": "auditor" });
    let assigned = c
        .post(&format!("{USERS}/{}/role", user.id), as_admin, auditor)
        .await;
    assert_eq!(assigned.status, StatusCode::OK, "{}", assigned.body);
    let demote = json!({ "role": "user" });
    c.post(
        &format!("{USERS}/{}/role", admin.id),
        as_user,
        demote.clone(),
    )
    .await;
    c.post(
        &format!("{USERS}/{}/role", Uuid::new_v4()),
        as_admin,
        demote,
    )
    .await;

    let one = c.get(&format!("{USERS}/{}", user.id), as_admin).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    c.get(&format!("{USERS}/{}", Uuid::new_v4()), as_admin)
        .await;
    c.get(&format!("{USERS}/{}", user.id), as_user).await;
    let search = c
        .get(
            &format!("{USERS}?q=trader&role=user&status=active"),
            as_admin,
        )
        .await;
    assert_eq!(search.status, StatusCode::OK, "{}", search.body);
    c.get(&format!("{USERS}?status=gone"), as_admin).await;

    let reason = json!({ "reason": "conformance" });
    let disabled = c
        .post(
            &format!("{USERS}/{}/disable", user.id),
            as_admin,
            reason.clone(),
        )
        .await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    c.post(
        &format!("{USERS}/{}/disable", admin.id),
        as_admin,
        reason.clone(),
    )
    .await;
    c.post(
        &format!("{USERS}/{}/disable", Uuid::new_v4()),
        as_admin,
        reason,
    )
    .await;
    c.post(
        &format!("{USERS}/{}/disable", user.id),
        as_admin,
        json!({ "reason": 5 }),
    )
    .await;
    let enabled = c
        .post_empty(&format!("{USERS}/{}/enable", user.id), as_admin)
        .await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.body);
    c.post_empty(&format!("{USERS}/{}/enable", user.id), as_user)
        .await;
    c.post_empty(&format!("{USERS}/{}/enable", Uuid::new_v4()), as_admin)
        .await;

    let erase = |id: Uuid| format!("{USERS}/{id}/erase");
    c.post_empty(&erase(user.id), as_user).await;
    c.post_empty(&erase(Uuid::new_v4()), as_admin).await;
    c.post_empty(&format!("{USERS}/not-a-uuid/erase"), as_admin)
        .await;
    let erased = c.post_empty(&erase(user.id), as_admin).await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.body);
    let page = c.get(&format!("{USERS}?limit=100"), as_admin).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    c.finish("admin");
}
