//! Tokens: Keycloak's claim sets, and minting and verifying access, ID and refresh tokens.
//!
//! Owns claim shapes and signatures only. It does not decide whether a grant is allowed (the
//! token endpoint and the store do) and never reads the time itself: callers pass `now` from
//! the [`Clock`](crate::Clock).

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::ids;
use crate::keys::Keys;
use crate::realm::User;

/// Why a token could not be minted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MintError {
    /// The JWT library refused to sign.
    #[error("signing failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// Why a presented token is not acceptable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum TokenInvalid {
    /// Not a JWT, wrong algorithm, bad signature or wrong claim types.
    #[error("malformed or badly signed token")]
    Malformed,
    /// Issued by another realm or issuer.
    #[error("wrong issuer")]
    Issuer,
    /// A token of another kind (`typ`), e.g. an ID token used as an access token.
    #[error("wrong token type")]
    Type,
    /// Past its `exp`.
    #[error("token expired")]
    Expired,
}

/// The scopes granted to a client: `openid` when asked for, plus Keycloak's default client
/// scopes `email` and `profile`, which every client gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope {
    openid: bool,
}

impl Scope {
    /// The scope granted for a requested `scope` parameter (space-separated).
    pub(crate) fn granted_for(requested: Option<&str>) -> Self {
        let openid = requested.is_some_and(|s| s.split_whitespace().any(|s| s == "openid"));
        Self { openid }
    }

    /// Whether an ID token is issued (OpenID Connect rather than plain OAuth).
    pub(crate) fn openid(&self) -> bool {
        self.openid
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.openid {
            f.write_str("openid ")?;
        }
        f.write_str("email profile")
    }
}

/// Claims of an access token (Keycloak's `typ: "Bearer"` JWT).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AccessClaims {
    pub exp: u64,
    pub iat: u64,
    pub auth_time: u64,
    pub jti: String,
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub typ: String,
    pub azp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub session_state: String,
    pub acr: String,
    #[serde(default)]
    pub realm_access: Value,
    #[serde(default)]
    pub resource_access: Value,
    #[serde(default)]
    pub scope: String,
    pub sid: String,
    #[serde(flatten)]
    pub profile: ProfileClaims,
}

/// Claims of an ID token (`typ: "ID"`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IdClaims {
    pub exp: u64,
    pub iat: u64,
    pub auth_time: u64,
    pub jti: String,
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub typ: String,
    pub azp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub session_state: String,
    pub at_hash: String,
    pub acr: String,
    pub sid: String,
    #[serde(flatten)]
    pub profile: ProfileClaims,
}

/// Claims of a refresh token (`typ: "Refresh"`, HS512 like Keycloak's).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RefreshClaims {
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub typ: String,
    pub azp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub session_state: String,
    pub scope: String,
    pub sid: String,
}

/// The `email` and `profile` scope claims, shared by tokens and userinfo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProfileClaims {
    pub email_verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub preferred_username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl ProfileClaims {
    pub(crate) fn of(user: &User) -> Self {
        Self {
            email_verified: user.email_verified(),
            name: user.full_name(),
            preferred_username: user.username().to_owned(),
            given_name: user.first_name().map(str::to_owned),
            family_name: user.last_name().map(str::to_owned),
            email: user.email().map(str::to_owned),
        }
    }
}

/// What a token response is issued for: one user's session at one client.
#[derive(Debug)]
pub(crate) struct Grant<'a> {
    pub issuer: &'a str,
    pub user: &'a User,
    pub client_id: &'a str,
    pub sid: &'a str,
    pub nonce: Option<&'a str>,
    pub scope: &'a Scope,
    pub auth_time: u64,
    /// `"1"` after a fresh login, `"0"` when the code came from an SSO session (Keycloak).
    pub acr: &'a str,
    pub now: u64,
    pub access_lifetime: u64,
    /// When the refresh token (and the session behind it) expires.
    pub refresh_expires_at: u64,
}

/// A freshly minted token set. Tokens never print.
pub(crate) struct Minted {
    pub access_token: String,
    pub id_token: Option<String>,
    pub refresh_token: String,
    pub refresh_jti: String,
    pub expires_in: u64,
    pub refresh_expires_in: u64,
}

impl fmt::Debug for Minted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Minted")
            .field("refresh_jti", &self.refresh_jti)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// Mints access, ID (when `openid` was granted) and refresh tokens for a grant.
pub(crate) fn mint(keys: &Keys, g: &Grant<'_>) -> Result<Minted, MintError> {
    let profile = ProfileClaims::of(g.user);
    let exp = g.now + g.access_lifetime;
    let access = AccessClaims {
        exp,
        iat: g.now,
        auth_time: g.auth_time,
        jti: ids::random_uuid(),
        iss: g.issuer.to_owned(),
        aud: "account".to_owned(),
        sub: g.user.id().to_owned(),
        typ: "Bearer".to_owned(),
        azp: g.client_id.to_owned(),
        nonce: g.nonce.map(str::to_owned),
        session_state: g.sid.to_owned(),
        acr: g.acr.to_owned(),
        realm_access: json!({ "roles": ["offline_access", "uma_authorization"] }),
        resource_access: json!({
            "account": { "roles": ["manage-account", "manage-account-links", "view-profile"] }
        }),
        scope: g.scope.to_string(),
        sid: g.sid.to_owned(),
        profile: profile.clone(),
    };
    let access_token = sign_rs256(keys, &access)?;

    let id_token = if g.scope.openid() {
        let claims = IdClaims {
            exp,
            iat: g.now,
            auth_time: g.auth_time,
            jti: ids::random_uuid(),
            iss: g.issuer.to_owned(),
            aud: g.client_id.to_owned(),
            sub: g.user.id().to_owned(),
            typ: "ID".to_owned(),
            azp: g.client_id.to_owned(),
            nonce: g.nonce.map(str::to_owned),
            session_state: g.sid.to_owned(),
            at_hash: at_hash(&access_token),
            acr: g.acr.to_owned(),
            sid: g.sid.to_owned(),
            profile,
        };
        Some(sign_rs256(keys, &claims)?)
    } else {
        None
    };

    let refresh_jti = ids::random_uuid();
    let refresh = RefreshClaims {
        exp: g.refresh_expires_at,
        iat: g.now,
        jti: refresh_jti.clone(),
        iss: g.issuer.to_owned(),
        aud: g.issuer.to_owned(),
        sub: g.user.id().to_owned(),
        typ: "Refresh".to_owned(),
        azp: g.client_id.to_owned(),
        nonce: g.nonce.map(str::to_owned),
        session_state: g.sid.to_owned(),
        scope: g.scope.to_string(),
        sid: g.sid.to_owned(),
    };
    let mut header = Header::new(Algorithm::HS512);
    header.typ = Some("JWT".to_owned());
    header.kid = Some(keys.refresh.kid().to_owned());
    let refresh_token = jsonwebtoken::encode(&header, &refresh, keys.refresh.encoding_key())?;

    Ok(Minted {
        access_token,
        id_token,
        refresh_token,
        refresh_jti,
        expires_in: g.access_lifetime,
        refresh_expires_in: g.refresh_expires_at.saturating_sub(g.now),
    })
}

fn sign_rs256<T: Serialize>(keys: &Keys, claims: &T) -> Result<String, MintError> {
    let mut header = Header::new(Algorithm::RS256);
    header.typ = Some("JWT".to_owned());
    header.kid = Some(keys.signing.kid().to_owned());
    Ok(jsonwebtoken::encode(
        &header,
        claims,
        keys.signing.encoding_key(),
    )?)
}

/// OIDC Core 3.1.3.6: base64url of the left half of SHA-256 of the access token's ASCII.
pub(crate) fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

/// Signature and type checks only; expiry and issuer are checked by the callers below so that
/// the IdP's clock, not the system clock, decides.
fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims = HashSet::new();
    v
}

/// Verifies an access token presented as a bearer token.
pub(crate) fn verify_access(
    keys: &Keys,
    issuer: &str,
    now: u64,
    token: &str,
) -> Result<AccessClaims, TokenInvalid> {
    let data = jsonwebtoken::decode::<AccessClaims>(
        token,
        keys.signing.decoding_key(),
        &validation(Algorithm::RS256),
    )
    .map_err(|_| TokenInvalid::Malformed)?;
    let claims = data.claims;
    check(&claims.iss, &claims.typ, claims.exp, issuer, "Bearer", now)?;
    Ok(claims)
}

/// Verifies a refresh token's signature, issuer, type and expiry. Whether it is still the
/// current one for its session is the store's business.
pub(crate) fn verify_refresh(
    keys: &Keys,
    issuer: &str,
    now: u64,
    token: &str,
) -> Result<RefreshClaims, TokenInvalid> {
    let data = jsonwebtoken::decode::<RefreshClaims>(
        token,
        keys.refresh.decoding_key(),
        &validation(Algorithm::HS512),
    )
    .map_err(|_| TokenInvalid::Malformed)?;
    let claims = data.claims;
    check(&claims.iss, &claims.typ, claims.exp, issuer, "Refresh", now)?;
    Ok(claims)
}

fn check(
    iss: &str,
    typ: &str,
    exp: u64,
    issuer: &str,
    want_typ: &str,
    now: u64,
) -> Result<(), TokenInvalid> {
    if iss != issuer {
        return Err(TokenInvalid::Issuer);
    }
    if typ != want_typ {
        return Err(TokenInvalid::Type);
    }
    if exp <= now {
        return Err(TokenInvalid::Expired);
    }
    Ok(())
}

/// Verifies an `id_token_hint` (RP-initiated logout): signature, issuer and type. An expired
/// hint is still accepted, as OpenID RP-Initiated Logout 1.0 section 2 allows.
pub(crate) fn verify_id_token_hint(
    keys: &Keys,
    issuer: &str,
    token: &str,
) -> Result<IdClaims, TokenInvalid> {
    let data = jsonwebtoken::decode::<IdClaims>(
        token,
        keys.signing.decoding_key(),
        &validation(Algorithm::RS256),
    )
    .map_err(|_| TokenInvalid::Malformed)?;
    let claims = data.claims;
    check(&claims.iss, &claims.typ, u64::MAX, issuer, "ID", 0)?;
    Ok(claims)
}
