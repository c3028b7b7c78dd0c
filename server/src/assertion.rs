//! RFC 7523 client assertions (`private_key_jwt`): the client's private key, parsed and
//! checked once when the config loads, and a freshly signed JWT for every request to the
//! token or revocation endpoint.
//!
//! The key is a PEM private key: RSA (PKCS#1 `RSA PRIVATE KEY` or PKCS#8 `PRIVATE KEY`),
//! EC P-256/P-384 or Ed25519 (PKCS#8 `PRIVATE KEY`). The algorithm is RS256 for RSA keys,
//! ES256/ES384 for EC keys and EdDSA for Ed25519 unless one is named (`RS384`, `PS256`, ...).
//! Claims: `iss` = `sub` = the client id, `aud` = the token endpoint (a single value: Keycloak
//! refuses several), a new random `jti` every time (Keycloak refuses a reused one), `iat` and
//! `exp` = `iat` + `validFor`. Nothing here knows about config files or HTTP.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore as _;
use serde::Serialize;

/// `client_assertion_type` for a JWT assertion (RFC 7523 2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Why a key cannot sign assertions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// The PEM text is not a usable private key.
    #[error("{0}")]
    Key(String),
    /// The named algorithm is unknown or does not fit the key.
    #[error("{0}")]
    Algorithm(String),
    /// Signing failed (does not happen with a key that passed [`AssertionKey::from_pem`]).
    #[error("signing the client assertion failed: {0}")]
    Sign(String),
}

/// A client's private key with its algorithm and optional `kid`. Never printed.
#[derive(Clone)]
pub struct AssertionKey {
    encoding: EncodingKey,
    alg: Algorithm,
    kid: Option<String>,
}

impl std::fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    jti: String,
    iat: i64,
    exp: i64,
}

/// The algorithms a private key can sign client assertions with.
const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

impl AssertionKey {
    /// Parses `pem` and checks that it signs with `alg` (or the algorithm its type implies),
    /// by signing one assertion now: a key that loads signs every later request.
    pub fn from_pem(
        pem: &str,
        alg: Option<&str>,
        kid: Option<String>,
    ) -> Result<Self, AssertionError> {
        if pem.contains("BEGIN EC PRIVATE KEY") {
            return Err(AssertionError::Key(
                "an SEC1 `EC PRIVATE KEY` is not supported: convert it to PKCS#8 (`openssl pkcs8 -topk8 -nocrypt -in key.pem`)".into(),
            ));
        }
        if pem.contains("ENCRYPTED PRIVATE KEY") {
            return Err(AssertionError::Key(
                "an encrypted private key is not supported: store it unencrypted (the Secret protects it)".into(),
            ));
        }
        if !pem.contains("PRIVATE KEY-----") {
            return Err(AssertionError::Key(
                "expected a PEM private key (`-----BEGIN PRIVATE KEY-----` or `-----BEGIN RSA PRIVATE KEY-----`)".into(),
            ));
        }
        let bytes = pem.as_bytes();
        let candidates: Vec<(Algorithm, EncodingKey)> = match alg {
            Some(name) => {
                let alg: Algorithm = name.parse().map_err(|_| {
                    AssertionError::Algorithm(format!(
                        "unknown algorithm {name:?}: expected one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"
                    ))
                })?;
                if !ASYMMETRIC.contains(&alg) {
                    return Err(AssertionError::Algorithm(format!(
                        "{name} is not a private-key algorithm (an HMAC assertion would be client_secret_jwt): expected RS256, PS256, ES256, EdDSA or a sibling"
                    )));
                }
                let key = match alg {
                    Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(bytes),
                    Algorithm::EdDSA => EncodingKey::from_ed_pem(bytes),
                    _ => EncodingKey::from_rsa_pem(bytes),
                }
                .map_err(|e| {
                    AssertionError::Algorithm(format!("the key does not fit {name}: {e}"))
                })?;
                vec![(alg, key)]
            }
            None => {
                let mut found = Vec::new();
                if let Ok(key) = EncodingKey::from_rsa_pem(bytes) {
                    found.push((Algorithm::RS256, key));
                } else if let Ok(key) = EncodingKey::from_ec_pem(bytes) {
                    found.push((Algorithm::ES256, key.clone()));
                    found.push((Algorithm::ES384, key));
                } else if let Ok(key) = EncodingKey::from_ed_pem(bytes) {
                    found.push((Algorithm::EdDSA, key));
                }
                if found.is_empty() {
                    return Err(AssertionError::Key(
                        "not a usable RSA, EC (P-256, P-384) or Ed25519 private key in PEM".into(),
                    ));
                }
                found
            }
        };
        let mut last = String::new();
        for (alg, encoding) in candidates {
            let key = Self {
                encoding,
                alg,
                kid: kid.clone(),
            };
            match key.sign("check", "check", 0, Duration::from_secs(1)) {
                Ok(_) => return Ok(key),
                Err(e) => last = e.to_string(),
            }
        }
        Err(AssertionError::Key(format!("the key cannot sign: {last}")))
    }

    /// The signing algorithm.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The `kid` header, when one was configured.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// A new assertion for `client_id` at `audience`, valid from `now` for `valid_for`
    /// (rounded up to whole seconds, at least one).
    pub fn sign(
        &self,
        client_id: &str,
        audience: &str,
        now: i64,
        valid_for: Duration,
    ) -> Result<String, AssertionError> {
        let mut header = Header::new(self.alg);
        header.kid = self.kid.clone();
        let mut jti = [0u8; 16];
        rand::rng().fill_bytes(&mut jti);
        let lifetime = valid_for.as_secs() + u64::from(valid_for.subsec_nanos() > 0);
        let claims = Claims {
            iss: client_id,
            sub: client_id,
            aud: audience,
            jti: URL_SAFE_NO_PAD.encode(jti),
            iat: now,
            exp: now.saturating_add(i64::try_from(lifetime.max(1)).unwrap_or(i64::MAX)),
        };
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| AssertionError::Sign(e.to_string()))
    }
}

#[cfg(test)]
mod tests;
