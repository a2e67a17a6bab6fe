//! The caller's notifications: the list, reading one and reading all, as
//! their owner and as another user.

use domain::notification::{NotificationKind, NotificationSubject};
use uuid::Uuid;

use crate::conformance::Conformance;

const NOTIFICATIONS: &str = "/api/v1/notifications";

#[tokio::test]
async fn notification_operations_answer_as_documented() {
    let mut c = Conformance::spawn().await;
    let user = c.app.user().await;
    let other = c.app.user().await;
    let (token, as_other) = (Some(user.token.as_str()), Some(other.token.as_str()));

    let mut raised = Vec::new();
    for kind in [NotificationKind::BotError, NotificationKind::KeyTestFailed] {
        let subject = NotificationSubject {
            bot_id: Some(Uuid::new_v4()),
            ..NotificationSubject::default()
        };
        raised.push(
            c.app
                .raise_notification(user.id, kind, subject, "exchange timed out")
                .await,
        );
    }
    let position = c
        .app
        .state
        .commands
        .position_of("Notification", &raised[1].to_string())
        .await
        .expect("a position");

    let listed = c
        .get(
            &format!("{NOTIFICATIONS}?limit=1&min_position={position}"),
            token,
        )
        .await;
    assert_eq!(listed.body["unread"], 2, "{}", listed.body);
    assert_eq!(
        listed.body["notifications"][0]["notification_id"],
        raised[1].to_string(),
        "newest first: {}",
        listed.body
    );
    let cursor = listed.body["next_cursor"].as_str().unwrap().to_string();
    c.get(&format!("{NOTIFICATIONS}?cursor={cursor}"), token)
        .await;
    let others = c.get(NOTIFICATIONS, as_other).await;
    assert_eq!(others.body["unread"], 0, "{}", others.body);
    c.get(&format!("{NOTIFICATIONS}?limit=0"), token).await;
    c.get(&format!("{NOTIFICATIONS}?unread=true"), token).await;

    let read = |id: &str| format!("{NOTIFICATIONS}/{id}/read");
    let first = raised[0].to_string();
    let marked = c.post_empty(&read(&first), token).await;
    assert_eq!(marked.status, 200, "{}", marked.body);
    c.post_empty(&read(&first), as_other).await;
    c.post_empty(&read("not-an-id"), token).await;
    c.post_empty(&read(&Uuid::new_v4().to_string()), token)
        .await;

    let all = c
        .post_empty(&format!("{NOTIFICATIONS}/read-all"), token)
        .await;
    assert_eq!(all.body["marked"], 1, "{}", all.body);
    let position = all.body["position"].as_str().unwrap().to_string();
    let after = c
        .get(&format!("{NOTIFICATIONS}?min_position={position}"), token)
        .await;
    assert_eq!(after.body["unread"], 0, "{}", after.body);
    c.finish("notifications");
}
