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
async fn an_expired_id_token_sends_the_user_back_to_login() {
    let f = fixture().await;
    let id = store_session(
        &f,
        &SessionData {
            expires_at: NOW + 10,
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
            "access_denied (User cancelled)",
        ),
        (
            "huge query",
            format!("/openai?code=c&state={}", "a".repeat(20_000)),
            StatusCode::BAD_REQUEST,
            "longer than",
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

#[tokio::test]
async fn a_rejected_code_is_401_and_sets_no_cookie() {
    let f = fixture().await;
    Mock::given(method("POST"))
        .and(path("/realms/master/protocol/openid-connect/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            serde_json::json!({"error": "invalid_grant", "error_description": "Code not valid"}),
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
    assert_eq!(d.status, StatusCode::UNAUTHORIZED, "{}", d.body);
    assert!(
        d.body.contains("invalid_grant (Code not valid)"),
        "{}",
        d.body
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
