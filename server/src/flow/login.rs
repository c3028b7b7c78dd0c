//! No session: the 302 to the IdP's authorization endpoint, or a 401 for clients that cannot
//! follow a login.
//!
//! Query parameters are in alphabetical order, as the seed shows them: `client_id`,
//! `code_challenge`, `code_challenge_method`, `nonce`, `redirect_uri`, `response_type`,
//! `scope`, `state`, with `authEndpointQueryParams` sorted in among them.

use http::header::{SET_COOKIE, WWW_AUTHENTICATE};

use super::{CheckRequest, Decision, Deny, Flow, FlowError, Route, binding, metadata, return_url};

/// Whether the request can follow a redirect to a login page: not an XHR
/// (`X-Requested-With: XMLHttpRequest`), not a CORS fetch (`Sec-Fetch-Mode: cors`), and not
/// an `Accept` that names JSON without HTML. `Accept: */*` (curl) can follow.
pub fn can_follow_login(check: &CheckRequest) -> bool {
    let xhr = check
        .header_values("x-requested-with")
        .any(|v| v.eq_ignore_ascii_case("xmlhttprequest"));
    let cors = check
        .header_values("sec-fetch-mode")
        .any(|v| v.eq_ignore_ascii_case("cors"));
    let accept = check
        .header_values("accept")
        .collect::<Vec<_>>()
        .join(",")
        .to_ascii_lowercase();
    let json_only = accept.contains("json") && !accept.contains("html");
    !(xhr || cors || json_only)
}

/// Whether the request is a top-level browser navigation (the browser that gets the 302 is
/// the one that comes back): only those get the login-binding cookie.
fn is_navigation(check: &CheckRequest) -> bool {
    check
        .header_values("sec-fetch-mode")
        .any(|v| v.eq_ignore_ascii_case("navigate"))
        || check
            .header_values("accept")
            .any(|v| v.to_ascii_lowercase().contains("text/html"))
}

/// The answer for a request without a session.
pub async fn start(
    flow: &Flow,
    route: &Route,
    check: &CheckRequest,
) -> Result<Decision, FlowError> {
    let cfg = &route.config;
    if cfg.fail_on_redirect || (cfg.unauthorized_for_non_browser && !can_follow_login(check)) {
        return Ok(Decision::Deny(unauthorized(
            &cfg.app_url,
            cfg.fail_on_redirect,
        )));
    }
    redirect(flow, route, check).await
}

/// 401 with a `WWW-Authenticate` challenge (RFC 6750: no error code when no credentials
/// were presented).
pub fn unauthorized(app_url: &str, fail_on_redirect: bool) -> Deny {
    let body = if fail_on_redirect {
        "Authentication required: log in first (this route does not redirect to the login page).\n"
    } else {
        "Authentication required: this request cannot follow a login redirect; log in with a browser first, or send a valid ID token as `Authorization: Bearer`.\n"
    };
    Deny::text(http::StatusCode::UNAUTHORIZED, body).with_header(
        WWW_AUTHENTICATE,
        format!("Bearer realm=\"{}\"", app_url.replace('"', "")),
    )
}

/// The redirect that starts a login for `check`.
pub async fn redirect(
    flow: &Flow,
    route: &Route,
    check: &CheckRequest,
) -> Result<Decision, FlowError> {
    let cfg = &route.config;
    let original =
        return_url::safe_return_url(&cfg.app_origin, &cfg.app_url, &check.original_url());
    let (mut deny, lid) = authorization_redirect(flow, route, check, &original, 0).await?;
    if is_navigation(check) {
        let b = flow.state().binding(&lid);
        deny = deny.with_header(SET_COOKIE, binding::add(cfg, check, &b));
    }
    Ok(Decision::Deny(deny))
}

/// The redirect that starts the login of `spent` (a verified `state`) again from its
/// callback, when the IdP refused the code (`invalid_grant`: a code already spent, typically
/// by a callback that reached another replica first and was retried by the gateway when that
/// replica died). The browser still has its IdP session, so the IdP sends it straight back
/// with a new code. The new login counts one restart more (the callback refuses a code for
/// good once it is above zero); the spent login's binding leaves the browser's login cookie.
pub async fn restart(
    flow: &Flow,
    route: &Route,
    check: &CheckRequest,
    spent: &crate::state::StateClaims,
) -> Result<Decision, FlowError> {
    let cfg = &route.config;
    let (mut deny, lid) = authorization_redirect(
        flow,
        route,
        check,
        &spent.state,
        spent.restarts.saturating_add(1),
    )
    .await?;
    let b = flow.state().binding(&lid);
    match binding::presented(cfg, check) {
        Some(pending) => {
            let used = flow.state().binding(&spent.lid);
            deny = deny.with_header(SET_COOKIE, binding::replace(cfg, &pending, &used, &b));
        }
        None if is_navigation(check) => {
            deny = deny.with_header(SET_COOKIE, binding::add(cfg, check, &b));
        }
        None => {}
    }
    Ok(Decision::Deny(deny))
}

/// The 302 to the authorization endpoint for a login returning to `original`, and its `lid`.
async fn authorization_redirect(
    flow: &Flow,
    route: &Route,
    check: &CheckRequest,
    original: &str,
    restarts: u8,
) -> Result<(Deny, String), FlowError> {
    let discovered = route.provider.discovered().await.map_err(FlowError::Idp)?;
    let cfg = &route.config;
    let issued = flow
        .state()
        .issue_restart(original, flow.now(), restarts)
        .map_err(FlowError::State)?;
    let redirect_uri = redirect_uri(cfg, &check.path);
    // `autoMapFromMetadata` wins over the configured parameters of the same name.
    let mut extra = cfg.auth_endpoint_query_params.clone();
    extra.extend(metadata::mapped_params(
        cfg,
        check,
        metadata::Request::Authorization,
    ));
    let mut params: Vec<(&str, &str)> = vec![
        ("client_id", &cfg.client_id),
        ("code_challenge", &issued.login.pkce_challenge),
        ("code_challenge_method", "S256"),
        ("nonce", &issued.login.nonce),
        ("redirect_uri", &redirect_uri),
        ("response_type", "code"),
        ("scope", &cfg.scope),
        ("state", &issued.token),
    ];
    // Extra keys never repeat ours (compile refuses them in the config, and the metadata
    // mapping never overrides the flow's own): one sort orders them all.
    params.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    params.sort_unstable_by_key(|(k, _)| *k);
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let deny = Deny::redirect(with_query(&discovered.authorization_endpoint, &query));
    Ok((deny, issued.lid))
}

/// `endpoint` with `query` appended (after its own query, if it has one).
pub(crate) fn with_query(endpoint: &str, query: &str) -> String {
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    format!("{endpoint}{sep}{query}")
}

/// The `redirect_uri` for a login started on `path`: `appUrl` + `callbackPath`; with
/// `parseCallbackPathAsRegex`, `appUrl` + `path` when `path` matches the expression.
pub fn redirect_uri(cfg: &crate::config::OidcConfig, path: &str) -> String {
    match &cfg.callback_regex {
        Some(re) if re.is_match(path) => format!("{}{path}", cfg.app_url),
        _ => cfg.redirect_uri.clone(),
    }
}

#[cfg(test)]
mod tests;
