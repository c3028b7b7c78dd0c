//! Authenticated encryption for data at rest: session data in a store (key derived from the
//! session id's secret half) and cookie sessions (key from `cipherConfig`).
//!
//! AES-256-GCM with a random 96-bit nonce per message, prepended to the ciphertext.

use aes_gcm::aead::{Aead as _, KeyInit as _};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use rand::RngCore as _;
use sha2::Sha256;

use crate::session::SessionId;

const NONCE_LEN: usize = 12;

/// A 256-bit key. Never printed.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key([redacted])")
    }
}

impl Key {
    /// A key from exactly 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// HKDF-SHA256 of `ikm` with `info`.
    pub fn derive(ikm: &[u8], info: &[u8]) -> Self {
        let hk = Hkdf::<Sha256>::new(None, ikm);
        let mut out = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit: this cannot fail.
        let _ = hk.expand(info, &mut out);
        Self(out)
    }
}

/// Why a value could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Shorter than a nonce plus a tag.
    #[error("ciphertext too short")]
    TooShort,
    /// Wrong key or tampered data.
    #[error("ciphertext failed authentication")]
    Unauthentic,
    /// Encryption failed (does not happen with valid keys).
    #[error("encryption failed")]
    Seal,
}

/// The data key of a session.
pub fn session_key(id: &SessionId) -> Key {
    Key::derive(id.secret_part(), b"extauth session data v1")
}

/// Encrypts `plain`.
pub fn seal(key: &Key, plain: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let cipher = Aes256Gcm::new((&key.0).into());
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let mut out = nonce.to_vec();
    out.extend(
        cipher
            .encrypt(&Nonce::from(nonce), plain)
            .map_err(|_| CryptoError::Seal)?,
    );
    Ok(out)
}

/// Decrypts what [`seal`] produced with the same key.
pub fn open(key: &Key, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(CryptoError::TooShort);
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::TooShort)?;
    Aes256Gcm::new((&key.0).into())
        .decrypt(&Nonce::from(nonce), ct)
        .map_err(|_| CryptoError::Unauthentic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_with_the_same_key_only() {
        let key = Key::derive(b"a", b"i");
        let sealed = seal(&key, b"token").unwrap();
        assert_eq!(open(&key, &sealed).unwrap(), b"token");
        assert!(matches!(
            open(&Key::derive(b"b", b"i"), &sealed),
            Err(CryptoError::Unauthentic)
        ));
        let mut tampered = sealed.clone();
        tampered[NONCE_LEN] ^= 1;
        assert!(open(&key, &tampered).is_err());
        assert!(open(&key, &sealed[..10]).is_err());
    }
}
