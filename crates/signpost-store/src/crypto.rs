//! Encryption at rest: AES-256-GCM. The master key (from `SIGNPOST_MASTER_KEY` or a key file)
//! wraps a random data key kept in the database; the data key encrypts every secret value with
//! the row's identity as associated data, so a ciphertext cannot be moved to another row.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

/// The operator's 32-byte master key. `Debug` never shows it.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl MasterKey {
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut k);
        Self(k)
    }

    /// Parses 64 hex digits or the base64 (standard or URL-safe) of 32 bytes.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let bytes = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(t).map_err(|e| e.to_string())?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(t)
                .or_else(|_| {
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t.trim_end_matches('='))
                })
                .map_err(|_| {
                    "the master key must be 64 hex digits or base64 of 32 bytes".to_string()
                })?
        };
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "the master key must be exactly 32 bytes".to_string())?;
        Ok(Self(arr))
    }

    /// The base64 text form, for writing a key file.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    pub(crate) fn cipher(&self) -> Cipher {
        Cipher::from_key(&self.0)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// AES-256-GCM with a random nonce per message; output is `version || nonce || ciphertext`.
#[derive(Clone)]
pub struct Cipher {
    aead: Aes256Gcm,
    digest_key: [u8; 32],
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher(<redacted>)")
    }
}

impl Cipher {
    pub fn from_key(key: &[u8; 32]) -> Self {
        let mut h = Sha256::new();
        h.update(b"signpost digest key v1");
        h.update(key);
        Self {
            aead: Aes256Gcm::new(key.into()),
            digest_key: h.finalize().into(),
        }
    }

    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = self
            .aead
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .unwrap_or_default(); // AES-GCM encryption only fails for inputs above 64 GiB
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    pub fn decrypt(&self, blob: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        if blob.len() < 1 + NONCE_LEN + 16 || blob[0] != VERSION {
            return None;
        }
        let (nonce, ct) = blob[1..].split_at(NONCE_LEN);
        self.aead
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .ok()
    }

    /// A keyed SHA-256 digest (hex). Safe for data with secrets: without the key it cannot be
    /// used to guess them.
    pub fn digest(&self, parts: &[&[u8]]) -> String {
        let mut h = Sha256::new();
        h.update(self.digest_key);
        for p in parts {
            h.update((p.len() as u64).to_be_bytes());
            h.update(p);
        }
        hex::encode(h.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_aad_binding() {
        let c = MasterKey::generate().cipher();
        let blob = c.encrypt(b"hunter2", b"row-1");
        assert!(!blob.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(c.decrypt(&blob, b"row-1").as_deref(), Some(&b"hunter2"[..]));
        assert_eq!(c.decrypt(&blob, b"row-2"), None);
        assert_eq!(c.decrypt(&blob[..10], b"row-1"), None);
        let other = MasterKey::generate().cipher();
        assert_eq!(other.decrypt(&blob, b"row-1"), None);
    }

    #[test]
    fn master_key_forms() {
        let k = MasterKey::generate();
        let again = MasterKey::parse(&k.to_base64()).unwrap();
        assert_eq!(k.0, again.0);
        assert!(MasterKey::parse(&"ab".repeat(32)).is_ok());
        assert!(MasterKey::parse("short").is_err());
        assert!(!format!("{k:?}").contains(&k.to_base64()));
    }
}
