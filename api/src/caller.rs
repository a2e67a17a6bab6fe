//! Who is calling: access tokens (JWT, HS256, carrying the user and the
//! role), verified once per request by the [`authenticate`] layer, which
//! puts the outcome in the request's extensions. The rate limit, the
//! idempotency middleware and the [`Caller`] extractor read it from there.
//!
//! Authority comes from the log, not from the token: a token claiming more
//! than `user` (admin, auditor) is only as good as the role its user holds
//! now, which the [`Caller`] extractor reads from the User aggregate on
//! every request that takes a `Caller`. A demoted admin's unexpired token is
//! therefore a user's token at once. A token claiming `user` is taken at
//! its word: it grants nothing a user lacks, and a promotion shows in the
//! next token. Every role check is [`Caller::require`] on that role.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;
use domain::{Actor, Role};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;
use command_side::CommandError;
use domain::DomainError;

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

/// The authenticated caller: the subject and role of a valid access token.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub user_id: Uuid,
    pub role: Role,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        Actor::User {
            user_id: self.user_id,
            role: self.role,
        }
    }

    /// Refuses (403) unless the caller holds one of `roles` now. The role
    /// is the current one (see the module's documentation), so this is
    /// where admin and auditor powers are checked.
    pub fn require(&self, roles: &[Role], what: &str) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(what.to_string()))
        }
    }

    /// The caller with the role its user holds now, for a token that claims
    /// more than `user`; a token of a user who no longer exists is refused.
    async fn with_current_role(self, state: &AppState) -> Result<Caller, ApiError> {
        if self.role == Role::User {
            return Ok(self);
        }
        let role = state
            .commands
            .role_of(self.user_id)
            .await
            .map_err(|error| match error {
                CommandError::Refused(DomainError::NotFound { .. }) => {
                    ApiError::Unauthorized("the token's user does not exist".to_string())
                }
                other => other.into(),
            })?;
        if role != self.role {
            tracing::info!(
                user_id = %self.user_id,
                claimed = self.role.as_str(),
                current = role.as_str(),
                "token role superseded by the current role"
            );
        }
        Ok(Caller { role, ..self })
    }
}

/// What the bearer token of a request says, decided once by
/// [`authenticate`].
#[derive(Debug, Clone)]
pub enum Authentication {
    /// No `Authorization: Bearer` header.
    Anonymous,
    Authenticated(Caller),
    /// A token that does not verify, and why.
    Rejected(String),
}

impl Authentication {
    /// The caller of a valid token, if any.
    pub fn caller(&self) -> Option<Caller> {
        match self {
            Authentication::Authenticated(caller) => Some(*caller),
            _ => None,
        }
    }

    /// The request's authentication, as the layer left it.
    pub fn of(parts_extensions: &axum::http::Extensions) -> Authentication {
        parts_extensions
            .get::<Authentication>()
            .cloned()
            .unwrap_or(Authentication::Anonymous)
    }
}

pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// The layer: verifies the bearer token, if any, and records the outcome
/// in the request's extensions for everything after it.
pub async fn authenticate(
    State(jwt): State<Arc<JwtKeys>>,
    mut request: Request,
    next: Next,
) -> Response {
    let authentication = match bearer_token(request.headers()) {
        None => Authentication::Anonymous,
        Some(token) => match jwt.verify(token) {
            Ok(caller) => Authentication::Authenticated(caller),
            Err(ApiError::Unauthorized(reason)) => Authentication::Rejected(reason),
            Err(other) => Authentication::Rejected(other.to_string()),
        },
    };
    request.extensions_mut().insert(authentication);
    next.run(request).await
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match Authentication::of(&parts.extensions) {
            Authentication::Authenticated(claimed) => claimed.with_current_role(state).await,
            Authentication::Rejected(reason) => Err(ApiError::Unauthorized(reason)),
            Authentication::Anonymous => {
                Err(ApiError::Unauthorized("missing bearer token".to_string()))
            }
        }
    }
}
