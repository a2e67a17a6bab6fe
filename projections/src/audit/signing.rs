//! Ed25519 keys for what the ledger signs for auditors (audit reports).
//! The private key is configuration, like the JWT key (`AUDIT_SIGNING_KEY`),
//! never in the database; the public key is published
//! (`GET /api/v1/audit/keys`, `muckard keys public`) and is all a verifier
//! needs.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The signature scheme's name in reports and key listings.
pub const ALGORITHM: &str = "ed25519";

/// Signs with the service's audit key. Its `Debug` shows the key id only.
#[derive(Clone)]
pub struct AuditSigner {
    key: SigningKey,
}

impl std::fmt::Debug for AuditSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditSigner({})", self.public_key().key_id)
    }
}

/// A public key as published: hex of its 32 bytes, and a short id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    pub algorithm: String,
    /// The first 16 hex characters of SHA-256 of the key's bytes.
    pub key_id: String,
    /// Lower-case hex of the 32-byte Ed25519 public key.
    pub public_key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("an Ed25519 key must be 64 hex characters (32 bytes)")]
    Malformed,
}

impl AuditSigner {
    /// The signer of the 32-byte secret `seed`.
    pub fn from_seed(seed: &[u8]) -> Result<Self, KeyError> {
        let seed: [u8; 32] = seed.try_into().map_err(|_| KeyError::Malformed)?;
        Ok(Self {
            key: SigningKey::from_bytes(&seed),
        })
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey::of(&self.key.verifying_key())
    }

    /// Lower-case hex of the signature of `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        hex::encode(self.key.sign(message).to_bytes())
    }
}

impl PublicKey {
    fn of(key: &VerifyingKey) -> Self {
        let bytes = key.to_bytes();
        PublicKey {
            algorithm: ALGORITHM.to_string(),
            key_id: hex::encode(Sha256::digest(bytes))[..16].to_string(),
            public_key: hex::encode(bytes),
        }
    }

    /// The key given as hex (what `muckard keys public` prints).
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        Ok(PublicKey::of(&verifying_key(text)?))
    }

    /// Whether `signature` (hex) is this key's signature of `message`,
    /// checked strictly (no malleable or small-order encodings).
    pub fn verifies(&self, message: &[u8], signature: &str) -> bool {
        let Ok(key) = verifying_key(&self.public_key) else {
            return false;
        };
        let Some(bytes) = hex::decode(signature)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
        else {
            return false;
        };
        key.verify_strict(message, &Signature::from_bytes(&bytes))
            .is_ok()
    }
}

fn verifying_key(text: &str) -> Result<VerifyingKey, KeyError> {
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(KeyError::Malformed)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_with_the_published_key_only() {
        let signer = AuditSigner::from_seed(&[7u8; 32]).unwrap();
        let published = signer.public_key();
        let signature = signer.sign(b"report");
        assert!(published.verifies(b"report", &signature));
        assert!(!published.verifies(b"report!", &signature));
        let other = AuditSigner::from_seed(&[8u8; 32]).unwrap().public_key();
        assert!(!other.verifies(b"report", &signature));
        assert_eq!(
            PublicKey::from_hex(&published.public_key).unwrap(),
            published
        );
        assert!(AuditSigner::from_seed(&[1u8; 31]).is_err());
        assert!(!published.verifies(b"report", "zz"));
    }
}
