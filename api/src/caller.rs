//! Who is calling: access tokens (JWT, HS256, carrying the user and the
//! role), verified once per request by the [`authenticate`] layer, which
//! puts the outcome in the request's extensions. The rate limit, the
//! idempotency middleware and the [`Caller`] extractor read it from there.

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

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match Authentication::of(&parts.extensions) {
            Authentication::Authenticated(caller) => Ok(caller),
            Authentication::Rejected(reason) => Err(ApiError::Unauthorized(reason)),
            Authentication::Anonymous => {
                Err(ApiError::Unauthorized("missing bearer token".to_string()))
            }
        }
    }
}
