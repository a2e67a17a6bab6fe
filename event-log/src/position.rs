//! Where an event stands in commit order, and its one conversion from and
//! to the database's columns.
//!
//! In the database a position is two columns: `transaction_id` (`xid8`,
//! read as text because sqlx has no type for it) and `global_position`
//! (`bigint`). [`Position::from_columns`] is the only way back from them:
//! a transaction id that is not a number is an error naming the row, never
//! a silent position 0.

use std::fmt;
use std::str::FromStr;

/// Where a command's events stand in commit order: the transaction that
/// appended them and the global position of the last one. Rendered as an
/// opaque token `<transaction_id>.<global_position>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    pub transaction_id: u64,
    pub global_position: i64,
}

/// A position read from the database that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the row at global position {global_position} has a malformed transaction id {text:?}")]
pub struct MalformedPosition {
    pub global_position: i64,
    pub text: String,
}

impl From<MalformedPosition> for sqlx::Error {
    fn from(error: MalformedPosition) -> Self {
        sqlx::Error::Decode(Box::new(error))
    }
}

impl Position {
    /// The position stored as `transaction_id::text` and `global_position`.
    pub fn from_columns(
        transaction_text: &str,
        global_position: i64,
    ) -> Result<Self, MalformedPosition> {
        let transaction_id = transaction_text.parse().map_err(|_| MalformedPosition {
            global_position,
            text: transaction_text.to_string(),
        })?;
        Ok(Position {
            transaction_id,
            global_position,
        })
    }

    /// The transaction id as the text a query casts with `$n::text::xid8`
    /// (sqlx has no `xid8` type).
    pub fn transaction_text(&self) -> String {
        self.transaction_id.to_string()
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.transaction_id, self.global_position)
    }
}

impl FromStr for Position {
    type Err = String;
    fn from_str(token: &str) -> Result<Self, Self::Err> {
        let (transaction, global) = token
            .split_once('.')
            .ok_or_else(|| "expected a position token from a command response".to_string())?;
        // Digits only: `str::parse` would also take a sign.
        let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !digits(transaction) || !digits(global) {
            return Err("malformed position token".to_string());
        }
        Ok(Position {
            transaction_id: transaction
                .parse()
                .map_err(|_| "malformed position token".to_string())?,
            global_position: global
                .parse()
                .map_err(|_| "malformed position token".to_string())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_round_trip() {
        let position = Position::from_columns("42", 7).unwrap();
        assert_eq!(
            position,
            Position {
                transaction_id: 42,
                global_position: 7
            }
        );
        assert_eq!(position.transaction_text(), "42");
    }

    #[test]
    fn a_malformed_transaction_id_is_an_error_not_position_zero() {
        let error = Position::from_columns("not-a-number", 9).unwrap_err();
        assert_eq!(error.global_position, 9);
        assert!(error.to_string().contains("not-a-number"));
        assert!(Position::from_columns("", 1).is_err());
        assert!(Position::from_columns("-3", 1).is_err());
    }

    #[test]
    fn tokens_round_trip_and_refuse_garbage() {
        let position = Position {
            transaction_id: 5,
            global_position: 11,
        };
        assert_eq!(position.to_string().parse::<Position>().unwrap(), position);
        assert!("5".parse::<Position>().is_err());
        assert!("a.b".parse::<Position>().is_err());
    }
}
