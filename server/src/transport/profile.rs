//! What a gateway in front of the HTTP mode may be answered: one profile per listener.
//!
//! Gateways read an auth server's HTTP answer differently:
//! - [`Profile::ForwardAuth`] (Caddy `forward_auth`, Traefik `forwardAuth`): any 2xx allows,
//!   any other answer goes to the client as it is (302 to the IdP, the callback's 302 with
//!   every `Set-Cookie`, a 503 with its body). The default `--http` listener.
//! - [`Profile::Envoy`] (Envoy's HTTP `ext_authz`): only exactly `200` allows (a `202` is a
//!   denial, envoyproxy/gateway#4562), and any `5xx` is taken as the auth server failing:
//!   Envoy then answers `status_on_error` (403 by default) and drops our status, headers and
//!   body. So a `5xx` we answer on purpose (the session store or the IdP is down) is sent as
//!   `403` with its body and headers, and `x-extauth-status` names the real status.
//! - [`Profile::Nginx`] (`auth_request`): nginx allows on any 2xx, denies on 401/403 and
//!   turns every other status, a 302 included, into a 500; it copies only what
//!   `auth_request_set` names, and only the first of repeated headers. So every denial is a
//!   bare `401` (with `x-extauth-sign-in`, a login URL the gateway can send the browser to),
//!   the browser's real answer comes from the sign-in endpoint ([`crate::flow::sign_in`]),
//!   and an allow carries each `Set-Cookie` in its own numbered header
//!   (`x-extauth-set-cookie-1` ... [`NGINX_COOKIE_SLOTS`]).
//!
//! This module only maps decisions to responses; the flow decides.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode};

use crate::flow::{CheckRequest, Decision};

/// Response header naming client headers the proxy must remove (Envoy's convention).
pub const HEADERS_TO_REMOVE: &str = "x-envoy-auth-headers-to-remove";
/// The status we meant, when a profile had to answer another one (Envoy: a 5xx sent as 403;
/// nginx: every denial sent as 401).
pub const REAL_STATUS: &str = "x-extauth-status";
/// nginx: the path, on the nginx listener, of the sign-in endpoint.
pub const SIGN_IN_PATH: &str = "/extauth/sign_in";
/// nginx: the 401's header with the sign-in URL for this request (`SIGN_IN_PATH?rd=<url>`).
pub const SIGN_IN_HEADER: &str = "x-extauth-sign-in";
/// nginx: the prefix of the numbered headers carrying `Set-Cookie` lines on an allow.
pub const NGINX_COOKIE_PREFIX: &str = "x-extauth-set-cookie-";
/// nginx: how many numbered cookie headers an allow may carry: a cookie session refreshed
/// in place is at most [`crate::flow::cookie::MAX_CHUNKS`] cookies (value chunks, or
/// deletions of chunks left over), and nothing else sets a cookie on an allow.
pub const NGINX_COOKIE_SLOTS: usize = crate::flow::cookie::MAX_CHUNKS;

/// How a listener answers: see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// Caddy `forward_auth`, Traefik `forwardAuth`: 2xx allows, anything else is the answer.
    #[default]
    ForwardAuth,
    /// Envoy's HTTP `ext_authz`: exactly 200 allows; never a 5xx of ours.
    Envoy,
    /// nginx `auth_request`: 200 or 401 only, plus the sign-in endpoint.
    Nginx,
}

impl Profile {
    /// Every profile, as the command line spells them.
    pub const ALL: [Profile; 3] = [Profile::ForwardAuth, Profile::Envoy, Profile::Nginx];

    /// As the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Profile::ForwardAuth => "forward-auth",
            Profile::Envoy => "envoy",
            Profile::Nginx => "nginx",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a profile or a `PROFILE=ADDR` listener does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenerError {
    /// Not one of [`Profile::ALL`].
    #[error("unknown HTTP profile {0:?}: expected one of envoy, nginx, forward-auth")]
    UnknownProfile(String),
    /// No `=`.
    #[error("{0:?} is not PROFILE=ADDR (e.g. nginx=127.0.0.1:8085)")]
    Shape(String),
    /// The address part.
    #[error("{value:?}: {addr:?} is not an IP address with a port (e.g. 127.0.0.1:8085)")]
    Address {
        /// The whole value.
        value: String,
        /// The address part.
        addr: String,
    },
}

impl FromStr for Profile {
    type Err = ListenerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Profile::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| ListenerError::UnknownProfile(s.to_owned()))
    }
}

/// One extra HTTP listener: `--http-listener nginx=127.0.0.1:8085`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpListener {
    /// How it answers.
    pub profile: Profile,
    /// Where it listens (port 0: any free port).
    pub addr: SocketAddr,
}

impl FromStr for HttpListener {
    type Err = ListenerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (profile, addr) = s
            .split_once('=')
            .ok_or_else(|| ListenerError::Shape(s.to_owned()))?;
        Ok(Self {
            profile: profile.parse()?,
            addr: addr.trim().parse().map_err(|_| ListenerError::Address {
                value: s.to_owned(),
                addr: addr.trim().to_owned(),
            })?,
        })
    }
}

impl fmt::Display for HttpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.profile, self.addr)
    }
}

/// The decision on `check` as this profile's answer.
pub fn check_response(
    profile: Profile,
    decision: Decision,
    check: &CheckRequest,
) -> Response<Body> {
    match profile {
        Profile::ForwardAuth => forward_auth(decision),
        Profile::Envoy => envoy(decision),
        Profile::Nginx => nginx(decision, check),
    }
}

/// Forward-auth: the decision as it is. An allow is `200` with the upstream headers (a
/// proxy copies them, e.g. Caddy's `copy_headers jwt`) and [`HEADERS_TO_REMOVE`]; a denial
/// is what the client gets, except that a page of ours with a 2xx status is sent as 403:
/// here a 2xx means "allow", so the proxy would forward the request upstream instead
/// (browsers render and submit a 403's page all the same).
pub fn forward_auth(decision: Decision) -> Response<Body> {
    match decision {
        Decision::Allow(allow) => {
            let mut headers = allow.upstream_headers;
            headers.extend(allow.response_headers);
            if !allow.remove_headers.is_empty() {
                headers.push((
                    HeaderName::from_static(HEADERS_TO_REMOVE),
                    allow.remove_headers.join(","),
                ));
            }
            build(StatusCode::OK, headers, String::new())
        }
        Decision::Deny(deny) if deny.status.is_success() => {
            build(StatusCode::FORBIDDEN, deny.headers, deny.body)
        }
        Decision::Deny(deny) => build(deny.status, deny.headers, deny.body),
    }
}

/// Envoy HTTP `ext_authz`: as [`forward_auth`] (whose allow is exactly 200 and whose pages
/// are never a 2xx), and a 5xx denial of ours is sent as 403 with its body, headers and
/// [`REAL_STATUS`]: Envoy would replace a 5xx by `status_on_error` and drop all of it.
pub fn envoy(decision: Decision) -> Response<Body> {
    match decision {
        Decision::Deny(mut deny) if deny.status.is_server_error() => {
            deny.headers.push((
                HeaderName::from_static(REAL_STATUS),
                deny.status.as_u16().to_string(),
            ));
            build(StatusCode::FORBIDDEN, deny.headers, deny.body)
        }
        decision => forward_auth(decision),
    }
}

/// nginx `auth_request`: an allow is 200 with the upstream headers and each `Set-Cookie` in
/// its own numbered header; a denial is 401 with [`SIGN_IN_HEADER`] and [`REAL_STATUS`],
/// whose real answer the sign-in endpoint gives the browser.
pub fn nginx(decision: Decision, check: &CheckRequest) -> Response<Body> {
    match decision {
        Decision::Allow(allow) => {
            let mut headers = allow.upstream_headers;
            let mut slot = 0;
            for (name, value) in allow.response_headers {
                if name == http::header::SET_COOKIE {
                    slot += 1;
                    if slot > NGINX_COOKIE_SLOTS {
                        tracing::error!(
                            slots = NGINX_COOKIE_SLOTS,
                            "more cookies than the nginx profile has headers for; the rest are dropped"
                        );
                        continue;
                    }
                    headers.push((nginx_cookie_header(slot), value));
                } else {
                    headers.push((name, value));
                }
            }
            if !allow.remove_headers.is_empty() {
                headers.push((
                    HeaderName::from_static(HEADERS_TO_REMOVE),
                    allow.remove_headers.join(","),
                ));
            }
            build(StatusCode::OK, headers, String::new())
        }
        Decision::Deny(deny) => {
            let mut response = nginx_sign_in_needed(check);
            if let Ok(status) = HeaderValue::from_str(deny.status.as_str()) {
                response
                    .headers_mut()
                    .insert(HeaderName::from_static(REAL_STATUS), status);
            }
            response
        }
    }
}

/// nginx: the 401 that hands `check` to the sign-in endpoint, with [`SIGN_IN_HEADER`]: for a
/// denial, and, without deciding, for a check that changes state when answered (a callback,
/// a logout), which must run once, in the request whose answer reaches the browser.
pub fn nginx_sign_in_needed(check: &CheckRequest) -> Response<Body> {
    let mut response = build(
        StatusCode::UNAUTHORIZED,
        vec![(http::header::CACHE_CONTROL, "no-store".into())],
        String::new(),
    );
    add_sign_in_url(&mut response, check);
    response
}

fn add_sign_in_url(response: &mut Response<Body>, check: &CheckRequest) {
    let rd: String = form_urlencoded::byte_serialize(check.original_url().as_bytes()).collect();
    if let Ok(value) = HeaderValue::from_str(&format!("{SIGN_IN_PATH}?rd={rd}")) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(SIGN_IN_HEADER), value);
    }
}

/// The name of numbered cookie header `slot` (from 1).
pub fn nginx_cookie_header(slot: usize) -> HeaderName {
    HeaderName::from_bytes(format!("{NGINX_COOKIE_PREFIX}{slot}").as_bytes())
        .unwrap_or_else(|_| HeaderName::from_static(NGINX_COOKIE_PREFIX))
}

/// A response from its parts; header values that are not valid HTTP are dropped and logged.
pub fn build(
    status: StatusCode,
    headers: Vec<(HeaderName, String)>,
    body: String,
) -> Response<Body> {
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
mod tests;
