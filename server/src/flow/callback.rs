//! The IdP's redirect back: verify `state` first, then exchange the code, then create a new
//! session (a new id at every login: no fixation) and 302 to the original URL with the cookie.

use http::header::SET_COOKIE;

use super::{CheckRequest, Decision, Deny, Flow, FlowError, Route, cookie};
use crate::config::OidcConfig;
use crate::session::{SessionData, SessionId};
use crate::state::StateError;

/// Longest callback query we parse.
pub const MAX_CALLBACK_QUERY: usize = 16 * 1024;

/// What the IdP sent back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackParams {
    /// Success: a code to exchange.
    Code {
        /// `code`.
        code: String,
        /// `state`.
        state: String,
    },
    /// The IdP refused (e.g. `access_denied` when the user cancels).
    Error {
        /// `error`.
        error: String,
        /// `error_description`.
        description: Option<String>,
    },
}

/// `Some` when `check` is a callback: on `callbackPath`, with `code` and `state` or with
/// `error`. Anything else on that path is an ordinary request.
pub fn callback_params(
    config: &OidcConfig,
    check: &CheckRequest,
) -> Result<Option<CallbackParams>, FlowError> {
    if check.path != config.callback_path {
        return Ok(None);
    }
    let Some(query) = check.query.as_deref() else {
        return Ok(None);
    };
    if query.len() > MAX_CALLBACK_QUERY {
        return Err(FlowError::CallbackQuery(format!(
            "the query string is longer than {MAX_CALLBACK_QUERY} bytes"
        )));
    }
    let (mut code, mut state, mut error, mut description) = (None, None, None, None);
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let slot = match key.as_ref() {
            "code" => &mut code,
            "state" => &mut state,
            "error" => &mut error,
            "error_description" => &mut description,
            _ => continue,
        };
        if slot.is_some() {
            return Err(FlowError::CallbackQuery(format!(
                "parameter `{key}` appears more than once"
            )));
        }
        *slot = Some(value.into_owned());
    }
    Ok(match (error, code, state) {
        (Some(error), _, _) => Some(CallbackParams::Error { error, description }),
        (None, Some(code), Some(state)) => Some(CallbackParams::Code { code, state }),
        _ => None,
    })
}

/// Completes a login.
pub async fn handle(
    flow: &Flow,
    route: &Route,
    params: CallbackParams,
) -> Result<Decision, FlowError> {
    let (code, state) = match params {
        CallbackParams::Error { error, description } => {
            return Err(FlowError::IdpRefused { error, description });
        }
        CallbackParams::Code { code, state } => (code, state),
    };
    let cfg = &route.config;
    let verified = flow
        .state()
        .verify(&state, flow.now())
        .map_err(|e| match e {
            StateError::Expired => FlowError::StateExpired {
                restart: cfg.app_url.clone() + "/",
            },
            other => FlowError::State(other),
        })?;
    let tokens = route
        .provider
        .exchange_code(&code, &verified.login.pkce_verifier, &verified.login.nonce)
        .await
        .map_err(FlowError::Idp)?;
    let id = SessionId::generate();
    let data = SessionData {
        id_token: tokens.id_token,
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        expires_at: tokens.id_token_expires_at,
        subject: tokens.subject,
        created_at: flow.now(),
    };
    route
        .store
        .save(&id, &data, cfg.session.cookie.max_age)
        .await
        .map_err(FlowError::SessionStore)?;
    tracing::info!(config = %cfg.id, sub = %data.subject, "login completed; session created");
    Ok(Decision::Deny(
        Deny::redirect(verified.claims.state)
            .with_header(SET_COOKIE, cookie::session_cookie(&cfg.session.cookie, &id)),
    ))
}
