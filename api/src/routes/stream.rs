//! `GET /api/v1/stream`: the caller's bot status changes, fills, positions
//! and notifications as server-sent events, as their read models commit
//! them (see [`crate::live`]).

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use domain::Permission;
use event_log::Position;
use serde_json::json;
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

use crate::caller::Caller;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::QueryParams;
use crate::live::{updates_between, Admission, Batch, LiveHub, Update, PAGE};
use crate::routes::queries::Params;
use crate::state::AppState;

/// The stream's filter, for the document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct StreamFilter {
    /// Only this user's events: for admins and auditors
    /// (`trading.read_all`, whose stream is everyone's without it) any
    /// user's; for anyone else their own id (another's is a 403).
    user_id: Option<Uuid>,
}

/// `GET /api/v1/stream` (`text/event-stream`).
#[utoipa::path(
    get,
    path = "/api/v1/stream",
    operation_id = "stream",
    tag = "live",
    summary = "The caller's live updates, as server-sent events",
    description = "Each event is one event of the log that changed something of the caller's, \
        sent once every read model it concerns has committed it: `event:` is `bot_status` (a \
        bot's state changed, or it reported an error), `trade` (a fill), `position` (the \
        position after a fill), `notification` or `notification_read`; `id:` is the event's \
        position in the log; `data:` is JSON `{position, user_id, kind, data, recorded_at}`. A \
        client that reconnects with `Last-Event-ID` (a browser's EventSource does) gets exactly \
        the events after that one, none twice. An idle stream gets a comment every \
        `STREAM_HEARTBEAT_SECS`. At most `STREAM_MAX_CONNECTIONS_PER_USER` streams per user \
        and instance; one more is a 429. The stream ends when its caller may no longer read \
        it (account disabled, session ended, role changed), checked every heartbeat.",
    security(("bearer" = [])),
    params(
        StreamFilter,
        ("Last-Event-ID" = Option<String>, Header,
            description = "The `id` of the last event the client saw: the stream starts after \
                it. Absent: from now."),
    ),
    responses(
        (status = 200, description = "The stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "A malformed `Last-Event-ID` or query parameter", body = ErrorResponse),
        (status = 403, description = "`user_id` names another user, and the caller's role does \
            not hold `trading.read_all`", body = ErrorResponse),
        (status = 429, description = "The caller has as many streams open as allowed", body = ErrorResponse),
    ),
)]
pub async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    QueryParams(raw): QueryParams,
) -> Result<Response, ApiError> {
    let params = Params::new(raw, &["user_id"])?;
    let asked = params.uuid("user_id")?;
    let filter = if caller.role.has(Permission::TradingReadAll) {
        asked
    } else {
        match asked {
            Some(other) if other != caller.user_id => {
                return Err(ApiError::Forbidden(format!(
                    "user_id: only a role holding {} streams another user's events",
                    Permission::TradingReadAll
                )))
            }
            _ => Some(caller.user_id),
        }
    };
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<Position>().ok())
                .ok_or_else(|| ApiError::BadRequest {
                    field: Some("Last-Event-ID".to_string()),
                    reason: "must be the id of an event of this stream (<transaction>.<position>)"
                        .to_string(),
                })?,
        ),
    };
    let hub = state.live.clone();
    let admission = hub
        .admit(caller.user_id)
        .ok_or_else(|| ApiError::TooManyRequests {
            reason: format!(
                "at most {} streams per user are open at once",
                hub.settings.max_connections_per_user
            ),
            retry_after_secs: 5,
        })?;
    let (receiver, cut) = hub.subscribe().await;
    let (events, mut outgoing) = mpsc::channel::<Event>(64);
    tokio::spawn(feed(
        Watch {
            state: state.clone(),
            caller,
            every: hub.settings.heartbeat.min(RECHECK),
        },
        hub.clone(),
        admission,
        filter,
        last_event_id,
        receiver,
        cut,
        events,
    ));
    let body = futures::stream::poll_fn(move |context| {
        outgoing
            .poll_recv(context)
            .map(|next| next.map(Ok::<_, Infallible>))
    });
    let heartbeat = hub.settings.heartbeat;
    let mut response = Sse::new(body)
        .keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat"))
        .into_response();
    // Proxies must pass every event on at once.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
        .headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    Ok(response)
}

fn event_of(update: &Update) -> Event {
    let id = update.position.to_string();
    Event::default()
        .id(id.clone())
        .event(update.kind.clone())
        .json_data(json!({
            "position": id,
            "user_id": update.user_id,
            "kind": update.kind,
            "data": update.data,
            "recorded_at": update.recorded_at,
        }))
        .unwrap_or_else(|_| Event::default().comment("unserialisable update"))
}

/// Sends `updates` that `filter` keeps and that are after `at`; `false`
/// once the client is gone.
async fn send_all(
    events: &mpsc::Sender<Event>,
    updates: &[Update],
    filter: Option<Uuid>,
    at: Position,
) -> bool {
    for update in updates {
        if update.position <= at || filter.is_some_and(|user| user != update.user_id) {
            continue;
        }
        if events.send(event_of(update)).await.is_err() {
            return false;
        }
    }
    true
}

/// Sends the stream's rows in `(at, upto]` from the table; `false` once
/// the client is gone or the table cannot be read (the stream then ends,
/// and the client reconnects with its last id).
async fn catch_up(
    hub: &LiveHub,
    events: &mpsc::Sender<Event>,
    filter: Option<Uuid>,
    mut at: Position,
    upto: Position,
) -> bool {
    while at < upto {
        let updates = match updates_between(hub.pool(), filter, at, upto, PAGE).await {
            Ok(updates) => updates,
            Err(error) => {
                tracing::warn!(%error, "stream cannot read live_updates; ending it");
                return false;
            }
        };
        if !send_all(events, &updates, filter, at).await {
            return false;
        }
        at = match updates.last() {
            Some(last) if updates.len() as i64 == PAGE => last.position,
            _ => upto,
        };
    }
    true
}

/// How often at most an open stream asks again whether its caller may
/// still read it.
pub const RECHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// Who a stream is for, asked again every `every`: the stream ends when
/// the account is disabled or erased, the token's session ended (logged
/// out, revoked), or the caller's role no longer reads what the stream
/// sends (another user's or everyone's events need `trading.read_all`).
struct Watch {
    state: AppState,
    caller: Caller,
    every: std::time::Duration,
}

impl Watch {
    async fn still_allowed(&self, filter: Option<Uuid>) -> bool {
        match self.caller.recheck(&self.state).await {
            Ok(now) => filter == Some(now.user_id) || now.role.has(Permission::TradingReadAll),
            // The database down is not a refusal: ask again next time.
            Err(ApiError::Unavailable(_)) => true,
            Err(_) => false,
        }
    }
}

/// One stream's task: what it missed, then the broadcast, until the client
/// goes away (the channel closes), the hub stops, or the caller may no
/// longer read it ([`Watch`]).
#[allow(clippy::too_many_arguments)]
async fn feed(
    watch: Watch,
    hub: Arc<LiveHub>,
    _admission: Admission,
    filter: Option<Uuid>,
    last_event_id: Option<Position>,
    mut receiver: broadcast::Receiver<Arc<Batch>>,
    cut: Position,
    events: mpsc::Sender<Event>,
) {
    let mut at = cut;
    if let Some(last) = last_event_id {
        if last < cut && !catch_up(&hub, &events, filter, last, cut).await {
            return;
        }
        at = at.max(last);
    }
    let mut recheck = tokio::time::interval(watch.every);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    recheck.tick().await;
    loop {
        let received = tokio::select! {
            received = receiver.recv() => received,
            _ = recheck.tick() => {
                if !watch.still_allowed(filter).await {
                    tracing::info!(user_id = %watch.caller.user_id, "stream ended: the caller may no longer read it");
                    return;
                }
                continue;
            }
        };
        let batch = match received {
            Ok(batch) => batch,
            // The next batch starts past `at`, so the gap is read below.
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if batch.to <= at {
            continue;
        }
        if batch.from > at {
            if !catch_up(&hub, &events, filter, at, batch.from).await {
                return;
            }
            at = batch.from;
        }
        if !send_all(&events, &batch.updates, filter, at).await {
            return;
        }
        at = batch.to;
    }
}
