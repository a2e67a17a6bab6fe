//! The register, log-in, refresh and log-out endpoints. Access tokens are
//! [`crate::caller`]'s; refresh tokens are opaque, stored hashed, rotate,
//! and die with a log-out or a role change.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use domain::Role;
use domain::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiError, ErrorResponse};
use crate::extract::{JsonBody, RequestContext};
use crate::state::AppState;
use crate::tokens::Authentication;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// An email address (at most 254 characters); compared without case.
    #[schema(example = "ada@example.com", format = "email", max_length = 254)]
    email: String,
    /// 10 to 256 characters.
    #[schema(example = "correct horse battery", min_length = 10, max_length = 256)]
    password: String,
    /// 1 to 100 characters once trimmed.
    #[schema(pattern = "{NON_BLANK_LINE}", min_length = 1, max_length = 100)]
    display_name: Option<String>,
}

/// A new user and where its `user.created` event stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct Registered {
    pub user_id: Uuid,
    #[schema(value_type = crate::openapi::schemas::Position)]
    pub position: String,
}

/// `POST /api/v1/auth/register` → 201 `{user_id, position}`.
#[utoipa::path(
    post,
    path = "/api/v1/auth/register",
    tag = "auth",
    summary = "Register a user",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered", body = Registered),
        (status = 400, description = "Unreadable JSON", body = ErrorResponse),
        (status = 409, description = "The email is already registered (`field`: `email`)", body = ErrorResponse),
        (status = 422, description = "A field is invalid (e.g. the email or a short password)", body = ErrorResponse),
        (status = 503, description = "Every password hashing slot is busy (or the database is \
            unavailable); retry after `Retry-After` seconds", body = ErrorResponse,
            headers(("retry-after" = String, description = "Seconds to wait before retrying"))),
    ),
)]
pub async fn register(
    State(state): State<AppState>,
    context: RequestContext,
    JsonBody(request): JsonBody<RegisterRequest>,
) -> Result<(StatusCode, Json<Registered>), ApiError> {
    let metadata = context.metadata(None, "user.register");
    let (user_id, position) = state
        .commands
        .register(
            &request.email,
            SecretString::new(request.password),
            request.display_name,
            &metadata,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Registered {
            user_id,
            position: position.to_string(),
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "ada@example.com")]
    email: String,
    #[schema(example = "correct horse battery")]
    password: String,
}

/// An access token and the refresh token that renews it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPair {
    /// A JWT (HS256) for `Authorization: Bearer`.
    pub access_token: String,
    /// Opaque and single use: `POST /api/v1/auth/refresh` spends it.
    pub refresh_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub user_id: Uuid,
    /// The role the access token carries.
    #[schema(value_type = crate::openapi::schemas::Role)]
    pub role: Role,
}

async fn token_pair(
    state: &AppState,
    user_id: Uuid,
    role: Role,
    client: Option<&str>,
) -> Result<TokenPair, ApiError> {
    let (refresh_token, session_id) = state
        .commands
        .issue_refresh_token(user_id, state.http.refresh_token_ttl, client)
        .await?;
    let access_token = state.jwt.issue(user_id, role, Some(session_id))?;
    Ok(token_body(
        state,
        user_id,
        role,
        access_token,
        refresh_token,
    ))
}

fn token_body(
    state: &AppState,
    user_id: Uuid,
    role: Role,
    access_token: String,
    refresh_token: String,
) -> TokenPair {
    TokenPair {
        access_token,
        refresh_token,
        token_type: "Bearer",
        expires_in: state.jwt.ttl_secs(),
        user_id,
        role,
    }
}

/// Where a request comes from, as the rate limit tells clients apart (the
/// address, behind trusted proxies the forwarded one): a failed log-in's
/// `source`.
pub struct ClientSource(pub String);

impl FromRequestParts<AppState> for ClientSource {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip());
        Ok(ClientSource(state.rate_limiter.client_key(
            &Authentication::Anonymous,
            &parts.headers,
            peer,
        )))
    }
}

/// `POST /api/v1/auth/login` → 200 with an access and a refresh token.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    summary = "Log in",
    description = "A wrong password of a registered user is recorded (`user.login_failed`, with \
        the client's address, never the password). Once `LOGIN_BACKOFF_FAILURES` failures fall \
        within `LOGIN_BACKOFF_WINDOW_SECS`, every log-in of that account is refused with 429 \
        until `LOGIN_BACKOFF_SECS` after the last failure, right password or not; an unknown \
        email is answered alike. Password checks run at most `PASSWORD_HASH_CONCURRENCY` at \
        once: one that finds no slot within `PASSWORD_HASH_WAIT_MS` is a 503.",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenPair),
        (status = 400, description = "Unreadable JSON", body = ErrorResponse),
        (status = 401, description = "Unknown email or wrong password", body = ErrorResponse,
            headers(("www-authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "The right password of a disabled account", body = ErrorResponse),
        (status = 422, description = "A field is missing or of the wrong type", body = ErrorResponse),
        (status = 429, description = "Too many failed log-ins of this email lately (or too many \
            requests from this client); retry after `Retry-After` seconds", body = ErrorResponse,
            headers(("retry-after" = String, description = "Seconds to wait before retrying"))),
        (status = 503, description = "Every password hashing slot is busy (or the database is \
            unavailable); retry after `Retry-After` seconds", body = ErrorResponse,
            headers(("retry-after" = String, description = "Seconds to wait before retrying"))),
    ),
)]
pub async fn login(
    State(state): State<AppState>,
    ClientSource(source): ClientSource,
    headers: axum::http::HeaderMap,
    context: RequestContext,
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    let client = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|value| value.to_str().ok());
    let metadata = context.metadata(None, "user.log_in");
    let user = state
        .commands
        .log_in(
            &request.email,
            SecretString::new(request.password),
            &source,
            &metadata,
        )
        .await?;
    Ok(Json(
        token_pair(&state, user.user_id, user.role, client).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: String,
}

/// `POST /api/v1/auth/refresh`: the presented refresh token is spent and a
/// new pair issued, with the role the user holds now.
#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    tag = "auth",
    summary = "Renew the tokens",
    description = "Spends the refresh token and issues a new pair, with the role the user holds \
        now. A refresh token presented twice revokes its whole family.",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new pair", body = TokenPair),
        (status = 400, description = "Unreadable JSON", body = ErrorResponse),
        (status = 401, description = "Unknown, spent, revoked or expired refresh token", body = ErrorResponse,
            headers(("www-authenticate" = String, description = "`Bearer`"))),
        (status = 422, description = "A field is missing or of the wrong type", body = ErrorResponse),
    ),
)]
pub async fn refresh(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<RefreshRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    let (user_id, session_id, refresh_token) = state
        .commands
        .rotate_refresh_token(&request.refresh_token, state.http.refresh_token_ttl)
        .await?;
    let role = state.commands.role_of(user_id).await?;
    let access_token = state.jwt.issue(user_id, role, Some(session_id))?;
    Ok(Json(token_body(
        &state,
        user_id,
        role,
        access_token,
        refresh_token,
    )))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// Any refresh token of the session: its whole family is revoked.
    refresh_token: String,
}

/// `POST /api/v1/auth/logout` `{refresh_token}` → 204: the refresh token's
/// family is revoked.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    summary = "Log out",
    description = "Revokes the refresh token's whole family (the session: the token, the ones it \
        was renewed from and into), so none of them renews again. 204 whatever the token, known, \
        spent or not, so the answer tells nothing about it. The session's access tokens are \
        refused from then on (401).",
    request_body = LogoutRequest,
    responses(
        (status = 204, description = "Logged out (or nothing to revoke)"),
        (status = 400, description = "Unreadable JSON", body = ErrorResponse),
        (status = 422, description = "A field is missing or of the wrong type", body = ErrorResponse),
    ),
)]
pub async fn logout(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<LogoutRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .commands
        .revoke_refresh_family(&request.refresh_token)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An email and the code mailed to it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailRequest {
    #[schema(example = "ada@example.com", format = "email", max_length = 254)]
    email: String,
    /// The 6 digits mailed at registration (or by a resend).
    #[schema(example = "123456", pattern = "^[0-9]{6}$")]
    code: String,
}

/// The user whose email is verified, and where the event stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailVerified {
    pub user_id: Uuid,
    #[schema(value_type = crate::openapi::schemas::Position)]
    pub position: String,
}

const CODE_REFUSALS: &str = "A wrong code (and any code of an unknown email), an expired or an \
    already used one; `field` is `code` and `reason` says which";

/// `POST /api/v1/auth/verify-email` `{email, code}`.
#[utoipa::path(
    post,
    path = "/api/v1/auth/verify-email",
    tag = "auth",
    summary = "Verify an email with its mailed code",
    description = "Records `user.email_verified`. A code works once, expires after \
        `EMAIL_CODE_TTL_SECS` and takes `EMAIL_CODE_MAX_ATTEMPTS` wrong guesses; an unknown \
        email is answered like a wrong code, so the answers never say whether an email is \
        registered.",
    request_body = VerifyEmailRequest,
    responses(
        (status = 200, description = "Verified (or verified already)", body = EmailVerified),
        (status = 400, description = CODE_REFUSALS, body = ErrorResponse),
        (status = 422, description = "A field is missing or of the wrong type", body = ErrorResponse),
        (status = 429, description = "Too many wrong codes: ask for a new one", body = ErrorResponse,
            headers(("retry-after" = String, description = "Seconds to wait before retrying"))),
    ),
)]
pub async fn verify_email(
    State(state): State<AppState>,
    context: RequestContext,
    JsonBody(request): JsonBody<VerifyEmailRequest>,
) -> Result<Json<EmailVerified>, ApiError> {
    let metadata = context.metadata(None, "user.verify_email");
    let (user_id, position) = state
        .commands
        .verify_email(&request.email, &request.code, &metadata)
        .await?;
    Ok(Json(EmailVerified {
        user_id,
        position: position.to_string(),
    }))
}

/// An email to send a code to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailRequest {
    #[schema(example = "ada@example.com", format = "email", max_length = 254)]
    email: String,
}

/// `POST /api/v1/auth/verify-email/resend` `{email}` → 202.
#[utoipa::path(
    post,
    path = "/api/v1/auth/verify-email/resend",
    tag = "auth",
    summary = "Mail a new verification code",
    description = "202 for any well-formed email: a code goes only to a registered, unverified \
        account, and the answer says nothing of which. One request per email each \
        `EMAIL_CODE_RESEND_SECS`, registered or not (429 otherwise).",
    request_body = EmailRequest,
    responses(
        (status = 202, description = "Accepted: a code is mailed if the email has an unverified account"),
        (status = 422, description = "A field is invalid (not an email address)", body = ErrorResponse),
        (status = 429, description = "A code was asked for this email a moment ago", body = ErrorResponse,
            headers(("retry-after" = String, description = "Seconds to wait before retrying"))),
    ),
)]
pub async fn resend_verification(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<EmailRequest>,
) -> Result<StatusCode, ApiError> {
    state.commands.resend_verification(&request.email).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `POST /api/v1/auth/password-reset/request` `{email}` → 202.
#[utoipa::path(
    post,
    path = "/api/v1/auth/password-reset/request",
    tag = "auth",
    summary = "Mail a password reset code",
    description = "202 for any well-formed email, in the same time: a code goes only to a \
        registered, enabled account, by a task of its own. One request per email each \
        `EMAIL_CODE_RESEND_SECS`, registered or not (429 otherwise).",
    request_body = EmailRequest,
    responses(
        (status = 202, description = "Accepted: a code is mailed if the email has an account"),
        (status = 422, description = "A field is invalid (not an email address)", body = ErrorResponse),
        (status = 429, description = "A code was asked for this email a moment ago", body = ErrorResponse,
            headers(("retry-after" = String, description = "Seconds to wait before retrying"))),
    ),
)]
pub async fn request_password_reset(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<EmailRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .commands
        .request_password_reset(&request.email)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// A reset code and the new password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetRequest {
    #[schema(example = "ada@example.com", format = "email", max_length = 254)]
    email: String,
    #[schema(example = "123456", pattern = "^[0-9]{6}$")]
    code: String,
    #[schema(min_length = 10, max_length = 256)]
    new_password: String,
}

/// Where `user.password_changed` stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordChanged {
    #[schema(value_type = crate::openapi::schemas::Position)]
    pub position: String,
}

/// `POST /api/v1/auth/password-reset/confirm` `{email, code, new_password}`.
#[utoipa::path(
    post,
    path = "/api/v1/auth/password-reset/confirm",
    tag = "auth",
    summary = "Choose a new password with a mailed reset code",
    description = "The new password replaces the old, every session of the account ends, and \
        `user.password_changed` (`by: reset`, no hash) is recorded.",
    request_body = PasswordResetRequest,
    responses(
        (status = 200, description = "Changed", body = PasswordChanged),
        (status = 400, description = CODE_REFUSALS, body = ErrorResponse),
        (status = 422, description = "A field is invalid (`new_password` too short or long)", body = ErrorResponse),
        (status = 429, description = "Too many wrong codes: ask for a new one", body = ErrorResponse,
            headers(("retry-after" = String, description = "Seconds to wait before retrying"))),
        (status = 503, description = "Every password hashing slot is busy (or the database is \
            unavailable); retry after `Retry-After` seconds", body = ErrorResponse,
            headers(("retry-after" = String, description = "Seconds to wait before retrying"))),
    ),
)]
pub async fn confirm_password_reset(
    State(state): State<AppState>,
    context: RequestContext,
    JsonBody(request): JsonBody<PasswordResetRequest>,
) -> Result<Json<PasswordChanged>, ApiError> {
    let metadata = context.metadata(None, "user.reset_password");
    let position = state
        .commands
        .confirm_password_reset(
            &request.email,
            &request.code,
            SecretString::new(request.new_password),
            &metadata,
        )
        .await?;
    Ok(Json(PasswordChanged {
        position: position.to_string(),
    }))
}
