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
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::faults::FaultKind;
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
    /// Empty (and absent on the wire) for a service account's token.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub session_state: String,
    pub acr: String,
    #[serde(default)]
    pub realm_access: Value,
    #[serde(default)]
    pub resource_access: Value,
    #[serde(default)]
    pub scope: String,
    /// Empty (and absent on the wire) for a service account's token.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sid: String,
    #[serde(flatten)]
    pub profile: ProfileClaims,
}

/// Mints the access token of the `client_credentials` grant: the client's service account
/// (`service-account-<client>`), no session.
pub(crate) fn mint_service_account(
    keys: &Keys,
    issuer: &str,
    client_id: &str,
    now: u64,
    lifetime: u64,
) -> Result<String, MintError> {
    let claims = AccessClaims {
        exp: now + lifetime,
        iat: now,
        auth_time: now,
        jti: ids::random_uuid(),
        iss: issuer.to_owned(),
        aud: "account".to_owned(),
        sub: ids::derived_uuid(&format!("service-account:{issuer}:{client_id}")),
        typ: "Bearer".to_owned(),
        azp: client_id.to_owned(),
        nonce: None,
        session_state: String::new(),
        acr: "1".to_owned(),
        realm_access: default_realm_roles(),
        resource_access: json!({}),
        scope: "email profile".to_owned(),
        sid: String::new(),
        profile: ProfileClaims {
            email_verified: false,
            name: None,
            preferred_username: format!("service-account-{client_id}"),
            given_name: None,
            family_name: None,
            email: None,
            attributes: Default::default(),
        },
    };
    sign_rs256(keys, &claims)
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
    /// The user's attributes as claims.
    #[serde(
        flatten,
        default,
        skip_serializing_if = "std::collections::BTreeMap::is_empty"
    )]
    pub attributes: std::collections::BTreeMap<String, serde_json::Value>,
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
            attributes: user.attributes().clone(),
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

/// How an ID token is spoiled on purpose (see [`crate::faults`]); the default spoils nothing.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct IdTamper {
    issuer: bool,
    audience: bool,
    subject: bool,
    nonce: bool,
    missing_sub: bool,
    missing_aud: bool,
    missing_iat: bool,
    bad_signature: bool,
    alg_none: bool,
    no_kid: bool,
    expired: bool,
    iat_future: bool,
    extra_audience: bool,
}

/// The `iss` of a forged token: another realm at another host.
pub(crate) const FOREIGN_ISSUER: &str = "https://attacker.invalid/realms/master";
/// The audience added or substituted by audience faults.
pub(crate) const FOREIGN_AUDIENCE: &str = "untrusted-audience";

impl IdTamper {
    /// The spoiling that these (ID token or refresh) faults ask for.
    pub(crate) fn from_faults(kinds: &[FaultKind]) -> Self {
        let mut t = Self::default();
        for kind in kinds {
            match kind {
                FaultKind::IdTokenIssuer | FaultKind::RefreshChangedIssuer => t.issuer = true,
                FaultKind::IdTokenAudience | FaultKind::RefreshChangedAudience => {
                    t.audience = true;
                }
                FaultKind::RefreshChangedSubject => t.subject = true,
                FaultKind::IdTokenNonce => t.nonce = true,
                FaultKind::IdTokenMissingSub => t.missing_sub = true,
                FaultKind::IdTokenMissingAud => t.missing_aud = true,
                FaultKind::IdTokenMissingIat => t.missing_iat = true,
                FaultKind::IdTokenBadSignature => t.bad_signature = true,
                FaultKind::IdTokenAlgNone => t.alg_none = true,
                FaultKind::IdTokenNoKid | FaultKind::IdTokenNoKidMultipleKeys => t.no_kid = true,
                FaultKind::IdTokenExpired => t.expired = true,
                FaultKind::IdTokenIatFuture => t.iat_future = true,
                FaultKind::IdTokenExtraAudience => t.extra_audience = true,
                _ => {}
            }
        }
        t
    }

    fn is_clean(&self) -> bool {
        *self == Self::default()
    }

    /// Spoils the claims (as JSON) the way this tamper asks.
    fn claims(&self, claims: &IdClaims, now: u64, lifetime: u64) -> Value {
        let mut v = serde_json::to_value(claims).unwrap_or(Value::Null);
        let Some(map) = v.as_object_mut() else {
            return v;
        };
        if self.issuer {
            map.insert("iss".into(), json!(FOREIGN_ISSUER));
        }
        if self.audience {
            map.insert("aud".into(), json!(FOREIGN_AUDIENCE));
        }
        if self.extra_audience {
            map.insert("aud".into(), json!([claims.aud, FOREIGN_AUDIENCE]));
        }
        if self.subject {
            map.insert(
                "sub".into(),
                json!(ids::derived_uuid(&format!("other:{}", claims.sub))),
            );
        }
        if self.nonce {
            map.insert(
                "nonce".into(),
                json!(format!("altered-{}", ids::random_token(8))),
            );
        }
        if self.expired {
            // Well past any clock-skew leeway (typically 60 s to 5 min).
            map.insert("iat".into(), json!(now.saturating_sub(7200)));
            map.insert("exp".into(), json!(now.saturating_sub(3600)));
        }
        if self.iat_future {
            map.insert("iat".into(), json!(now + 3600));
            map.insert("exp".into(), json!(now + 3600 + lifetime));
        }
        for (flag, name) in [
            (self.missing_sub, "sub"),
            (self.missing_aud, "aud"),
            (self.missing_iat, "iat"),
        ] {
            if flag {
                map.remove(name);
            }
        }
        v
    }

    fn sign(&self, keys: &Keys, claims: &Value) -> Result<String, MintError> {
        if self.alg_none {
            let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
            let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
            return Ok(format!("{header}.{payload}."));
        }
        let mut header = signing_header(keys);
        if self.no_kid {
            header.kid = None;
        }
        let token = keys.signing.sign(&header, claims)?;
        if self.bad_signature {
            return Ok(corrupt_signature(&token));
        }
        Ok(token)
    }
}

/// Flips bits in the middle of the signature: still base64url, no longer valid.
fn corrupt_signature(token: &str) -> String {
    let Some((signed, sig)) = token.rsplit_once('.') else {
        return token.to_owned();
    };
    let mut bytes = URL_SAFE_NO_PAD.decode(sig).unwrap_or_default();
    let mid = bytes.len() / 2;
    if let Some(b) = bytes.get_mut(mid) {
        *b ^= 0xff;
    }
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Mints access, ID (when `openid` was granted) and refresh tokens for a grant.
#[cfg(test)]
pub(crate) fn mint(keys: &Keys, g: &Grant<'_>) -> Result<Minted, MintError> {
    mint_tampered(keys, g, &IdTamper::default())
}

/// [`mint`], with the ID token spoiled as `tamper` says.
pub(crate) fn mint_tampered(
    keys: &Keys,
    g: &Grant<'_>,
    tamper: &IdTamper,
) -> Result<Minted, MintError> {
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
        realm_access: default_realm_roles(),
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
        if tamper.is_clean() {
            Some(sign_rs256(keys, &claims)?)
        } else {
            let spoiled = tamper.claims(&claims, g.now, g.access_lifetime);
            Some(tamper.sign(keys, &spoiled)?)
        }
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

/// The event of a logout token (OpenID Connect Back-Channel Logout 1.0, section 2.4).
pub(crate) const BACKCHANNEL_LOGOUT_EVENT: &str =
    "http://schemas.openid.net/event/backchannel-logout";
/// Keycloak's second event, when the client's `backchannel.logout.revoke.offline.tokens` is on.
pub(crate) const REVOKE_OFFLINE_EVENT: &str = "revoke_offline_access";
/// A logout token's lifetime: Keycloak's two minutes (the spec asks for a short one).
pub(crate) const LOGOUT_TOKEN_LIFETIME: u64 = 120;
/// The JWT `typ` header of a logout token (Back-Channel Logout 1.0 section 2.4, Keycloak's
/// `TokenUtil.TOKEN_TYPE_JWT_LOGOUT_TOKEN`).
pub(crate) const LOGOUT_TOKEN_TYPE: &str = "logout+jwt";

/// Claims of a logout token, in Keycloak's order. It never carries a `nonce` (section 2.4).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct LogoutClaims {
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
    pub iss: String,
    pub aud: String,
    pub sub: String,
    /// Keycloak's own token type claim, `Logout`.
    pub typ: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub events: Value,
}

/// What a logout token is minted for: one ended session, at one client.
#[derive(Debug)]
pub(crate) struct LogoutGrant<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub sub: &'a str,
    /// The session id, when the client asked for it (`backchannel.logout.session.required`).
    pub sid: Option<&'a str>,
    pub revoke_offline_tokens: bool,
    pub now: u64,
}

/// Mints a logout token, signed with the realm's signing key, header `typ: logout+jwt`.
pub(crate) fn mint_logout(keys: &Keys, g: &LogoutGrant<'_>) -> Result<String, MintError> {
    let mut events = serde_json::Map::new();
    events.insert(BACKCHANNEL_LOGOUT_EVENT.to_owned(), json!({}));
    if g.revoke_offline_tokens {
        events.insert(REVOKE_OFFLINE_EVENT.to_owned(), json!(true));
    }
    let claims = LogoutClaims {
        iat: g.now,
        exp: g.now.saturating_add(LOGOUT_TOKEN_LIFETIME),
        jti: ids::random_uuid(),
        iss: g.issuer.to_owned(),
        aud: g.client_id.to_owned(),
        sub: g.sub.to_owned(),
        typ: "Logout".to_owned(),
        sid: g.sid.map(str::to_owned),
        events: Value::Object(events),
    };
    let mut header = signing_header(keys);
    header.typ = Some(LOGOUT_TOKEN_TYPE.to_owned());
    Ok(keys.signing.sign(&header, &claims)?)
}

/// Keycloak's default realm roles (`realm_access`), which every user and service account has.
fn default_realm_roles() -> Value {
    json!({ "roles": ["offline_access", "uma_authorization"] })
}

/// Signs with the active signing key and its algorithm (RS256 unless configured otherwise).
fn sign_rs256<T: Serialize>(keys: &Keys, claims: &T) -> Result<String, MintError> {
    Ok(keys.signing.sign(&signing_header(keys), claims)?)
}

/// The JWT header of the active signing key: its algorithm and `kid`.
fn signing_header(keys: &Keys) -> Header {
    let mut header = Header::new(keys.signing.alg().jwt());
    header.typ = Some("JWT".to_owned());
    header.kid = Some(keys.signing.kid().to_owned());
    header
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

/// The published key named by the token's `kid` (so tokens signed before a rotation still
/// verify during the overlap), with the validation for its algorithm.
fn verifying_key<'k>(
    keys: &'k Keys,
    token: &str,
) -> Result<(&'k jsonwebtoken::DecodingKey, Validation), TokenInvalid> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenInvalid::Malformed)?;
    keys.verifying(header.kid.as_deref())
        .map(|k| (k.decoding_key(), validation(k.alg().jwt())))
        .ok_or(TokenInvalid::Malformed)
}

/// The claims of a token signed by a published key, signature checked.
fn decode_signed<T: DeserializeOwned>(keys: &Keys, token: &str) -> Result<T, TokenInvalid> {
    let (key, validation) = verifying_key(keys, token)?;
    jsonwebtoken::decode::<T>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(|_| TokenInvalid::Malformed)
}

/// Verifies an access token presented as a bearer token.
pub(crate) fn verify_access(
    keys: &Keys,
    issuer: &str,
    now: u64,
    token: &str,
) -> Result<AccessClaims, TokenInvalid> {
    let claims: AccessClaims = decode_signed(keys, token)?;
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
    let claims: IdClaims = decode_signed(keys, token)?;
    check(&claims.iss, &claims.typ, u64::MAX, issuer, "ID", 0)?;
    Ok(claims)
}
