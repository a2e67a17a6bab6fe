//! Access tokens (JWT, HS256) and the register, log-in and refresh
//! endpoints. Refresh tokens are opaque, stored hashed, and rotate.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use command_side::crypto::SecretString;
use domain::Role;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{Caller, JsonBody, RequestContext};
use crate::state::AppState;

const ISSUER: &str = "muckard";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    role: Role,
    iss: String,
    iat: i64,
    exp: i64,
    jti: Uuid,
}

/// Signs and checks access tokens.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: chrono::Duration,
}

impl JwtKeys {
    pub fn new(secret: &[u8], ttl: chrono::Duration) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl,
        }
    }

    pub fn ttl_secs(&self) -> i64 {
        self.ttl.num_seconds()
    }

    pub fn issue(&self, user_id: Uuid, role: Role) -> Result<String, ApiError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            role,
            iss: ISSUER.to_string(),
            iat: now,
            exp: now + self.ttl.num_seconds(),
            jti: Uuid::new_v4(),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("signing an access token: {e}")))
    }

    pub fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 5;
        let data = decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| ApiError::Unauthorized(format!("invalid access token: {e}")))?;
        Ok(Caller {
            user_id: data.claims.sub,
            role: data.claims.role,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    email: String,
    password: String,
    display_name: Option<String>,
}

/// `POST /api/v1/auth/register` → 201 `{user_id, position}`.
pub async fn register(
    State(state): State<AppState>,
    context: RequestContext,
    JsonBody(request): JsonBody<RegisterRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
        Json(json!({ "user_id": user_id, "position": position.to_string() })),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    email: String,
    password: String,
}

async fn token_pair(state: &AppState, user_id: Uuid, role: Role) -> Result<Value, ApiError> {
    let access_token = state.jwt.issue(user_id, role)?;
    let refresh_token = state
        .commands
        .issue_refresh_token(user_id, state.settings.refresh_token_ttl)
        .await?;
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
) -> Value {
    json!({
        "access_token": access_token,
        "refresh_token": refresh_token,
        "token_type": "Bearer",
        "expires_in": state.jwt.ttl_secs(),
        "user_id": user_id,
        "role": role,
    })
}

/// `POST /api/v1/auth/login` → 200 with an access and a refresh token.
pub async fn login(
    State(state): State<AppState>,
    context: RequestContext,
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<Json<Value>, ApiError> {
    let metadata = context.metadata(None, "user.log_in");
    let user = state
        .commands
        .log_in(
            &request.email,
            SecretString::new(request.password),
            &metadata,
        )
        .await?;
    Ok(Json(token_pair(&state, user.user_id, user.role).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: String,
}

/// `POST /api/v1/auth/refresh`: the presented refresh token is spent and a
/// new pair issued, with the role the user holds now.
pub async fn refresh(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<RefreshRequest>,
) -> Result<Json<Value>, ApiError> {
    let (user_id, refresh_token) = state
        .commands
        .rotate_refresh_token(&request.refresh_token, state.settings.refresh_token_ttl)
        .await?;
    let role = state.commands.role_of(user_id).await?;
    let access_token = state.jwt.issue(user_id, role)?;
    Ok(Json(token_body(
        &state,
        user_id,
        role,
        access_token,
        refresh_token,
    )))
}
