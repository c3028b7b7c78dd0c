//! `logoutPath`: end the session here and at the IdP, then go to `afterLogoutUrl`.
//!
//! 1. the session is deleted from the store and its cookie (and any login cookie) removed;
//! 2. the refresh and access tokens are revoked when discovery has a `revocation_endpoint`
//!    (best effort: a failure is logged, the logout goes on);
//! 3. with an `end_session_endpoint`, the browser is sent there with `id_token_hint`,
//!    `client_id` and `post_logout_redirect_uri` = `afterLogoutUrl` (GET: a 302; POST
//!    (`endSessionProperties.methodType: PostMethod`): an auto-submitting form); without one,
//!    a 302 to `afterLogoutUrl`.
//!
//! A browser without a session (or with a dead one) gets the same answer, minus what needs
//! its tokens: logging out twice is not an error.

use http::StatusCode;
use http::header::SET_COOKIE;

use super::{CheckRequest, Decision, Deny, Flow, FlowError, Route, binding, cookie};
use crate::config::EndSessionMethod;
use crate::session::SessionId;

/// Logs out.
pub async fn handle(
    _flow: &Flow,
    route: &Route,
    check: &CheckRequest,
) -> Result<Decision, FlowError> {
    let cfg = &route.config;
    let raw = if route.is_cookie_mode() {
        cookie::joined(check, &cfg.session.cookie.name)
    } else {
        check.cookie(&cfg.session.cookie.name)
    };
    let mut data = None;
    let mut deleted = None;
    if let Some(value) = raw {
        if route.is_cookie_mode() {
            data = route.open_cookie_value(&value);
        } else if let Some(id) = SessionId::parse(&value) {
            match route.store.load(&id).await {
                Ok(d) => data = d,
                Err(e) => {
                    tracing::warn!(config = %cfg.id, error = %e, "logout: could not read the session")
                }
            }
            if let Err(e) = route.store.delete(&id).await {
                // The cookie is removed anyway; the stored session expires with its TTL.
                tracing::warn!(config = %cfg.id, error = %e, "logout: could not delete the session");
            }
            deleted = Some(id);
        }
    }
    if let Some(d) = &data {
        for (token, hint) in [
            (d.refresh_token.as_deref(), "refresh_token"),
            (Some(d.access_token.as_str()), "access_token"),
        ] {
            if let Some(token) = token.filter(|t| !t.is_empty()) {
                match route.provider.revoke(token, hint).await {
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(config = %cfg.id, error = %e, "logout: token revocation failed")
                    }
                }
            }
        }
    }
    let end_session = match route.provider.discovered().await {
        Ok(d) => {
            if let (Some(id), Some(data)) = (&deleted, &data) {
                super::channel_logout::unindex_session(route, &d.issuer, id, data).await;
            }
            d.end_session_endpoint.clone()
        }
        Err(e) => {
            tracing::warn!(config = %cfg.id, error = %e, "logout: discovery unavailable; skipping the IdP logout");
            None
        }
    };
    let mut params = vec![
        ("client_id", cfg.client_id.clone()),
        ("post_logout_redirect_uri", cfg.after_logout_url.clone()),
    ];
    if let Some(d) = &data {
        params.insert(0, ("id_token_hint", d.id_token.clone()));
    }
    let mut deny = match end_session {
        None => Deny::redirect(cfg.after_logout_url.clone()),
        Some(endpoint) => match cfg.end_session_method {
            EndSessionMethod::Get => {
                let query = form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
                    .finish();
                Deny::redirect(super::login::with_query(&endpoint, &query))
            }
            EndSessionMethod::Post => post_form(&endpoint, &params),
        },
    };
    let present = cookie::present_chunks(check, &cfg.session.cookie.name);
    for line in cookie::removal_cookies(&cfg.session.cookie, present) {
        deny = deny.with_header(SET_COOKIE, line);
    }
    if binding::presented(cfg, check).is_some() {
        deny = deny.with_header(
            SET_COOKIE,
            cookie::removal_cookie(&cfg.session.cookie, &binding::cookie_name(cfg)),
        );
    }
    tracing::info!(config = %cfg.id, had_session = data.is_some(), "logout");
    Ok(Decision::Deny(deny))
}

pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An auto-submitting form that POSTs `params` to `endpoint` (OIDC RP-initiated logout by
/// POST).
fn post_form(endpoint: &str, params: &[(&str, String)]) -> Deny {
    let inputs: String = params
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                html_escape(k),
                html_escape(v)
            )
        })
        .collect();
    let body = format!(
        "<!DOCTYPE html><html><head><title>Logging out</title></head><body onload=\"document.forms[0].submit()\"><form method=\"post\" action=\"{}\">{inputs}<noscript><button type=\"submit\">Continue</button></noscript></form></body></html>\n",
        html_escape(endpoint)
    );
    Deny::typed(StatusCode::OK, "text/html; charset=utf-8", body)
}
