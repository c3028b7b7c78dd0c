//! Issue 3's features over real sockets: extauth's HTTP listener on port 0, mock-idp on port
//! 0, and every behaviour against both session stores (memory, and a real `redis-server`).
//! Time moves with manual clocks (extauth's and the IdP's together); nothing sleeps.

// Test helpers panic with context on purpose: a failed fixture is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use extauth::clock::ManualClock;
use extauth::config;
use extauth::env::MapEnv;
use extauth::server::{self, RunningServer, ServeOptions, StoreChoice};
use extauth::testing::RedisProcess;
use mock_idp::{MockIdp, Realm, RunningIdp};
use support::Answer;

mod support;

const REALM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../scenarios/realms/master.json"
);
const APP_HOST: &str = "127.0.0.1:80";

const MANIFEST: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: oauth-keycloak, namespace: ns}
type: extauth.solo.io/oauth
stringData: {client-secret: agentgateway-client-secret}
---
apiVersion: extauth.solo.io/v1
kind: AuthConfig
metadata: {name: app, namespace: ns}
spec:
  configs:
  - oauth2:
      oidcAuthorizationCode:
        appUrl: "http://127.0.0.1:80"
        callbackPath: /openai
        clientId: agentgateway
        clientSecretRef: {name: oauth-keycloak, namespace: ns}
        issuerUrl: "${KEYCLOAK_URL}/realms/master/"
        scopes: [email]
        logoutPath: /logout
        afterLogoutUrl: "http://127.0.0.1:80/bye"
        session:
          cookieOptions: {sameSite: LaxMode}
          redis:
            cookieName: keycloak-session
            keyPrefix: "extauth:"
            options: {host: "127.0.0.1:${REDIS_PORT}"}
        headers:
          idTokenHeader: jwt
          accessTokenHeader: Authorization
          useBearerSchemaForAuthorization: true
        identityToken:
          claimsToHeaders:
          - {claim: preferred_username, header: x-user}
          - {claim: email, header: x-email}
        accessToken:
          claimsToHeaders:
          - {claim: azp, header: x-azp}
"#;

#[derive(Clone, Copy, Debug)]
enum Store {
    Memory,
    Redis,
}

struct Stack {
    idp: RunningIdp,
    server: RunningServer,
    loaded: extauth::config::Loaded,
    store: Store,
    clock: ManualClock,
    http: reqwest::Client,
    _redis: Option<RedisProcess>,
}

impl Stack {
    /// Moves both clocks.
    fn advance(&self, secs: i64) {
        self.clock.advance(secs);
        self.idp.clock().advance(secs);
    }
}

async fn stack(store: Store, edit: impl Fn(String) -> String) -> Stack {
    stack_with_realm(store, Realm::from_file(REALM).expect("realm"), edit).await
}

async fn stack_with_realm(store: Store, realm: Realm, edit: impl Fn(String) -> String) -> Stack {
    let redis = match store {
        Store::Redis => Some(RedisProcess::start().expect("redis-server must be installed")),
        Store::Memory => None,
    };
    let idp = MockIdp::builder()
        .realm(realm)
        .public_host("localhost")
        .start()
        .await
        .expect("mock idp");
    let base = idp.base_url().as_str().trim_end_matches('/').to_owned();
    let env = MapEnv::default()
        .with("KEYCLOAK_URL", &base)
        .with(
            "REDIS_PORT",
            redis.as_ref().map_or(1, RedisProcess::port).to_string(),
        )
        .with("SIGNING_KEY", "an-integration-test-signing-key-of-32+bytes");
    let loaded = config::load_str("features.yaml", &edit(MANIFEST.to_owned()), &env)
        .expect("manifest loads");
    let clock = ManualClock::at_system_time();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = server::start_with_clock(
        loaded.clone(),
        ServeOptions {
            grpc: any,
            http: any,
            admin: any,
            session_store: match store {
                Store::Redis => StoreChoice::FromConfig,
                Store::Memory => StoreChoice::Memory,
            },
        },
        Arc::new(clock.clone()),
    )
    .await
    .expect("extauth starts");
    Stack {
        idp,
        server,
        loaded,
        store,
        clock,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        _redis: redis,
    }
}

async fn check(stack: &Stack, method: &str, target: &str, headers: &[(&str, &str)]) -> Answer {
    let url = format!("http://{}{target}", stack.server.http_addr());
    let mut req = stack
        .http
        .request(method.parse().unwrap(), url)
        .header("host", APP_HOST);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Answer::read(req.send().await.expect("http check")).await
}

/// Fills Keycloak's form at `auth_url`; the callback URL the IdP redirects to.
async fn idp_login(stack: &Stack, auth_url: &str) -> url::Url {
    support::log_in(&stack.http, auth_url).await
}

fn target(url: &url::Url) -> String {
    support::path_and_query(url)
}

fn pair(set_cookie: &str) -> String {
    support::cookie_pair(set_cookie)
}

fn claims(jwt: &str) -> serde_json::Value {
    support::jwt_claims(jwt)
}

/// The seed's Step 3: curl starts, another browser finishes. Returns the callback answer and
/// the session cookie pair.
async fn log_in(stack: &Stack) -> (Answer, String) {
    let first = check(
        stack,
        "POST",
        "/openai",
        &[("content-type", "application/json"), ("accept", "*/*")],
    )
    .await;
    assert_eq!(first.status, 302, "{first:?}");
    let callback = idp_login(stack, first.header("location").unwrap()).await;
    let back = check(stack, "GET", &target(&callback), &[]).await;
    assert_eq!(back.status, 302, "{back:?}");
    let cookie = pair(back.header("set-cookie").expect("session cookie"));
    (back, cookie)
}

macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test] async fn $name() { super::$name(super::Store::Memory).await })*
        }
        mod redis {
            $(#[tokio::test] async fn $name() { super::$name(super::Store::Redis).await })*
        }
    };
}

both_stores!(
    login_sets_the_configured_cookie_and_identity_headers,
    client_copies_of_identity_headers_are_removed_in_every_spelling,
    tokens_within_the_pre_expiry_buffer_are_refreshed,
    a_refused_refresh_token_ends_the_session_and_starts_a_login,
    logout_deletes_the_session_and_ends_the_idp_session,
    logout_from_a_logged_out_browser_still_redirects,
    requests_that_cannot_follow_a_login_get_401,
    a_valid_id_token_as_bearer_is_accepted_without_a_cookie,
    a_login_cookie_from_another_login_is_refused,
    a_callback_without_login_cookie_is_allowed_unless_strict,
    several_tabs_can_log_in_at_once,
    a_foreign_host_never_becomes_the_return_url,
    an_oversized_cookie_header_is_400,
    concurrent_requests_refresh_once,
    an_id_token_signed_with_a_new_key_is_accepted_after_one_jwks_refetch,
    discovery_override_wins_over_discovery,
    logout_by_post_sends_an_auto_submitting_form,
    the_session_id_header_carries_and_reads_the_session,
    a_wrong_iss_on_the_callback_is_refused_before_the_exchange,
    every_login_gets_a_new_session_id,
);

#[tokio::test]
async fn two_replicas_refresh_a_shared_redis_session_once() {
    let stack = stack(Store::Redis, |m| m).await;
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let replica = server::start_with_clock(
        stack.loaded.clone(),
        ServeOptions {
            grpc: any,
            http: any,
            admin: any,
            session_store: StoreChoice::FromConfig,
        },
        Arc::new(stack.clock.clone()),
    )
    .await
    .unwrap();
    assert!(matches!(stack.store, Store::Redis));
    let (_, cookie) = log_in(&stack).await;
    stack.advance(299);
    let ask = |addr: SocketAddr| {
        let http = stack.http.clone();
        let cookie = cookie.clone();
        async move {
            let resp = http
                .get(format!("http://{addr}/openai"))
                .header("host", APP_HOST)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let jwt = resp
                .headers()
                .get("jwt")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, jwt)
        }
    };
    let answers = futures::future::join_all((0..6).map(|i| {
        ask(if i % 2 == 0 {
            stack.server.http_addr()
        } else {
            replica.http_addr()
        })
    }))
    .await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    assert!(answers.windows(2).all(|w| w[0].1 == w[1].1), "{answers:?}");
    assert_eq!(
        grants(&stack)
            .iter()
            .filter(|g| *g == "refresh_token")
            .count(),
        1,
        "one refresh across both replicas"
    );
}

async fn every_login_gets_a_new_session_id(store: Store) {
    let stack = stack(store, |m| m).await;
    let (_, first) = log_in(&stack).await;
    // A second login from a browser that still presents the first cookie (or one an
    // attacker planted) gets a fresh id: no fixation.
    let start = check(&stack, "POST", "/openai", &[("accept", "*/*")]).await;
    let callback = idp_login(&stack, start.header("location").unwrap()).await;
    let back = check(&stack, "GET", &target(&callback), &[("cookie", &first)]).await;
    let second = pair(back.header("set-cookie").unwrap());
    assert_ne!(first, second);
    assert_eq!(second.len(), first.len());
}

/// Token endpoint calls seen by the IdP, by `grant_type`.
fn grants(stack: &Stack) -> Vec<String> {
    stack
        .idp
        .requests()
        .iter()
        .map(|r| format!("{r:?}"))
        .filter(|r| r.contains("/protocol/openid-connect/token"))
        .map(|r| {
            if r.contains("refresh_token") {
                "refresh_token".to_owned()
            } else {
                "authorization_code".to_owned()
            }
        })
        .collect()
}

async fn concurrent_requests_refresh_once(store: Store) {
    let stack = stack(store, |m| m).await;
    let (_, cookie) = log_in(&stack).await;
    stack.advance(299);
    // The IdP rotates refresh tokens: a second refresh with the spent one would be refused
    // and end the session, so all of these succeeding means one refresh served them all.
    let headers = [("cookie", cookie.as_str())];
    let answers =
        futures::future::join_all((0..8).map(|_| check(&stack, "GET", "/openai", &headers))).await;
    let jwts: Vec<_> = answers
        .iter()
        .map(|a| a.header("jwt").map(str::to_owned))
        .collect();
    assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
    assert!(
        jwts.windows(2).all(|w| w[0] == w[1]),
        "one refreshed token for all"
    );
    assert_eq!(
        grants(&stack)
            .iter()
            .filter(|g| *g == "refresh_token")
            .count(),
        1,
        "{:?}",
        grants(&stack)
    );
}

async fn an_id_token_signed_with_a_new_key_is_accepted_after_one_jwks_refetch(store: Store) {
    let stack = stack(store, |m| m).await;
    // Discovery and JWKS are cached before the rotation...
    let first = check(&stack, "GET", "/openai", &[("accept", "*/*")]).await;
    assert_eq!(first.status, 302);
    stack.idp.rotate_keys().await.expect("rotate");
    // ...so the login's ID token names an unknown `kid`: one refetch, then accepted.
    let callback = idp_login(&stack, first.header("location").unwrap()).await;
    let back = check(&stack, "GET", &target(&callback), &[]).await;
    assert_eq!(back.status, 302, "{back:?}");
    assert!(back.header("set-cookie").is_some());

    // `never`: the same rotation fails the login.
    let never = stack_with(store, "        jwksCacheRefreshPolicy: {never: {}}\n").await;
    let first = check(&never, "GET", "/openai", &[("accept", "*/*")]).await;
    never.idp.rotate_keys().await.expect("rotate");
    let callback = idp_login(&never, first.header("location").unwrap()).await;
    let back = check(&never, "GET", &target(&callback), &[]).await;
    // The unknown key is an invalid ID token like any other: one answer, no detail.
    assert_eq!(back.status, 403, "{back:?}");
    assert_eq!(back.body, extauth::flow::error::INVALID_ID_TOKEN);
}

/// A stack whose AuthConfig has `extra` (8-space indented lines) added.
async fn stack_with(store: Store, extra: &str) -> Stack {
    let extra = extra.to_owned();
    stack(store, move |m| {
        m.replace(
            "        logoutPath:",
            &format!("{extra}        logoutPath:"),
        )
    })
    .await
}

/// The seed's realm with `user1` holding `groups` group names as an attribute, which the ID
/// and access tokens both carry as a claim: large tokens, as with real group claims.
fn realm_with_large_tokens(groups: usize) -> Realm {
    let mut realm: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(REALM).unwrap()).unwrap();
    let names: Vec<String> = (0..groups)
        .map(|i| format!("team-{i:04}-with-a-long-group-name"))
        .collect();
    for user in realm["users"].as_array_mut().unwrap() {
        if user["username"] == "user1" {
            user["attributes"] = serde_json::json!({ "groups": names });
        }
    }
    Realm::from_json_str(&realm.to_string()).unwrap()
}

fn cookie_mode(m: String) -> String {
    let start = m.find("        session:").unwrap();
    let end = m.find("        headers:").unwrap();
    format!(
        "{}        session:\n          cookieOptions: {{notSecure: true}}\n{}",
        &m[..start],
        &m[end..]
    )
}

/// The `Cookie` header a browser sends after these `Set-Cookie` lines (deletions drop).
fn browser_cookies(jar: &mut Vec<(String, String)>, set_cookies: &[&str]) -> String {
    for line in set_cookies {
        let pair = pair(line);
        let (name, value) = pair.split_once('=').unwrap();
        jar.retain(|(n, _)| n != name);
        if !line.contains("Max-Age=0") {
            jar.push((name.to_owned(), value.to_owned()));
        }
    }
    jar.iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test]
async fn large_cookie_sessions_are_split_into_chunks_a_browser_keeps() {
    // About 40 bytes per group in each of two tokens, then JSON, sealing and base64url:
    // 40 groups need three or four cookies.
    let stack = stack_with_realm(Store::Memory, realm_with_large_tokens(40), cookie_mode).await;
    let first = check(&stack, "GET", "/openai", &[]).await;
    let callback = idp_login(&stack, first.header("location").unwrap()).await;
    let back = check(&stack, "GET", &target(&callback), &[]).await;
    assert_eq!(back.status, 302, "{back:?}");
    let set_cookies = back.all("set-cookie");
    let session: Vec<&str> = set_cookies
        .iter()
        .copied()
        .filter(|c| c.starts_with("__session"))
        .collect();
    assert!(session.len() >= 2, "chunked: {session:?}");
    for line in &session {
        // Each stays under what a browser keeps per cookie.
        assert!(line.len() < 4096, "{} bytes", line.len());
    }
    assert!(session[0].starts_with(&format!("__session={}~", session.len())));
    assert!(session[1].starts_with("__session.1="));
    let mut jar = Vec::new();
    let cookies = browser_cookies(&mut jar, &session);
    let ok = check(&stack, "GET", "/openai", &[("cookie", &cookies)]).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let groups = &claims(ok.header("jwt").unwrap())["groups"];
    assert_eq!(groups.as_array().unwrap().len(), 40);

    // A missing chunk is no session (a new login), never a broken token upstream.
    let without_last: Vec<&str> = cookies.rsplitn(2, "; ").skip(1).collect();
    let partial = check(&stack, "GET", "/openai", &[("cookie", without_last[0])]).await;
    assert_eq!(partial.status, 302, "{partial:?}");

    // Logout deletes every chunk.
    let out = check(&stack, "GET", "/logout", &[("cookie", &cookies)]).await;
    let removed: Vec<&str> = out
        .all("set-cookie")
        .into_iter()
        .filter(|c| c.starts_with("__session") && c.contains("Max-Age=0"))
        .collect();
    assert_eq!(removed.len(), session.len(), "{out:?}");
}

#[tokio::test]
async fn a_shorter_session_deletes_the_chunks_left_from_a_longer_one() {
    let stack = stack_with_realm(Store::Memory, realm_with_large_tokens(40), cookie_mode).await;
    let first = check(&stack, "GET", "/openai", &[]).await;
    let callback = idp_login(&stack, first.header("location").unwrap()).await;
    let back = check(&stack, "GET", &target(&callback), &[]).await;
    let session: Vec<&str> = back
        .all("set-cookie")
        .into_iter()
        .filter(|c| c.starts_with("__session"))
        .collect();
    let mut jar = Vec::new();
    let cookies = browser_cookies(&mut jar, &session);
    // The browser still holds a chunk `__session.3` from an earlier, larger session when it
    // logs in again: the new answer deletes it (and nothing it did not write survives).
    let stale = format!("{cookies}; __session.3=stale");
    let again = check(&stack, "GET", "/openai?again=1", &[("cookie", "")]).await;
    let callback = idp_login(&stack, again.header("location").unwrap()).await;
    let relog = check(&stack, "GET", &target(&callback), &[("cookie", &stale)]).await;
    assert_eq!(relog.status, 302, "{relog:?}");
    let lines = relog.all("set-cookie");
    let written = lines
        .iter()
        .filter(|c| c.starts_with("__session") && !c.contains("Max-Age=0"))
        .count();
    let deleted: Vec<&&str> = lines
        .iter()
        .filter(|c| c.starts_with("__session") && c.contains("Max-Age=0"))
        .collect();
    // Chunks from `written` up to the highest present one (3) are deleted.
    assert_eq!(deleted.len(), 4 - written, "{lines:?}");
    assert!(
        deleted.iter().any(|c| c.starts_with("__session.3=")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn concurrent_requests_of_a_cookie_session_refresh_once() {
    let stack = stack(Store::Memory, cookie_mode).await;
    let (back, _) = log_in(&stack).await;
    let mut jar = Vec::new();
    let cookie = browser_cookies(&mut jar, &back.all("set-cookie"));
    stack.advance(299);
    // The IdP rotates refresh tokens: had two of these spent the same one, the second would
    // be refused and that request sent to log in again.
    let headers = [("cookie", cookie.as_str())];
    let answers =
        futures::future::join_all((0..8).map(|_| check(&stack, "GET", "/openai", &headers))).await;
    assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
    let jwts: Vec<_> = answers.iter().map(|a| a.header("jwt")).collect();
    assert!(
        jwts.windows(2).all(|w| w[0] == w[1]),
        "one refreshed token for all"
    );
    assert!(
        answers.iter().all(|a| a
            .header("set-cookie")
            .is_some_and(|c| c.starts_with("__session="))),
        "every response hands the browser the refreshed session"
    );
    let refreshes = grants(&stack)
        .iter()
        .filter(|g| *g == "refresh_token")
        .count();
    assert_eq!(refreshes, 1, "{:?}", grants(&stack));
    // The refreshed cookie from any of them is a session.
    let after = browser_cookies(&mut jar, &answers[3].all("set-cookie"));
    let ok = check(&stack, "GET", "/openai", &[("cookie", &after)]).await;
    assert_eq!(ok.status, 200, "{ok:?}");
}

#[tokio::test]
async fn cookie_sessions_keep_the_tokens_sealed_in_the_cookie() {
    let stack = stack(Store::Memory, cookie_mode).await;
    let (back, _) = log_in(&stack).await;
    let set_cookie = back.header("set-cookie").unwrap();
    assert!(set_cookie.starts_with("__session="), "{set_cookie}");
    assert!(!set_cookie.contains("Secure"), "{set_cookie}");
    // The sealed tokens take one or more cookies (each under the 4 KiB a browser keeps).
    let session: Vec<&str> = back
        .all("set-cookie")
        .into_iter()
        .filter(|c| c.starts_with("__session"))
        .collect();
    let mut jar = Vec::new();
    let cookie = browser_cookies(&mut jar, &session);
    let ok = check(&stack, "GET", "/openai", &[("cookie", &cookie)]).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let jwt = ok.header("jwt").unwrap();
    assert!(!cookie.contains(&jwt[..30]), "the tokens are encrypted");
    assert_eq!(
        claims(ok.header("jwt").unwrap())["preferred_username"],
        "user1"
    );
    // A refresh sends the new sealed tokens back in Set-Cookie lines on the allowed response.
    stack.advance(299);
    let refreshed = check(&stack, "GET", "/openai", &[("cookie", &cookie)]).await;
    assert_eq!(refreshed.status, 200, "{refreshed:?}");
    assert!(
        refreshed
            .header("set-cookie")
            .unwrap()
            .starts_with("__session=")
    );
    let after_refresh = browser_cookies(&mut jar, &refreshed.all("set-cookie"));
    let ok = check(&stack, "GET", "/openai", &[("cookie", &after_refresh)]).await;
    assert_eq!(
        ok.status, 200,
        "the refreshed cookies are a session: {ok:?}"
    );
    // Tampering makes it no session.
    let first = jar[0].1.clone();
    let mut bytes = first.into_bytes();
    bytes[20] = if bytes[20] == b'A' { b'B' } else { b'A' };
    let tampered = after_refresh.replacen(&jar[0].1, &String::from_utf8(bytes).unwrap(), 1);
    let a = check(
        &stack,
        "GET",
        "/openai",
        &[("cookie", &tampered), ("accept", "*/*")],
    )
    .await;
    assert_eq!(a.status, 302);
}

async fn discovery_override_wins_over_discovery(store: Store) {
    let stack = stack(store, |m| {
        m.replace(
            "        logoutPath:",
            "        discoveryOverride: {authEndpoint: 'http://127.0.0.1:80/custom-auth'}\n        authEndpointQueryParams: {prompt: login}\n        logoutPath:",
        )
    })
    .await;
    let a = check(&stack, "GET", "/openai", &[("accept", "*/*")]).await;
    let location = a.header("location").unwrap();
    assert!(
        location.starts_with("http://127.0.0.1:80/custom-auth?client_id="),
        "{location}"
    );
    // In alphabetical order among the flow's own parameters.
    assert!(
        location.contains("&prompt=login&redirect_uri="),
        "{location}"
    );
}

async fn logout_by_post_sends_an_auto_submitting_form(store: Store) {
    let stack = stack(store, |m| {
        m.replace(
            "        logoutPath:",
            "        endSessionProperties: {methodType: PostMethod}\n        logoutPath:",
        )
    })
    .await;
    let (_, cookie) = log_in(&stack).await;
    let out = check(&stack, "GET", "/logout", &[("cookie", &cookie)]).await;
    // The HTTP listener never answers a page of ours with a 2xx (that would mean "allow" and
    // the proxy would forward /logout upstream): the form comes with a 403, which browsers
    // render and submit. Over gRPC it is a denied response with status 200.
    assert_eq!(out.status, 403, "{out:?}");
    assert!(out.header("content-type").unwrap().starts_with("text/html"));
    assert!(out.body.contains("method=\"post\""), "{}", out.body);
    assert!(
        out.body.contains("/protocol/openid-connect/logout"),
        "{}",
        out.body
    );
    assert!(out.body.contains("name=\"id_token_hint\""), "{}", out.body);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
}

async fn the_session_id_header_carries_and_reads_the_session(store: Store) {
    let stack = stack(store, |m| {
        m.replace(
            "            keyPrefix:",
            "            headerName: x-session\n            keyPrefix:",
        )
        .replace(
            "        logoutPath:",
            "        sessionIdHeaderName: x-session-id\n        logoutPath:",
        )
    })
    .await;
    let (_, cookie) = log_in(&stack).await;
    let id = cookie.strip_prefix("keycloak-session=").unwrap().to_owned();
    let ok = check(&stack, "GET", "/openai", &[("cookie", &cookie)]).await;
    assert_eq!(ok.header("x-session-id"), Some(id.as_str()));
    // A client without cookies presents the id in `headerName`.
    let by_header = check(&stack, "GET", "/openai", &[("x-session", &id)]).await;
    assert_eq!(by_header.status, 200, "{by_header:?}");
    let removed = by_header
        .header("x-envoy-auth-headers-to-remove")
        .unwrap_or_default();
    assert!(
        removed.contains("x-session"),
        "the id does not travel upstream: {removed}"
    );
}

async fn a_wrong_iss_on_the_callback_is_refused_before_the_exchange(store: Store) {
    let stack = stack(store, |m| m).await;
    let first = check(&stack, "GET", "/openai", &[("accept", "*/*")]).await;
    let callback = idp_login(&stack, first.header("location").unwrap()).await;
    let mut forged = callback.clone();
    let pairs: Vec<(String, String)> = callback
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != "iss")
        .collect();
    forged
        .query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair("iss", "http://evil.example/realms/master");
    let a = check(&stack, "GET", &target(&forged), &[]).await;
    assert_eq!(a.status, 400, "{a:?}");
    assert!(a.body.contains("`iss`"), "{}", a.body);
    assert_eq!(grants(&stack), vec![] as Vec<String>, "no code exchange");
}

async fn login_sets_the_configured_cookie_and_identity_headers(store: Store) {
    let stack = stack(store, |m| m).await;
    let (back, cookie) = log_in(&stack).await;
    let set_cookie = back.header("set-cookie").unwrap();
    assert!(set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    assert!(set_cookie.contains("Max-Age=2592000"), "{set_cookie}");
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("Secure"));
    let ok = check(&stack, "POST", "/openai", &[("cookie", &cookie)]).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let jwt = ok.header("jwt").unwrap();
    assert_eq!(claims(jwt)["preferred_username"], "user1");
    assert_eq!(ok.header("x-user"), Some("user1"));
    assert!(ok.header("x-email").is_some());
    assert_eq!(
        ok.header("x-azp"),
        Some("agentgateway"),
        "from the access token"
    );
    let auth = ok.header("authorization").unwrap();
    assert!(auth.starts_with("Bearer "), "{auth}");
    assert_ne!(&auth[7..], jwt, "the access token, not the ID token");
}

async fn client_copies_of_identity_headers_are_removed_in_every_spelling(store: Store) {
    let stack = stack(store, |m| m).await;
    let (_, cookie) = log_in(&stack).await;
    let ok = check(
        &stack,
        "GET",
        "/openai",
        &[
            ("cookie", &cookie),
            ("X_User", "admin"),
            ("x_email", "root@evil"),
        ],
    )
    .await;
    assert_eq!(ok.status, 200);
    let removed = ok
        .header("x-envoy-auth-headers-to-remove")
        .unwrap_or_default();
    assert!(
        removed.contains("x_user") && removed.contains("x_email"),
        "{removed}"
    );
    assert_eq!(ok.header("x-user"), Some("user1"));
}

async fn tokens_within_the_pre_expiry_buffer_are_refreshed(store: Store) {
    let stack = stack(store, |m| m).await;
    let (_, cookie) = log_in(&stack).await;
    let before = check(&stack, "GET", "/openai", &[("cookie", &cookie)]).await;
    let old = before.header("jwt").unwrap().to_owned();
    // Keycloak's tokens live 300 s; 299 s later they are inside the 2 s buffer.
    stack.advance(299);
    let after = check(&stack, "GET", "/openai", &[("cookie", &cookie)]).await;
    assert_eq!(after.status, 200, "{after:?}");
    let new = after.header("jwt").unwrap();
    assert_ne!(new, old, "a new ID token");
    assert!(claims(new)["exp"].as_i64() > claims(&old)["exp"].as_i64());
    // The refreshed session was saved: the next request uses it without another refresh.
    let again = check(&stack, "GET", "/openai", &[("cookie", &cookie)]).await;
    assert_eq!(again.header("jwt"), Some(new));
}

async fn a_refused_refresh_token_ends_the_session_and_starts_a_login(store: Store) {
    let stack = stack(store, |m| m).await;
    let (_, cookie) = log_in(&stack).await;
    // Past the IdP's SSO idle timeout (1800 s): the refresh token is refused.
    stack.advance(4000);
    let answer = check(&stack, "GET", "/openai", &[("cookie", &cookie)]).await;
    assert_eq!(answer.status, 302, "{answer:?}");
    assert!(
        answer
            .header("location")
            .unwrap()
            .contains("/protocol/openid-connect/auth")
    );
}

async fn logout_deletes_the_session_and_ends_the_idp_session(store: Store) {
    let stack = stack(store, |m| m).await;
    let (_, cookie) = log_in(&stack).await;
    let ok = check(&stack, "GET", "/openai", &[("cookie", &cookie)]).await;
    let id_token = ok.header("jwt").unwrap().to_owned();
    let out = check(&stack, "GET", "/logout", &[("cookie", &cookie)]).await;
    assert_eq!(out.status, 302, "{out:?}");
    let location = url::Url::parse(out.header("location").unwrap()).unwrap();
    assert!(
        location.path().ends_with("/protocol/openid-connect/logout"),
        "{location}"
    );
    let params: HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(params["id_token_hint"], id_token);
    assert_eq!(
        params["post_logout_redirect_uri"],
        "http://127.0.0.1:80/bye"
    );
    let removal = out.header("set-cookie").unwrap();
    assert!(removal.starts_with("keycloak-session=;"), "{removal}");
    assert!(removal.contains("Max-Age=0"), "{removal}");
    // The session is gone server side too: the old cookie no longer works.
    let after = check(&stack, "GET", "/openai", &[("cookie", &cookie)]).await;
    assert_eq!(after.status, 302);
    // The tokens were revoked at the IdP.
    let revoked = stack
        .idp
        .requests()
        .iter()
        .filter(|r| format!("{r:?}").contains("/revoke"))
        .count();
    assert!(revoked >= 1, "revocation endpoint called");
}

async fn logout_from_a_logged_out_browser_still_redirects(store: Store) {
    let stack = stack(store, |m| m).await;
    let out = check(&stack, "GET", "/logout", &[]).await;
    assert_eq!(out.status, 302, "{out:?}");
    let location = out.header("location").unwrap();
    assert!(!location.contains("id_token_hint"), "{location}");
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
}

async fn requests_that_cannot_follow_a_login_get_401(store: Store) {
    let stack = stack(store, |m| m).await;
    for (label, headers) in [
        ("xhr", vec![("x-requested-with", "XMLHttpRequest")]),
        ("cors", vec![("sec-fetch-mode", "cors")]),
        ("json", vec![("accept", "application/json")]),
    ] {
        let a = check(&stack, "GET", "/openai", &headers).await;
        assert_eq!(a.status, 401, "{label}: {a:?}");
        assert!(
            a.header("www-authenticate")
                .unwrap()
                .starts_with("Bearer realm="),
            "{label}"
        );
        assert!(a.body.contains("cannot follow a login"), "{label}");
    }
    for (label, headers) in [
        (
            "curl",
            vec![("accept", "*/*"), ("content-type", "application/json")],
        ),
        (
            "browser",
            vec![("accept", "text/html,application/json;q=0.9")],
        ),
    ] {
        let a = check(&stack, "POST", "/openai", &headers).await;
        assert_eq!(a.status, 302, "{label}: {a:?}");
    }
    // failOnRedirect: never a 302.
    let strict = stack_fail_on_redirect(store).await;
    let a = check(&strict, "GET", "/openai", &[("accept", "text/html")]).await;
    assert_eq!(a.status, 401, "{a:?}");
}

async fn stack_fail_on_redirect(store: Store) -> Stack {
    stack(store, |m| {
        m.replace(
            "spec:\n  configs:",
            "spec:\n  failOnRedirect: true\n  configs:",
        )
    })
    .await
}

async fn a_valid_id_token_as_bearer_is_accepted_without_a_cookie(store: Store) {
    let stack = stack(store, |m| m).await;
    let (_, cookie) = log_in(&stack).await;
    let ok = check(&stack, "GET", "/openai", &[("cookie", &cookie)]).await;
    let id_token = ok.header("jwt").unwrap().to_owned();
    let bearer = format!("Bearer {id_token}");
    let a = check(
        &stack,
        "GET",
        "/openai",
        &[("authorization", &bearer), ("accept", "application/json")],
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.header("x-user"), Some("user1"));
    // A tampered token is not.
    let tampered = format!("Bearer {}x", id_token);
    let a = check(
        &stack,
        "GET",
        "/openai",
        &[("authorization", &tampered), ("accept", "application/json")],
    )
    .await;
    assert_eq!(a.status, 401);
    // Nor an expired one.
    stack.advance(400);
    let a = check(
        &stack,
        "GET",
        "/openai",
        &[("authorization", &bearer), ("accept", "application/json")],
    )
    .await;
    assert_eq!(a.status, 401);
}

async fn browser_login_start(stack: &Stack, cookies: Option<&str>) -> (Answer, String) {
    let mut headers = vec![("accept", "text/html")];
    if let Some(c) = cookies {
        headers.push(("cookie", c));
    }
    let first = check(stack, "GET", "/openai", &headers).await;
    assert_eq!(first.status, 302, "{first:?}");
    let login_cookie = pair(
        first
            .header("set-cookie")
            .expect("a login cookie for a browser"),
    );
    assert!(
        login_cookie.starts_with("keycloak-session-login="),
        "{login_cookie}"
    );
    (first, login_cookie)
}

async fn a_login_cookie_from_another_login_is_refused(store: Store) {
    let stack = stack(store, |m| m).await;
    // The attacker starts a login and keeps its callback URL...
    let (attacker, _) = browser_login_start(&stack, None).await;
    let attacker_callback = idp_login(&stack, attacker.header("location").unwrap()).await;
    // ...the victim's browser has its own pending login and is lured to the attacker's URL.
    let (_, victim_cookie) = browser_login_start(&stack, None).await;
    let a = check(
        &stack,
        "GET",
        &target(&attacker_callback),
        &[("cookie", &victim_cookie)],
    )
    .await;
    assert_eq!(a.status, 400, "{a:?}");
    assert!(a.body.contains("not started by this browser"), "{}", a.body);
    assert!(a.header("set-cookie").is_none());
}

async fn a_callback_without_login_cookie_is_allowed_unless_strict(store: Store) {
    let lenient = stack(store, |m| m).await;
    let (first, _) = browser_login_start(&lenient, None).await;
    let callback = idp_login(&lenient, first.header("location").unwrap()).await;
    let a = check(&lenient, "GET", &target(&callback), &[]).await;
    assert_eq!(a.status, 302, "{a:?}");
    assert_eq!(a.all("set-cookie").len(), 1, "only the session cookie");

    let strict = stack(store, |m: String| {
        m.replace(
            "        logoutPath:",
            "        strictLoginBinding: true\n        logoutPath:",
        )
    })
    .await;
    let (first, login_cookie) = browser_login_start(&strict, None).await;
    let callback = idp_login(&strict, first.header("location").unwrap()).await;
    let a = check(&strict, "GET", &target(&callback), &[]).await;
    assert_eq!(a.status, 400, "{a:?}");
    let a = check(
        &strict,
        "GET",
        &target(&callback),
        &[("cookie", &login_cookie)],
    )
    .await;
    assert_eq!(a.status, 302, "{a:?}");
    let set: Vec<_> = a.all("set-cookie");
    assert!(set.iter().any(|c| c.starts_with("keycloak-session=")));
    assert!(
        set.iter()
            .any(|c| c.starts_with("keycloak-session-login=;") && c.contains("Max-Age=0")),
        "{set:?}"
    );
}

async fn several_tabs_can_log_in_at_once(store: Store) {
    let stack = stack(store, |m| m).await;
    let (tab1, c1) = browser_login_start(&stack, None).await;
    let (tab2, c2) = browser_login_start(&stack, Some(&c1)).await;
    assert_eq!(c2.matches('.').count(), 1, "both logins pending: {c2}");
    let cb1 = idp_login(&stack, tab1.header("location").unwrap()).await;
    let cb2 = idp_login(&stack, tab2.header("location").unwrap()).await;
    let a = check(&stack, "GET", &target(&cb2), &[("cookie", &c2)]).await;
    assert_eq!(a.status, 302, "{a:?}");
    let rest = a
        .all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("keycloak-session-login="))
        .map(pair)
        .unwrap();
    let a = check(&stack, "GET", &target(&cb1), &[("cookie", &rest)]).await;
    assert_eq!(a.status, 302, "{a:?}");
    // The cap drops the oldest of more pending logins than maxPendingLogins (5).
    let mut jar = String::new();
    for _ in 0..7 {
        let (_, c) = browser_login_start(&stack, (!jar.is_empty()).then_some(jar.as_str())).await;
        jar = c;
    }
    assert_eq!(jar.matches('.').count(), 4, "{jar}");
}

async fn a_foreign_host_never_becomes_the_return_url(store: Store) {
    let stack = stack(store, |m| m).await;
    let url = format!("http://{}/openai?x=1", stack.server.http_addr());
    let resp = stack
        .http
        .get(url)
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let state = location
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(claims(&state)["state"], "http://127.0.0.1:80/");
}

async fn an_oversized_cookie_header_is_400(store: Store) {
    let stack = stack(store, |m| m).await;
    let big = format!("a={}", "x".repeat(20_000));
    let a = check(&stack, "GET", "/openai", &[("cookie", &big)]).await;
    assert_eq!(a.status, 400, "{a:?}");
    assert!(
        a.body.contains("Cookie header is larger than"),
        "{}",
        a.body
    );
}

/// A response as snapshotted: volatile values (state, PKCE, nonce, tokens, cookie values,
/// ports) replaced by placeholders.
fn redacted(stack: &Stack, a: &Answer) -> serde_json::Value {
    let idp = stack
        .idp
        .base_url()
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    let redact = |v: &str| -> String {
        let mut v = v.replace(&idp, "[IDP_URL]");
        for key in ["state", "code_challenge", "nonce", "id_token_hint"] {
            let marker = format!("{key}=");
            let mut out = String::new();
            let mut rest = v.as_str();
            while let Some(i) = rest.find(&marker) {
                let at_boundary = i == 0 || matches!(rest.as_bytes()[i - 1], b'?' | b'&');
                out.push_str(&rest[..i + marker.len()]);
                rest = &rest[i + marker.len()..];
                if at_boundary {
                    let end = rest.find('&').unwrap_or(rest.len());
                    out.push_str(&format!("[{key}]"));
                    rest = &rest[end..];
                }
            }
            out.push_str(rest);
            v = out;
        }
        // Cookie values: `name=VALUE;` → `name=[value];` (empty values stay empty).
        if let Some((name, rest)) = v.split_once('=')
            && !name.contains(' ')
            && !name.contains('/')
            && let Some((value, attrs)) = rest.split_once(';')
            && !value.is_empty()
        {
            v = format!("{name}=[{} chars];{attrs}", value.len());
        }
        v
    };
    let mut headers: Vec<(String, String)> = a
        .headers
        .iter()
        .filter(|(n, _)| !matches!(n.as_str(), "date" | "content-length"))
        .map(|(n, v)| {
            (
                n.clone(),
                if n == "set-cookie" || n == "location" {
                    redact(v)
                } else {
                    v.clone()
                },
            )
        })
        .collect();
    headers.sort();
    serde_json::json!({
        "status": a.status,
        "headers": headers,
        "body": a.body,
    })
}

#[tokio::test]
async fn responses_match_their_snapshots() {
    let stack = stack(Store::Memory, |m| m).await;
    let mut shots = serde_json::Map::new();
    let first = check(
        &stack,
        "GET",
        "/openai",
        &[("accept", "text/html"), ("sec-fetch-mode", "navigate")],
    )
    .await;
    shots.insert("login_redirect".into(), redacted(&stack, &first));
    let login_cookie = pair(first.header("set-cookie").unwrap());
    let callback = idp_login(&stack, first.header("location").unwrap()).await;
    let back = check(
        &stack,
        "GET",
        &target(&callback),
        &[("cookie", &login_cookie)],
    )
    .await;
    shots.insert("callback".into(), redacted(&stack, &back));
    let cookie = back
        .all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("keycloak-session="))
        .map(pair)
        .unwrap();
    let xhr = check(
        &stack,
        "GET",
        "/openai",
        &[("x-requested-with", "XMLHttpRequest")],
    )
    .await;
    shots.insert("denied_non_browser".into(), redacted(&stack, &xhr));
    let other = browser_login_start(&stack, None).await.1;
    let replay = check(&stack, "GET", &target(&callback), &[("cookie", &other)]).await;
    shots.insert("denied_login_binding".into(), redacted(&stack, &replay));
    let tampered = check(&stack, "GET", "/openai?code=c&state=a.b.c", &[]).await;
    shots.insert("denied_bad_state".into(), redacted(&stack, &tampered));
    let logout = check(&stack, "GET", "/logout", &[("cookie", &cookie)]).await;
    shots.insert("logout".into(), redacted(&stack, &logout));
    insta::assert_yaml_snapshot!(serde_json::Value::Object(shots));
}
