//! The HTTP mode (Envoy HTTP ext_authz, Caddy `forward_auth`, Traefik `forwardAuth`, nginx
//! `auth_request`).
//!
//! From a trusted proxy ([`TrustedProxies`], loopback by default) `X-Forwarded-Method`,
//! `X-Forwarded-Proto`, `X-Forwarded-Host` and `X-Forwarded-Uri` describe the original request
//! (each one that is absent or malformed falls back to this request's own method, `http`,
//! `Host` and path). From any other peer they are ignored and the request to this listener is
//! itself the check: same method, path, query and headers, `Host` the original authority.
//!
//! Allow = `200` with the headers to set upstream in the response (a proxy copies them, e.g.
//! Caddy's `copy_headers jwt`), and `x-envoy-auth-headers-to-remove` lists client headers to
//! drop (Envoy honours it). Any other response (302 to the IdP, 401, 503...) is what the
//! client gets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};

use super::observe;
use super::proxy::TrustedProxies;
use crate::flow::{CheckRequest, Decision, Flow};
use crate::metrics::Transport;

/// Response header naming client headers the proxy must remove (Envoy's convention).
pub const HEADERS_TO_REMOVE: &str = "x-envoy-auth-headers-to-remove";

/// The forward-auth headers, as a trusted proxy sends them.
const FORWARDED_METHOD: &str = "x-forwarded-method";
const FORWARDED_PROTO: &str = "x-forwarded-proto";
const FORWARDED_HOST: &str = "x-forwarded-host";
const FORWARDED_URI: &str = "x-forwarded-uri";

#[derive(Debug, Clone)]
struct HttpState {
    flow: Arc<Flow>,
    trusted: Arc<TrustedProxies>,
}

/// The router: every method on every path is a check. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()`: the peer address decides whether
/// `X-Forwarded-*` is believed.
pub fn router(flow: Arc<Flow>, trusted: TrustedProxies) -> Router {
    Router::new()
        .fallback(check)
        .with_state(HttpState {
            flow,
            trusted: Arc::new(trusted),
        })
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
    // A body larger than a check keeps (a back-channel logout token is far smaller) is not
    // read at all.
    if let Ok(bytes) = axum::body::to_bytes(body, crate::flow::check::MAX_CHECK_BODY).await
        && !bytes.is_empty()
    {
        check.body = Some(bytes.to_vec());
    }
    let (decision, config) = state.flow.decide_labelled(&check).await;
    observe::decided(Transport::Http, config, &check, &decision, started);
    to_response(decision)
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

/// The decision as the HTTP response.
pub fn to_response(decision: Decision) -> Response<Body> {
    let (status, headers, body) = match decision {
        Decision::Allow(allow) => {
            let mut headers = allow.upstream_headers;
            headers.extend(allow.response_headers);
            if !allow.remove_headers.is_empty() {
                headers.push((
                    http::HeaderName::from_static(HEADERS_TO_REMOVE),
                    allow.remove_headers.join(","),
                ));
            }
            (StatusCode::OK, headers, String::new())
        }
        // Here a 2xx means "allow": a page we answer ourselves (the POST logout form) must
        // not be taken for one, or the proxy would forward the request upstream instead.
        // Browsers render and submit a 403's page all the same.
        Decision::Deny(deny) if deny.status.is_success() => {
            (StatusCode::FORBIDDEN, deny.headers, deny.body)
        }
        Decision::Deny(deny) => (deny.status, deny.headers, deny.body),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    for (name, value) in headers {
        match HeaderValue::from_str(&value) {
            Ok(v) => {
                response.headers_mut().append(name, v);
            }
            Err(_) => {
                tracing::error!(header = %name, "dropping a header value that is not valid HTTP")
            }
        }
    }
    response
}

#[cfg(test)]
mod tests {
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
