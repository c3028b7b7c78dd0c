//! Requests to the token and revocation endpoints, and how the client authenticates in them.
//!
//! extauth makes these requests itself rather than through `openidconnect`'s client, for two
//! reasons: the client authentication (`client_secret_basic`, a public client, or a
//! `private_key_jwt` assertion signed anew for every request), and the token response, whose
//! `id_token` is kept as text here so that a malformed ID token (a missing `sub` or `iat`)
//! is an invalid ID token, answered like every other, instead of an unreadable answer from
//! an unavailable IdP.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Discovered, OidcError, Provider};
use crate::assertion::ASSERTION_TYPE;
use crate::config::ClientAuth;

/// Largest token or revocation response read.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// A successful token response (RFC 6749 5.1), `id_token` unparsed.
#[derive(Deserialize)]
pub(super) struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub id_token: Option<String>,
    /// A number by the RFC; some IdPs send it as a string.
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

impl TokenResponse {
    /// `expires_in` in seconds, when it is a usable number.
    pub fn expires_in(&self) -> Option<u64> {
        match self.expires_in.as_ref()? {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

/// An error response (RFC 6749 5.2).
#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// How a token request failed.
pub(super) enum TokenCallError {
    /// The IdP answered with an OAuth error (a 4xx with `error`).
    Refused {
        error: String,
        description: Option<String>,
    },
    /// No usable answer: the IdP or the network failed.
    Unavailable(String),
}

impl Provider {
    /// POSTs `form` (plus `extra`, then the `tokenEndpointQueryParams` that `extra` does not
    /// override; never over a parameter of the grant itself) to the token endpoint,
    /// authenticated as the client.
    pub(super) async fn token_call(
        &self,
        discovered: &Discovered,
        mut form: Vec<(String, String)>,
        extra: &BTreeMap<String, String>,
        call: &'static str,
    ) -> Result<TokenResponse, TokenCallError> {
        let endpoint = discovered
            .token_endpoint
            .clone()
            .ok_or_else(|| TokenCallError::Unavailable("discovery has no token_endpoint".into()))?;
        for (k, v) in extra.iter().chain(&self.config.token_endpoint_query_params) {
            if !form.iter().any(|(have, _)| have == k) {
                form.push((k.clone(), v.clone()));
            }
        }
        let request = self
            .authenticate(self.http.post(&endpoint), &mut form, &endpoint)
            .map_err(|e| TokenCallError::Unavailable(e.to_string()))?;
        let timer = crate::metrics::idp_timer(call);
        let (status, body) = send_form(&self.http, request, &form)
            .await
            .map_err(TokenCallError::Unavailable)?;
        drop(timer);
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| {
                TokenCallError::Unavailable(format!("unparseable token response: {e}"))
            });
        }
        match serde_json::from_slice::<ErrorResponse>(&body) {
            // `server_error` and `temporarily_unavailable` (RFC 6749 5.2, 4.1.2.1) say the IdP
            // failed, not that it refused this grant, whatever the status they came with.
            Ok(e) if status.is_client_error() && !is_idp_failure(&e.error) => {
                Err(TokenCallError::Refused {
                    error: e.error,
                    description: e.error_description,
                })
            }
            _ => Err(TokenCallError::Unavailable(format!(
                "token endpoint answered HTTP {status}"
            ))),
        }
    }

    /// POSTs `form` to the revocation endpoint (RFC 7009), authenticated as the client.
    pub(super) async fn revocation_call(
        &self,
        discovered: &Discovered,
        endpoint: &str,
        mut form: Vec<(String, String)>,
    ) -> Result<(), OidcError> {
        // The assertion's audience stays the token endpoint: RFC 7523 names it, and Keycloak
        // accepts it at every endpoint that authenticates clients.
        let audience = discovered
            .token_endpoint
            .clone()
            .unwrap_or_else(|| endpoint.to_owned());
        let request = self.authenticate(self.http.post(endpoint), &mut form, &audience)?;
        let _timer = crate::metrics::idp_timer("revoke");
        let (status, _) = send_form(&self.http, request, &form)
            .await
            .map_err(|e| OidcError::TokenEndpoint(format!("revocation: {e}")))?;
        if !status.is_success() {
            return Err(OidcError::TokenEndpoint(format!(
                "revocation endpoint answered {status}"
            )));
        }
        Ok(())
    }

    /// Adds the client's credentials to `request` / `form`: `client_secret_basic` (RFC 6749
    /// 2.3.1: id and secret form-encoded, then Basic), `client_id` alone for a public client,
    /// or a fresh `private_key_jwt` assertion (RFC 7523) for `audience`.
    fn authenticate(
        &self,
        request: openidconnect::reqwest::RequestBuilder,
        form: &mut Vec<(String, String)>,
        audience: &str,
    ) -> Result<openidconnect::reqwest::RequestBuilder, OidcError> {
        let client_id = &self.config.client_id;
        Ok(match &self.config.client_auth {
            ClientAuth::Secret(secret) => request.basic_auth(
                form_urlencoded::byte_serialize(client_id.as_bytes()).collect::<String>(),
                Some(
                    form_urlencoded::byte_serialize(secret.expose().as_bytes()).collect::<String>(),
                ),
            ),
            ClientAuth::Public => {
                form.push(("client_id".into(), client_id.clone()));
                request
            }
            ClientAuth::PrivateKeyJwt(jwt) => {
                let assertion = jwt
                    .key
                    .sign(client_id, audience, self.clock.now(), jwt.valid_for)
                    .map_err(|e| OidcError::TokenEndpoint(e.to_string()))?;
                form.push(("client_id".into(), client_id.clone()));
                form.push(("client_assertion_type".into(), ASSERTION_TYPE.into()));
                form.push(("client_assertion".into(), assertion));
                request
            }
        })
    }
}

/// Whether a token endpoint's error code reports its own failure rather than a refusal.
fn is_idp_failure(error: &str) -> bool {
    matches!(error, "server_error" | "temporarily_unavailable")
}

/// Sends `form` and reads the answer, at most [`MAX_RESPONSE_BYTES`].
async fn send_form(
    http: &super::IdpHttp,
    request: openidconnect::reqwest::RequestBuilder,
    form: &[(String, String)],
) -> Result<(http::StatusCode, Vec<u8>), String> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .finish();
    let request = request
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(body);
    http.send(request, MAX_RESPONSE_BYTES, "response too large")
        .await
}
