use axum::extract::{Path, State};
use axum::Json;
use domain::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::caller::Caller;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{parse_id, JsonBody, RequestContext};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRoleRequest {
    #[schema(value_type = crate::openapi::schemas::Role)]
    role: Role,
}

/// The role a user now holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleAssigned {
    pub user_id: Uuid,
    #[schema(value_type = crate::openapi::schemas::Role)]
    pub role: Role,
    #[schema(value_type = crate::openapi::schemas::Position)]
    pub position: String,
}

/// `POST /api/v1/admin/users/{user_id}/role` `{role}` (admins only).
#[utoipa::path(
    post,
    path = "/api/v1/admin/users/{user_id}/role",
    tag = "admin",
    summary = "Give a user a role (admins)",
    description = "A user holds one role; this replaces it. A change revokes the user's refresh \
        tokens (they log in again) and takes effect at once: admin and auditor powers are \
        checked against the role held now, whatever an access token claims.",
    security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "The user")),
    request_body = AssignRoleRequest,
    responses(
        (status = 200, description = "Assigned", body = RoleAssigned),
        (status = 400, description = "Unreadable JSON or a malformed `user_id`", body = ErrorResponse),
        (status = 403, description = "The caller is not an admin now (a token issued before a \
            demotion included)", body = ErrorResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
        (status = 422, description = "A field is invalid", body = ErrorResponse),
    ),
)]
pub async fn assign_role(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(user_id): Path<String>,
    JsonBody(request): JsonBody<AssignRoleRequest>,
) -> Result<Json<RoleAssigned>, ApiError> {
    let user_id = parse_id("user_id", &user_id)?;
    let metadata = context.metadata(Some(caller.actor()), "user.assign_role");
    let position = state
        .commands
        .assign_role(caller.actor(), user_id, request.role, &metadata)
        .await?;
    Ok(Json(RoleAssigned {
        user_id,
        role: request.role,
        position: position.to_string(),
    }))
}

/// A user whose personal data is erased.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserErased {
    pub user_id: Uuid,
    /// Where `user.erased` stands; for a repeated erasure, where the user's
    /// last event stands.
    #[schema(value_type = crate::openapi::schemas::Position)]
    pub position: String,
}

/// `POST /api/v1/admin/users/{user_id}/erase` (admins only).
#[utoipa::path(
    post,
    path = "/api/v1/admin/users/{user_id}/erase",
    tag = "admin",
    summary = "Erase a user's personal data (admins)",
    description = "Records `user.erased` and destroys the user's data key: every email, display \
        name and log-in source address of theirs sealed in the log becomes unreadable, while the \
        events, their hashes and the chain stay as they were. The user's credentials, snapshot \
        and sessions are deleted; the `users` read model keeps their id, role and dates with no \
        email or name, and `erased_at` set. Events written in clear before personal data was \
        sealed stay in the log as they are. Erasing an erased user changes nothing and answers \
        the same.",
    security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "The user")),
    responses(
        (status = 200, description = "Erased", body = UserErased),
        (status = 400, description = "A malformed `user_id`", body = ErrorResponse),
        (status = 403, description = "The caller is not an admin now", body = ErrorResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
    ),
)]
pub async fn erase_user(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(user_id): Path<String>,
) -> Result<Json<UserErased>, ApiError> {
    let user_id = parse_id("user_id", &user_id)?;
    let metadata = context.metadata(Some(caller.actor()), "user.erase");
    let position = state
        .commands
        .erase_user(caller.actor(), user_id, &metadata)
        .await?;
    Ok(Json(UserErased {
        user_id,
        position: position.to_string(),
    }))
}

/// Why an admin disables an account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableRequest {
    /// 1 to 500 characters, recorded in `user.disabled`.
    #[schema(pattern = "{NON_BLANK_LINE}", min_length = 1, max_length = 500)]
    reason: Option<String>,
}

/// A user whose account was disabled or re-enabled.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountChanged {
    pub user_id: Uuid,
    /// Where the event stands; for a repeat, where the user's last event
    /// stands.
    #[schema(value_type = crate::openapi::schemas::Position)]
    pub position: String,
}

/// `POST /api/v1/admin/users/{user_id}/disable` `{reason?}` (admins).
#[utoipa::path(
    post,
    path = "/api/v1/admin/users/{user_id}/disable",
    operation_id = "disable_user",
    tag = "admin",
    summary = "Disable a user (admins)",
    description = "Records `user.disabled`: the user's log-ins and tokens are refused at once, \
        their sessions end, and each of their running bots is stopped through the normal stop \
        command. Disabling a disabled user records nothing; an admin cannot disable themself.",
    security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "The user")),
    request_body = DisableRequest,
    responses(
        (status = 200, description = "Disabled", body = AccountChanged),
        (status = 400, description = "Unreadable JSON or a malformed `user_id`", body = ErrorResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
        (status = 409, description = "The caller's own account", body = ErrorResponse),
        (status = 422, description = "A field is invalid", body = ErrorResponse),
    ),
)]
pub async fn disable_user(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(user_id): Path<String>,
    JsonBody(request): JsonBody<DisableRequest>,
) -> Result<Json<AccountChanged>, ApiError> {
    let user_id = parse_id("user_id", &user_id)?;
    let metadata = context.metadata(Some(caller.actor()), "user.disable");
    let position = state
        .commands
        .disable_user(caller.actor(), user_id, request.reason, &metadata)
        .await?;
    Ok(Json(AccountChanged {
        user_id,
        position: position.to_string(),
    }))
}

/// `POST /api/v1/admin/users/{user_id}/enable` (admins).
#[utoipa::path(
    post,
    path = "/api/v1/admin/users/{user_id}/enable",
    operation_id = "enable_user",
    tag = "admin",
    summary = "Re-enable a disabled user (admins)",
    description = "Records `user.enabled`; the user logs in again (their old sessions stay \
        ended) and starts their bots again themselves.",
    security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "The user")),
    responses(
        (status = 200, description = "Enabled", body = AccountChanged),
        (status = 400, description = "A malformed `user_id`", body = ErrorResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
    ),
)]
pub async fn enable_user(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(user_id): Path<String>,
) -> Result<Json<AccountChanged>, ApiError> {
    let user_id = parse_id("user_id", &user_id)?;
    let metadata = context.metadata(Some(caller.actor()), "user.enable");
    let position = state
        .commands
        .enable_user(caller.actor(), user_id, &metadata)
        .await?;
    Ok(Json(AccountChanged {
        user_id,
        position: position.to_string(),
    }))
}
