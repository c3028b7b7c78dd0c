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
    #[error("the identity provider refused the login: {error}")]
    IdpRefused {
        /// `error`.
        error: String,
        /// `error_description`.
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
            | FlowError::LoginBinding => StatusCode::BAD_REQUEST,
            FlowError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            FlowError::StateExpired { .. } => StatusCode::FOUND,
            FlowError::IdpRefused { .. } => StatusCode::UNAUTHORIZED,
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
            FlowError::UnknownConfig(id) => {
                Deny::text(status, format!("No AuthConfig {id} is loaded.\n"))
            }
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
            FlowError::IdpRefused { error, description } => Deny::text(
                status,
                format!(
                    "The identity provider did not complete the login: {error}{}.\n",
                    description.map(|d| format!(" ({d})")).unwrap_or_default()
                ),
            ),
            FlowError::Idp(e) if e.is_unavailable() => Deny::text(
                status,
                "The identity provider is unavailable. Try again later.\n",
            ),
            FlowError::Idp(e) => Deny::text(status, format!("Login failed: {e}.\n")),
            FlowError::SessionStore(_) => Deny::text(
                status,
                "The session store is unavailable. Try again later.\n",
            ),
        };
        Decision::Deny(deny)
    }
}
