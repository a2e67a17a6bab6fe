//! Personal data as events carry it: sealed under the user's data key, so
//! that destroying the key (erasure) leaves the log intact and unreadable.
//!
//! The sealing itself (AES-256-GCM, the key store) is `event_log::personal`;
//! the domain only knows the shape. An event written before personal data
//! was sealed (event version 1.0) carries the text in clear; the upcasters
//! in [`crate::user::upcasters`] bring it to this shape as
//! [`PersonalText::Clear`]. The log is immutable, so such text stays in the
//! log after an erasure: only the read models and side tables forget it.

use serde::{Deserialize, Serialize};

/// One field of personal data in an event, e.g. `{"sealed": "1:…"}`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonalText {
    /// `1:` then base64 of the 12-byte nonce, the ciphertext and the
    /// 16-byte tag, under the user's data key (ARCHITECTURE.md).
    Sealed(String),
    /// In clear: written by an event version before sealing (upcast).
    Clear(String),
}

impl std::fmt::Debug for PersonalText {
    /// Never the clear text: personal data stays out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PersonalText::Sealed(sealed) => f.debug_tuple("Sealed").field(sealed).finish(),
            PersonalText::Clear(_) => f.write_str("Clear(<redacted>)"),
        }
    }
}

/// The event types that carry personal data, with the payload fields that
/// hold it, sealed (a field may also be null where its event allows).
pub const PERSONAL_FIELDS: [(&str, &[&str]); 5] = [
    ("user.created", &["email", "display_name"]),
    ("user.updated", &["display_name"]),
    ("user.login_failed", &["source"]),
    ("support.ticket_opened", &["subject", "body"]),
    ("support.reply_added", &["body"]),
];

/// Of [`PERSONAL_FIELDS`], the event types whose version 1.0 carried those
/// fields in clear, before personal data was sealed; the upcasters bring
/// them to the sealed version. The others were sealed from their first
/// version.
pub const CLEAR_IN_VERSION_ONE: [&str; 3] = ["user.created", "user.updated", "user.login_failed"];

/// The fields of an event payload that hold personal data, by event type
/// ([`PERSONAL_FIELDS`]; none for other types).
pub fn personal_fields(event_type: &str) -> &'static [&'static str] {
    PERSONAL_FIELDS
        .iter()
        .find(|(name, _)| *name == event_type)
        .map_or(&[], |(_, fields)| fields)
}

/// A version 1.0 payload brought to the sealed shape: each of its personal
/// fields that holds a string becomes `{"clear": …}` (a null stays null).
/// Only the types of [`CLEAR_IN_VERSION_ONE`] ever held clear text.
pub fn wrap_clear(event_type: &str, mut payload: serde_json::Value) -> serde_json::Value {
    if !CLEAR_IN_VERSION_ONE.contains(&event_type) {
        return payload;
    }
    for field in personal_fields(event_type) {
        if let Some(value) = payload.get_mut(*field) {
            if value.is_string() {
                *value = serde_json::json!({ "clear": value.take() });
            }
        }
    }
    payload
}

/// The prefix of a sealed text's format version.
const SEALED_PREFIX: &str = "1:";

/// Why a sealed text did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsealError {
    #[error("the sealed text is malformed")]
    Malformed,
    #[error(
        "the sealed text does not open with this key: another user's, another field's, or altered"
    )]
    WrongKeyOrAltered,
}

/// A user's 32-byte AES-256-GCM data key. Never serialised, never logged.
#[derive(Clone)]
pub struct DataKey([u8; 32]);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

impl DataKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A key from stored bytes, `None` unless there are exactly 32.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn cipher(&self) -> aes_gcm::Aes256Gcm {
        use aes_gcm::KeyInit;
        aes_gcm::Aes256Gcm::new(aes_gcm::Key::<aes_gcm::Aes256Gcm>::from_slice(&self.0))
    }

    /// Seals `plaintext` as `field` of `user_id`'s data with a fresh random
    /// `nonce` (the caller draws it: the domain does no IO).
    pub fn seal(
        &self,
        user_id: Uuid,
        field: &str,
        nonce: [u8; 12],
        plaintext: &str,
    ) -> PersonalText {
        use aes_gcm::aead::{Aead, Payload};
        let aad = associated_data(user_id, field);
        let ciphertext = self
            .cipher()
            .encrypt(
                aes_gcm::Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        PersonalText::Sealed(format!("{SEALED_PREFIX}{}", BASE64.encode(sealed)))
    }

    /// Opens `sealed`, written by [`DataKey::seal`] for the same user and
    /// field.
    pub fn open(&self, user_id: Uuid, field: &str, sealed: &str) -> Result<String, UnsealError> {
        use aes_gcm::aead::{Aead, Payload};
        let encoded = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or(UnsealError::Malformed)?;
        let bytes = BASE64.decode(encoded).map_err(|_| UnsealError::Malformed)?;
        if bytes.len() < 12 + 16 {
            return Err(UnsealError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let aad = associated_data(user_id, field);
        let plaintext = self
            .cipher()
            .decrypt(
                aes_gcm::Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| UnsealError::WrongKeyOrAltered)?;
        String::from_utf8(plaintext).map_err(|_| UnsealError::WrongKeyOrAltered)
    }
}

use base64::Engine as _;
use uuid::Uuid;

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// What a sealed text is bound to: `muckard-personal/1`, the user id and
/// the field name, NUL-separated. A ciphertext moved to another user or
/// field does not open.
fn associated_data(user_id: Uuid, field: &str) -> Vec<u8> {
    format!("muckard-personal/1\0{user_id}\0{field}").into_bytes()
}

impl PersonalText {
    /// The clear text, if `key` (the user's data key, `None` once erased)
    /// opens it. A clear text needs no key; it is what a version 1.0 event
    /// wrote.
    pub fn reveal(&self, key: Option<&DataKey>, user_id: Uuid, field: &str) -> Option<String> {
        match self {
            PersonalText::Clear(text) => Some(text.clone()),
            PersonalText::Sealed(sealed) => key?.open(user_id, field, sealed).ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_text_opens_only_for_its_user_and_field() {
        let key = DataKey::from_bytes([7; 32]);
        let user = Uuid::new_v4();
        let sealed = key.seal(user, "email", [1; 12], "ada@example.com");
        let PersonalText::Sealed(text) = &sealed else {
            panic!("sealed");
        };
        assert!(!text.contains("ada"));
        assert_eq!(key.open(user, "email", text).unwrap(), "ada@example.com");
        assert_eq!(
            key.open(Uuid::new_v4(), "email", text),
            Err(UnsealError::WrongKeyOrAltered)
        );
        assert_eq!(
            key.open(user, "display_name", text),
            Err(UnsealError::WrongKeyOrAltered)
        );
        let other = DataKey::from_bytes([8; 32]);
        assert_eq!(sealed.reveal(Some(&other), user, "email"), None);
        assert_eq!(sealed.reveal(None, user, "email"), None);
        assert_eq!(
            key.open(user, "email", "1:AAAA"),
            Err(UnsealError::Malformed)
        );
        assert_eq!(key.open(user, "email", "x"), Err(UnsealError::Malformed));
    }

    #[test]
    fn the_types_once_in_clear_are_personal_and_only_they_are_wrapped() {
        for event_type in CLEAR_IN_VERSION_ONE {
            assert!(!personal_fields(event_type).is_empty(), "{event_type}");
        }
        let sealed_from_the_start =
            serde_json::json!({"type": "support.ticket_opened", "subject": "x", "body": "y"});
        assert_eq!(
            wrap_clear("support.ticket_opened", sealed_from_the_start.clone()),
            sealed_from_the_start
        );
    }

    #[test]
    fn version_one_payloads_are_wrapped_as_clear() {
        let old =
            serde_json::json!({"type": "user.created", "email": "a@b.c", "display_name": null});
        let new = wrap_clear("user.created", old);
        assert_eq!(new["email"], serde_json::json!({"clear": "a@b.c"}));
        assert!(new["display_name"].is_null());
        let text: PersonalText = serde_json::from_value(new["email"].clone()).unwrap();
        assert_eq!(
            text.reveal(None, Uuid::nil(), "email").as_deref(),
            Some("a@b.c")
        );
        assert_eq!(format!("{text:?}"), "Clear(<redacted>)");
    }
}
