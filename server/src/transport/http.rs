//! The HTTP mode (Envoy HTTP ext_authz, Caddy `forward_auth`, Traefik `forwardAuth`, nginx
//! `auth_request`): one router per listener, answering as its [`Profile`] says.
//!
//! From a trusted proxy ([`TrustedProxies`], loopback by default) `X-Forwarded-Method`,
//! `X-Forwarded-Proto`, `X-Forwarded-Host` and `X-Forwarded-Uri` describe the original request
//! (each one that is absent or malformed falls back to this request's own method, `http`,
//! `Host` and path). From any other peer they are ignored and the request to this listener is
//! itself the check: same method, path, query and headers, `Host` the original authority.
//!
//! Allow = `200` with the headers to set upstream in the response (a proxy copies them, e.g.
//! Caddy's `copy_headers jwt`), and `x-envoy-auth-headers-to-remove` lists client headers to
//! drop (Envoy honours it). What a denial looks like depends on the profile
//! ([`super::profile`]); on the nginx profile, [`SIGN_IN_PATH`] is the sign-in endpoint
//! ([`crate::flow::sign_in`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, Response, Uri};

use super::observe;
use super::profile::{self, Profile, SIGN_IN_PATH};
use super::proxy::TrustedProxies;
use crate::flow::sign_in::{self, Original};
use crate::flow::{CheckRequest, Decision, Flow};
use crate::metrics::Transport;

pub use super::profile::HEADERS_TO_REMOVE;

/// The forward-auth headers, as a trusted proxy sends them.
const FORWARDED_METHOD: &str = "x-forwarded-method";
const FORWARDED_PROTO: &str = "x-forwarded-proto";
const FORWARDED_HOST: &str = "x-forwarded-host";
const FORWARDED_URI: &str = "x-forwarded-uri";

#[derive(Debug, Clone)]
struct HttpState {
    flow: Arc<Flow>,
    trusted: Arc<TrustedProxies>,
    profile: Profile,
}

/// The forward-auth router (the `--http` listener): see [`router_for`].
pub fn router(flow: Arc<Flow>, trusted: TrustedProxies) -> Router {
    router_for(Profile::ForwardAuth, flow, trusted)
}

/// The router of a listener with this profile: every method on every path is a check,
/// except [`SIGN_IN_PATH`] on the nginx profile. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()`: the peer address decides whether
/// `X-Forwarded-*` is believed.
pub fn router_for(profile: Profile, flow: Arc<Flow>, trusted: TrustedProxies) -> Router {
    let state = HttpState {
        flow,
        trusted: Arc::new(trusted),
        profile,
    };
    let router = Router::new();
    let router = if profile == Profile::Nginx {
        router.route(SIGN_IN_PATH, axum::routing::any(sign_in_endpoint))
    } else {
        router
    };
    router
        .fallback(check)
        .with_state(state)
        .layer(axum::middleware::map_response(super::nosniff))
}

async fn check(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response<Body> {
    let started = Instant::now();
    let forwarded = state.trusted.contains(peer.ip());
    let mut check = to_check(&method, &uri, &headers, forwarded);
    if state.profile == Profile::Nginx && sign_in::changes_state(&state.flow, &check) {
        // Decided once, by the sign-in endpoint the gateway sends the browser to.
        tracing::debug!(path = %check.path, "handed to the sign-in endpoint undecided");
        return profile::nginx_sign_in_needed(&check);
    }
    check.body = read_body(body).await;
    let (decision, config) = state.flow.decide_labelled(&check).await;
    observe::decided(Transport::Http, config, &check, &decision, started);
    profile::check_response(state.profile, decision, &check)
}

/// The nginx profile's sign-in endpoint: the browser's answer for the request named by
/// `rd` / `X-Auth-Request-Redirect`, or described by a trusted proxy's `X-Forwarded-Uri`
/// (see [`crate::flow::sign_in`]). Sent as it is: nginx proxies it to the browser.
async fn sign_in_endpoint(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response<Body> {
    let started = Instant::now();
    let forwarded = state.trusted.contains(peer.ip());
    let mut request = to_check(&method, &uri, &headers, forwarded);
    // A back-channel logout token arrives here as the body of the request nginx hands over.
    request.body = read_body(body).await;
    let rd = uri.query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "rd")
            .map(|(_, v)| v.into_owned())
    });
    let named = rd.or_else(|| header(&headers, sign_in::REDIRECT_HEADER).map(str::to_owned));
    let described =
        forwarded && header(&headers, FORWARDED_URI).is_some() && request.path != SIGN_IN_PATH;
    let original = match (&named, described) {
        (Some(url), _) => Original::Named(url),
        (None, true) => Original::Described,
        (None, false) => Original::AppRoot,
    };
    let (target, decision, config) = sign_in::answer(&state.flow, &request, original).await;
    observe::decided(Transport::Http, config, &target, &decision, started);
    profile::forward_auth(decision)
}

/// The request body for the flow; one larger than a check keeps (a back-channel logout token
/// is far smaller) is not read at all.
async fn read_body(body: Body) -> Option<Vec<u8>> {
    axum::body::to_bytes(body, crate::flow::check::MAX_CHECK_BODY)
        .await
        .ok()
        .filter(|bytes| !bytes.is_empty())
        .map(|bytes| bytes.to_vec())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|h| h.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The HTTP request to our check request. With `forwarded` (the peer is a trusted proxy),
/// `X-Forwarded-*` override the method, scheme, authority and path+query.
pub fn to_check(method: &Method, uri: &Uri, headers: &HeaderMap, forwarded: bool) -> CheckRequest {
    let own_host = header(headers, http::header::HOST.as_str())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or_default();
    let own_target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let (method, scheme, host, target) = if forwarded {
        (
            header(headers, FORWARDED_METHOD)
                .filter(|m| Method::from_bytes(m.as_bytes()).is_ok())
                .unwrap_or(method.as_str()),
            header(headers, FORWARDED_PROTO)
                // A chain of proxies appends: the first is the client's.
                .map(|p| p.split(',').next().unwrap_or(p).trim())
                .filter(|s| matches!(*s, "http" | "https"))
                .unwrap_or("http"),
            header(headers, FORWARDED_HOST)
                .map(|h| h.split(',').next().unwrap_or(h).trim())
                .filter(|h| h.parse::<http::uri::Authority>().is_ok())
                .unwrap_or(own_host),
            header(headers, FORWARDED_URI)
                .filter(|u| u.starts_with('/'))
                .unwrap_or(own_target),
        )
    } else {
        (method.as_str(), "http", own_host, own_target)
    };
    let mut check = CheckRequest::new(method, scheme, host, target);
    check.headers = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    check
}

/// The decision as the forward-auth profile's response ([`profile::forward_auth`]).
pub fn to_response(decision: Decision) -> Response<Body> {
    profile::forward_auth(decision)
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderValue, StatusCode};

    use super::*;
    use crate::flow::Deny;

    #[test]
    fn a_page_of_ours_is_never_a_2xx_which_would_mean_allow() {
        let page = Deny::text(StatusCode::OK, "<form>logging out</form>");
        let response = to_response(Decision::Deny(page));
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let redirect = to_response(Decision::Deny(Deny::redirect("http://gw/".into())));
        assert_eq!(redirect.status(), StatusCode::FOUND);
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    const CADDY: [(&str, &str); 5] = [
        ("host", "app.example:8080"),
        ("x-forwarded-method", "POST"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "app.example"),
        ("x-forwarded-uri", "/openai?code=c&state=s"),
    ];

    #[test]
    fn a_trusted_proxy_describes_the_original_request() {
        let uri: Uri = "/auth".parse().unwrap();
        let c = to_check(&Method::GET, &uri, &headers(&CADDY), true);
        assert_eq!(c.method, "POST");
        assert_eq!(c.scheme, "https");
        assert_eq!(c.host, "app.example");
        assert_eq!(c.path, "/openai");
        assert_eq!(c.query.as_deref(), Some("code=c&state=s"));
    }

    #[test]
    fn an_untrusted_peer_is_its_own_check() {
        let uri: Uri = "/auth?x=1".parse().unwrap();
        let c = to_check(&Method::GET, &uri, &headers(&CADDY), false);
        assert_eq!(c.method, "GET");
        assert_eq!(c.scheme, "http");
        assert_eq!(c.host, "app.example:8080");
        assert_eq!(c.path, "/auth");
        assert_eq!(c.query.as_deref(), Some("x=1"));
    }

    #[test]
    fn malformed_forwarded_values_fall_back_to_the_request() {
        let uri: Uri = "/own".parse().unwrap();
        let cases: [(&str, &str); 4] = [
            ("x-forwarded-method", "GE T"),
            ("x-forwarded-proto", "gopher"),
            ("x-forwarded-host", "bad host/"),
            ("x-forwarded-uri", "http://elsewhere/"),
        ];
        let mut pairs = vec![("host", "own.example")];
        pairs.extend(cases);
        let c = to_check(&Method::PUT, &uri, &headers(&pairs), true);
        assert_eq!(
            (c.method.as_str(), c.scheme.as_str(), c.host.as_str()),
            ("PUT", "http", "own.example")
        );
        assert_eq!(c.path, "/own");
    }

    #[test]
    fn the_first_of_a_forwarded_list_is_the_clients() {
        let uri: Uri = "/".parse().unwrap();
        let pairs = [
            ("x-forwarded-proto", "https, http"),
            ("x-forwarded-host", "a.example, b.example"),
        ];
        let c = to_check(&Method::GET, &uri, &headers(&pairs), true);
        assert_eq!((c.scheme.as_str(), c.host.as_str()), ("https", "a.example"));
    }
}
