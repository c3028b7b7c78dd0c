//! The `state` parameter: an HS256 JWT carrying the original URL, plus the per-login secrets
//! derived from it.
//!
//! Claims follow the seed's example: `exp` (= `iat` + 1800), `iat`, `nbf` and `state` (the
//! original URL), plus `lid`, a random login id. The PKCE verifier and the nonce are derived
//! from `lid` with keys only this server (and its replicas) hold, so they live server side
//! without any storage and never travel in a URL: only the PKCE challenge and the nonce itself
//! go to the IdP.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// Lifetime of a login attempt, as in Solo's state (`exp - iat`).
pub const STATE_TTL_SECS: i64 = 1800;
/// Larger `state` values are rejected before any parsing.
pub const MAX_STATE_LEN: usize = 8 * 1024;

type HmacSha256 = Hmac<Sha256>;

/// The claims inside `state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateClaims {
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before (= `iat`).
    pub nbf: i64,
    /// The original URL to return to after login.
    pub state: String,
    /// Random login id (base64url of 16 bytes).
    pub lid: String,
    /// How many times this login was started again after the IdP refused its code (a
    /// retried callback whose code was already spent); absent when 0. Bounds the restarts.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restarts: u8,
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

/// A freshly issued state and what goes with it.
#[derive(Debug, Clone)]
pub struct IssuedState {
    /// The JWT for the `state` parameter.
    pub token: String,
    /// Per-login secrets.
    pub login: LoginSecrets,
    /// The login id (`lid` claim).
    pub lid: String,
}

/// A state that passed verification.
#[derive(Debug, Clone)]
pub struct VerifiedState {
    /// Its claims.
    pub claims: StateClaims,
    /// Per-login secrets.
    pub login: LoginSecrets,
}

/// Values derived from the login id.
#[derive(Clone)]
pub struct LoginSecrets {
    /// The OIDC `nonce` (goes to the IdP, comes back in the ID token).
    pub nonce: String,
    /// The PKCE `code_verifier` (sent only to the token endpoint).
    pub pkce_verifier: Secret,
    /// `BASE64URL(SHA256(verifier))`, the S256 `code_challenge`.
    pub pkce_challenge: String,
}

impl std::fmt::Debug for LoginSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginSecrets")
            .field("nonce", &self.nonce)
            .field("pkce_verifier", &self.pkce_verifier)
            .finish_non_exhaustive()
    }
}

/// Why a `state` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Longer than [`MAX_STATE_LEN`].
    #[error("state is too large")]
    TooLarge,
    /// Not a JWT, wrong algorithm, bad signature or missing claims.
    #[error("state is invalid or was tampered with")]
    Invalid,
    /// Past `exp`: the login took longer than 30 minutes.
    #[error("state has expired")]
    Expired,
    /// Before `nbf`.
    #[error("state is not valid yet")]
    NotYetValid,
}

/// Signs and verifies `state`.
pub struct StateCodec {
    encoding: EncodingKey,
    decoding: DecodingKey,
    derive_key: Vec<u8>,
}

impl std::fmt::Debug for StateCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateCodec([redacted])")
    }
}

impl StateCodec {
    /// A codec keyed by the server's signing key.
    pub fn new(signing_key: &Secret) -> Self {
        let key = signing_key.expose().as_bytes();
        Self {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            // A separate key for derivations, so a JWT signature never equals a derived value.
            derive_key: hmac(key, b"extauth login-secrets v1").to_vec(),
        }
    }

    /// Issues a state for `original_url` at time `now`.
    pub fn issue(&self, original_url: &str, now: i64) -> Result<IssuedState, StateError> {
        self.issue_restart(original_url, now, 0)
    }

    /// Issues a state for a login started again for the `restarts`-th time.
    pub fn issue_restart(
        &self,
        original_url: &str,
        now: i64,
        restarts: u8,
    ) -> Result<IssuedState, StateError> {
        let mut lid = [0u8; 16];
        crate::random::fill(&mut lid);
        let lid = URL_SAFE_NO_PAD.encode(lid);
        let claims = StateClaims {
            exp: now + STATE_TTL_SECS,
            iat: now,
            nbf: now,
            state: original_url.to_owned(),
            lid,
            restarts,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| StateError::Invalid)?;
        Ok(IssuedState {
            login: self.login_secrets(&claims.lid),
            lid: claims.lid,
            token,
        })
    }

    /// Verifies signature, algorithm and times (against `now`, not the system clock).
    pub fn verify(&self, token: &str, now: i64) -> Result<VerifiedState, StateError> {
        if token.len() > MAX_STATE_LEN {
            return Err(StateError::TooLarge);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<StateClaims>(token, &self.decoding, &validation)
            .map_err(|_| StateError::Invalid)?;
        let claims = data.claims;
        if claims.exp - claims.iat != STATE_TTL_SECS || claims.nbf != claims.iat {
            return Err(StateError::Invalid);
        }
        if now >= claims.exp {
            return Err(StateError::Expired);
        }
        if now < claims.nbf {
            return Err(StateError::NotYetValid);
        }
        Ok(VerifiedState {
            login: self.login_secrets(&claims.lid),
            claims,
        })
    }

    /// The CSRF binding of login `lid`: what the browser's login cookie holds (base64url of
    /// 16 bytes of HMAC; reveals nothing of the nonce or the PKCE verifier).
    pub fn binding(&self, lid: &str) -> String {
        URL_SAFE_NO_PAD.encode(&hmac(&self.derive_key, format!("bind\0{lid}").as_bytes())[..16])
    }

    fn login_secrets(&self, lid: &str) -> LoginSecrets {
        let nonce =
            URL_SAFE_NO_PAD.encode(hmac(&self.derive_key, format!("nonce\0{lid}").as_bytes()));
        let verifier =
            URL_SAFE_NO_PAD.encode(hmac(&self.derive_key, format!("pkce\0{lid}").as_bytes()));
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        LoginSecrets {
            nonce,
            pkce_verifier: Secret::new(verifier),
            pkce_challenge: challenge,
        }
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    #[allow(clippy::expect_used)]
    let mut mac =
        <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests;
