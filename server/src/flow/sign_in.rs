//! The sign-in endpoint, for gateways whose auth check cannot answer a redirect (nginx
//! `auth_request` turns a 302 into a 500; oauth2-proxy's `/oauth2/start?rd=` recipe).
//!
//! The gateway's check only ever learns "allowed" or "401"; on a 401 the gateway sends the
//! browser's request here (nginx: `error_page 401` to a location that proxies to extauth),
//! and this endpoint gives the answer the browser needs for it: the 302 to the IdP (with
//! the login-binding cookie), the callback's 302 back with every `Set-Cookie`, the logout's
//! redirect, a 401 for API clients, a 503 when the store is down. A callback or a logout is
//! never decided inside the check ([`changes_state`]): it runs once, here, in the request
//! whose answer reaches the browser.
//!
//! Which request: `rd` (query) or `X-Auth-Request-Redirect` names its URL, absolute or a
//! path on `appUrl`, checked against `appUrl`'s origin like every return URL
//! ([`return_url`]); else the request as a trusted proxy describes it (`X-Forwarded-*`);
//! else `appUrl` + `/`. A request that turns out to be allowed (already signed in) is sent
//! back to its URL with a 307, which repeats it as it was.

use http::StatusCode;

use super::{CheckRequest, Decision, Deny, Flow, callback, return_url};

/// The header oauth2-proxy reads the return URL from when `rd` is absent.
pub const REDIRECT_HEADER: &str = "x-auth-request-redirect";

/// Which request a sign-in request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Original<'a> {
    /// `rd` or [`REDIRECT_HEADER`]: a URL, absolute or a path on `appUrl`.
    Named(&'a str),
    /// The sign-in request itself, as a trusted proxy described the browser's request.
    Described,
    /// Neither: a login that returns to `appUrl` + `/`.
    AppRoot,
}

/// Whether answering `check` changes state: a callback spends its single-use code, a logout
/// ends the session. Behind a gateway that cannot pass the answer on (nginx), such a check
/// is handed to the sign-in endpoint undecided.
pub fn changes_state(flow: &Flow, check: &CheckRequest) -> bool {
    let Ok(route) = flow.route_for(check) else {
        return false;
    };
    let cfg = &route.config;
    let path = Some(check.path.as_str());
    cfg.logout_path.as_deref() == path
        || cfg.front_channel_logout_path.as_deref() == path
        || cfg.back_channel_logout_path.as_deref() == path
        // A malformed callback is answered (a 400) by the sign-in endpoint too.
        || !matches!(callback::callback_params(cfg, check), Ok(None))
}

/// The sign-in endpoint's answer for `request` (with the browser's headers) and `original`,
/// with the `config` label of [`Flow::decide_labelled`]. Never an allow.
pub async fn answer<'f>(
    flow: &'f Flow,
    request: &CheckRequest,
    original: Original<'_>,
) -> (CheckRequest, Decision, &'f str) {
    let target = match (original, flow.route_for(request)) {
        (Original::Described, _) | (_, Err(_)) => request.clone(),
        (Original::Named(url), Ok(route)) => named(request, &route.config, url),
        (Original::AppRoot, Ok(route)) => named(request, &route.config, "/"),
    };
    let (decision, config) = flow.decide_labelled(&target).await;
    let decision = match decision {
        Decision::Allow(_) => {
            let cfg = flow.route_for(&target).map(|r| &r.config);
            let back = match cfg {
                Ok(cfg) => return_url::safe_return_url(
                    &cfg.app_origin,
                    &cfg.app_url,
                    &target.original_url(),
                ),
                Err(_) => target.original_url(),
            };
            let mut deny = Deny::redirect(back);
            deny.status = StatusCode::TEMPORARY_REDIRECT;
            Decision::Deny(deny)
        }
        deny @ Decision::Deny(_) => deny,
    };
    (target, decision, config)
}

/// `GET <url>` with the browser's headers, `url` kept only when it is on `appUrl`'s origin
/// (a path is taken relative to it); anything else is `appUrl` + `/`.
fn named(request: &CheckRequest, cfg: &crate::config::OidcConfig, url: &str) -> CheckRequest {
    let absolute = if url.starts_with('/') && !url.starts_with("//") && !url.contains('\\') {
        cfg.app_origin
            .join(url)
            .map_or_else(|_| url.to_owned(), String::from)
    } else {
        url.to_owned()
    };
    let safe = return_url::safe_return_url(&cfg.app_origin, &cfg.app_url, &absolute);
    // `safe` parses: it is the candidate after the check, or `appUrl` + `/`.
    let parsed = url::Url::parse(&safe).unwrap_or_else(|_| cfg.app_origin.clone());
    let host = match parsed.port() {
        Some(port) => format!("{}:{port}", parsed.host_str().unwrap_or_default()),
        None => parsed.host_str().unwrap_or_default().to_owned(),
    };
    let target = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_owned(),
    };
    let mut check = CheckRequest::new("GET", parsed.scheme(), &host, &target);
    check.headers = request.headers.clone();
    check.context = request.context.clone();
    check
}

#[cfg(test)]
mod tests;
