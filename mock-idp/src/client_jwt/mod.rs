//! `private_key_jwt` (RFC 7523 section 2.2, OIDC Core section 9): checking a client
//! assertion the way Keycloak's "Signed JWT" authenticator (`client-jwt`,
//! `JWTClientAuthenticator` + `JWTClientValidator`) does, with its error descriptions.
//!
//! The checks run in Keycloak's order and the first failure is the answer:
//!
//! 1. parameters: `client_assertion_type` present and equal to [`ASSERTION_TYPE`],
//!    `client_assertion` present and a JWS;
//! 2. identity: `sub` present (it names the client), equal to a `client_id` parameter when
//!    one is sent, `iss` = `sub`;
//! 3. algorithm: asymmetric (no `none`, no HMAC), and the client's
//!    `token.endpoint.auth.signing.alg` when set;
//! 4. signature: with the client's key (by `kid` in a JWKS);
//! 5. audience: one value, the realm's issuer or its token, introspection, PAR or CIBA
//!    endpoint;
//! 6. time: `exp` present and not past (15 s of skew), `nbf` reached, `iat` not in the
//!    future and at most `token.endpoint.auth.signing.max.exp` (60 s) old;
//! 7. `jti` present and never seen before (kept until the assertion could no longer be
//!    used).
//!
//! This module owns the checks only: which client is asking and how its keys are fetched is
//! the HTTP layer's business (`http/client_auth.rs`), and it never reads the clock.

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;

use crate::realm::{ClientKey, KeyFamily};

/// RFC 7523 section 2.2: the only `client_assertion_type` this authenticator knows.
pub(crate) const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Keycloak's allowed clock skew for client assertions (seconds).
pub(crate) const CLOCK_SKEW: i64 = 15;

/// Why an assertion was refused. `Display` is Keycloak's `error_description`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AssertionError {
    /// No `client_assertion_type`.
    #[error("Parameter client_assertion_type is missing")]
    TypeMissing,
    /// Another `client_assertion_type`.
    #[error(
        "Parameter client_assertion_type has value '{0}' but expected is '{expected}'",
        expected = ASSERTION_TYPE
    )]
    TypeUnexpected(String),
    /// No `client_assertion`.
    #[error("client_assertion parameter missing")]
    AssertionMissing,
    /// Not a JWS with a JSON header and payload.
    #[error("Client authentication with signed JWT failed: Could not parse the client assertion")]
    Malformed,
    /// No `sub`.
    #[error("Token sub claim is required")]
    SubjectMissing,
    /// `client_id` (or HTTP Basic) names another client than `sub`.
    #[error("client_id parameter does not match sub claim")]
    ClientIdMismatch,
    /// `iss` is not `sub`: Keycloak's `client-jwt` authenticator leaves such an assertion to
    /// others, and none takes it.
    #[error("Invalid client or Invalid client credentials")]
    IssuerNotSubject,
    /// `none`, a symmetric algorithm, an unknown one, or not the client's configured one.
    #[error("Invalid signature algorithm")]
    Algorithm,
    /// No key of the client fits (unknown `kid`, JWKS unreachable).
    #[error("Unable to load public key")]
    KeyUnavailable,
    /// The signature does not verify.
    #[error(
        "Client authentication with signed JWT failed: Signature on JWT token failed validation"
    )]
    Signature,
    /// No allowed audience.
    #[error("Invalid token audience")]
    Audience,
    /// Several audiences (Keycloak refuses them unless told otherwise).
    #[error("Multiple audiences not allowed")]
    MultipleAudiences,
    /// No `exp`.
    #[error("Token exp claim is required")]
    ExpMissing,
    /// Expired, or not yet valid (`nbf`).
    #[error("Token is not active")]
    NotActive,
    /// No `iat` and an `exp` further away than the client's maximum.
    #[error("Token expiration is too far in the future and iat claim not present in token")]
    ExpTooFarWithoutIat,
    /// `iat` in the future.
    #[error("Token was issued in the future")]
    IssuedInFuture,
    /// `iat` older than the client's maximum.
    #[error("Token was issued too far in the past to be used now")]
    IssuedTooLongAgo,
    /// No `jti`.
    #[error("Token jti claim is required")]
    JtiMissing,
    /// This `jti` was used before.
    #[error("Token reuse detected")]
    Replayed,
}

impl AssertionError {
    /// Whether Keycloak answers it as its generic client failure (401) rather than as a
    /// signed-JWT failure (400).
    pub(crate) fn is_generic(&self) -> bool {
        matches!(self, Self::IssuerNotSubject)
    }
}

/// A parsed, not yet verified, client assertion. `Debug` leaves the token itself out.
#[derive(Clone)]
pub(crate) struct Assertion {
    raw: String,
    /// The header's `alg`, as written.
    alg: Option<String>,
    kid: Option<String>,
    claims: Claims,
}

impl std::fmt::Debug for Assertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assertion")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

/// The registered claims an assertion is judged on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Vec<String>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    jti: Option<String>,
}

impl Assertion {
    /// Reads the header and payload of a compact JWS (nothing is verified yet).
    pub(crate) fn parse(raw: &str) -> Result<Self, AssertionError> {
        let mut parts = raw.split('.');
        let (Some(header), Some(payload), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AssertionError::Malformed);
        };
        let header = json_part(header).ok_or(AssertionError::Malformed)?;
        let payload = json_part(payload).ok_or(AssertionError::Malformed)?;
        let text = |v: &Value, name: &str| v.get(name).and_then(Value::as_str).map(str::to_owned);
        let number = |name: &str| payload.get(name).and_then(Value::as_f64).map(|n| n as i64);
        let aud = match payload.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        Ok(Self {
            raw: raw.to_owned(),
            alg: text(&header, "alg"),
            kid: text(&header, "kid"),
            claims: Claims {
                iss: text(&payload, "iss"),
                sub: text(&payload, "sub"),
                aud,
                exp: number("exp"),
                nbf: number("nbf"),
                iat: number("iat"),
                jti: text(&payload, "jti"),
            },
        })
    }

    /// The `sub` claim, unverified (for the request log).
    pub(crate) fn subject(&self) -> Option<&str> {
        self.claims.sub.as_deref()
    }
}

/// A JSON object from one base64url part of a JWS.
fn json_part(part: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .filter(Value::is_object)
}

/// Step 1: the two request parameters.
pub(crate) fn check_parameters(
    assertion_type: Option<&str>,
    assertion: Option<&str>,
) -> Result<(), AssertionError> {
    match assertion_type {
        None => return Err(AssertionError::TypeMissing),
        Some(t) if t != ASSERTION_TYPE => return Err(AssertionError::TypeUnexpected(t.to_owned())),
        Some(_) => {}
    }
    if assertion.is_none() {
        return Err(AssertionError::AssertionMissing);
    }
    Ok(())
}

/// Step 2: `sub` names the client, the same as `client_id` (or HTTP Basic) when sent, and
/// `iss` = `sub`. Returns the client id.
pub(crate) fn check_identity<'a>(
    assertion: &'a Assertion,
    named: Option<&str>,
) -> Result<&'a str, AssertionError> {
    let sub = assertion
        .claims
        .sub
        .as_deref()
        .ok_or(AssertionError::SubjectMissing)?;
    if named.is_some_and(|n| n != sub) {
        return Err(AssertionError::ClientIdMismatch);
    }
    if assertion.claims.iss.as_deref() != Some(sub) {
        return Err(AssertionError::IssuerNotSubject);
    }
    Ok(sub)
}

/// Step 3: an asymmetric algorithm, the client's own when it names one.
pub(crate) fn check_algorithm(
    assertion: &Assertion,
    expected: Option<Algorithm>,
) -> Result<Algorithm, AssertionError> {
    let alg = assertion
        .alg
        .as_deref()
        .and_then(|a| a.parse::<Algorithm>().ok())
        .filter(|a| KeyFamily::for_algorithm(*a).is_some())
        .ok_or(AssertionError::Algorithm)?;
    if expected.is_some_and(|e| e != alg) {
        return Err(AssertionError::Algorithm);
    }
    Ok(alg)
}

/// The client's keys for step 4, as the HTTP layer found them.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KeyChoice<'k> {
    /// The one key of a certificate or public key: used whatever the `kid`.
    Single(&'k ClientKey),
    /// A JWKS: the key named by `kid`, or without a `kid` the first one that fits the
    /// algorithm.
    Set(&'k [ClientKey]),
    /// The keys could not be had (e.g. the JWKS URL did not answer).
    Unavailable,
}

/// Step 4: the signature, with the client's key.
pub(crate) fn check_signature(
    assertion: &Assertion,
    alg: Algorithm,
    keys: KeyChoice<'_>,
) -> Result<(), AssertionError> {
    let family = KeyFamily::for_algorithm(alg).ok_or(AssertionError::Algorithm)?;
    let key = match keys {
        KeyChoice::Single(key) => Some(key),
        KeyChoice::Set(keys) => keys.iter().find(|k| match assertion.kid.as_deref() {
            Some(kid) => k.kid() == Some(kid),
            None => k.family() == family && k.alg().is_none_or(|a| a == alg),
        }),
        KeyChoice::Unavailable => None,
    }
    .ok_or(AssertionError::KeyUnavailable)?;
    let mut validation = Validation::new(alg);
    // Claims are judged below, on the IdP clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(&assertion.raw, key.decoding_key(), &validation)
        .map(|_| ())
        .map_err(|_| AssertionError::Signature)
}

/// Step 5: exactly one audience, one of `allowed`.
pub(crate) fn check_audience(
    assertion: &Assertion,
    allowed: &[String],
) -> Result<(), AssertionError> {
    let aud = &assertion.claims.aud;
    if !aud.iter().any(|a| allowed.contains(a)) {
        return Err(AssertionError::Audience);
    }
    if aud.len() > 1 {
        return Err(AssertionError::MultipleAudiences);
    }
    Ok(())
}

/// Step 6: the times, on the IdP clock `now`. Returns how long the assertion could still be
/// used (seconds): how long its `jti` must be remembered.
pub(crate) fn check_times(
    assertion: &Assertion,
    now: i64,
    max_exp: i64,
) -> Result<i64, AssertionError> {
    let c = &assertion.claims;
    // Claims are attacker-chosen numbers: every sum saturates.
    let exp = c.exp.ok_or(AssertionError::ExpMissing)?;
    let expired = exp != 0 && now > exp.saturating_add(CLOCK_SKEW);
    let early = c
        .nbf
        .is_some_and(|nbf| nbf != 0 && now < nbf.saturating_sub(CLOCK_SKEW));
    if expired || early {
        return Err(AssertionError::NotActive);
    }
    let mut lifespan = exp.saturating_sub(now);
    match c.iat {
        None => {
            if lifespan > max_exp {
                return Err(AssertionError::ExpTooFarWithoutIat);
            }
        }
        Some(iat) => {
            if iat.saturating_sub(CLOCK_SKEW) > now {
                return Err(AssertionError::IssuedInFuture);
            }
            lifespan = lifespan.min(max_exp);
            if lifespan <= 0 {
                return Err(AssertionError::NotActive);
            }
            if now > iat.saturating_add(max_exp) {
                return Err(AssertionError::IssuedTooLongAgo);
            }
        }
    }
    Ok(lifespan)
}

/// The `jti`s already used, each kept until the assertion it came in has expired.
#[derive(Debug, Default)]
pub(crate) struct UsedJtis {
    until: HashMap<String, i64>,
}

/// How many remembered `jti`s trigger a sweep of the expired ones.
const SWEEP_AT: usize = 1024;

impl UsedJtis {
    /// Step 7: records the assertion's `jti` for `lifespan` seconds from `now`; refuses one
    /// seen before (and still remembered).
    pub(crate) fn check_and_record(
        &mut self,
        assertion: &Assertion,
        now: i64,
        lifespan: i64,
    ) -> Result<(), AssertionError> {
        let jti = assertion
            .claims
            .jti
            .as_deref()
            .ok_or(AssertionError::JtiMissing)?;
        if self.until.len() >= SWEEP_AT {
            self.until.retain(|_, until| *until >= now);
        }
        if self.until.get(jti).is_some_and(|until| *until >= now) {
            return Err(AssertionError::Replayed);
        }
        // At least 10 s, as Keycloak's releases before 26 kept it.
        self.until
            .insert(jti.to_owned(), now.saturating_add(lifespan.max(10)));
        Ok(())
    }
}
