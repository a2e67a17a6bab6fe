//! Support tickets: a user's questions to the support staff and the
//! conversation on each, for the user (their own tickets) and the staff
//! (every ticket, filterable).
//!
//! The permission layer admits every role to the ticket operations but
//! `assign_ticket` (`tickets.staff`); inside, a caller holding
//! `tickets.staff` sees and acts on every ticket, anyone else on their own
//! only, and another's ticket is a 404, so its existence does not leak.
//! The queries read `support_tickets` and `support_messages`; the commands
//! go through the SupportTicket aggregate, which decides the same way.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use domain::Permission;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use projections::read_models;

use crate::caller::Caller;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{parse_id, FreeText, FreeTextJsonBody, JsonBody, QueryParams, RequestContext};
use crate::openapi::schemas;
use crate::routes::queries::{database, Page, Params, ReadYourWrites};
use crate::state::AppState;

/// Who holds `tickets.staff` (support, admins) sees every ticket; the
/// others only their own.
fn is_staff(caller: &Caller) -> bool {
    caller.has(Permission::TicketsStaff)
}

fn ticket_not_found() -> ApiError {
    ApiError::NotFound("support ticket not found".to_string())
}

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenTicketRequest {
    /// One line, 1 to 200 characters once trimmed.
    #[schema(pattern = "{NON_BLANK_LINE}", min_length = 1, max_length = 200)]
    subject: String,
    /// Free text, 1 to 10000 characters once trimmed; line feeds and tabs
    /// are the only control characters it may hold.
    #[schema(pattern = "{FREE_TEXT}", min_length = 1, max_length = 10000)]
    body: String,
}

impl FreeText for OpenTicketRequest {
    const FIELDS: &'static [&'static str] = &["body"];
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyRequest {
    /// Free text, 1 to 10000 characters once trimmed; line feeds and tabs
    /// are the only control characters it may hold.
    #[schema(pattern = "{FREE_TEXT}", min_length = 1, max_length = 10000)]
    body: String,
}

impl FreeText for ReplyRequest {
    const FIELDS: &'static [&'static str] = &["body"];
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    /// A user whose role holds `tickets.staff` (support or admin).
    assignee_id: Uuid,
}

/// A ticket command's outcome and where its event stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketChanged {
    pub ticket_id: Uuid,
    #[schema(value_type = schemas::Position)]
    pub position: String,
}

/// A ticket's new status after a close or a reopen.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketStatusChanged {
    pub ticket_id: Uuid,
    #[schema(value_type = schemas::TicketStatus)]
    pub status: &'static str,
    #[schema(value_type = schemas::Position)]
    pub position: String,
}

/// A ticket's assignee after an assignment.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketAssigned {
    pub ticket_id: Uuid,
    pub assignee_id: Uuid,
    #[schema(value_type = schemas::Position)]
    pub position: String,
}

/// `POST /api/v1/support/tickets` `{subject, body}` → 201 `{ticket_id, position}`.
#[utoipa::path(
    post,
    path = "/api/v1/support/tickets",
    operation_id = "open_ticket",
    tag = "support",
    summary = "Open a support ticket",
    description = "A ticket of the caller's own. Its subject and body are the caller's \
        personal data: sealed under their data key in the log, unreadable once they are erased.",
    security(("bearer" = [])),
    request_body = OpenTicketRequest,
    responses(
        (status = 201, description = "Opened", body = TicketChanged),
        (status = 400, description = "Unreadable JSON", body = ErrorResponse),
        (status = 404, description = "The caller's user is erased", body = ErrorResponse),
        (status = 422, description = "A field is invalid: `subject` (1 to 200 characters, one \
            line) or `body` (1 to 10000 characters, no control characters but line feeds and \
            tabs)", body = ErrorResponse),
    ),
)]
pub async fn open_ticket(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    FreeTextJsonBody(request): FreeTextJsonBody<OpenTicketRequest>,
) -> Result<(StatusCode, Json<TicketChanged>), ApiError> {
    let metadata = context.metadata(Some(caller.actor()), "support.open_ticket");
    let (ticket_id, position) = state
        .commands
        .open_support_ticket(caller.actor(), &request.subject, &request.body, &metadata)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TicketChanged {
            ticket_id,
            position: position.to_string(),
        }),
    ))
}

/// `POST /api/v1/support/tickets/{ticket_id}/replies` `{body}` → 201.
#[utoipa::path(
    post,
    path = "/api/v1/support/tickets/{ticket_id}/replies",
    operation_id = "reply_to_ticket",
    tag = "support",
    summary = "Reply to a support ticket",
    description = "By the ticket's owner, or by the staff (`tickets.staff`) on any ticket. \
        The body is sealed under the owner's data key, whoever writes it. A ticket takes at \
        most 200 replies; one more is a 409 naming `replies per ticket`.",
    security(("bearer" = [])),
    params(("ticket_id" = Uuid, Path, description = "The ticket")),
    request_body = ReplyRequest,
    responses(
        (status = 201, description = "Replied", body = TicketChanged),
        (status = 400, description = "Unreadable JSON or a malformed `ticket_id`", body = ErrorResponse),
        (status = 404, description = "No such ticket, or another user's", body = ErrorResponse),
        (status = 409, description = "The ticket is closed, has 200 replies already \
            (`replies per ticket: the limit is …`), or its owner was erased", body = ErrorResponse),
        (status = 422, description = "`body` is invalid (1 to 10000 characters, no control \
            characters but line feeds and tabs)", body = ErrorResponse),
    ),
)]
pub async fn reply_to_ticket(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(ticket_id): Path<String>,
    FreeTextJsonBody(request): FreeTextJsonBody<ReplyRequest>,
) -> Result<(StatusCode, Json<TicketChanged>), ApiError> {
    let ticket_id = parse_id("ticket_id", &ticket_id)?;
    let metadata = context.metadata(Some(caller.actor()), "support.reply");
    let position = state
        .commands
        .reply_to_support_ticket(caller.actor(), ticket_id, &request.body, &metadata)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TicketChanged {
            ticket_id,
            position: position.to_string(),
        }),
    ))
}

/// `POST /api/v1/support/tickets/{ticket_id}/assign` `{assignee_id}` → 200.
#[utoipa::path(
    post,
    path = "/api/v1/support/tickets/{ticket_id}/assign",
    operation_id = "assign_ticket",
    tag = "support",
    summary = "Assign a support ticket to a member of the staff",
    description = "The assignee must be a user whose role holds `tickets.staff` (support or \
        admin) now. Assigning the assignee again records nothing.",
    security(("bearer" = [])),
    params(("ticket_id" = Uuid, Path, description = "The ticket")),
    request_body = AssignRequest,
    responses(
        (status = 200, description = "Assigned", body = TicketAssigned),
        (status = 400, description = "Unreadable JSON or a malformed `ticket_id`", body = ErrorResponse),
        (status = 404, description = "No such ticket", body = ErrorResponse),
        (status = 409, description = "The ticket is closed", body = ErrorResponse),
        (status = 422, description = "`assignee_id` is no user, or one whose role does not \
            hold `tickets.staff`", body = ErrorResponse),
    ),
)]
pub async fn assign_ticket(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(ticket_id): Path<String>,
    JsonBody(request): JsonBody<AssignRequest>,
) -> Result<Json<TicketAssigned>, ApiError> {
    let ticket_id = parse_id("ticket_id", &ticket_id)?;
    let metadata = context.metadata(Some(caller.actor()), "support.assign_ticket");
    let position = state
        .commands
        .assign_support_ticket(caller.actor(), ticket_id, request.assignee_id, &metadata)
        .await?;
    Ok(Json(TicketAssigned {
        ticket_id,
        assignee_id: request.assignee_id,
        position: position.to_string(),
    }))
}

/// `POST /api/v1/support/tickets/{ticket_id}/close` → 200.
#[utoipa::path(
    post,
    path = "/api/v1/support/tickets/{ticket_id}/close",
    operation_id = "close_ticket",
    tag = "support",
    summary = "Close a support ticket",
    description = "By the ticket's owner, or by the staff on any ticket.",
    security(("bearer" = [])),
    params(("ticket_id" = Uuid, Path, description = "The ticket")),
    responses(
        (status = 200, description = "Closed", body = TicketStatusChanged),
        (status = 400, description = "A malformed `ticket_id`", body = ErrorResponse),
        (status = 404, description = "No such ticket, or another user's", body = ErrorResponse),
        (status = 409, description = "The ticket is closed already", body = ErrorResponse),
    ),
)]
pub async fn close_ticket(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(ticket_id): Path<String>,
) -> Result<Json<TicketStatusChanged>, ApiError> {
    let ticket_id = parse_id("ticket_id", &ticket_id)?;
    let metadata = context.metadata(Some(caller.actor()), "support.close_ticket");
    let position = state
        .commands
        .close_support_ticket(caller.actor(), ticket_id, &metadata)
        .await?;
    Ok(Json(TicketStatusChanged {
        ticket_id,
        status: "closed",
        position: position.to_string(),
    }))
}

/// `POST /api/v1/support/tickets/{ticket_id}/reopen` → 200.
#[utoipa::path(
    post,
    path = "/api/v1/support/tickets/{ticket_id}/reopen",
    operation_id = "reopen_ticket",
    tag = "support",
    summary = "Reopen a closed support ticket",
    description = "By the ticket's owner, or by the staff on any ticket.",
    security(("bearer" = [])),
    params(("ticket_id" = Uuid, Path, description = "The ticket")),
    responses(
        (status = 200, description = "Reopened", body = TicketStatusChanged),
        (status = 400, description = "A malformed `ticket_id`", body = ErrorResponse),
        (status = 404, description = "No such ticket, or another user's", body = ErrorResponse),
        (status = 409, description = "The ticket is open already", body = ErrorResponse),
    ),
)]
pub async fn reopen_ticket(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(ticket_id): Path<String>,
) -> Result<Json<TicketStatusChanged>, ApiError> {
    let ticket_id = parse_id("ticket_id", &ticket_id)?;
    let metadata = context.metadata(Some(caller.actor()), "support.reopen_ticket");
    let position = state
        .commands
        .reopen_support_ticket(caller.actor(), ticket_id, &metadata)
        .await?;
    Ok(Json(TicketStatusChanged {
        ticket_id,
        status: "open",
        position: position.to_string(),
    }))
}

// ---------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------

/// The ticket filters, for the document; the handler reads them.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct TicketFilter {
    /// Only tickets in this status.
    #[param(value_type = Option<schemas::TicketStatus>)]
    status: Option<String>,
    /// Only tickets assigned to this user.
    assignee_id: Option<Uuid>,
    /// Only this user's tickets (for the staff; anyone else sees only
    /// their own either way).
    owner_id: Option<Uuid>,
}

/// A ticket, from the `support_tickets` read model.
#[derive(Serialize, sqlx::FromRow, ToSchema)]
pub struct TicketView {
    ticket_id: Uuid,
    owner_id: Uuid,
    /// `null` once the owner is erased.
    subject: Option<String>,
    #[schema(value_type = schemas::TicketStatus)]
    status: String,
    assignee_id: Option<Uuid>,
    /// How many replies the ticket has (its opening message not counted).
    replies: i32,
    opened_at: DateTime<Utc>,
    last_message_at: DateTime<Utc>,
    /// When it was last closed; `null` while open.
    closed_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
}

const TICKET_COLUMNS: &str = "ticket_id, owner_id, subject, status, assignee_id, replies, \
     opened_at, last_message_at, closed_at, updated_at";

/// A message of a ticket, from the `support_messages` read model.
#[derive(Serialize, sqlx::FromRow, ToSchema)]
pub struct MessageView {
    /// 0 for the opening message, then each reply's number.
    number: i32,
    author_id: Uuid,
    /// Written by the staff, not the ticket's owner.
    from_staff: bool,
    /// `null` once the ticket's owner is erased.
    body: Option<String>,
    written_at: DateTime<Utc>,
}

/// A ticket with its messages, oldest first.
#[derive(Serialize, ToSchema)]
pub struct TicketDetail {
    #[serde(flatten)]
    ticket: TicketView,
    messages: Vec<MessageView>,
}

/// A page of tickets.
#[derive(Serialize, ToSchema)]
pub struct TicketPage {
    tickets: Vec<TicketView>,
    /// The `cursor` of the next page; `null` on the last.
    next_cursor: Option<String>,
}

/// `GET /api/v1/support/tickets?status&assignee_id&owner_id&limit&cursor`.
#[utoipa::path(
    get,
    path = "/api/v1/support/tickets",
    operation_id = "list_tickets",
    tag = "support",
    summary = "Support tickets, oldest first",
    description = "The caller's own tickets; the staff (`tickets.staff`) see everyone's. The \
        filters narrow either list. Paged by offset, oldest first.",
    security(("bearer" = [])),
    params(TicketFilter, Page, ReadYourWrites),
    responses(
        (status = 200, description = "A page of tickets", body = TicketPage),
        (status = 400, description = "An unknown or malformed query parameter", body = ErrorResponse),
    ),
)]
pub async fn list_tickets(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(raw): QueryParams,
) -> Result<Json<TicketPage>, ApiError> {
    let params = Params::new(
        raw,
        &["status", "assignee_id", "owner_id", "limit", "cursor"],
    )?;
    let status = params
        .get("status")
        .map(|status| match status {
            "open" | "closed" => Ok(status.to_string()),
            _ => Err(ApiError::BadRequest {
                field: Some("status".to_string()),
                reason: "must be open or closed".to_string(),
            }),
        })
        .transpose()?;
    let assignee_id = params.uuid("assignee_id")?;
    let owner_id = params.uuid("owner_id")?;
    let page = params.offset_page()?;
    params
        .wait_for(&state, &read_models::SUPPORT_TICKETS)
        .await?;
    let tickets = sqlx::query_as::<_, TicketView>(&format!(
        "SELECT {TICKET_COLUMNS} FROM support_tickets \
          WHERE ($1 OR owner_id = $2) \
            AND ($3::text IS NULL OR status = $3) \
            AND ($4::uuid IS NULL OR assignee_id = $4) \
            AND ($5::uuid IS NULL OR owner_id = $5) \
          ORDER BY opened_at, ticket_id OFFSET $6 LIMIT $7"
    ))
    .bind(is_staff(&caller))
    .bind(caller.user_id)
    .bind(status)
    .bind(assignee_id)
    .bind(owner_id)
    .bind(page.offset)
    .bind(page.rows_to_read())
    .fetch_all(state.pool())
    .await
    .map_err(database)?;
    let (tickets, next_cursor) = page.split(tickets);
    Ok(Json(TicketPage {
        tickets,
        next_cursor,
    }))
}

/// `GET /api/v1/support/tickets/{ticket_id}`: the ticket and its messages;
/// another user's ticket is a 404.
#[utoipa::path(
    get,
    path = "/api/v1/support/tickets/{ticket_id}",
    operation_id = "get_ticket",
    tag = "support",
    summary = "A support ticket and its messages",
    description = "The caller's own ticket, or any ticket for the staff (`tickets.staff`); \
        another user's ticket is a 404. `min_position` waits for both `support_tickets` and \
        `support_messages`.",
    security(("bearer" = [])),
    params(("ticket_id" = Uuid, Path, description = "The ticket"), ReadYourWrites),
    responses(
        (status = 200, description = "The ticket with its messages, oldest first", body = TicketDetail),
        (status = 400, description = "A malformed `ticket_id`, or an unknown or malformed query parameter", body = ErrorResponse),
        (status = 404, description = "No such ticket, or another user's", body = ErrorResponse),
    ),
)]
pub async fn get_ticket(
    State(state): State<AppState>,
    caller: Caller,
    Path(ticket_id): Path<String>,
    QueryParams(raw): QueryParams,
) -> Result<Json<TicketDetail>, ApiError> {
    let ticket_id = parse_id("ticket_id", &ticket_id)?;
    let params = Params::new(raw, &[])?;
    params
        .wait_for(&state, &read_models::SUPPORT_TICKETS)
        .await?;
    params
        .wait_for(&state, &read_models::SUPPORT_MESSAGES)
        .await?;
    let ticket = sqlx::query_as::<_, TicketView>(&format!(
        "SELECT {TICKET_COLUMNS} FROM support_tickets WHERE ticket_id = $1 AND ($2 OR owner_id = $3)"
    ))
    .bind(ticket_id)
    .bind(is_staff(&caller))
    .bind(caller.user_id)
    .fetch_optional(state.pool())
    .await
    .map_err(database)?
    .ok_or_else(ticket_not_found)?;
    let messages = sqlx::query_as::<_, MessageView>(
        "SELECT number, author_id, from_staff, body, written_at FROM support_messages \
          WHERE ticket_id = $1 ORDER BY number",
    )
    .bind(ticket_id)
    .fetch_all(state.pool())
    .await
    .map_err(database)?;
    Ok(Json(TicketDetail { ticket, messages }))
}
