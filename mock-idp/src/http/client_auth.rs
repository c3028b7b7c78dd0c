//! Client authentication at the token, introspection and revocation endpoints, decided the
//! way Keycloak's client authentication flow decides it: the client is named by HTTP Basic,
//! by `client_id`, or by the `sub` of a `client_assertion`; then only the authenticator the
//! client is set up for (`clientAuthenticatorType`) counts:
//!
//! - a public client needs nothing more;
//! - `client-secret`: the secret, by Basic or as `client_secret` (a client assertion alone
//!   does not do);
//! - `client-jwt`: a valid `client_assertion` (see [`crate::client_jwt`]); a secret alone is
//!   refused with Keycloak's "Parameter client_assertion_type is missing".
//!
//! Secret failures are `401 invalid_client` "Invalid client or Invalid client credentials";
//! assertion failures are `400 invalid_client` with Keycloak's description.

use std::time::Duration;

use axum::http::HeaderMap;

use super::params::{Params, authorization, decode_basic};
use super::{AppState, HttpError, RealmState};
use crate::client_jwt::{self, Assertion, AssertionError, KeyChoice};
use crate::realm::{Authenticator, Client, ClientKey, JwtCredential, KeySource};

/// How long fetching a client's `jwks.url` may take.
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The authenticated client of a back-channel request.
pub(crate) async fn authenticate_client<'r>(
    state: &AppState,
    rs: &'r RealmState,
    headers: &HeaderMap,
    form: &Params,
) -> Result<&'r Client, HttpError> {
    // RFC 6749 2.3.1: id and secret are each form-urlencoded before base64.
    let basic = match authorization(headers, "basic") {
        Some(encoded) => Some(decode_basic(encoded).ok_or_else(HttpError::invalid_client)?),
        None => None,
    };
    let form_id = form.get("client_id");
    // Two different identities in one request is a client fault.
    if let (Some((id, _)), Some(f)) = (&basic, form_id)
        && f != id
    {
        return Err(HttpError::invalid_client());
    }
    let named = basic.as_ref().map(|(id, _)| id.as_str()).or(form_id);
    let assertion_type = form.get("client_assertion_type");
    let raw_assertion = form.get("client_assertion");
    let parsed = raw_assertion.map(Assertion::parse);

    let client_id = match (named, &parsed) {
        (Some(id), _) => id,
        (None, Some(Ok(assertion))) => {
            client_jwt::check_identity(assertion, None).map_err(HttpError::ClientAssertion)?
        }
        (None, Some(Err(e))) => return Err(HttpError::ClientAssertion(e.clone())),
        (None, None) => return Err(HttpError::invalid_client()),
    };
    let client = rs
        .realm
        .client(client_id)
        .filter(|c| c.enabled())
        .ok_or_else(HttpError::invalid_client)?;
    if client.is_public() {
        // A public client names itself with `client_id`; an assertion does not stand in for
        // it (Keycloak: "Missing client_id parameter").
        return match named {
            Some(_) => Ok(client),
            None => Err(HttpError::invalid_client()),
        };
    }
    match client.authenticator() {
        Authenticator::Secret => {
            // A secret client named only by an assertion's `sub` has sent no `client_id`:
            // Keycloak's secret authenticator does not know whom to check.
            let secret = match named {
                None => None,
                Some(_) => basic
                    .as_ref()
                    .map(|(_, s)| s.as_str())
                    .or(form.get("client_secret")),
            };
            match (client.secret(), secret) {
                (Some(expected), Some(given)) if expected.matches(given) => Ok(client),
                _ => Err(HttpError::invalid_client()),
            }
        }
        Authenticator::Jwt(credential) => {
            let check = Check {
                assertion_type,
                raw_assertion,
                parsed: parsed.as_ref(),
                named,
            };
            verify_assertion(state, rs, credential, check)
                .await
                .map_err(HttpError::ClientAssertion)?;
            Ok(client)
        }
    }
}

/// What the request says about its assertion.
struct Check<'a> {
    assertion_type: Option<&'a str>,
    raw_assertion: Option<&'a str>,
    parsed: Option<&'a Result<Assertion, AssertionError>>,
    /// The client named by Basic or `client_id`, if any.
    named: Option<&'a str>,
}

/// Every check of [`crate::client_jwt`], in Keycloak's order.
async fn verify_assertion(
    state: &AppState,
    rs: &RealmState,
    credential: &JwtCredential,
    check: Check<'_>,
) -> Result<(), AssertionError> {
    // Keycloak reads the assertion before it looks at the parameters.
    if let Some(Err(e)) = check.parsed {
        return Err(e.clone());
    }
    client_jwt::check_parameters(check.assertion_type, check.raw_assertion)?;
    let Some(Ok(assertion)) = check.parsed else {
        return Err(AssertionError::AssertionMissing);
    };
    client_jwt::check_identity(assertion, check.named)?;
    let alg = client_jwt::check_algorithm(assertion, credential.signing_alg())?;
    let fetched;
    let keys = match credential.keys() {
        KeySource::Certificate(key) | KeySource::PublicKey(key) => KeyChoice::Single(key),
        KeySource::JwksString(keys) => KeyChoice::Set(keys),
        KeySource::JwksUrl(url) => {
            fetched = fetch_jwks(state, url).await;
            match &fetched {
                Some(keys) => KeyChoice::Set(keys),
                None => KeyChoice::Unavailable,
            }
        }
    };
    client_jwt::check_signature(assertion, alg, keys)?;
    client_jwt::check_audience(assertion, &allowed_audiences(rs))?;
    let now = i64::try_from(state.now()).unwrap_or(i64::MAX);
    let max_exp = i64::try_from(credential.max_exp()).unwrap_or(i64::MAX);
    let lifespan = client_jwt::check_times(assertion, now, max_exp)?;
    rs.used_jtis().check_and_record(assertion, now, lifespan)
}

/// What Keycloak's `JWTClientValidator` accepts as `aud`: the realm's issuer and its token,
/// introspection, PAR and CIBA endpoints.
fn allowed_audiences(rs: &RealmState) -> Vec<String> {
    vec![
        rs.issuer.clone(),
        rs.endpoint("token"),
        rs.endpoint("token/introspect"),
        rs.endpoint("ext/par/request"),
        rs.endpoint("ext/ciba/auth"),
    ]
}

/// The signature keys at a client's `jwks.url`, or `None` (logged) when it cannot be had.
async fn fetch_jwks(state: &AppState, url: &url::Url) -> Option<Vec<ClientKey>> {
    let fetched = async {
        let resp = state
            .http
            .get(url.clone())
            .timeout(JWKS_FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("status {}", resp.status()));
        }
        let text = resp.text().await.map_err(|e| e.to_string())?;
        ClientKey::from_jwks_json(&text)
    }
    .await;
    match fetched {
        Ok(keys) => Some(keys),
        Err(error) => {
            tracing::warn!(%url, %error, "cannot load the client's JWKS");
            None
        }
    }
}
