//! Forward-auth on the HTTP listener, as Caddy's `forward_auth` (and Traefik, nginx) call it:
//! GET to the auth endpoint with the original request in `X-Forwarded-*`. From a trusted peer
//! those headers are the check; from any other peer they are ignored.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod support;

use std::collections::HashMap;

use extauth::server::OpsOptions;
use extauth::transport::proxy::{Cidr, TrustedProxies};
use support::*;

fn trusting(cidrs: &[&str]) -> OpsOptions {
    OpsOptions {
        trusted_proxies: TrustedProxies::new(cidrs.iter().map(|c| c.parse::<Cidr>().unwrap())),
        ..OpsOptions::default()
    }
}

async fn login_redirect_is_for_the_forwarded_request(store: Store) {
    let stack = stack(store, OpsOptions::default()).await;
    let first = forward_auth(&stack, "POST", "/openai?model=x", &[]).await;
    assert_eq!(first.status, 302, "{first:?}");
    let location = url::Url::parse(first.header("location").unwrap()).unwrap();
    let params: HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(params["redirect_uri"], "http://127.0.0.1:80/openai");
    let state = jwt_claims(&params["state"]);
    assert_eq!(
        state["state"], "http://127.0.0.1:80/openai?model=x",
        "the login returns to the forwarded URI, not to the auth endpoint"
    );

    let callback = log_in(&stack.http, location.as_str()).await;
    let back = forward_auth(&stack, "GET", &path_and_query(&callback), &[]).await;
    assert_eq!(back.status, 302, "{back:?}");
    assert_eq!(
        back.header("location"),
        Some("http://127.0.0.1:80/openai?model=x")
    );
    let cookie = cookie_pair(back.header("set-cookie").expect("a session cookie"));

    let ok = forward_auth(
        &stack,
        "POST",
        "/openai",
        &[("cookie", cookie.as_str()), ("jwt", "forged")],
    )
    .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let claims = jwt_claims(ok.header("jwt").expect("the ID token for copy_headers"));
    assert_eq!(claims["preferred_username"], "user1");
    assert!(
        ok.header("x-envoy-auth-headers-to-remove")
            .is_some_and(|v| v.split(',').any(|h| h.trim() == "jwt")),
        "{ok:?}"
    );
    stack.server.shutdown().await;
}

#[tokio::test]
async fn a_forward_auth_login_works_end_to_end_with_memory_sessions() {
    login_redirect_is_for_the_forwarded_request(Store::Memory).await;
}

#[tokio::test]
async fn a_forward_auth_login_works_end_to_end_with_redis_sessions() {
    login_redirect_is_for_the_forwarded_request(Store::Redis).await;
}

/// The flow keeps a return URL only on `appUrl`'s origin, so the forwarded host (not the
/// proxy's own `Host`) must be what it sees: `/chat` survives; with `https` forwarded the
/// origin differs from `http://127.0.0.1:80` and the login returns to `appUrl` instead.
#[tokio::test]
async fn the_forwarded_host_and_scheme_from_a_trusted_proxy_shape_the_return_url() {
    let stack = stack(Store::Memory, OpsOptions::default()).await;
    let state_for = |proto: &'static str| {
        let stack = &stack;
        async move {
            let first = http_request(
                stack,
                "GET",
                "/",
                &[
                    ("host", "auth.internal:8084"),
                    ("x-forwarded-method", "GET"),
                    ("x-forwarded-proto", proto),
                    ("x-forwarded-host", APP_HOST),
                    ("x-forwarded-uri", "/chat"),
                ],
            )
            .await;
            assert_eq!(first.status, 302, "{first:?}");
            let location = url::Url::parse(first.header("location").unwrap()).unwrap();
            let params: HashMap<_, _> = location.query_pairs().into_owned().collect();
            jwt_claims(&params["state"])["state"].clone()
        }
    };
    assert_eq!(state_for("http").await, "http://127.0.0.1:80/chat");
    assert_eq!(state_for("https").await, "http://127.0.0.1:80/");
    stack.server.shutdown().await;
}

#[tokio::test]
async fn an_untrusted_peer_cannot_describe_another_request() {
    // 127.0.0.1 is outside the trusted network: the X-Forwarded-* headers are ignored.
    let stack = stack(Store::Memory, trusting(&["10.0.0.0/8"])).await;

    // A login started through the untrusted peer returns to its own path, not the forwarded.
    let first = forward_auth(&stack, "POST", "/openai", &[]).await;
    assert_eq!(first.status, 302, "{first:?}");
    let location = url::Url::parse(first.header("location").unwrap()).unwrap();
    let params: HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(
        jwt_claims(&params["state"])["state"],
        "http://127.0.0.1:80/"
    );

    // A forwarded callback is not processed as one: the check is `GET /`, a fresh login.
    let callback = log_in(&stack.http, location.as_str()).await;
    let back = forward_auth(&stack, "GET", &path_and_query(&callback), &[]).await;
    assert_eq!(back.status, 302, "{back:?}");
    assert!(back.header("set-cookie").is_none(), "{back:?}");
    assert!(
        back.header("location")
            .is_some_and(|l| l.contains("/protocol/openid-connect/auth")),
        "a new login, not the callback: {back:?}"
    );

    // The same callback sent as the request itself (no proxy) is processed.
    let direct = http_request(
        &stack,
        "GET",
        &path_and_query(&callback),
        &[("host", APP_HOST)],
    )
    .await;
    assert_eq!(direct.status, 302, "{direct:?}");
    assert!(direct.header("set-cookie").is_some(), "{direct:?}");
    stack.server.shutdown().await;
}

#[tokio::test]
async fn a_trusted_peer_without_forwarded_headers_is_checked_as_itself() {
    let stack = stack(Store::Memory, OpsOptions::default()).await;
    let answer = http_request(&stack, "POST", "/openai", &[("host", APP_HOST)]).await;
    assert_eq!(answer.status, 302, "{answer:?}");
    let location = url::Url::parse(answer.header("location").unwrap()).unwrap();
    let params: HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(
        jwt_claims(&params["state"])["state"],
        "http://127.0.0.1:80/openai"
    );
    stack.server.shutdown().await;
}
