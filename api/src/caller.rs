//! Who is calling: the user of the request's access token
//! ([`crate::tokens`]), with the role the log says it holds now.
//!
//! Authority comes from the log, not from the token: a token claiming more
//! than `user` (admin, auditor) is only as good as the role its user holds
//! now, which the [`Caller`] extractor reads from the User aggregate on
//! every request that takes a `Caller`. A demoted admin's unexpired token is
//! therefore a user's token at once (and, when it names its session, which
//! the role change ended, no token at all: a 401). A token claiming `user` is taken at
//! its word: it grants nothing a user lacks, and a promotion shows in the
//! next token. Every permission check is made on that role, in
//! [`crate::permissions`].

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use command_side::CommandError;
use domain::{Actor, DomainError, Permission, Role};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;
use crate::tokens::{Authentication, TokenSubject};

/// The authenticated caller: a valid token's user, with the role the user
/// holds now.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub user_id: Uuid,
    pub role: Role,
    /// The token's session, if it names one.
    pub session_id: Option<Uuid>,
    pub email_verified: bool,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        Actor::User {
            user_id: self.user_id,
            role: self.role,
        }
    }

    /// Whether the caller's current role holds `permission`. The API's
    /// refusals by permission are made in one place, before the handler
    /// (`crate::permissions::enforce`); handlers ask this only to scope
    /// what they read.
    pub fn has(&self, permission: Permission) -> bool {
        self.role.has(permission)
    }

    /// The caller as its account stands now (as [`Self::checked`]): what a
    /// long-lived answer, such as a stream, asks again while it runs.
    pub async fn recheck(self, state: &AppState) -> Result<Caller, ApiError> {
        self.checked(state).await
    }

    /// The caller as its account stands now: refused (401) when the user
    /// has no credentials (erased) or the token's session has ended, 403
    /// when the account is disabled; then, for a token that claims more
    /// than `user`, with the role the user holds now.
    async fn checked(self, state: &AppState) -> Result<Caller, ApiError> {
        let status = state
            .commands
            .account_status(self.user_id, self.session_id)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("the token's user does not exist".to_string()))?;
        if status.disabled {
            return Err(ApiError::Forbidden("this account is disabled".to_string()));
        }
        if !status.session_live {
            return Err(ApiError::Unauthorized(
                "the token's session has ended (logged out, revoked or renewed away)".to_string(),
            ));
        }
        let caller = Caller {
            email_verified: status.email_verified,
            ..self
        };
        caller.with_current_role(state).await
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

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Resolved already by the permission layer.
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(*caller);
        }
        match Authentication::of(&parts.extensions) {
            Authentication::Authenticated(TokenSubject {
                user_id,
                role,
                session_id,
            }) => {
                Caller {
                    user_id,
                    role,
                    session_id,
                    email_verified: false,
                }
                .checked(state)
                .await
            }
            Authentication::Rejected(reason) => Err(ApiError::Unauthorized(reason)),
            Authentication::Anonymous => {
                Err(ApiError::Unauthorized("missing bearer token".to_string()))
            }
        }
    }
}
