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
