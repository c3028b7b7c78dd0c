//! Keys: the realm's RS256 signing key (published as a JWKS) and the HMAC key that signs
//! refresh tokens.
//!
//! RSA-2048 generation takes up to a second in a debug build, so [`SigningKey::shared`]
//! generates one key per process and hands out clones of it; a test suite that starts many
//! IdPs pays for one key. Key material never prints (`Debug` shows the `kid` only).

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{DecodingKey, EncodingKey};
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::ids;

/// Why a key could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// RSA key generation failed (e.g. the OS RNG is unavailable).
    #[error("RSA key generation failed: {0}")]
    Generate(#[source] rsa::Error),
    /// The generated key could not be encoded for the JWT library.
    #[error("RSA key encoding failed: {0}")]
    Encode(#[source] rsa::pkcs1::Error),
    /// The key-generation task did not finish.
    #[error("key generation task failed: {0}")]
    Task(String),
}

/// The RSA modulus size Keycloak uses for its default `rsa-generated` key.
pub const RSA_BITS: usize = 2048;

/// An RS256 signing key with its `kid` and public JWK.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Value,
}

static SHARED: Mutex<Option<Arc<SigningKey>>> = Mutex::new(None);

impl SigningKey {
    /// Generates a fresh RSA-2048 key. Slow in debug builds: prefer [`SigningKey::shared`].
    pub fn generate() -> Result<Self, KeyError> {
        let private =
            rsa::PrivateKey::new(&mut getrandom::SysRng, RSA_BITS).map_err(KeyError::Generate)?;
        let der = private.to_pkcs1_der().map_err(KeyError::Encode)?;
        let n = be_bytes_trimmed(&private.n().to_be_bytes());
        let e = be_bytes_trimmed(&private.e().to_be_bytes());
        Ok(Self::from_parts(
            EncodingKey::from_rsa_der(der.as_bytes()),
            &n,
            &e,
        ))
    }

    /// The process-wide key, generated on first use (blocking; call it off the async runtime
    /// or through `spawn_blocking`). Every later call returns the same key.
    pub fn shared() -> Result<Arc<Self>, KeyError> {
        // A poisoned lock only means another thread panicked while generating; the slot is
        // still either empty or a complete key.
        let mut slot = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = slot.as_ref() {
            return Ok(Arc::clone(key));
        }
        let key = Arc::new(Self::generate()?);
        *slot = Some(Arc::clone(&key));
        Ok(key)
    }

    fn from_parts(encoding: EncodingKey, n: &[u8], e: &[u8]) -> Self {
        let n64 = URL_SAFE_NO_PAD.encode(n);
        let e64 = URL_SAFE_NO_PAD.encode(e);
        let kid = jwk_thumbprint(&n64, &e64);
        let jwk = json!({
            "kid": kid,
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "n": n64,
            "e": e64,
        });
        Self {
            kid,
            encoding,
            decoding: DecodingKey::from_rsa_raw_components(n, e),
            jwk,
        }
    }

    /// The key id, the RFC 7638 thumbprint of the public key (stable for a given key).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK (`kid`, `kty`, `alg`, `use`, `n`, `e`), as Keycloak lists it.
    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }

    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// RFC 7638 JWK thumbprint (SHA-256, base64url) of an RSA public key.
fn jwk_thumbprint(n64: &str, e64: &str) -> String {
    // Members in lexicographic order, no whitespace, as RFC 7638 section 3.2 requires.
    let canonical = format!(r#"{{"e":"{e64}","kty":"RSA","n":"{n64}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// Big-endian bytes without leading zeros (JWK `n` and `e` are minimal, RFC 7518 6.3.1).
fn be_bytes_trimmed(bytes: &[u8]) -> Vec<u8> {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes[first..].to_vec()
}

/// The HS512 key that signs refresh tokens (Keycloak signs them with the realm's HMAC key).
#[derive(Clone)]
pub(crate) struct HmacKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl HmacKey {
    pub(crate) fn generate() -> Self {
        let secret = ids::random_bytes(64);
        Self {
            kid: ids::random_uuid(),
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
        }
    }
    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }
    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }
    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The keys one IdP signs with. Later rounds add rotation and several signing keys here.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub(crate) signing: Arc<SigningKey>,
    pub(crate) refresh: HmacKey,
}

impl Keys {
    pub(crate) fn new(signing: Arc<SigningKey>) -> Self {
        Self {
            signing,
            refresh: HmacKey::generate(),
        }
    }

    /// The JWKS document served at `/protocol/openid-connect/certs`.
    pub(crate) fn jwks(&self) -> Value {
        json!({ "keys": [self.signing.public_jwk()] })
    }
}
