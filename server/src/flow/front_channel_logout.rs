//! `frontChannelLogout.path` (OpenID Connect Front-Channel Logout 1.0): the IdP's logout page
//! loads this path in an iframe, with `iss` and `sid` when it knows the session, and the
//! browser's cookies when its SameSite rules let them through.
//!
//! - `iss` must name our issuer; a `sid` without `iss` is refused (the spec sends both);
//! - with a `sid`: every session of that IdP session ends (server-side sessions, through the
//!   index a login fills);
//! - the browser's own session (Redis or cookie) ends too when it belongs to that `sid` (or
//!   when no `sid` is given), and its cookie is removed;
//! - the answer is a small, uncached page (200 over gRPC; over the HTTP listener, where 2xx
//!   means allow, the usual 403 of a page we write ourselves: the iframe shows nothing).
//!
//! Nothing authenticates the request: whoever knows a `sid` can end that IdP session here,
//! as the spec allows (the worst is a logout).

use http::header::SET_COOKIE;

use super::channel_logout::{belongs_to, done, end_sessions, same_issuer, unindex_session};
use super::{CheckRequest, Decision, Flow, FlowError, Route, cookie};
use crate::session::SessionId;
use crate::session::index::IndexKey;

/// Ends the sessions the IdP names.
pub async fn handle(
    _flow: &Flow,
    route: &Route,
    check: &CheckRequest,
) -> Result<Decision, FlowError> {
    if !matches!(check.method.as_str(), "GET" | "HEAD") {
        return Err(FlowError::MethodNotAllowed("GET"));
    }
    let (mut iss, mut sid) = (None, None);
    for (key, value) in form_urlencoded::parse(check.query.as_deref().unwrap_or("").as_bytes()) {
        let slot = match key.as_ref() {
            "iss" => &mut iss,
            "sid" => &mut sid,
            _ => continue,
        };
        if slot.is_some() {
            return Err(FlowError::LogoutRequest(
                "a parameter appears more than once",
            ));
        }
        *slot = Some(value.into_owned());
    }
    if sid.is_some() && iss.is_none() {
        return Err(FlowError::LogoutRequest("`sid` was sent without `iss`"));
    }
    if sid.as_ref().is_some_and(|s| s.is_empty() || s.len() > 512) {
        return Err(FlowError::LogoutRequest("`sid` is empty or too long"));
    }
    let discovered = route.provider.discovered().await.map_err(FlowError::Idp)?;
    let issuer = discovered.issuer.as_str();
    if iss.as_deref().is_some_and(|i| !same_issuer(i, issuer)) {
        return Err(FlowError::LogoutRequest("`iss` names another issuer"));
    }
    let cfg = &route.config;
    let mut ended = 0;
    // The browser's own session first, when its cookie came along (ending the `sid` first
    // would delete it unseen, and its cookie would stay).
    let mut clear_cookie = false;
    if route.is_cookie_mode() {
        if let Some(data) = cookie::joined(check, &cfg.session.cookie.name)
            .and_then(|v| route.open_cookie_value(&v))
        {
            clear_cookie = belongs_to(&data, sid.as_deref());
        }
    } else if let Some(id) = check
        .cookie(&cfg.session.cookie.name)
        .and_then(|v| SessionId::parse(&v))
    {
        match route.store.load(&id).await {
            Ok(Some(data)) if belongs_to(&data, sid.as_deref()) => {
                route
                    .store
                    .delete(&id)
                    .await
                    .map_err(FlowError::SessionStore)?;
                unindex_session(route, issuer, &id, &data).await;
                ended += 1;
                clear_cookie = true;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(config = %cfg.id, error = %e, "front-channel logout: could not read the browser's session")
            }
        }
    }
    if let Some(sid) = &sid {
        ended += end_sessions(route, issuer, &IndexKey::Sid(sid.clone())).await?;
    }
    tracing::info!(config = %cfg.id, with_sid = sid.is_some(), sessions = ended, cookie_removed = clear_cookie, "front-channel logout");
    let mut deny = done(
        "text/html; charset=utf-8",
        "<!DOCTYPE html><html><head><title>Logged out</title></head><body></body></html>\n",
    );
    if clear_cookie {
        let present = cookie::present_chunks(check, &cfg.session.cookie.name);
        for line in cookie::removal_cookies(&cfg.session.cookie, present) {
            deny = deny.with_header(SET_COOKIE, line);
        }
    }
    Ok(Decision::Deny(deny))
}
