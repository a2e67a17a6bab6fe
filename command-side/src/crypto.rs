//! AES-256-GCM for exchange credentials at rest.

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use sha2::{Digest, Sha256};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("encryption key must be 32 bytes (64 hex characters)")]
    BadKey,
    #[error("credential was sealed with encryption key {0}, which is not configured")]
    UnknownKey(String),
    #[error("credential does not decrypt: wrong key or tampered data")]
    Tampered,
}

/// Seals and opens secrets with one AES-256-GCM data key. The ciphertext is
/// bound to the row's key id as associated data.
pub struct SecretBox {
    cipher: Aes256Gcm,
    key_id: String,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretBox")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl SecretBox {
    pub fn new(key: &[u8]) -> Result<Self, CryptoError> {
        if key.len() != 32 {
            return Err(CryptoError::BadKey);
        }
        // The key id is a digest of the key, so rotating keys can tell which
        // one sealed a row without storing anything secret.
        let key_id = hex::encode(&Sha256::digest(key)[..8]);
        Ok(Self {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)),
            key_id,
        })
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Returns `(nonce, ciphertext)`.
    pub fn seal(&self, row_id: Uuid, plaintext: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: row_id.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        (nonce.to_vec(), ciphertext)
    }

    pub fn open(
        &self,
        row_id: Uuid,
        sealed_with: &str,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        if sealed_with != self.key_id {
            return Err(CryptoError::UnknownKey(sealed_with.to_string()));
        }
        if nonce.len() != 12 {
            return Err(CryptoError::Tampered);
        }
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: row_id.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Tampered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secret_opens_only_for_its_row() {
        let secret_box = SecretBox::new(&[7u8; 32]).unwrap();
        let row = Uuid::new_v4();
        let (nonce, ciphertext) = secret_box.seal(row, b"kraken-secret");
        assert!(!ciphertext.windows(6).any(|w| w == b"kraken"));
        let opened = secret_box
            .open(row, secret_box.key_id(), &nonce, &ciphertext)
            .unwrap();
        assert_eq!(opened, b"kraken-secret");
        assert!(secret_box
            .open(Uuid::new_v4(), secret_box.key_id(), &nonce, &ciphertext)
            .is_err());
        let other = SecretBox::new(&[8u8; 32]).unwrap();
        assert!(matches!(
            other.open(row, secret_box.key_id(), &nonce, &ciphertext),
            Err(CryptoError::UnknownKey(_))
        ));
    }
}
