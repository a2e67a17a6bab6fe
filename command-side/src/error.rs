//! The command side's one error type.

use domain::DomainError;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The aggregate refused the command.
    #[error(transparent)]
    Refused(#[from] DomainError),
    /// Other writers kept winning the race for the same stream.
    #[error("concurrent modification of {aggregate_type} {aggregate_id}; retry")]
    Conflict {
        aggregate_type: &'static str,
        aggregate_id: String,
    },
    /// The email is already registered.
    #[error("email: already registered")]
    EmailTaken,
    /// The credentials did not match.
    #[error("invalid email or password")]
    InvalidCredentials,
    /// A refresh token was unknown, expired or reused.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// The account (or the unknown email) failed to log in too often
    /// lately; log-ins are refused for another `retry_after_secs` seconds.
    #[error("too many failed log-ins; retry after {retry_after_secs} s")]
    LoginBackoff { retry_after_secs: u64 },
    /// A one-time code was refused: `reason` says why (wrong, expired or
    /// used; an unknown email's code is "wrong", like any guess).
    #[error("code: {reason}")]
    CodeRefused { reason: &'static str },
    /// Too many wrong guesses at a code, or codes asked for too often:
    /// retry after `retry_after_secs` seconds.
    #[error("{what}; retry after {retry_after_secs} s")]
    TooManyAttempts {
        what: &'static str,
        retry_after_secs: u64,
    },
    /// The account is disabled: its log-ins and tokens are refused.
    #[error("this account is disabled")]
    AccountDisabled,
    /// A bounded resource (the password hashing slots) stayed busy for the
    /// whole wait; the caller may retry shortly.
    #[error("{0}")]
    Saturated(String),
    /// PostgreSQL could not be reached.
    #[error("database unavailable: {0}")]
    DatabaseUnavailable(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for CommandError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
                CommandError::DatabaseUnavailable(error.to_string())
            }
            other => CommandError::Unexpected(anyhow::Error::new(other)),
        }
    }
}
