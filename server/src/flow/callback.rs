//! The IdP's redirect back. Order matters: verify `state` (signature, time, login binding)
//! first, then exchange the code, then create a new session (a new id at every login: no
//! fixation) and 302 to the original URL with the cookie.

use http::header::SET_COOKIE;

use super::{
    CheckRequest, Decision, Deny, Flow, FlowError, Route, binding, channel_logout, cookie, error,
    login, metadata, return_url,
};
use crate::config::OidcConfig;
use crate::oidc::OidcError;
use crate::session::{SessionData, SessionId};
use crate::state::{MAX_STATE_LEN, StateError};

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
        /// `iss` (RFC 9207), when the IdP sent it.
        iss: Option<String>,
    },
    /// The IdP refused (e.g. `access_denied` when the user cancels).
    Error {
        /// `error`.
        error: String,
        /// `error_description`.
        description: Option<String>,
    },
}

/// Whether `path` is the callback path (or matches it, with `parseCallbackPathAsRegex`).
pub fn is_callback_path(config: &OidcConfig, path: &str) -> bool {
    match &config.callback_regex {
        Some(re) => re.is_match(path),
        None => path == config.callback_path,
    }
}

/// `Some` when `check` is a callback: on `callbackPath`, with `code` and `state` or with
/// `error`. Anything else on that path is an ordinary request.
pub fn callback_params(
    config: &OidcConfig,
    check: &CheckRequest,
) -> Result<Option<CallbackParams>, FlowError> {
    if !is_callback_path(config, &check.path) {
        return Ok(None);
    }
    let Some(query) = check.query.as_deref() else {
        return Ok(None);
    };
    if query.len() > MAX_CALLBACK_QUERY {
        return Err(FlowError::TooLarge {
            what: "the callback query string",
            limit: MAX_CALLBACK_QUERY,
        });
    }
    let (mut code, mut state, mut error, mut description, mut iss) = (None, None, None, None, None);
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let slot = match key.as_ref() {
            "code" => &mut code,
            "state" => &mut state,
            "error" => &mut error,
            "error_description" => &mut description,
            "iss" => &mut iss,
            _ => continue,
        };
        if slot.is_some() {
            return Err(FlowError::CallbackQuery(format!(
                "parameter `{key}` appears more than once"
            )));
        }
        *slot = Some(value.into_owned());
    }
    if state.as_ref().is_some_and(|s| s.len() > MAX_STATE_LEN) {
        return Err(FlowError::TooLarge {
            what: "the state parameter",
            limit: MAX_STATE_LEN,
        });
    }
    Ok(match (error, code, state) {
        (Some(error), _, _) => Some(CallbackParams::Error { error, description }),
        (None, Some(code), Some(state)) => Some(CallbackParams::Code { code, state, iss }),
        _ => None,
    })
}

/// Completes a login.
pub async fn handle(
    flow: &Flow,
    route: &Route,
    check: &CheckRequest,
    params: CallbackParams,
) -> Result<Decision, FlowError> {
    let (code, state, iss) = match params {
        // The query is anyone's to write: only a registered error code is kept, and the
        // description only for the log.
        CallbackParams::Error { error, description } => {
            return Err(FlowError::IdpRefused {
                error: error::registered_error(&error),
                description: description.map(|d| error::log_safe(&d, 200)),
            });
        }
        CallbackParams::Code { code, state, iss } => (code, state, iss),
    };
    let cfg = &route.config;
    // 1. state: signature and time...
    let verified = flow
        .state()
        .verify(&state, flow.now())
        .map_err(|e| match e {
            StateError::Expired => FlowError::StateExpired {
                restart: cfg.app_url.clone() + "/",
            },
            other => FlowError::State(other),
        })?;
    // ...and the browser: a login cookie that does not list this login is a CSRF attempt.
    let expected = flow.state().binding(&verified.claims.lid);
    let pending = binding::presented(cfg, check);
    match &pending {
        Some(p) if !binding::contains(p, &expected) => return Err(FlowError::LoginBinding),
        None if cfg.strict_login_binding => return Err(FlowError::LoginBinding),
        _ => {}
    }
    // ...and the issuer (RFC 9207, a mix-up defence): when the IdP says which issuer
    // answered, it must be ours; when discovery promises `iss`, it must be there.
    let discovered = route.provider.discovered().await.map_err(FlowError::Idp)?;
    match &iss {
        Some(iss) if iss.trim_end_matches('/') != discovered.issuer.trim_end_matches('/') => {
            return Err(FlowError::CallbackQuery(
                "the `iss` parameter names another issuer".into(),
            ));
        }
        None if discovered.iss_parameter_supported => {
            return Err(FlowError::CallbackQuery(
                "the `iss` parameter is missing, though the identity provider promises it".into(),
            ));
        }
        _ => {}
    }
    // 2. the code.
    let redirect_uri = login::redirect_uri(cfg, &check.path);
    let exchanged = route
        .provider
        .exchange_code(
            &code,
            &verified.login.pkce_verifier,
            &verified.login.nonce,
            (redirect_uri != cfg.redirect_uri).then_some(redirect_uri.as_str()),
            &metadata::mapped_params(cfg, check, metadata::Request::Token),
        )
        .await;
    let tokens = match exchanged {
        Ok(tokens) => tokens,
        // A code the IdP refuses as `invalid_grant` is most often one already spent: the
        // gateway retried this callback on another replica after the first died between
        // the exchange and its answer. Nothing was set in the browser yet, so the login is
        // started again, once (the restarted login's own refusal is final).
        Err(OidcError::CodeRejected { error, .. })
            if error == "invalid_grant" && verified.claims.restarts == 0 =>
        {
            tracing::warn!(
                config = %cfg.id,
                "the identity provider refused the authorization code (invalid_grant: already used or expired); starting the login again once"
            );
            crate::metrics::record_error_kind("login_restarted");
            return login::restart(flow, route, check, &verified.claims).await;
        }
        Err(e) => return Err(FlowError::Idp(e)),
    };
    // 3. a new session.
    let expires_at = tokens.expires_at();
    let data = SessionData {
        id_token: tokens.id_token,
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        expires_at,
        subject: tokens.subject,
        created_at: flow.now(),
    };
    let session_cookies = match route.seal_cookie(&data)? {
        // Browsers drop cookies over 4096 bytes: long values are split into chunk cookies;
        // beyond the chunk limit the login fails here with a reason instead of looping.
        Some(value) => cookie::value_cookies(
            &cfg.session.cookie,
            &value,
            cookie::present_chunks(check, &cfg.session.cookie.name),
        )
        .map_err(|e| FlowError::Internal(e.to_string()))?,
        None => {
            let id = SessionId::generate();
            route
                .store
                .save(&id, &data, cfg.session.cookie.ttl())
                .await
                .map_err(FlowError::SessionStore)?;
            channel_logout::index_session(route, &discovered.issuer, &id, &data).await;
            vec![cookie::session_cookie(&cfg.session.cookie, &id)]
        }
    };
    tracing::info!(config = %cfg.id, sub = %data.subject, "login completed; session created");
    let back = return_url::safe_return_url(&cfg.app_origin, &cfg.app_url, &verified.claims.state);
    let mut deny = Deny::redirect(back);
    if target_domain_allows(cfg, &check.host) {
        for line in session_cookies {
            deny = deny.with_header(SET_COOKIE, line);
        }
    }
    if let Some(p) = &pending {
        deny = deny.with_header(SET_COOKIE, binding::remove(cfg, p, &expected));
    }
    Ok(Decision::Deny(deny))
}

/// `targetDomain`: the session cookie is only set for requests to that host (port ignored).
pub fn target_domain_allows(cfg: &OidcConfig, host: &str) -> bool {
    let Some(target) = &cfg.session.target_domain else {
        return true;
    };
    let host = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    host.eq_ignore_ascii_case(target.trim_start_matches('.'))
}

#[cfg(test)]
mod tests;
