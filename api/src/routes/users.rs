use axum::extract::Path;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use command_side::users::ProfileUpdate;
use domain::user::{Experience, NotificationPreferences, RiskProfile};
use domain::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::caller::Caller;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{parse_id, JsonBody, RequestContext};
use crate::state::AppState;

/// The profile fields to change; at least one, none `null`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProfileRequest {
    /// 1 to 100 characters once trimmed.
    #[schema(
        pattern = "{NON_BLANK_LINE}",
        min_length = 1,
        max_length = 100,
        nullable = false
    )]
    #[serde(default, deserialize_with = "present")]
    display_name: Option<String>,
    /// An IANA time zone name: `UTC`, or one to three `/`-separated parts
    /// of ASCII letters, digits, `_`, `-`, `+`, each starting with a letter.
    #[schema(
        example = "Europe/Paris",
        max_length = 64,
        nullable = false,
        pattern = "^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z][A-Za-z0-9_+-]*){0,2}$"
    )]
    #[serde(default, deserialize_with = "present")]
    timezone: Option<String>,
    #[schema(value_type = crate::openapi::schemas::NotificationPreferences)]
    #[serde(default, deserialize_with = "present")]
    notifications: Option<NotificationPreferences>,
    #[schema(value_type = crate::openapi::schemas::RiskProfile)]
    #[serde(default, deserialize_with = "present")]
    risk_profile: Option<RiskProfile>,
}

/// A field that may be absent but not `null`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// A change to the caller's user and where its event stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserChanged {
    pub user_id: Uuid,
    #[schema(value_type = crate::openapi::schemas::Position)]
    pub position: String,
}

/// `PATCH /api/v1/user/me` `{display_name}`.
#[utoipa::path(
    patch,
    path = "/api/v1/user/me",
    operation_id = "update_me",
    tag = "users",
    summary = "Change the caller's profile",
    description = "Records `user.updated` with the fields given (the display name sealed): \
        display name, time zone, notification preferences, risk profile.",
    security(("bearer" = [])),
    request_body = UpdateProfileRequest,
    responses(
        (status = 200, description = "Changed", body = UserChanged),
        (status = 400, description = "Unreadable JSON", body = ErrorResponse),
        (status = 422, description = "A field is invalid", body = ErrorResponse),
    ),
)]
pub async fn update_me(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    JsonBody(request): JsonBody<UpdateProfileRequest>,
) -> Result<Json<UserChanged>, ApiError> {
    let metadata = context.metadata(Some(caller.actor()), "user.update_profile");
    let position = state
        .commands
        .update_profile(
            caller.actor(),
            caller.user_id,
            ProfileUpdate {
                display_name: request.display_name,
                timezone: request.timezone,
                notifications: request.notifications,
                risk_profile: request.risk_profile,
            },
            &metadata,
        )
        .await?;
    Ok(Json(UserChanged {
        user_id: caller.user_id,
        position: position.to_string(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OnboardingRequest {
    #[schema(value_type = crate::openapi::schemas::RiskProfile)]
    risk_profile: RiskProfile,
    #[schema(value_type = crate::openapi::schemas::Experience)]
    experience: Experience,
    /// The version of the terms the user accepted: 1 to 32 characters once
    /// trimmed.
    #[schema(pattern = "{NON_BLANK_LINE}", min_length = 1, max_length = 32)]
    terms_version: String,
}

/// `POST /api/v1/user/onboarding` `{risk_profile, experience, terms_version}`.
#[utoipa::path(
    post,
    path = "/api/v1/user/onboarding",
    tag = "users",
    summary = "Complete the caller's onboarding",
    security(("bearer" = [])),
    request_body = OnboardingRequest,
    responses(
        (status = 200, description = "Onboarded", body = UserChanged),
        (status = 400, description = "Unreadable JSON", body = ErrorResponse),
        (status = 409, description = "Already onboarded", body = ErrorResponse),
        (status = 422, description = "A field is invalid", body = ErrorResponse),
    ),
)]
pub async fn complete_onboarding(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    JsonBody(request): JsonBody<OnboardingRequest>,
) -> Result<Json<UserChanged>, ApiError> {
    let metadata = context.metadata(Some(caller.actor()), "user.complete_onboarding");
    let position = state
        .commands
        .complete_onboarding(
            caller.actor(),
            caller.user_id,
            request.risk_profile,
            request.experience,
            request.terms_version,
            &metadata,
        )
        .await?;
    Ok(Json(UserChanged {
        user_id: caller.user_id,
        position: position.to_string(),
    }))
}

/// The current password and a new one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    current_password: String,
    #[schema(min_length = 10, max_length = 256)]
    new_password: String,
}

/// `POST /api/v1/user/me/password` `{current_password, new_password}`.
#[utoipa::path(
    post,
    path = "/api/v1/user/me/password",
    operation_id = "change_password",
    tag = "users",
    summary = "Change the caller's password",
    description = "With the current password: the new one replaces it, every other session of \
        the account ends (this one stays), and `user.password_changed` (`by: changed`, no hash) \
        is recorded.",
    security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Changed", body = crate::auth::PasswordChanged),
        (status = 400, description = "Unreadable JSON", body = ErrorResponse),
        (status = 422, description = "`current_password` is wrong, or `new_password` is too short or long", body = ErrorResponse),
        (status = 503, description = "Every password hashing slot is busy (or the database is \
            unavailable); retry after `Retry-After` seconds", body = ErrorResponse,
            headers(("retry-after" = String, description = "Seconds to wait before retrying"))),
    ),
)]
pub async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    JsonBody(request): JsonBody<ChangePasswordRequest>,
) -> Result<Json<crate::auth::PasswordChanged>, ApiError> {
    let metadata = context.metadata(Some(caller.actor()), "user.change_password");
    let position = state
        .commands
        .change_password(
            caller.user_id,
            caller.session_id,
            SecretString::new(request.current_password),
            SecretString::new(request.new_password),
            &metadata,
        )
        .await?;
    Ok(Json(crate::auth::PasswordChanged {
        position: position.to_string(),
    }))
}

/// A live session: a log-in and its renewals.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub session_id: Uuid,
    pub created_at: DateTime<Utc>,
    /// The User-Agent it logged in with, at most 200 characters.
    pub client: Option<String>,
    /// When its refresh token was last issued (the log-in or a renewal).
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Whether the caller's access token belongs to it.
    pub current: bool,
}

/// The caller's live sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionView>,
}

/// `GET /api/v1/user/me/sessions`.
#[utoipa::path(
    get,
    path = "/api/v1/user/me/sessions",
    operation_id = "list_sessions",
    tag = "users",
    summary = "The caller's live sessions, the most recently used first",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The sessions", body = SessionList),
    ),
)]
pub async fn sessions(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<SessionList>, ApiError> {
    let sessions = state
        .commands
        .sessions_of(caller.user_id)
        .await?
        .into_iter()
        .map(|session| SessionView {
            current: Some(session.session_id) == caller.session_id,
            session_id: session.session_id,
            created_at: session.created_at,
            client: session.client,
            last_used_at: session.last_used_at,
            expires_at: session.expires_at,
        })
        .collect();
    Ok(Json(SessionList { sessions }))
}

/// `DELETE /api/v1/user/me/sessions/{session_id}` → 204.
#[utoipa::path(
    delete,
    path = "/api/v1/user/me/sessions/{session_id}",
    operation_id = "revoke_session",
    tag = "users",
    summary = "End one of the caller's sessions",
    description = "Its refresh tokens are revoked and its access tokens refused from then on.",
    security(("bearer" = [])),
    params(("session_id" = Uuid, Path, description = "The session")),
    responses(
        (status = 204, description = "Ended"),
        (status = 400, description = "A malformed `session_id`", body = ErrorResponse),
        (status = 404, description = "The caller has no such live session", body = ErrorResponse),
    ),
)]
pub async fn revoke_session(
    State(state): State<AppState>,
    caller: Caller,
    Path(session_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let session_id = parse_id("session_id", &session_id)?;
    if state
        .commands
        .revoke_session(caller.user_id, session_id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("session not found".to_string()))
    }
}
