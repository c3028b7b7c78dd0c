//! The one place where flow errors become responses. Client faults are 4xx with a message the
//! user can act on; IdP and store faults are 502/503 with a generic message, details in the
//! log only. The match is exhaustive on purpose: a new variant must choose its status here.

use http::StatusCode;

use super::{Decision, Deny};
use crate::oidc::OidcError;
use crate::session::StoreError;
use crate::state::StateError;

/// Why a request could not be decided normally.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// Several AuthConfigs are loaded and the request did not say which (the selector key).
    #[error("several AuthConfigs are loaded and the request names none")]
    NoConfigSelected(String),
    /// The request named an AuthConfig that is not loaded.
    #[error("no AuthConfig {0} is loaded")]
    UnknownConfig(String),
    /// The callback query is malformed.
    #[error("bad callback query: {0}")]
    CallbackQuery(String),
    /// A part of the request is larger than we read.
    #[error("{what} is larger than {limit} bytes")]
    TooLarge {
        /// Which part.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// The browser's login cookie does not list this login (or `strictLoginBinding` and
    /// there is none): the callback was not started by this browser.
    #[error("the login was not started by this browser")]
    LoginBinding,
    /// A front- or back-channel logout request the spec says to refuse (OIDC Back-Channel
    /// Logout 2.8: 400 with `invalid_request`); the text says why.
    #[error("logout request refused: {0}")]
    LogoutRequest(&'static str),
    /// A method the path does not answer (the channel logout paths); the value is `Allow`.
    #[error("method not allowed here (allowed: {0})")]
    MethodNotAllowed(&'static str),
    /// A bug or an impossible state (details logged only).
    #[error("internal error: {0}")]
    Internal(String),
    /// `state` failed verification.
    #[error("bad state: {0}")]
    State(StateError),
    /// `state` expired: the login took too long.
    #[error("the login took too long")]
    StateExpired {
        /// Where a new login can start.
        restart: String,
    },
    /// The IdP redirected back with `error`.
    #[error("the identity provider refused the login: {}{}", error.unwrap_or("an unregistered error code"), description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    IdpRefused {
        /// `error` when it is a registered OAuth/OIDC error code ([`registered_error`]).
        error: Option<&'static str>,
        /// `error_description`, for the log only ([`log_safe`]): never in a response.
        description: Option<String>,
    },
    /// Discovery, the token endpoint or the ID token failed.
    #[error(transparent)]
    Idp(OidcError),
    /// The session store failed.
    #[error(transparent)]
    SessionStore(StoreError),
}

impl FlowError {
    /// Logs the error with its details (never secrets: no variant carries one).
    pub fn log(&self, config: &str) {
        match self.status() {
            s if s.is_server_error() => tracing::error!(config, error = %self, "request failed"),
            _ => tracing::info!(config, error = %self, "request refused"),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            FlowError::NoConfigSelected(_) | FlowError::UnknownConfig(_) => StatusCode::FORBIDDEN,
            FlowError::CallbackQuery(_)
            | FlowError::State(_)
            | FlowError::TooLarge { .. }
            | FlowError::LoginBinding
            | FlowError::LogoutRequest(_) => StatusCode::BAD_REQUEST,
            FlowError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            FlowError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            FlowError::StateExpired { .. } => StatusCode::FOUND,
            FlowError::IdpRefused { .. } => StatusCode::UNAUTHORIZED,
            // One answer for every ID token that fails validation: not an outage (no 5xx),
            // and not a 401, which an nginx `error_page 401` would turn into a new login
            // and, with a live IdP session, a redirect loop.
            FlowError::Idp(OidcError::IdTokenInvalid(_)) => StatusCode::FORBIDDEN,
            FlowError::Idp(OidcError::LogoutTokenInvalid(_)) => StatusCode::BAD_REQUEST,
            FlowError::Idp(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            FlowError::Idp(_) => StatusCode::UNAUTHORIZED,
            FlowError::SessionStore(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The response for the client.
    pub fn into_decision(self) -> Decision {
        crate::metrics::record_error(&self);
        let status = self.status();
        let deny = match self {
            FlowError::NoConfigSelected(key) => Deny::text(
                status,
                format!(
                    "Several AuthConfigs are loaded: the gateway must name one in the `{key}` context extension or header.\n"
                ),
            ),
            FlowError::TooLarge { what, limit } => Deny::text(
                status,
                format!("Request refused: {what} is larger than {limit} bytes.\n"),
            ),
            FlowError::LoginBinding => Deny::text(
                status,
                "Bad login callback: this login was not started by this browser (its login cookie does not match). Start the login again.\n",
            ),
            FlowError::Internal(_) => Deny::text(status, "Internal error.\n"),
            FlowError::LogoutRequest(why) => oauth_error(status, "invalid_request", why),
            FlowError::MethodNotAllowed(allow) => {
                Deny::text(status, format!("Method not allowed: use {allow}.\n"))
                    .with_header(http::header::ALLOW, allow.to_owned())
            }
            FlowError::UnknownConfig(id) => match safe_config_id(&id) {
                Some(id) => Deny::text(status, format!("No AuthConfig {id} is loaded.\n")),
                None => Deny::text(status, "The AuthConfig this request names is not loaded.\n"),
            },
            FlowError::CallbackQuery(why) => {
                Deny::text(status, format!("Bad login callback: {why}.\n"))
            }
            FlowError::State(e) => Deny::text(
                status,
                format!(
                    "Bad login callback: the `state` parameter is not valid ({e}). Start the login again.\n"
                ),
            ),
            FlowError::StateExpired { restart } => Deny::redirect(restart),
            FlowError::IdpRefused { error, .. } => Deny::text(
                status,
                format!(
                    "The identity provider did not complete the login: {}.\n",
                    error.unwrap_or("unknown error")
                ),
            ),
            FlowError::Idp(e) if e.is_unavailable() => Deny::text(
                status,
                "The identity provider is unavailable. Try again later.\n",
            ),
            FlowError::Idp(OidcError::IdTokenInvalid(_)) => Deny::text(status, INVALID_ID_TOKEN),
            FlowError::Idp(OidcError::LogoutTokenInvalid(_)) => {
                oauth_error(status, "invalid_request", "the logout token is not valid")
            }
            FlowError::Idp(OidcError::CodeRejected { error, .. }) => Deny::text(
                status,
                format!(
                    "Login failed: the identity provider rejected the authorization code ({}). Start the login again.\n",
                    registered_error(&error).unwrap_or("unknown error")
                ),
            ),
            FlowError::Idp(OidcError::NoIdToken) => Deny::text(
                status,
                "Login failed: the identity provider returned no ID token (is `openid` among the client's allowed scopes?).\n",
            ),
            FlowError::Idp(OidcError::RefreshRejected { .. }) => Deny::text(
                status,
                "Login failed: the identity provider ended the session. Log in again.\n",
            ),
            // The variants `is_unavailable` covers (listed for the exhaustive match).
            FlowError::Idp(
                OidcError::Discovery { .. }
                | OidcError::IssuerMismatch { .. }
                | OidcError::TokenEndpoint(_)
                | OidcError::RefreshUnverified { .. },
            ) => Deny::text(
                status,
                "The identity provider is unavailable. Try again later.\n",
            ),
            FlowError::SessionStore(_) => Deny::text(
                status,
                "The session store is unavailable. Try again later.\n",
            ),
        };
        Decision::Deny(deny)
    }
}

/// The body of every callback whose ID token fails validation (signature, `alg`, `kid`,
/// `iss`, `aud`, `azp`, `exp`, `iat`, `nbf`, `nonce`, `at_hash`, a missing claim, a malformed
/// JWT): one text, so that nothing about the failure is told to whoever sent the callback
/// (the reason is in the log).
pub const INVALID_ID_TOKEN: &str = "Login refused: the identity provider's ID token did not pass validation. Start the login again.\n";

/// An RFC 6749 5.2 error body (what an IdP expects from a back-channel logout endpoint).
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Deny {
    let body = serde_json::json!({"error": error, "error_description": description});
    Deny::typed(status, "application/json", format!("{body}\n"))
}

/// Error codes an IdP may send back (RFC 6749 4.1.2.1 and 5.2, OIDC Core 3.1.2.6, RFC 9126
/// and RFC 9396): the only `error` values a response of ours repeats.
const REGISTERED_ERRORS: [&str; 19] = [
    "invalid_request",
    "unauthorized_client",
    "access_denied",
    "unsupported_response_type",
    "invalid_scope",
    "server_error",
    "temporarily_unavailable",
    "invalid_client",
    "invalid_grant",
    "unsupported_grant_type",
    "interaction_required",
    "login_required",
    "account_selection_required",
    "consent_required",
    "invalid_request_uri",
    "invalid_request_object",
    "request_not_supported",
    "request_uri_not_supported",
    "registration_not_supported",
];

/// `error` as a registered code, or `None` for anything else (attacker-chosen text included).
pub fn registered_error(error: &str) -> Option<&'static str> {
    REGISTERED_ERRORS.iter().copied().find(|c| *c == error)
}

/// Text an attacker may have chosen, made safe for one log line: control characters
/// replaced, at most `max` characters.
pub fn log_safe(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

/// An AuthConfig id a request named, when it has the shape of one (`namespace/name` in
/// Kubernetes' DNS-1123 characters): only then is it repeated in the answer.
fn safe_config_id(id: &str) -> Option<&str> {
    let (ns, name) = id.split_once('/')?;
    let part = |s: &str| {
        (1..=253).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    (part(ns) && part(name)).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_registered_error_codes_are_repeated() {
        assert_eq!(registered_error("access_denied"), Some("access_denied"));
        for bad in [
            "<script>alert(1)</script>",
            "ACCESS_DENIED",
            "access_denied ",
            "",
        ] {
            assert_eq!(registered_error(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn log_safe_text_is_one_capped_line() {
        assert_eq!(log_safe("a\nb\rc", 10), "a b c");
        assert_eq!(log_safe(&"x".repeat(20), 5), "xxxxx…");
    }

    #[test]
    fn only_well_formed_config_ids_are_repeated() {
        assert_eq!(safe_config_id("ns/app"), Some("ns/app"));
        for bad in ["<b>/x", "ns/<script>", "no-slash", "/x", "ns/", "NS/app"] {
            assert_eq!(safe_config_id(bad), None, "{bad}");
        }
    }
}
