use std::sync::Arc;

use super::*;
use crate::clock::ManualClock;
use crate::config;
use crate::env::MapEnv;
use crate::server::{StoreChoice, build_flow};

const SEED: &str = include_str!("../../../tests/fixtures/seed-step2.yaml");

/// The seed's AuthConfig (`appUrl` `http://172.18.0.4:80`, callback on `/openai`) with a
/// `logoutPath`, against a wiremock IdP; sessions in memory.
async fn flow() -> (Flow, wiremock::MockServer) {
    let idp = crate::flow::tests::idp().await;
    let text = SEED.replace(
        "callbackPath: /openai",
        "callbackPath: /openai\n        logoutPath: /logout",
    );
    let env = MapEnv::default()
        .with("KEYCLOAK_SECRET", "s3cr3t")
        .with("KEYCLOAK_CLIENT", "agentgateway")
        .with("KEYCLOAK_URL", idp.uri())
        .with("INGRESS_GW_ADDRESS", "172.18.0.4")
        .with("SIGNING_KEY", "k".repeat(32));
    let loaded = config::load_str("seed.yaml", &text, &env).unwrap();
    let clock = ManualClock::new(1_768_504_473);
    let flow = build_flow(&loaded, StoreChoice::Memory, Arc::new(clock)).unwrap();
    (flow, idp)
}

fn get(target: &str) -> CheckRequest {
    CheckRequest::new("GET", "http", "172.18.0.4", target).with_header("accept", "text/html")
}

#[tokio::test]
async fn only_a_callback_or_a_logout_changes_state() {
    let (flow, _idp) = flow().await;
    let cases = [
        ("a callback", "/openai?code=c&state=s", true),
        ("the IdP's refusal", "/openai?error=access_denied", true),
        (
            "a malformed callback (answered with a 400)",
            "/openai?code=a&code=b&state=s",
            true,
        ),
        ("the logout path", "/logout", true),
        ("the callback path without code", "/openai", false),
        ("code and state elsewhere", "/chat?code=c&state=s", false),
        ("an ordinary request", "/v1/models", false),
    ];
    for (label, target, want) in cases {
        assert_eq!(
            changes_state(&flow, &get(target)),
            want,
            "{label}: {target}"
        );
    }
}

fn state_url(decision: &Decision) -> String {
    let Decision::Deny(deny) = decision else {
        panic!("a sign-in answer is never an allow: {decision:?}");
    };
    assert_eq!(deny.status, StatusCode::FOUND, "{deny:?}");
    let location = deny
        .headers
        .iter()
        .find(|(n, _)| n == http::header::LOCATION)
        .map(|(_, v)| url::Url::parse(v).unwrap())
        .expect("a location");
    let state = location
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("a state");
    let codec = crate::state::StateCodec::new(&crate::secret::Secret::new("k".repeat(32)));
    codec.verify(&state, 1_768_504_473).unwrap().claims.state
}

#[tokio::test]
async fn a_named_return_url_is_kept_only_on_the_app_origin() {
    let (flow, _idp) = flow().await;
    let request = get("/extauth/sign_in");
    let cases = [
        (
            "absolute",
            "http://172.18.0.4/openai?x=1",
            "http://172.18.0.4/openai?x=1",
        ),
        (
            "with appUrl's own port",
            "http://172.18.0.4:80/chat",
            "http://172.18.0.4/chat",
        ),
        (
            "a path",
            "/chat?q=%2F%2Fevil",
            "http://172.18.0.4/chat?q=%2F%2Fevil",
        ),
        ("another host", "http://evil.example/", "http://172.18.0.4/"),
        ("scheme-relative", "//evil.example/x", "http://172.18.0.4/"),
        ("a backslash path", "/\\evil.example", "http://172.18.0.4/"),
        (
            "userinfo",
            "http://172.18.0.4@evil.example/",
            "http://172.18.0.4/",
        ),
        (
            "another port",
            "http://172.18.0.4:8080/",
            "http://172.18.0.4/",
        ),
        ("javascript", "javascript:alert(1)", "http://172.18.0.4/"),
        ("empty", "", "http://172.18.0.4/"),
    ];
    for (label, url, want) in cases {
        let (target, decision, _) = answer(&flow, &request, Original::Named(url)).await;
        assert_eq!(target.method, "GET", "{label}");
        assert_eq!(state_url(&decision), want, "{label}: {url}");
    }
    let (_, root, _) = answer(&flow, &request, Original::AppRoot).await;
    assert_eq!(state_url(&root), "http://172.18.0.4/");
}

#[tokio::test]
async fn a_described_request_is_answered_as_the_check_would_answer_it() {
    let (flow, _idp) = flow().await;
    let described = CheckRequest::new("POST", "http", "172.18.0.4", "/openai?model=x")
        .with_header("accept", "text/html");
    let (target, decision, config) = answer(&flow, &described, Original::Described).await;
    assert_eq!(
        (target.method.as_str(), target.path.as_str()),
        ("POST", "/openai")
    );
    assert_eq!(state_url(&decision), "http://172.18.0.4/openai?model=x");
    assert_eq!(config, "agentgateway-system/oauth-authorization-code");
    // An API client gets its 401, not a login page.
    let api = CheckRequest::new("POST", "http", "172.18.0.4", "/openai")
        .with_header("accept", "application/json");
    let (_, decision, _) = answer(&flow, &api, Original::Described).await;
    let Decision::Deny(deny) = decision else {
        panic!("{decision:?}");
    };
    assert_eq!(deny.status, StatusCode::UNAUTHORIZED);
}
