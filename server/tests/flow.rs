//! The seed's flow over real sockets: extauth served on port 0 (gRPC and HTTP listeners), the
//! mock IdP (Keycloak layout) on port 0, Redis as a real `redis-server` process or the memory
//! store. A plain HTTP client plays the browser: it follows the 302, fills Keycloak's form and
//! brings the code back, as in the seed's Step 3.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::header_value_option;
use envoy_types::pb::envoy::service::auth::v3::CheckResponse;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use extauth::server::OpsOptions;
use support::{APP_HOST, Answer, Stack, Store, cookie_pair, jwt_claims, log_in_as, path_and_query};

mod support;

async fn stack(store: Store) -> Stack {
    support::stack(store, OpsOptions::default()).await
}

async fn log_in(
    stack: &Stack,
    auth_url: &str,
    user: &str,
    password: &str,
) -> Result<url::Url, String> {
    log_in_as(&stack.http, auth_url, user, password).await
}

/// One check through the gRPC API, as agentgateway/Envoy sends it.
async fn grpc_check(
    stack: &Stack,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (Answer, CheckResponse) {
    support::grpc_check(stack.server.grpc_addr(), method, path, headers, |_| {}).await
}

/// One check through the HTTP mode, as `curl` against `--http` does it.
async fn http_check(stack: &Stack, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut with_host = vec![("host", APP_HOST)];
    with_host.extend_from_slice(headers);
    support::http_request(stack, method, path, &with_host).await
}

/// Step 3.1 to 3.5 over gRPC: 302, login, callback with Set-Cookie, allow with `jwt`.
async fn seed_flow_over_grpc(store: Store) {
    let stack = stack(store).await;
    let json = [("content-type", "application/json"), ("accept", "*/*")];

    // 3.1
    let (first, raw) = grpc_check(&stack, "POST", "/openai", &json).await;
    assert_eq!(first.status, 302, "{first:?}");
    let location = url::Url::parse(first.header("location").unwrap()).unwrap();
    assert_eq!(
        location.as_str().split('?').next().unwrap(),
        format!(
            "{}/protocol/openid-connect/auth",
            stack.idp.issuer("master")
        )
    );
    let params: HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(params["client_id"], "agentgateway");
    assert_eq!(params["redirect_uri"], "http://127.0.0.1:80/openai");
    assert_eq!(params["scope"], "email openid");
    let state = jwt_claims(&params["state"]);
    assert_eq!(state["state"], "http://127.0.0.1:80/openai");
    assert_eq!(
        state["exp"].as_i64().unwrap(),
        state["iat"].as_i64().unwrap() + 1800
    );
    assert!(raw.status.is_some());

    // 3.2: the callback comes back to the gateway on the same path.
    let callback = log_in(&stack, location.as_str(), "user1", "password")
        .await
        .expect("user1 logs in");
    assert_eq!(callback.path(), "/openai");
    let (back, raw) = grpc_check(&stack, "GET", &path_and_query(&callback), &[]).await;
    assert_eq!(back.status, 302, "{back:?}");
    assert_eq!(back.header("location"), Some("http://127.0.0.1:80/openai"));
    // 3.3: one Set-Cookie, appended (not overwriting the upstream's own cookies).
    let Some(HttpResponse::DeniedResponse(denied)) = raw.http_response else {
        panic!("the callback is a redirect")
    };
    let set_cookies: Vec<_> = denied
        .headers
        .iter()
        .filter(|h| h.header.as_ref().is_some_and(|h| h.key == "set-cookie"))
        .collect();
    assert_eq!(set_cookies.len(), 1);
    assert_eq!(
        set_cookies[0].append_action,
        header_value_option::HeaderAppendAction::AppendIfExistsOrAdd as i32
    );
    let set_cookie = back.header("set-cookie").unwrap();
    let cookie = cookie_pair(set_cookie);
    let value = cookie
        .strip_prefix("keycloak-session=")
        .expect("cookie name");
    assert_eq!(value.len(), 104);
    assert!(
        value
            .chars()
            .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c) || c == '=')
    );
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");

    // 3.5: with the cookie the request is allowed and carries the ID token; a client's own
    // `jwt` header does not survive.
    let with_cookie = [
        ("content-type", "application/json"),
        ("cookie", cookie.as_str()),
        ("jwt", "forged"),
    ];
    let (ok, raw) = grpc_check(&stack, "POST", "/openai", &with_cookie).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let Some(HttpResponse::OkResponse(okr)) = raw.http_response else {
        panic!("allowed")
    };
    assert!(okr.headers_to_remove.iter().any(|h| h == "jwt"));
    let id_token = ok.header("jwt").expect("the ID token header");
    let claims = jwt_claims(id_token);
    assert_eq!(claims["preferred_username"], "user1");
    assert_eq!(claims["iss"], stack.idp.issuer("master"));
    assert_eq!(claims["aud"], "agentgateway");

    // The code is single use: replaying the callback sets no session. The IdP refuses the
    // spent code, and extauth starts the login again, once (a 302 to the IdP)...
    let (replay, _) = grpc_check(&stack, "GET", &path_and_query(&callback), &[]).await;
    assert_eq!(replay.status, 302, "{replay:?}");
    let restart = replay.header("location").expect("a location");
    assert!(
        restart.starts_with(&format!(
            "{}/protocol/openid-connect/auth?",
            stack.idp.issuer("master")
        )),
        "{restart}"
    );
    assert!(replay.header("set-cookie").is_none());
    // ...whose own refused code is final: 401, and still no session.
    let restarted_state = url::Url::parse(restart)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("a state");
    // The same code (spent) with the restarted login's state, the rest as the IdP sent it.
    let mut again = callback.clone();
    let pairs: Vec<(String, String)> = callback
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                restarted_state.clone()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    again.query_pairs_mut().clear().extend_pairs(pairs);
    let (last, _) = grpc_check(&stack, "GET", &path_and_query(&again), &[]).await;
    assert_eq!(last.status, 401, "{last:?}");
    assert_eq!(
        last.body,
        "Login failed: the identity provider rejected the authorization code (invalid_grant). Start the login again.\n"
    );
    assert!(last.header("set-cookie").is_none());
    stack.server.shutdown().await;
    stack.idp.shutdown().await;
}

#[tokio::test]
async fn the_seed_flow_over_grpc_with_redis_sessions() {
    seed_flow_over_grpc(Store::Redis).await;
}

#[tokio::test]
async fn the_seed_flow_over_grpc_with_memory_sessions() {
    seed_flow_over_grpc(Store::Memory).await;
}

/// The HTTP mode as a user tries it with curl: the check is the request itself.
async fn seed_flow_over_http(store: Store) {
    let stack = stack(store).await;
    let json = [("content-type", "application/json")];
    let first = http_check(&stack, "POST", "/openai", &json).await;
    assert_eq!(first.status, 302, "{first:?}");
    let location = first.header("location").unwrap().to_owned();
    let callback = log_in(&stack, &location, "user1", "password")
        .await
        .expect("user1 logs in");
    let back = http_check(&stack, "GET", &path_and_query(&callback), &[]).await;
    assert_eq!(back.status, 302, "{back:?}");
    let cookie = cookie_pair(back.header("set-cookie").unwrap());
    let ok = http_check(
        &stack,
        "POST",
        "/openai",
        &[("cookie", cookie.as_str()), ("JWT", "forged")],
    )
    .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let claims = jwt_claims(ok.header("jwt").unwrap());
    assert_eq!(claims["preferred_username"], "user1");
    assert!(
        ok.header("x-envoy-auth-headers-to-remove")
            .is_some_and(|v| v.split(',').any(|h| h.trim() == "jwt")),
        "{ok:?}"
    );
    stack.server.shutdown().await;
    stack.idp.shutdown().await;
}

#[tokio::test]
async fn the_seed_flow_over_the_http_mode_with_redis_sessions() {
    seed_flow_over_http(Store::Redis).await;
}

#[tokio::test]
async fn the_seed_flow_over_the_http_mode_with_memory_sessions() {
    seed_flow_over_http(Store::Memory).await;
}

#[tokio::test]
async fn a_wrong_password_gets_no_code_and_the_request_stays_redirected() {
    let stack = stack(Store::Memory).await;
    let first = http_check(&stack, "POST", "/openai", &[]).await;
    let location = first.header("location").unwrap().to_owned();
    let page = log_in(&stack, &location, "user1", "not-the-password")
        .await
        .expect_err("the IdP refuses the login");
    assert!(page.contains("Invalid username or password."), "{page}");
    let again = http_check(&stack, "POST", "/openai", &[]).await;
    assert_eq!(again.status, 302);
    stack.server.shutdown().await;
    stack.idp.shutdown().await;
}

#[tokio::test]
async fn a_session_survives_an_extauth_restart_with_redis_but_not_with_memory() {
    for store in [Store::Redis, Store::Memory] {
        let stack = stack(store).await;
        let first = http_check(&stack, "GET", "/openai", &[]).await;
        let callback = log_in(
            &stack,
            first.header("location").unwrap(),
            "user1",
            "password",
        )
        .await
        .unwrap();
        let back = http_check(&stack, "GET", &path_and_query(&callback), &[]).await;
        let cookie = cookie_pair(back.header("set-cookie").unwrap());

        // A second extauth over the same Redis (a replica, or a restart) knows the session.
        let Stack {
            idp,
            server,
            http,
            redis,
        } = stack;
        server.shutdown().await;
        let replica = support::start(&idp, redis.as_ref(), OpsOptions::default()).await;
        let stack = Stack {
            idp,
            server: replica,
            http,
            redis,
        };
        let after = http_check(&stack, "GET", "/openai", &[("cookie", cookie.as_str())]).await;
        match store {
            Store::Redis => assert_eq!(after.status, 200, "{store:?}: {after:?}"),
            Store::Memory => assert_eq!(after.status, 302, "{store:?}: {after:?}"),
        }
        stack.server.shutdown().await;
        stack.idp.shutdown().await;
    }
}
