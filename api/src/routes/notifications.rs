//! The caller's notifications: the list (newest first, with the unread
//! count), and marking one or all read. Each user sees only their own,
//! whatever their role; another user's notification does not exist for
//! them.

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use projections::read_models;

use crate::caller::Caller;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{parse_id, QueryParams, RequestContext};
use crate::openapi::schemas;
use crate::routes::queries::{database, Page, Params, ReadYourWrites};
use crate::state::AppState;

/// A notification, from the `notifications` read model.
#[derive(Serialize, sqlx::FromRow, ToSchema)]
pub struct NotificationView {
    notification_id: Uuid,
    /// Its place in commit order; the list pages by it.
    number: i64,
    #[schema(value_type = schemas::NotificationKind)]
    kind: String,
    /// The bot it is about, if any.
    bot_id: Option<Uuid>,
    /// The exchange key it is about, if any.
    key_id: Option<Uuid>,
    /// The support ticket it is about, if any.
    ticket_id: Option<Uuid>,
    /// What the user is told (at most 500 characters).
    message: String,
    /// The event it tells about, and its type.
    source_event_id: Uuid,
    source_event_type: String,
    created_at: DateTime<Utc>,
    /// When the user read it; `null` while unread.
    read_at: Option<DateTime<Utc>>,
}

/// A page of the caller's notifications, newest first.
#[derive(Serialize, ToSchema)]
pub struct NotificationPage {
    notifications: Vec<NotificationView>,
    /// How many of all the caller's notifications are unread.
    unread: i64,
    /// The `cursor` of the next page; `null` on the last.
    next_cursor: Option<String>,
}

/// `GET /api/v1/notifications?limit&cursor`.
#[utoipa::path(
    get,
    path = "/api/v1/notifications",
    operation_id = "list_notifications",
    tag = "notifications",
    summary = "The caller's notifications, newest first",
    description = "Bot errors and stops, failed key tests, fills and support replies, as the \
        caller's `in_app` level (`PATCH /api/v1/user/me`, `notifications.in_app`) allows, with \
        the unread count. Pages follow `number`, assigned in commit order, so notifications \
        arriving while a client pages never shift a later page.",
    security(("bearer" = [])),
    params(Page, ReadYourWrites),
    responses(
        (status = 200, description = "A page of notifications", body = NotificationPage),
        (status = 400, description = "An unknown or malformed query parameter", body = ErrorResponse),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(raw): QueryParams,
) -> Result<Json<NotificationPage>, ApiError> {
    let params = Params::new(raw, &["limit", "cursor"])?;
    let limit = params.limit()?;
    let before = params.cursor()?;
    params.wait_for(&state, &read_models::NOTIFICATIONS).await?;
    let notifications = sqlx::query_as::<_, NotificationView>(
        "SELECT notification_id, number, kind, bot_id, key_id, ticket_id, message, \
                source_event_id, source_event_type, created_at, read_at \
           FROM notifications \
          WHERE user_id = $1 AND ($2::bigint IS NULL OR number < $2) \
          ORDER BY number DESC LIMIT $3",
    )
    .bind(caller.user_id)
    .bind(before)
    .bind(limit)
    .fetch_all(state.pool())
    .await
    .map_err(database)?;
    let unread: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL",
    )
    .bind(caller.user_id)
    .fetch_one(state.pool())
    .await
    .map_err(database)?;
    let next_cursor = (notifications.len() as i64 == limit)
        .then(|| notifications.last().map(|n| n.number.to_string()))
        .flatten();
    Ok(Json(NotificationPage {
        notifications,
        unread,
        next_cursor,
    }))
}

/// A notification marked read.
#[derive(Serialize, ToSchema)]
pub struct NotificationRead {
    notification_id: Uuid,
    /// Pass as `min_position` to a later read to see it.
    #[schema(value_type = schemas::Position)]
    position: String,
}

/// `POST /api/v1/notifications/{notification_id}/read` → 200.
#[utoipa::path(
    post,
    path = "/api/v1/notifications/{notification_id}/read",
    operation_id = "read_notification",
    tag = "notifications",
    summary = "Mark a notification read",
    description = "Only the caller's own; reading one again changes nothing.",
    security(("bearer" = [])),
    params(("notification_id" = Uuid, Path, description = "The notification")),
    responses(
        (status = 200, description = "Read", body = NotificationRead),
        (status = 400, description = "A malformed `notification_id`", body = ErrorResponse),
        (status = 404, description = "No such notification, or another user's", body = ErrorResponse),
    ),
)]
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(notification_id): Path<String>,
) -> Result<Json<NotificationRead>, ApiError> {
    let notification_id = parse_id("notification_id", &notification_id)?;
    let metadata = context.metadata(Some(caller.actor()), "notification.mark_read");
    let position = state
        .commands
        .mark_notification_read(caller.actor(), notification_id, &metadata)
        .await?;
    Ok(Json(NotificationRead {
        notification_id,
        position: position.to_string(),
    }))
}

/// What "read all" marked.
#[derive(Serialize, ToSchema)]
pub struct NotificationsRead {
    /// How many were marked read (at most 500 at once: call again while
    /// this is 500).
    marked: usize,
    /// The position of the last one's event; `null` when none was unread.
    #[schema(value_type = Option<schemas::Position>)]
    position: Option<String>,
}

/// `POST /api/v1/notifications/read-all` → 200.
#[utoipa::path(
    post,
    path = "/api/v1/notifications/read-all",
    operation_id = "read_all_notifications",
    tag = "notifications",
    summary = "Mark all of the caller's notifications read",
    description = "Marks the caller's unread notifications the list holds now, oldest first, \
        at most 500 at once (`marked` says how many).",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Read", body = NotificationsRead),
    ),
)]
pub async fn read_all(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
) -> Result<Json<NotificationsRead>, ApiError> {
    let metadata = context.metadata(Some(caller.actor()), "notification.mark_read");
    let (marked, position) = state
        .commands
        .mark_all_notifications_read(caller.actor(), &metadata)
        .await?;
    Ok(Json(NotificationsRead {
        marked,
        position: position.map(|p| p.to_string()),
    }))
}
