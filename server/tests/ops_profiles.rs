//! The HTTP listeners' gateway profiles over real sockets (`--http-listener PROFILE=ADDR`):
//! each request here is shaped as that gateway sends it, and each answer is checked against
//! what that gateway does with it.
//! - Envoy's HTTP `ext_authz` sends the original method, path and `Host` (plus the headers
//!   in `allowed_headers`); it allows on exactly 200 and hides any 5xx behind
//!   `status_on_error`.
//! - nginx `auth_request` sends a subrequest with the original request in `X-Forwarded-*`;
//!   it allows on 2xx, denies on 401/403 and turns anything else, a 302 included, into a
//!   500. `error_page 401` then sends the browser's request to the sign-in endpoint.
//! - Traefik `forwardAuth` sends GET to its configured address with `X-Forwarded-Method`,
//!   `-Proto`, `-Host`, `-Uri` and the client's headers, and returns the whole answer.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;

use extauth::server::OpsOptions;
use extauth::transport::profile::{HttpListener, Profile};
use support::*;

fn with_listeners(profiles: &[Profile]) -> OpsOptions {
    OpsOptions {
        http_listeners: profiles
            .iter()
            .map(|&profile| HttpListener {
                profile,
                addr: "127.0.0.1:0".parse().unwrap(),
            })
            .collect(),
        ..OpsOptions::default()
    }
}

fn listener(stack: &Stack, profile: Profile) -> SocketAddr {
    stack
        .server
        .http_listener_addr(profile)
        .expect("the listener is up")
}

async fn send(
    stack: &Stack,
    to: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = stack
        .http
        .request(method.parse().unwrap(), format!("http://{to}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Answer::read(req.send().await.expect("the listener answers")).await
}

/// What Envoy's HTTP `ext_authz` sends: the original method, path and `Host`, and the
/// `cookie` header (listed in `allowed_headers`).
async fn envoy_check(stack: &Stack, method: &str, path: &str, cookie: Option<&str>) -> Answer {
    let mut headers = vec![("host", APP_HOST)];
    headers.extend(cookie.map(|c| ("cookie", c)));
    send(
        stack,
        listener(stack, Profile::Envoy),
        method,
        path,
        &headers,
    )
    .await
}

#[tokio::test]
async fn the_envoy_profile_allows_with_exactly_200_and_never_hides_an_outage_behind_a_5xx() {
    let mut stack = stack(Store::Redis, with_listeners(&[Profile::Envoy])).await;
    let first = envoy_check(&stack, "POST", "/openai", None).await;
    assert_eq!(
        first.status, 302,
        "a redirect passes Envoy as a denial: {first:?}"
    );
    let callback = log_in(&stack.http, first.header("location").unwrap()).await;
    let back = envoy_check(&stack, "GET", &path_and_query(&callback), None).await;
    assert_eq!(back.status, 302, "{back:?}");
    let cookie = cookie_pair(back.header("set-cookie").expect("a session cookie"));

    let ok = envoy_check(&stack, "POST", "/openai", Some(&cookie)).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let claims = jwt_claims(
        ok.header("jwt")
            .expect("the ID token for allowed_upstream_headers"),
    );
    assert_eq!(claims["preferred_username"], "user1");

    stack.redis.as_mut().unwrap().stop();
    let down = envoy_check(&stack, "POST", "/openai", Some(&cookie)).await;
    assert_eq!(
        (down.status, down.body.as_str()),
        (403, "The session store is unavailable. Try again later.\n"),
        "Envoy would answer status_on_error for a 5xx and drop the body: {down:?}"
    );
    assert_eq!(down.header("x-extauth-status"), Some("503"));
    assert_eq!(down.header("location"), None);
    // The forward-auth listener keeps the 503: Caddy and Traefik pass it on as it is.
    let plain = forward_auth(&stack, "POST", "/openai", &[("cookie", cookie.as_str())]).await;
    assert_eq!(plain.status, 503, "{plain:?}");
    stack.server.shutdown().await;
}

/// What nginx's `auth_request` subrequest carries (the recipe in docs/config-reference.md):
/// the client's headers, and the original request in `X-Forwarded-*`.
fn nginx_headers<'a>(
    method: &'a str,
    uri: &'a str,
    cookie: Option<&'a str>,
) -> Vec<(&'a str, &'a str)> {
    let mut headers = vec![
        ("host", "127.0.0.1:9999"),
        ("x-forwarded-method", method),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-host", APP_HOST),
        ("x-forwarded-uri", uri),
        ("accept", "text/html"),
    ];
    headers.extend(cookie.map(|c| ("cookie", c)));
    headers
}

async fn nginx_check(stack: &Stack, method: &str, uri: &str, cookie: Option<&str>) -> Answer {
    let headers = nginx_headers(method, uri, cookie);
    send(
        stack,
        listener(stack, Profile::Nginx),
        "GET",
        "/extauth/check",
        &headers,
    )
    .await
}

/// `error_page 401` → the location proxying the browser's request to the sign-in endpoint.
async fn nginx_sign_in(stack: &Stack, method: &str, uri: &str, cookie: Option<&str>) -> Answer {
    let headers = nginx_headers(method, uri, cookie);
    send(
        stack,
        listener(stack, Profile::Nginx),
        method,
        "/extauth/sign_in",
        &headers,
    )
    .await
}

fn only_401(answer: &Answer, real: &str) {
    assert_eq!(
        answer.status, 401,
        "nginx turns any other status into a 500: {answer:?}"
    );
    assert_eq!(answer.header("x-extauth-status"), Some(real), "{answer:?}");
    assert_eq!(answer.header("location"), None, "{answer:?}");
    assert_eq!(answer.header("set-cookie"), None, "{answer:?}");
}

async fn an_nginx_login_completes_through_the_sign_in_endpoint(store: Store) {
    let stack = stack(store, with_listeners(&[Profile::Nginx])).await;
    // The forward-auth listener (`--http`) answers this subrequest with the 302 itself,
    // which nginx would turn into a 500.
    let headers = nginx_headers("POST", "/openai?model=x", None);
    let plain = send(
        &stack,
        stack.server.http_addr(),
        "GET",
        "/extauth/check",
        &headers,
    )
    .await;
    assert_eq!(plain.status, 302, "{plain:?}");
    let check = nginx_check(&stack, "POST", "/openai?model=x", None).await;
    only_401(&check, "302");
    assert_eq!(
        check.header("x-extauth-sign-in"),
        Some("/extauth/sign_in?rd=http%3A%2F%2F127.0.0.1%3A80%2Fopenai%3Fmodel%3Dx")
    );

    let start = nginx_sign_in(&stack, "POST", "/openai?model=x", None).await;
    assert_eq!(start.status, 302, "{start:?}");
    let location = url::Url::parse(start.header("location").unwrap()).unwrap();
    let params: HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(params["redirect_uri"], "http://127.0.0.1:80/openai");
    assert_eq!(
        jwt_claims(&params["state"])["state"],
        "http://127.0.0.1:80/openai?model=x"
    );
    let binding = cookie_pair(
        start
            .header("set-cookie")
            .expect("the login-binding cookie"),
    );

    let callback = log_in(&stack.http, location.as_str()).await;
    let uri = path_and_query(&callback);
    // The callback inside the check: handed over undecided (its code is single use).
    let check = nginx_check(&stack, "GET", &uri, Some(&binding)).await;
    assert_eq!(check.status, 401, "{check:?}");
    assert_eq!(
        check.header("x-extauth-status"),
        None,
        "not decided: {check:?}"
    );
    assert!(
        check.header("x-extauth-sign-in").is_some_and(|s| s
            .starts_with("/extauth/sign_in?rd=http%3A%2F%2F127.0.0.1%3A80%2Fopenai%3F")
            && s.contains("code%3D")),
        "{check:?}"
    );
    // ...and completed by the sign-in endpoint, with every cookie in the one answer.
    let back = nginx_sign_in(&stack, "GET", &uri, Some(&binding)).await;
    assert_eq!(
        back.status, 302,
        "the code was not spent by the check: {back:?}"
    );
    assert_eq!(
        back.header("location"),
        Some("http://127.0.0.1:80/openai?model=x")
    );
    let cookies = back.all("set-cookie");
    assert_eq!(
        cookies.len(),
        2,
        "the session and the spent binding: {cookies:?}"
    );
    let session = cookies
        .iter()
        .map(|c| cookie_pair(c))
        .find(|c| c.starts_with(&format!("{COOKIE}=")))
        .expect("the session cookie");

    let ok = nginx_check(&stack, "POST", "/openai", Some(&session)).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let claims = jwt_claims(ok.header("jwt").expect("the ID token for auth_request_set"));
    assert_eq!(claims["preferred_username"], "user1");
    stack.server.shutdown().await;
}

#[tokio::test]
async fn an_nginx_login_completes_through_the_sign_in_endpoint_with_memory_sessions() {
    an_nginx_login_completes_through_the_sign_in_endpoint(Store::Memory).await;
}

#[tokio::test]
async fn an_nginx_login_completes_through_the_sign_in_endpoint_with_redis_sessions() {
    an_nginx_login_completes_through_the_sign_in_endpoint(Store::Redis).await;
}

#[tokio::test]
async fn the_nginx_check_never_answers_a_redirect_or_a_5xx() {
    let mut stack = stack(Store::Redis, with_listeners(&[Profile::Nginx])).await;
    let (session, _) = forward_auth_login(&stack).await;
    stack.redis.as_mut().unwrap().stop();
    let check = nginx_check(&stack, "POST", "/openai", Some(&session)).await;
    only_401(&check, "503");
    // The browser gets the real answer from the sign-in endpoint.
    let answer = nginx_sign_in(&stack, "POST", "/openai", Some(&session)).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (503, "The session store is unavailable. Try again later.\n")
    );
    stack.server.shutdown().await;
}

fn state_of(answer: &Answer) -> String {
    assert_eq!(answer.status, 302, "{answer:?}");
    let location = url::Url::parse(answer.header("location").unwrap()).unwrap();
    let params: HashMap<_, _> = location.query_pairs().into_owned().collect();
    jwt_claims(&params["state"])["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// oauth2-proxy's `/oauth2/start?rd=` recipe: a link (or `error_page 401 =302
/// $extauth_sign_in`) names where to return; only `appUrl`'s origin is kept.
#[tokio::test]
async fn the_sign_in_endpoint_takes_the_return_url_from_rd_or_a_header_and_keeps_only_app_urls() {
    let stack = stack(Store::Memory, with_listeners(&[Profile::Nginx])).await;
    let to = listener(&stack, Profile::Nginx);
    let cases = [
        (
            "absolute on appUrl",
            "/extauth/sign_in?rd=http%3A%2F%2F127.0.0.1%2Fchat%3Fa%3D1",
            None,
            "http://127.0.0.1/chat?a=1",
        ),
        (
            "a path on appUrl",
            "/extauth/sign_in?rd=%2Fchat",
            None,
            "http://127.0.0.1/chat",
        ),
        (
            "another host",
            "/extauth/sign_in?rd=http%3A%2F%2Fevil.example%2F",
            None,
            "http://127.0.0.1/",
        ),
        (
            "scheme-relative",
            "/extauth/sign_in?rd=%2F%2Fevil.example%2F",
            None,
            "http://127.0.0.1/",
        ),
        (
            "backslash",
            "/extauth/sign_in?rd=%2F%5Cevil.example",
            None,
            "http://127.0.0.1/",
        ),
        (
            "userinfo",
            "/extauth/sign_in?rd=http%3A%2F%2F127.0.0.1%40evil.example%2F",
            None,
            "http://127.0.0.1/",
        ),
        (
            "the oauth2-proxy header",
            "/extauth/sign_in",
            Some("/openai"),
            "http://127.0.0.1/openai",
        ),
        ("nothing", "/extauth/sign_in", None, "http://127.0.0.1/"),
    ];
    for (label, path, header, want) in cases {
        let mut headers = vec![("accept", "text/html")];
        headers.extend(header.map(|h| ("x-auth-request-redirect", h)));
        let answer = send(&stack, to, "GET", path, &headers).await;
        assert_eq!(state_of(&answer), want, "{label}");
    }
    stack.server.shutdown().await;
}

#[tokio::test]
async fn a_signed_in_browser_at_the_sign_in_endpoint_is_sent_back_with_a_307() {
    let stack = stack(Store::Memory, with_listeners(&[Profile::Nginx])).await;
    let (session, _) = forward_auth_login(&stack).await;
    let answer = nginx_sign_in(&stack, "POST", "/openai", Some(&session)).await;
    assert_eq!(answer.status, 307, "{answer:?}");
    assert_eq!(
        answer.header("location"),
        Some("http://127.0.0.1:80/openai")
    );
    stack.server.shutdown().await;
}

/// Traefik's `forwardAuth` (the default, `trustForwardHeader` aside): a GET to the address
/// it is given, whatever the client's method, with the original in `X-Forwarded-*` and the
/// client's headers copied; the whole answer goes back to the client.
#[tokio::test]
async fn a_traefik_forward_auth_get_describes_a_post_and_its_callback() {
    let stack = stack(Store::Memory, OpsOptions::default()).await;
    let traefik = |uri: &'static str, method: &'static str| {
        vec![
            ("host", "127.0.0.1:8084"),
            ("x-forwarded-method", method),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", APP_HOST),
            ("x-forwarded-uri", uri),
            ("x-forwarded-for", "10.0.0.7"),
            ("content-type", "application/json"),
        ]
    };
    let first = send(
        &stack,
        stack.server.http_addr(),
        "GET",
        "/auth",
        &traefik("/openai?stream=false", "POST"),
    )
    .await;
    assert_eq!(
        state_of(&first),
        "http://127.0.0.1:80/openai?stream=false",
        "the login is for the forwarded POST, not for GET /auth"
    );
    let location = first.header("location").unwrap().to_owned();
    let callback = log_in(&stack.http, &location).await;
    let uri: &'static str = Box::leak(path_and_query(&callback).into_boxed_str());
    let back = send(
        &stack,
        stack.server.http_addr(),
        "GET",
        "/auth",
        &traefik(uri, "GET"),
    )
    .await;
    assert_eq!(back.status, 302, "{back:?}");
    assert_eq!(
        back.header("location"),
        Some("http://127.0.0.1:80/openai?stream=false")
    );
    let cookie = cookie_pair(back.header("set-cookie").expect("the session cookie"));
    let mut headers = traefik("/openai", "POST");
    headers.push(("cookie", cookie.as_str()));
    let ok = send(&stack, stack.server.http_addr(), "GET", "/auth", &headers).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert!(
        ok.header("jwt").is_some(),
        "authResponseHeaders: [jwt] copies it: {ok:?}"
    );
    stack.server.shutdown().await;
}
