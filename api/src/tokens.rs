//! Access tokens: JWT, HS256, carrying the user and the role they were
//! issued with, verified once per request by the [`authenticate`] layer,
//! which puts the outcome ([`Authentication`]) in the request's
//! extensions. The rate limit and the idempotency ledger read the token's
//! subject from there; the [`crate::caller::Caller`] extractor turns it into
//! the caller with the role the log says it holds now.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;
use domain::Role;
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
    /// The session (refresh-token family) the token was issued in; absent
    /// from tokens issued before sessions were named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<Uuid>,
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

    pub fn issue(
        &self,
        user_id: Uuid,
        role: Role,
        session_id: Option<Uuid>,
    ) -> Result<String, ApiError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            role,
            iss: ISSUER.to_string(),
            iat: now,
            exp: now + self.ttl.num_seconds(),
            jti: Uuid::new_v4(),
            sid: session_id,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("signing an access token: {e}")))
    }

    pub fn verify(&self, token: &str) -> Result<TokenSubject, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 5;
        let data = decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| ApiError::Unauthorized(format!("invalid access token: {e}")))?;
        Ok(TokenSubject {
            user_id: data.claims.sub,
            role: data.claims.role,
            session_id: data.claims.sid,
        })
    }
}

/// What a valid access token says: its user, and the role it was issued
/// with (not necessarily the user's role now: see [`crate::caller`]).
#[derive(Debug, Clone, Copy)]
pub struct TokenSubject {
    pub user_id: Uuid,
    pub role: Role,
    /// The session it belongs to: revoking the session ends the token.
    pub session_id: Option<Uuid>,
}

/// What the bearer token of a request says, decided once by
/// [`authenticate`].
#[derive(Debug, Clone)]
pub enum Authentication {
    /// No `Authorization: Bearer` header.
    Anonymous,
    Authenticated(TokenSubject),
    /// A token that does not verify, and why.
    Rejected(String),
}

impl Authentication {
    /// What a valid token says, if the request has one.
    pub fn subject(&self) -> Option<TokenSubject> {
        match self {
            Authentication::Authenticated(subject) => Some(*subject),
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
            Ok(subject) => Authentication::Authenticated(subject),
            Err(ApiError::Unauthorized(reason)) => Authentication::Rejected(reason),
            Err(other) => Authentication::Rejected(other.to_string()),
        },
    };
    request.extensions_mut().insert(authentication);
    next.run(request).await
}
