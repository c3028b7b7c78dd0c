//! Discovery against a wiremock IdP: the trailing-slash trap, mismatches and outages.

use std::sync::Arc;

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::clock::ManualClock;
use crate::config;
use crate::env::MapEnv;

const SEED: &str = include_str!("../../tests/fixtures/seed-step2.yaml");

fn provider(issuer_url_base: &str, clock: ManualClock) -> Provider {
    let env = MapEnv::default()
        .with("KEYCLOAK_SECRET", "s")
        .with("KEYCLOAK_CLIENT", "c")
        .with("KEYCLOAK_URL", issuer_url_base)
        .with("INGRESS_GW_ADDRESS", "gw");
    let loaded = config::load_str("s.yaml", SEED, &env).unwrap();
    Provider::new(loaded.auth_configs[0].clone(), Arc::new(clock)).unwrap()
}

async fn serve_discovery(server: &MockServer, issuer: &str) {
    Mock::given(method("GET"))
        .and(path("/realms/master/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/auth"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{}/certs", server.uri()),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        })))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/certs"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"keys": []})))
        .mount(server)
        .await;
}

#[test]
fn discovery_url_has_exactly_one_slash() {
    assert_eq!(
        discovery_url("http://k/realms/master/"),
        "http://k/realms/master/.well-known/openid-configuration"
    );
    assert_eq!(
        discovery_url("http://k/realms/master"),
        "http://k/realms/master/.well-known/openid-configuration"
    );
}

#[tokio::test]
async fn issuer_url_with_trailing_slash_matches_keycloaks_issuer_without_it() {
    let server = MockServer::start().await;
    let issuer = format!("{}/realms/master", server.uri());
    serve_discovery(&server, &issuer).await;
    let d = provider(&server.uri(), ManualClock::new(0))
        .discovered()
        .await
        .unwrap();
    assert_eq!(d.issuer, issuer);
    assert_eq!(d.authorization_endpoint, format!("{issuer}/auth"));
}

#[tokio::test]
async fn another_issuer_in_discovery_is_rejected() {
    let server = MockServer::start().await;
    serve_discovery(&server, "http://evil.example/realms/master").await;
    let err = provider(&server.uri(), ManualClock::new(0))
        .discovered()
        .await
        .unwrap_err();
    assert!(matches!(err, OidcError::IssuerMismatch { .. }), "{err}");
    assert!(err.is_unavailable());
}

#[tokio::test]
async fn discovery_is_cached_then_refreshed_after_the_poll_interval() {
    let server = MockServer::start().await;
    serve_discovery(&server, &format!("{}/realms/master", server.uri())).await;
    let clock = ManualClock::new(0);
    let p = provider(&server.uri(), clock.clone());
    for _ in 0..3 {
        p.discovered().await.unwrap();
    }
    let count = |reqs: Vec<wiremock::Request>| {
        reqs.iter()
            .filter(|r| r.url.path().ends_with("openid-configuration"))
            .count()
    };
    assert_eq!(count(server.received_requests().await.unwrap()), 1);
    clock.advance(DISCOVERY_TTL.as_secs() as i64);
    p.discovered().await.unwrap();
    assert_eq!(count(server.received_requests().await.unwrap()), 2);
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_previous_document() {
    let server = MockServer::start().await;
    serve_discovery(&server, &format!("{}/realms/master", server.uri())).await;
    let clock = ManualClock::new(0);
    let p = provider(&server.uri(), clock.clone());
    p.discovered().await.unwrap();
    server.reset().await;
    clock.advance(DISCOVERY_TTL.as_secs() as i64 + 1);
    assert!(p.discovered().await.is_ok());
}

#[tokio::test]
async fn discovery_errors_say_what_failed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let err = provider(&server.uri(), ManualClock::new(0))
        .discovered()
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("/realms/master/.well-known/openid-configuration"),
        "{msg}"
    );
    assert!(msg.contains("HTTP 500"), "{msg}");
}

fn provider_with(extra: &str, clock: ManualClock) -> Provider {
    let env = MapEnv::default()
        .with("KEYCLOAK_SECRET", "s")
        .with("KEYCLOAK_CLIENT", "c")
        .with("KEYCLOAK_URL", "http://idp")
        .with("INGRESS_GW_ADDRESS", "gw");
    let text = SEED.replace("        headers:\n", &format!("{extra}        headers:\n"));
    let loaded = config::load_str("s.yaml", &text, &env).unwrap();
    Provider::new(loaded.auth_configs[0].clone(), Arc::new(clock)).unwrap()
}

#[test]
fn a_failed_refetch_is_given_back_and_retried_after_a_second() {
    let clock = ManualClock::new(1_000_000);
    // The default policy: one refetch per poll interval.
    let p = provider_with("", clock.clone());
    assert!(p.may_refetch_jwks());
    p.refetch_failed(true);
    assert!(!p.may_refetch_jwks(), "not within the retry delay");
    clock.advance(FAILED_REFETCH_RETRY_SECS);
    assert!(
        p.may_refetch_jwks(),
        "the failed one did not use up the interval's budget"
    );
    assert!(!p.may_refetch_jwks(), "a successful one does");

    let always = provider_with(
        "        jwksCacheRefreshPolicy: {always: {}}\n",
        clock.clone(),
    );
    assert!(always.may_refetch_jwks());
    always.refetch_failed(true);
    assert!(
        !always.may_refetch_jwks(),
        "`always` also waits after a failure"
    );
    clock.advance(FAILED_REFETCH_RETRY_SECS);
    assert!(always.may_refetch_jwks());
}

#[test]
fn unknown_kid_refetches_are_rate_limited_per_poll_interval() {
    let clock = ManualClock::new(1_000_000);
    let p = provider_with(
        "        discoveryPollInterval: 60s\n        jwksCacheRefreshPolicy: {maxIdpReqPerPollingInterval: 2}\n",
        clock.clone(),
    );
    assert!(p.may_refetch_jwks());
    assert!(p.may_refetch_jwks());
    assert!(
        !p.may_refetch_jwks(),
        "a third within the interval is refused"
    );
    clock.advance(60);
    assert!(p.may_refetch_jwks(), "a new interval");

    let never = provider_with(
        "        jwksCacheRefreshPolicy: {never: {}}\n",
        clock.clone(),
    );
    assert!(!never.may_refetch_jwks());
    let always = provider_with("        jwksCacheRefreshPolicy: {always: {}}\n", clock);
    assert!((0..100).all(|_| always.may_refetch_jwks()));
}

#[tokio::test]
async fn the_poll_interval_and_overrides_apply_to_discovery() {
    let server = MockServer::start().await;
    let issuer = format!("{}/realms/master", server.uri());
    serve_discovery(&server, &issuer).await;
    let clock = ManualClock::new(1_000_000);
    let env = MapEnv::default()
        .with("KEYCLOAK_SECRET", "s")
        .with("KEYCLOAK_CLIENT", "c")
        .with("KEYCLOAK_URL", server.uri())
        .with("INGRESS_GW_ADDRESS", "gw");
    let text = SEED.replace(
        "        headers:\n",
        "        discoveryPollInterval: 10s\n        discoveryOverride: {endSessionEndpoint: 'https://idp.example/logout', authEndpoint: 'https://idp.example/auth'}\n        headers:\n",
    );
    let loaded = config::load_str("s.yaml", &text, &env).unwrap();
    let p = Provider::new(loaded.auth_configs[0].clone(), Arc::new(clock.clone())).unwrap();
    let d = p.discovered().await.unwrap();
    assert_eq!(d.authorization_endpoint, "https://idp.example/auth");
    assert_eq!(
        d.end_session_endpoint.as_deref(),
        Some("https://idp.example/logout")
    );
    let fetches = || async {
        server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path().ends_with("openid-configuration"))
            .count()
    };
    clock.advance(9);
    p.discovered().await.unwrap();
    assert_eq!(fetches().await, 1);
    clock.advance(1);
    p.discovered().await.unwrap();
    assert_eq!(fetches().await, 2);
}
