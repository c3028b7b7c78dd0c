//! `Flow::decide` against a wiremock IdP (discovery and token endpoint) and stores filled
//! directly: every branch that does not need a correctly signed ID token. The signed paths
//! run against mock-idp in `tests/`.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http::StatusCode;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::clock::ManualClock;
use crate::config::{self, Loaded};
use crate::env::MapEnv;
use crate::secret::Secret;
use crate::server::{StoreChoice, build_flow};
use crate::session::tests::sample;
use crate::session::{SessionData, SessionId};
use crate::testing::RedisProcess;

const SEED: &str = include_str!("../../tests/fixtures/seed-step2.yaml");
const NOW: i64 = 1_768_504_473;

pub(crate) async fn idp() -> MockServer {
    let server = MockServer::start().await;
    let base = server.uri();
    let issuer = format!("{base}/realms/master");
    let discovery = serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/protocol/openid-connect/auth"),
        "token_endpoint": format!("{issuer}/protocol/openid-connect/token"),
        "jwks_uri": format!("{issuer}/protocol/openid-connect/certs"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    });
    Mock::given(method("GET"))
        .and(path("/realms/master/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(discovery))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/realms/master/protocol/openid-connect/certs"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"keys": []})))
        .mount(&server)
        .await;
    server
}

fn loaded(idp_url: &str, redis_host: &str) -> Loaded {
    let text = SEED.replace("ext-cache-enterprise-agentgateway:6379", redis_host);
    let env = MapEnv::default()
        .with("KEYCLOAK_SECRET", "s3cr3t")
        .with("KEYCLOAK_CLIENT", "agentgateway")
        .with("KEYCLOAK_URL", idp_url)
        .with("INGRESS_GW_ADDRESS", "172.18.0.4")
        .with("SIGNING_KEY", "k".repeat(32));
    config::load_str("seed.yaml", &text, &env).unwrap()
}

struct Fixture {
    flow: Flow,
    clock: ManualClock,
    _idp: MockServer,
}

async fn fixture_with(store: StoreChoice, redis_host: &str) -> Fixture {
    let idp = idp().await;
    let clock = ManualClock::new(NOW);
    let flow = build_flow(
        &loaded(&idp.uri(), redis_host),
        store,
        Arc::new(clock.clone()),
    )
    .unwrap();
    Fixture {
        flow,
        clock,
        _idp: idp,
    }
}

async fn fixture() -> Fixture {
    fixture_with(StoreChoice::Memory, "127.0.0.1:1").await
}

fn post_openai() -> CheckRequest {
    CheckRequest::new("POST", "http", "172.18.0.4", "/openai")
        .with_header("content-type", "application/json")
}

fn deny(d: Decision) -> Deny {
    match d {
        Decision::Deny(d) => d,
        Decision::Allow(a) => panic!("expected a deny, got {a:?}"),
    }
}

fn allow(d: Decision) -> Allow {
    match d {
        Decision::Allow(a) => a,
        Decision::Deny(d) => panic!("expected an allow, got {} {}", d.status, d.body),
    }
}

fn header<'a>(d: &'a Deny, name: &str) -> Vec<&'a str> {
    d.headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

async fn store_session(f: &Fixture, data: &SessionData) -> SessionId {
    let id = SessionId::generate();
    f.flow.routes()[0]
        .store
        .save(&id, data, Duration::from_secs(3600))
        .await
        .unwrap();
    id
}

/// Requests the IdP's token endpoint received (code exchanges and refreshes).
async fn token_calls(idp: &MockServer) -> usize {
    idp.received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().ends_with("/token"))
        .count()
}

fn with_cookie(check: CheckRequest, id: &SessionId) -> CheckRequest {
    check.with_header(
        "cookie",
        &format!("other=1; keycloak-session={}", id.expose()),
    )
}

#[tokio::test]
async fn request_without_session_is_redirected_to_the_idp_with_sorted_parameters() {
    let f = fixture().await;
    let d = deny(f.flow.decide(&post_openai()).await);
    assert_eq!(d.status, StatusCode::FOUND);
    let location = header(&d, "location")[0];
    let url = url::Url::parse(location).unwrap();
    assert_eq!(url.path(), "/realms/master/protocol/openid-connect/auth");
    let names: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
    assert_eq!(
        names,
        [
            "client_id",
            "code_challenge",
            "code_challenge_method",
            "nonce",
            "redirect_uri",
            "response_type",
            "scope",
            "state"
        ]
    );
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], "agentgateway");
    assert_eq!(q["redirect_uri"], "http://172.18.0.4:80/openai");
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["scope"], "email openid");
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(
        location.contains("redirect_uri=http%3A%2F%2F172.18.0.4%3A80%2Fopenai"),
        "{location}"
    );
    assert!(location.contains("scope=email+openid"), "{location}");
    let state = f.flow.state().verify(&q["state"], NOW).unwrap();
    assert_eq!(state.claims.state, "http://172.18.0.4/openai");
    assert_eq!(state.claims.iat, NOW);
    assert_eq!(state.claims.exp, NOW + 1800);
    assert_eq!(q["nonce"], state.login.nonce);
}

#[tokio::test]
async fn a_valid_session_is_allowed_with_the_id_token_and_client_copies_removed() {
    let f = fixture().await;
    let id = store_session(&f, &sample("user1")).await;
    let check = with_cookie(post_openai(), &id)
        .with_header("JWT", "forged")
        .with_header("jwt", "forged2");
    let a = allow(f.flow.decide(&check).await);
    assert_eq!(
        a.upstream_headers,
        vec![(
            http::HeaderName::from_static("jwt"),
            sample("user1").id_token
        )]
    );
    assert_eq!(a.remove_headers, vec!["jwt".to_owned()]);
}

#[tokio::test]
async fn an_expired_id_token_without_refresh_token_sends_the_user_back_to_login() {
    let f = fixture().await;
    let id = store_session(
        &f,
        &SessionData {
            expires_at: NOW + 10,
            refresh_token: None,
            ..sample("u")
        },
    )
    .await;
    assert!(matches!(
        f.flow.decide(&with_cookie(post_openai(), &id)).await,
        Decision::Allow(_)
    ));
    f.clock.advance(10);
    assert_eq!(
        deny(f.flow.decide(&with_cookie(post_openai(), &id)).await).status,
        StatusCode::FOUND
    );
}

#[tokio::test]
async fn unknown_or_malformed_cookies_go_to_login() {
    let f = fixture().await;
    for value in [
        SessionId::generate().expose().to_owned(),
        "garbage".into(),
        String::new(),
    ] {
        let check = post_openai().with_header("cookie", &format!("keycloak-session={value}"));
        assert_eq!(
            deny(f.flow.decide(&check).await).status,
            StatusCode::FOUND,
            "{value}"
        );
    }
}

#[tokio::test]
async fn callback_path_without_code_is_an_ordinary_request() {
    let f = fixture().await;
    let id = store_session(&f, &sample("u")).await;
    for target in [
        "/openai",
        "/openai?code=1",
        "/openai?state=1",
        "/openai?x=1",
    ] {
        let check = with_cookie(CheckRequest::new("GET", "http", "172.18.0.4", target), &id);
        assert!(
            matches!(f.flow.decide(&check).await, Decision::Allow(_)),
            "{target}"
        );
    }
}

#[tokio::test]
async fn callback_errors_are_client_errors_with_a_clear_body() {
    let f = fixture().await;
    let other = StateCodec::new(&Secret::new("o".repeat(32)));
    let foreign_state = other.issue("http://172.18.0.4/openai", NOW).unwrap().token;
    let cases: Vec<(&str, String, StatusCode, &str)> = vec![
        (
            "tampered state",
            "/openai?code=c&state=abc.def.ghi".into(),
            StatusCode::BAD_REQUEST,
            "`state` parameter is not valid",
        ),
        (
            "state from another key",
            format!("/openai?code=c&state={foreign_state}"),
            StatusCode::BAD_REQUEST,
            "not valid",
        ),
        (
            "duplicate code",
            "/openai?code=a&code=b&state=s".into(),
            StatusCode::BAD_REQUEST,
            "`code` appears more than once",
        ),
        (
            "idp error",
            "/openai?error=access_denied&error_description=User+cancelled&state=s".into(),
            StatusCode::UNAUTHORIZED,
            "the login: access_denied.\n",
        ),
        (
            "huge query",
            format!("/openai?code=c&state={}", "a".repeat(20_000)),
            StatusCode::BAD_REQUEST,
            "larger than",
        ),
    ];
    for (label, target, status, body) in cases {
        let d = deny(
            f.flow
                .decide(&CheckRequest::new("GET", "http", "172.18.0.4", &target))
                .await,
        );
        assert_eq!(d.status, status, "{label}: {}", d.body);
        assert!(d.body.contains(body), "{label}: {}", d.body);
        assert!(header(&d, "set-cookie").is_empty(), "{label}");
    }
    // The state is checked first: no code reached the token endpoint.
    assert_eq!(token_calls(&f._idp).await, 0);
}

#[tokio::test]
async fn an_expired_state_restarts_the_login() {
    let f = fixture().await;
    let state = f
        .flow
        .state()
        .issue("http://172.18.0.4/openai", NOW - 1800)
        .unwrap()
        .token;
    let d = deny(
        f.flow
            .decide(&CheckRequest::new(
                "GET",
                "http",
                "172.18.0.4",
                &format!("/openai?code=c&state={state}"),
            ))
            .await,
    );
    assert_eq!(d.status, StatusCode::FOUND);
    assert_eq!(header(&d, "location"), ["http://172.18.0.4:80/"]);
}

/// A refused code (`invalid_grant`) starts the login again once: the browser still has its
/// IdP session, and the usual cause is a callback the gateway retried on another replica
/// after the first spent the code and died. The restarted login's refusal is final.
#[tokio::test]
async fn a_rejected_code_restarts_the_login_once_then_is_401() {
    let f = fixture().await;
    Mock::given(method("POST"))
        .and(path("/realms/master/protocol/openid-connect/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            serde_json::json!({"error": "invalid_grant", "error_description": "Code not valid"}),
        ))
        .mount(&f._idp)
        .await;
    let callback = |state: &str| {
        CheckRequest::new(
            "GET",
            "http",
            "172.18.0.4",
            &format!("/openai?code=c&state={state}"),
        )
        .with_header("accept", "text/html")
    };
    let first = f
        .flow
        .state()
        .issue("http://172.18.0.4/openai?x=1", NOW)
        .unwrap();
    let used = f.flow.state().binding(&first.lid);
    let d = deny(
        f.flow
            .decide(
                &callback(&first.token)
                    .with_header("cookie", &format!("keycloak-session-login=other.{used}")),
            )
            .await,
    );
    assert_eq!(d.status, StatusCode::FOUND, "{}", d.body);
    let location = url::Url::parse(header(&d, "location")[0]).unwrap();
    assert_eq!(
        location.path(),
        "/realms/master/protocol/openid-connect/auth"
    );
    let state = location
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let restarted = f.flow.state().verify(&state, NOW).unwrap();
    assert_eq!(restarted.claims.restarts, 1);
    assert_eq!(restarted.claims.state, "http://172.18.0.4/openai?x=1");
    assert_ne!(restarted.claims.lid, first.lid);
    // The spent login's binding leaves the login cookie, the new one joins it; no session.
    let new_binding = f.flow.state().binding(&restarted.claims.lid);
    let cookies = header(&d, "set-cookie");
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert!(
        cookies[0].starts_with(&format!("keycloak-session-login=other.{new_binding};")),
        "{}",
        cookies[0]
    );

    // The restarted login's code refused again: final.
    let d = deny(f.flow.decide(&callback(&state)).await);
    assert_eq!(d.status, StatusCode::UNAUTHORIZED, "{}", d.body);
    assert_eq!(
        d.body,
        "Login failed: the identity provider rejected the authorization code (invalid_grant). Start the login again.\n"
    );
    assert!(header(&d, "set-cookie").is_empty());
}

/// Found by the lifecycle state machine (shrunk to: the token endpoint answers 503, then a
/// login): the IdP's failure was a 401 "Login failed", blaming the user.
#[tokio::test]
async fn a_failing_token_endpoint_at_the_callback_is_503_not_a_refused_login() {
    let f = fixture().await;
    Mock::given(method("POST"))
        .and(path("/realms/master/protocol/openid-connect/token"))
        .respond_with(ResponseTemplate::new(503).set_body_json(
            serde_json::json!({"error": "server_error", "error_description": "Injected fault"}),
        ))
        .mount(&f._idp)
        .await;
    let state = f
        .flow
        .state()
        .issue("http://172.18.0.4/openai", NOW)
        .unwrap()
        .token;
    let d = deny(
        f.flow
            .decide(&CheckRequest::new(
                "GET",
                "http",
                "172.18.0.4",
                &format!("/openai?code=c&state={state}"),
            ))
            .await,
    );
    assert_eq!(d.status, StatusCode::SERVICE_UNAVAILABLE, "{}", d.body);
    assert_eq!(
        d.body,
        "The identity provider is unavailable. Try again later.\n"
    );
    assert!(header(&d, "set-cookie").is_empty());
}

#[tokio::test]
async fn the_token_request_carries_the_client_secret_and_pkce_verifier() {
    let f = fixture().await;
    Mock::given(method("POST"))
        .and(path("/realms/master/protocol/openid-connect/token"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(serde_json::json!({"error": "invalid_grant"})),
        )
        .mount(&f._idp)
        .await;
    let issued = f
        .flow
        .state()
        .issue("http://172.18.0.4/openai", NOW)
        .unwrap();
    let _ = f
        .flow
        .decide(&CheckRequest::new(
            "GET",
            "http",
            "172.18.0.4",
            &format!("/openai?code=the-code&state={}", issued.token),
        ))
        .await;
    let requests = f._idp.received_requests().await.unwrap();
    let token = requests
        .iter()
        .find(|r| r.url.path().ends_with("/token"))
        .expect("a token request");
    let basic = base64::engine::general_purpose::STANDARD.encode("agentgateway:s3cr3t");
    assert_eq!(
        token
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap(),
        format!("Basic {basic}")
    );
    let form: std::collections::HashMap<String, String> =
        form_urlencoded::parse(&token.body).into_owned().collect();
    assert_eq!(form["grant_type"], "authorization_code");
    assert_eq!(form["code"], "the-code");
    assert_eq!(form["redirect_uri"], "http://172.18.0.4:80/openai");
    assert_eq!(form["code_verifier"], issued.login.pkce_verifier.expose());
}

#[tokio::test]
async fn an_unreachable_idp_is_503_not_a_client_error() {
    let idp_url = format!("http://127.0.0.1:{}", crate::testing::free_port().unwrap());
    let flow = build_flow(
        &loaded(&idp_url, "127.0.0.1:1"),
        StoreChoice::Memory,
        Arc::new(ManualClock::new(NOW)),
    )
    .unwrap();
    let d = deny(flow.decide(&post_openai()).await);
    assert_eq!(d.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        d.body.contains("identity provider is unavailable"),
        "{}",
        d.body
    );
}

#[tokio::test]
async fn fail_on_fetch_failure_true_gives_503_when_redis_is_down() {
    let mut redis = RedisProcess::start().expect("this test needs redis-server");
    let f = fixture_with(
        StoreChoice::FromConfig,
        &format!("127.0.0.1:{}", redis.port()),
    )
    .await;
    let id = store_session(&f, &sample("u")).await;
    assert!(matches!(
        f.flow.decide(&with_cookie(post_openai(), &id)).await,
        Decision::Allow(_)
    ));
    redis.stop();
    let d = deny(f.flow.decide(&with_cookie(post_openai(), &id)).await);
    assert_eq!(d.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        d.body.contains("session store is unavailable"),
        "{}",
        d.body
    );
    redis.restart().unwrap();
}

#[tokio::test]
async fn fail_on_fetch_failure_false_goes_to_login_when_redis_is_down() {
    let mut redis = RedisProcess::start().expect("this test needs redis-server");
    let idp = idp().await;
    let text = SEED
        .replace(
            "ext-cache-enterprise-agentgateway:6379",
            &format!("127.0.0.1:{}", redis.port()),
        )
        .replace("failOnFetchFailure: true", "failOnFetchFailure: false");
    let env = MapEnv::default()
        .with("KEYCLOAK_SECRET", "s")
        .with("KEYCLOAK_CLIENT", "agentgateway")
        .with("KEYCLOAK_URL", idp.uri())
        .with("INGRESS_GW_ADDRESS", "172.18.0.4");
    let flow = build_flow(
        &config::load_str("s.yaml", &text, &env).unwrap(),
        StoreChoice::FromConfig,
        Arc::new(ManualClock::new(NOW)),
    )
    .unwrap();
    let id = SessionId::generate();
    flow.routes()[0]
        .store
        .save(&id, &sample("u"), Duration::from_secs(60))
        .await
        .unwrap();
    redis.stop();
    let d = deny(flow.decide(&with_cookie(post_openai(), &id)).await);
    assert_eq!(d.status, StatusCode::FOUND);
}

fn two_configs(idp_url: &str) -> Loaded {
    let second = SEED
        .split("---")
        .nth(1)
        .unwrap()
        .replace("name: oauth-authorization-code", "name: second")
        .replace("callbackPath: /openai", "callbackPath: /second");
    let text = format!("{SEED}---{second}");
    let env = MapEnv::default()
        .with("KEYCLOAK_SECRET", "s3cr3t")
        .with("KEYCLOAK_CLIENT", "agentgateway")
        .with("KEYCLOAK_URL", idp_url)
        .with("INGRESS_GW_ADDRESS", "172.18.0.4")
        .with("SIGNING_KEY", "k".repeat(32));
    config::load_str("seed.yaml", &text, &env).unwrap()
}

#[tokio::test]
async fn several_auth_configs_are_chosen_by_context_extension_or_header() {
    let idp = idp().await;
    let loaded = two_configs(&idp.uri());
    let flow = build_flow(
        &loaded,
        StoreChoice::Memory,
        Arc::new(ManualClock::new(NOW)),
    )
    .unwrap();
    let redirect_uri = |d: Decision| {
        let d = deny(d);
        assert_eq!(d.status, StatusCode::FOUND, "{}", d.body);
        let url = url::Url::parse(header(&d, "location")[0]).unwrap();
        url.query_pairs()
            .find(|(k, _)| k == "redirect_uri")
            .unwrap()
            .1
            .into_owned()
    };
    // None named: 403 naming the selector.
    let d = deny(flow.decide(&post_openai()).await);
    assert_eq!(d.status, StatusCode::FORBIDDEN);
    assert!(d.body.contains("`x-extauth-config`"), "{}", d.body);
    // By gRPC context extension.
    let mut check = post_openai();
    check
        .context
        .insert(CONFIG_SELECTOR.into(), "agentgateway-system/second".into());
    assert_eq!(
        redirect_uri(flow.decide(&check).await),
        "http://172.18.0.4:80/second"
    );
    // By header.
    let check = post_openai().with_header(
        CONFIG_SELECTOR,
        "agentgateway-system/oauth-authorization-code",
    );
    assert_eq!(
        redirect_uri(flow.decide(&check).await),
        "http://172.18.0.4:80/openai"
    );
    // A configurable key.
    let flow = build_flow(
        &loaded,
        StoreChoice::Memory,
        Arc::new(ManualClock::new(NOW)),
    )
    .unwrap()
    .with_selector("X-Route");
    let mut check = post_openai();
    check
        .context
        .insert("x-route".into(), "agentgateway-system/second".into());
    assert_eq!(
        redirect_uri(flow.decide(&check).await),
        "http://172.18.0.4:80/second"
    );
    // Unknown: 403.
    let check = post_openai().with_header("x-route", "nope/nope");
    assert_eq!(
        deny(flow.decide(&check).await).status,
        StatusCode::FORBIDDEN
    );
}

#[test]
fn requests_that_cannot_follow_a_login_are_recognized() {
    let base = || CheckRequest::new("GET", "http", "gw", "/");
    for (label, check, follows) in [
        ("plain", base(), true),
        ("curl", base().with_header("accept", "*/*"), true),
        (
            "browser",
            base().with_header("accept", "text/html,application/xhtml+xml,*/*;q=0.8"),
            true,
        ),
        (
            "html and json",
            base().with_header("accept", "application/json, text/html"),
            true,
        ),
        (
            "json only",
            base().with_header("accept", "application/json"),
            false,
        ),
        (
            "problem+json",
            base().with_header("accept", "application/problem+json"),
            false,
        ),
        (
            "xhr",
            base().with_header("x-requested-with", "XMLHttpRequest"),
            false,
        ),
        (
            "cors fetch",
            base().with_header("sec-fetch-mode", "cors"),
            false,
        ),
        (
            "navigation",
            base().with_header("sec-fetch-mode", "navigate"),
            true,
        ),
    ] {
        assert_eq!(login::can_follow_login(&check), follows, "{label}");
    }
}

#[tokio::test]
async fn an_oversized_state_is_refused_before_any_parsing() {
    let f = fixture().await;
    let target = format!("/openai?code=c&state={}", "a".repeat(9000));
    let d = deny(
        f.flow
            .decide(&CheckRequest::new("GET", "http", "172.18.0.4", &target))
            .await,
    );
    assert_eq!(d.status, StatusCode::BAD_REQUEST);
    assert!(
        d.body.contains("state parameter is larger than"),
        "{}",
        d.body
    );
}

async fn token_endpoint_answers(f: &Fixture, status: u16, body: serde_json::Value) {
    f._idp.reset().await;
    idp_mocks(&f._idp).await;
    Mock::given(method("POST"))
        .and(path("/realms/master/protocol/openid-connect/token"))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(&f._idp)
        .await;
}

/// Mounts discovery and JWKS again (after a `reset`).
async fn idp_mocks(server: &MockServer) {
    discovery_mock(server).await;
    Mock::given(method("GET"))
        .and(path("/realms/master/protocol/openid-connect/certs"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"keys": []})))
        .mount(server)
        .await;
}

/// Mounts discovery (its `jwks_uri` left to the caller); the issuer.
async fn discovery_mock(server: &MockServer) -> String {
    let base = server.uri();
    let issuer = format!("{base}/realms/master");
    Mock::given(method("GET"))
        .and(path("/realms/master/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/protocol/openid-connect/auth"),
            "token_endpoint": format!("{issuer}/protocol/openid-connect/token"),
            "jwks_uri": format!("{issuer}/protocol/openid-connect/certs"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        })))
        .mount(server)
        .await;
    issuer
}

/// Found by `harness sim` (seed 17): the IdP granted a refresh (rotating the refresh
/// token), but the new ID token was signed with a key its JWKS could not be fetched for at
/// that moment. The tokens were dropped with the new refresh token, and the next attempt
/// presented the spent one: `invalid_grant` ended the session. Now the new refresh token is
/// kept, and the next attempt presents it.
#[tokio::test]
async fn a_granted_refresh_whose_keys_are_out_of_reach_keeps_the_new_refresh_token() {
    let f = fixture().await;
    f._idp.reset().await;
    let issuer = discovery_mock(&f._idp).await;
    // The first JWKS fetch (with discovery) works; the refetch for the new key fails.
    Mock::given(method("GET"))
        .and(path("/realms/master/protocol/openid-connect/certs"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"keys": []})))
        .up_to_n_times(1)
        .mount(&f._idp)
        .await;
    Mock::given(method("GET"))
        .and(path("/realms/master/protocol/openid-connect/certs"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&f._idp)
        .await;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let id_token = format!(
        "{}.{}.{}",
        b64(serde_json::json!({"alg": "RS256", "kid": "rotated", "typ": "JWT"})),
        b64(serde_json::json!({
            "iss": issuer, "sub": "u", "aud": "agentgateway",
            "exp": NOW + 300, "iat": NOW,
        })),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"not-checked")
    );
    Mock::given(method("POST"))
        .and(path("/realms/master/protocol/openid-connect/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "at-2",
            "token_type": "Bearer",
            "expires_in": 300,
            "refresh_token": "rt-2",
            "id_token": id_token,
        })))
        .mount(&f._idp)
        .await;
    let id = store_session(
        &f,
        &SessionData {
            expires_at: NOW - 1,
            ..sample("u")
        },
    )
    .await;
    // Expired, and the new tokens cannot be checked: 503 (the IdP is unavailable)...
    let d = deny(f.flow.decide(&with_cookie(post_openai(), &id)).await);
    assert_eq!(d.status, StatusCode::SERVICE_UNAVAILABLE, "{}", d.body);
    assert_eq!(
        d.body,
        "The identity provider is unavailable. Try again later.\n"
    );
    // ...and the session keeps its tokens, with the refresh token the grant returned.
    let kept = f.flow.routes()[0].store.load(&id).await.unwrap().unwrap();
    assert_eq!(kept.refresh_token.as_deref(), Some("rt-2"));
    assert_eq!(kept.id_token, sample("u").id_token);
    assert_eq!(kept.expires_at, NOW - 1);
}

#[tokio::test]
async fn a_transient_refresh_failure_keeps_the_session() {
    let f = fixture().await;
    token_endpoint_answers(&f, 503, serde_json::json!({})).await;
    let id = store_session(
        &f,
        &SessionData {
            expires_at: NOW + 1,
            ..sample("u")
        },
    )
    .await;
    // Within the 2 s buffer, the refresh fails: the still-valid token serves.
    let a = allow(f.flow.decide(&with_cookie(post_openai(), &id)).await);
    assert_eq!(a.upstream_headers[0].1, sample("u").id_token);
    // Expired and the IdP still down: 503, and the session is kept for when it is back.
    f.clock.advance(5);
    let d = deny(f.flow.decide(&with_cookie(post_openai(), &id)).await);
    assert_eq!(d.status, StatusCode::SERVICE_UNAVAILABLE, "{}", d.body);
    assert!(f.flow.routes()[0].store.load(&id).await.unwrap().is_some());
    assert_eq!(token_calls(&f._idp).await, 2);
}

#[tokio::test]
async fn invalid_grant_on_refresh_deletes_the_session_and_starts_a_login() {
    let f = fixture().await;
    token_endpoint_answers(&f, 400, serde_json::json!({"error": "invalid_grant"})).await;
    let id = store_session(
        &f,
        &SessionData {
            expires_at: NOW + 1,
            ..sample("u")
        },
    )
    .await;
    let d = deny(f.flow.decide(&with_cookie(post_openai(), &id)).await);
    assert_eq!(d.status, StatusCode::FOUND, "{}", d.body);
    assert!(f.flow.routes()[0].store.load(&id).await.unwrap().is_none());
}

#[tokio::test]
async fn allow_refreshing_false_never_calls_the_token_endpoint() {
    let idp = idp().await;
    let text = SEED.replace(
        "            cookieName: keycloak-session\n",
        "            cookieName: keycloak-session\n            allowRefreshing: false\n",
    );
    let env = MapEnv::default()
        .with("KEYCLOAK_SECRET", "s3cr3t")
        .with("KEYCLOAK_CLIENT", "agentgateway")
        .with("KEYCLOAK_URL", idp.uri())
        .with("INGRESS_GW_ADDRESS", "172.18.0.4")
        .with("SIGNING_KEY", "k".repeat(32));
    let loaded = config::load_str("seed.yaml", &text, &env).unwrap();
    let clock = ManualClock::new(NOW);
    let flow = build_flow(&loaded, StoreChoice::Memory, Arc::new(clock.clone())).unwrap();
    let id = SessionId::generate();
    flow.routes()[0]
        .store
        .save(
            &id,
            &SessionData {
                expires_at: NOW + 1,
                ..sample("u")
            },
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert!(matches!(
        flow.decide(&with_cookie(post_openai(), &id)).await,
        Decision::Allow(_)
    ));
    clock.advance(1);
    assert_eq!(
        deny(flow.decide(&with_cookie(post_openai(), &id)).await).status,
        StatusCode::FOUND
    );
    assert_eq!(token_calls(&idp).await, 0);
}

#[tokio::test]
async fn a_regex_callback_path_recognizes_every_matching_path() {
    let idp = idp().await;
    let text = SEED.replace(
        "        callbackPath: /openai\n",
        "        callbackPath: /cb/[a-z]+\n        parseCallbackPathAsRegex: true\n",
    );
    let env = MapEnv::default()
        .with("KEYCLOAK_SECRET", "s3cr3t")
        .with("KEYCLOAK_CLIENT", "agentgateway")
        .with("KEYCLOAK_URL", idp.uri())
        .with("INGRESS_GW_ADDRESS", "172.18.0.4")
        .with("SIGNING_KEY", "k".repeat(32));
    let loaded = config::load_str("seed.yaml", &text, &env).unwrap();
    let cfg = &loaded.auth_configs[0];
    for (path, is_callback) in [
        ("/cb/one", true),
        ("/cb/two", true),
        ("/cb/1", false),
        ("/cb/one/x", false),
    ] {
        let check = CheckRequest::new("GET", "http", "gw", &format!("{path}?code=c&state=s"));
        assert_eq!(
            callback::callback_params(cfg, &check).unwrap().is_some(),
            is_callback,
            "{path}"
        );
    }
    assert_eq!(
        login::redirect_uri(cfg, "/cb/one"),
        "http://172.18.0.4:80/cb/one"
    );
}

#[test]
fn target_domain_limits_where_the_session_cookie_is_set() {
    let text = SEED.replace(
        "            cookieName: keycloak-session\n",
        "            cookieName: keycloak-session\n            targetDomain: app.example.com\n",
    );
    let env = MapEnv::default()
        .with("KEYCLOAK_SECRET", "s3cr3t")
        .with("KEYCLOAK_CLIENT", "agentgateway")
        .with("KEYCLOAK_URL", "http://idp")
        .with("INGRESS_GW_ADDRESS", "172.18.0.4");
    let loaded = config::load_str("seed.yaml", &text, &env).unwrap();
    let cfg = &loaded.auth_configs[0];
    assert!(callback::target_domain_allows(cfg, "app.example.com"));
    assert!(callback::target_domain_allows(cfg, "APP.example.com:8443"));
    assert!(!callback::target_domain_allows(cfg, "evil.example.com"));
    assert!(!callback::target_domain_allows(cfg, "app.example.com.evil"));
}

mod channel_logout;
mod client_auth;
mod id_token;
mod metadata;
mod reflected;
mod signed;

/// A store whose plain reads lag behind it, as a replica's client-side cache does until
/// Redis's invalidation arrives: `load` answers `stale`, `load_fresh` the store itself.
#[derive(Debug)]
struct LaggingCache {
    inner: Arc<dyn SessionStore>,
    stale: SessionData,
}

#[async_trait::async_trait]
impl SessionStore for LaggingCache {
    async fn load(&self, _id: &SessionId) -> Result<Option<SessionData>, StoreError> {
        Ok(Some(self.stale.clone()))
    }
    async fn load_fresh(&self, id: &SessionId) -> Result<Option<SessionData>, StoreError> {
        self.inner.load(id).await
    }
    async fn save(
        &self,
        id: &SessionId,
        data: &SessionData,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.inner.save(id, data, ttl).await
    }
    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.inner.delete(id).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

/// Another replica refreshed the session (rotating its refresh token) and this replica's
/// cache still holds the old copy, due for a refresh: the refresh reads the store past the
/// cache, finds the fresh tokens and serves them, never presenting the spent refresh token
/// (the IdP would answer `invalid_grant` and the session would end).
#[tokio::test]
async fn a_refresh_reads_the_session_past_a_lagging_cache() {
    let idp = idp().await;
    Mock::given(method("POST"))
        .and(path("/realms/master/protocol/openid-connect/token"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(serde_json::json!({"error": "invalid_grant"})),
        )
        .mount(&idp)
        .await;
    let clock = ManualClock::new(NOW);
    let memory: Arc<dyn SessionStore> = Arc::new(crate::session::memory::MemoryStore::new(
        Arc::new(clock.clone()),
    ));
    let id = SessionId::generate();
    let fresh = SessionData {
        expires_at: NOW + 300,
        refresh_token: Some("rt-rotated".into()),
        ..sample("u")
    };
    memory
        .save(&id, &fresh, Duration::from_secs(3600))
        .await
        .unwrap();
    let store = Arc::new(LaggingCache {
        inner: Arc::clone(&memory),
        stale: SessionData {
            expires_at: NOW + 1,
            refresh_token: Some("rt-spent".into()),
            id_token: "the-old-id-token".into(),
            ..sample("u")
        },
    });
    let flow = testkit::flow_with_store(&loaded(&idp.uri(), "127.0.0.1:1"), store, &clock);
    let a = allow(flow.decide(&with_cookie(post_openai(), &id)).await);
    assert_eq!(a.upstream_headers[0].1, fresh.id_token);
    assert_eq!(token_calls(&idp).await, 0);
    assert_eq!(memory.load(&id).await.unwrap(), Some(fresh));
}
