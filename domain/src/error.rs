//! The single refusal type of every aggregate.

/// Why an aggregate refused a command. Each variant maps to one HTTP status
/// class in the API (404, 403, 422, 409, 429, 503).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The aggregate does not exist, or the actor may not know that it does.
    #[error("{entity} not found")]
    NotFound { entity: &'static str },
    /// The actor is known but not allowed to issue this command.
    #[error("forbidden: {reason}")]
    Forbidden { reason: String },
    /// A field of the command is invalid.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// The command does not fit the aggregate's current state.
    #[error("{reason}")]
    Conflict { reason: String },
    /// A quota of the user's is used up for now (`limit` names it); the
    /// command may succeed after `retry_after_secs` seconds.
    #[error("{limit}: {reason}")]
    QuotaExceeded {
        limit: &'static str,
        reason: String,
        retry_after_secs: u64,
    },
    /// A dependency the decision needs (the exchange) could not be reached.
    #[error("dependency unavailable: {reason}")]
    Unavailable { reason: String },
}

impl DomainError {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }

    pub fn conflict(reason: impl Into<String>) -> Self {
        Self::Conflict {
            reason: reason.into(),
        }
    }

    pub fn forbidden(reason: impl Into<String>) -> Self {
        Self::Forbidden {
            reason: reason.into(),
        }
    }
}
