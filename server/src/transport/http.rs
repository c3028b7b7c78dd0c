//! The HTTP mode (Envoy HTTP ext_authz, Caddy `forward_auth`, nginx `auth_request`).
//!
//! A request to this listener is the check of the same method, path, query and headers; `Host`
//! is the original authority. 2xx = allow: the headers to set upstream are in the response, and
//! `x-envoy-auth-headers-to-remove` lists client headers to drop (Envoy honours it). Any other
//! response is what the client gets.
//!
//! `X-Forwarded-Proto` sets the scheme only when the peer is on loopback (the gateway next to
//! us); from anyone else it is ignored.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};

use crate::flow::{CheckRequest, Decision, Flow};

/// Response header naming client headers the proxy must remove (Envoy's convention).
pub const HEADERS_TO_REMOVE: &str = "x-envoy-auth-headers-to-remove";

/// The router: every method on every path is a check.
pub fn router(flow: Arc<Flow>) -> Router {
    Router::new().fallback(check).with_state(flow)
}

async fn check(
    State(flow): State<Arc<Flow>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response<Body> {
    let check = to_check(&method, &uri, &headers, peer);
    to_response(flow.decide(&check).await)
}

/// The HTTP request to our check request.
pub fn to_check(method: &Method, uri: &Uri, headers: &HeaderMap, peer: SocketAddr) -> CheckRequest {
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or_default();
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|s| peer.ip().is_loopback() && matches!(*s, "http" | "https"))
        .unwrap_or("http");
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut check = CheckRequest::new(method.as_str(), scheme, host, target);
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
