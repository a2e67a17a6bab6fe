//! `GET /api/v1/stream` as documented: the caller's own stream, from a
//! `Last-Event-ID`, its refusals (a malformed id, an unknown parameter,
//! another user's stream). Streams through a real client and the gateway
//! are `tests/gateway` and `tests/read_models/live.rs`.

use axum::http::Method;
use domain::notification::{NotificationKind, NotificationSubject};
use uuid::Uuid;

use crate::conformance::Conformance;

const STREAM: &str = "/api/v1/stream";

#[tokio::test]
async fn the_stream_answers_as_documented() {
    let mut c = Conformance::spawn().await;
    let user = c.app.user().await;
    let other = c.app.user().await;
    let token = Some(user.token.as_str());

    let subject = NotificationSubject {
        key_id: Some(Uuid::new_v4()),
        ..NotificationSubject::default()
    };
    let notification_id = c
        .app
        .raise_notification(
            user.id,
            NotificationKind::KeyTestFailed,
            subject,
            "exchange key test failed: EAPI:Invalid key",
        )
        .await;
    // Once the read models have it, a stream from the start of the log
    // sends it.
    let position = c
        .app
        .state
        .commands
        .position_of("Notification", &notification_id.to_string())
        .await
        .expect("a position");
    let listed = c
        .app
        .get(
            &format!("/api/v1/notifications?min_position={position}"),
            token,
        )
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let mut body = String::new();
    for _ in 0..50 {
        let streamed = c
            .call(
                Method::GET,
                STREAM,
                token,
                None,
                &[("last-event-id", "0.0")],
            )
            .await;
        assert_eq!(streamed.status, 200, "{}", streamed.body);
        assert_eq!(
            streamed.headers["x-accel-buffering"], "no",
            "{:?}",
            streamed.headers
        );
        body = streamed.body.as_str().unwrap_or_default().to_string();
        if body.contains(&notification_id.to_string()) {
            break;
        }
    }
    assert!(body.contains("event: notification\n"), "{body}");
    assert!(body.contains(&format!("id: {position}\n")), "{body}");

    // From now: nothing yet, but a live stream.
    let live = c.get(STREAM, token).await;
    assert_eq!(live.status, 200, "{}", live.body);
    // Another user's stream gets none of it.
    let theirs = c
        .call(
            Method::GET,
            STREAM,
            Some(other.token.as_str()),
            None,
            &[("last-event-id", "0.0")],
        )
        .await;
    assert!(
        !theirs
            .body
            .as_str()
            .unwrap_or_default()
            .contains(&notification_id.to_string()),
        "{}",
        theirs.body
    );

    let malformed = c
        .call(Method::GET, STREAM, token, None, &[("last-event-id", "-1")])
        .await;
    assert_eq!(malformed.status, 400, "{}", malformed.body);
    assert_eq!(malformed.field(), Some("Last-Event-ID"));
    let unknown = c.get(&format!("{STREAM}?since=1"), token).await;
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    let forbidden = c
        .get(&format!("{STREAM}?user_id={}", other.id), token)
        .await;
    assert_eq!(forbidden.status, 403, "{}", forbidden.body);
    let own = c.get(&format!("{STREAM}?user_id={}", user.id), token).await;
    assert_eq!(own.status, 200, "{}", own.body);
    let anonymous = c.get(STREAM, None).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    c.finish("live");
}
