//! Authenticated encryption for data at rest: session data in a store (key derived from the
//! session id's secret half) and cookie sessions (key from `cipherConfig`).
//!
//! AES-256-GCM with a random 96-bit nonce per message, prepended to the ciphertext.

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use std::sync::LazyLock;

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
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

    /// HKDF-SHA256 of `ikm` with `info` (no salt).
    pub fn derive(ikm: &[u8], info: &[u8]) -> Self {
        // HKDF-Extract without a salt is HMAC keyed with 32 zero bytes (RFC 5869 §2.2):
        // that key's padded states are the same for every call, so they are computed once
        // and cloned (two SHA-256 blocks fewer per derivation; the same output as
        // `Hkdf::new(None, ikm)`).
        static ZERO_SALT: LazyLock<Hmac<Sha256>> = LazyLock::new(|| {
            <Hmac<Sha256> as Mac>::new_from_slice(&[0u8; 32])
                .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"))
        });
        let prk = ZERO_SALT.clone().chain_update(ikm).finalize().into_bytes();
        let mut out = [0u8; 32];
        // A 32-byte PRK is SHA-256's output length, and 32 bytes is far below HKDF-SHA256's
        // 8160-byte limit: neither step can fail.
        if let Ok(hk) = Hkdf::<Sha256>::from_prk(&prk) {
            let _ = hk.expand(info, &mut out);
        }
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
    let mut out = Vec::with_capacity(NONCE_LEN + plain.len() + 16);
    seal_with_aad(key, plain, b"", &mut out)?;
    Ok(out)
}

/// Decrypts what [`seal`] produced with the same key.
pub fn open(key: &Key, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    open_with_aad(key, sealed, b"")
}

/// [`seal`], with `aad` authenticated but not encrypted (nor included in the output): the
/// same `aad` must be given to [`open_with_aad`]. `out` receives `nonce || ciphertext`.
pub fn seal_with_aad(
    key: &Key,
    plain: &[u8],
    aad: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), CryptoError> {
    let cipher = Aes256Gcm::new((&key.0).into());
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    out.extend_from_slice(&nonce);
    out.extend(
        cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: plain, aad })
            .map_err(|_| CryptoError::Seal)?,
    );
    Ok(())
}

/// Decrypts what [`seal_with_aad`] produced with the same key and `aad`.
pub fn open_with_aad(key: &Key, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(CryptoError::TooShort);
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::TooShort)?;
    Aes256Gcm::new((&key.0).into())
        .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad })
        .map_err(|_| CryptoError::Unauthentic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_are_rfc_5869_hkdf_sha256_without_salt() {
        // RFC 5869 test case 3 (no salt, no info), truncated to 32 bytes.
        let ikm = [0x0b_u8; 22];
        let okm = "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d";
        let Key(bytes) = Key::derive(&ikm, b"");
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, okm);
        // And the same as the hkdf crate's own extract, with an info string.
        let mut expected = [0u8; 32];
        Hkdf::<Sha256>::new(None, b"some id half")
            .expand(b"extauth session data v1", &mut expected)
            .unwrap();
        assert_eq!(
            Key::derive(b"some id half", b"extauth session data v1").0,
            expected
        );
    }

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
