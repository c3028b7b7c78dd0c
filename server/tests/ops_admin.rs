//! The admin listener over real sockets: `/healthz`, `/readyz` (Redis and discovery per
//! AuthConfig) and `/metrics` (Prometheus text). Metrics are process-wide, so assertions
//! compare values before and after.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod support;

use extauth::server::OpsOptions;
use support::*;

/// The value of the sample `line_prefix` (metric name with its labels) in a scrape.
fn sample(scrape: &str, line_prefix: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(line_prefix)?.strip_prefix(' '))
        .map_or(0.0, |v| v.parse().unwrap())
}

fn decisions(scrape: &str, outcome: &str, transport: &str) -> f64 {
    sample(
        scrape,
        &format!(
            "extauth_decisions_total{{config=\"{CONFIG_ID}\",outcome=\"{outcome}\",transport=\"{transport}\"}}"
        ),
    )
}

#[tokio::test]
async fn healthz_answers_while_the_process_serves() {
    let stack = stack(Store::Memory, OpsOptions::default()).await;
    let health = admin_get(&stack, "/healthz").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    stack.server.shutdown().await;
}

#[tokio::test]
async fn metrics_count_decisions_by_outcome_and_config_and_time_them() {
    let stack = stack(Store::Memory, OpsOptions::default()).await;
    let before = admin_get(&stack, "/metrics").await;
    assert_eq!(before.status, 200);
    assert!(
        before
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")),
        "{before:?}"
    );

    let (cookie, _) = forward_auth_login(&stack).await;
    let ok = forward_auth(&stack, "GET", "/openai", &[("cookie", cookie.as_str())]).await;
    assert_eq!(ok.status, 200);
    let bad = forward_auth(&stack, "GET", "/openai?code=x&state=not-a-state", &[]).await;
    assert_eq!(bad.status, 400, "{bad:?}");
    let unknown = forward_auth(&stack, "GET", "/", &[("x-extauth-config", "nope/nope")]).await;
    assert_eq!(unknown.status, 403, "{unknown:?}");

    let after = admin_get(&stack, "/metrics").await.body;
    let delta =
        |outcome| decisions(&after, outcome, "http") - decisions(&before.body, outcome, "http");
    assert_eq!(
        delta("redirect"),
        2.0,
        "login and callback redirect\n{after}"
    );
    assert_eq!(delta("allow"), 1.0, "{after}");
    assert_eq!(delta("deny_bad_request"), 1.0, "{after}");
    let unknown_line =
        "extauth_decisions_total{config=\"unknown\",outcome=\"deny_forbidden\",transport=\"http\"}";
    assert!(sample(&after, unknown_line) >= 1.0, "{after}");
    assert!(
        !after.contains("nope/nope"),
        "client-chosen names never become labels"
    );

    let checks = "extauth_check_duration_seconds_count{transport=\"http\"}";
    assert!(
        sample(&after, checks) - sample(&before.body, checks) >= 5.0,
        "{after}"
    );
    for call in ["discovery", "jwks", "token"] {
        let line = format!("extauth_idp_request_duration_seconds_count{{call=\"{call}\"}}");
        assert!(sample(&after, &line) >= 1.0, "{line}\n{after}");
    }
    assert!(
        after.contains("extauth_errors_total{kind=\"state"),
        "the bad state is counted by kind\n{after}"
    );
    assert!(after.contains("# TYPE extauth_redis_command_duration_seconds histogram"));
    assert!(after.contains("# TYPE extauth_session_refreshes_total counter"));
    assert!(after.contains("# TYPE extauth_errors_total counter"));
    stack.server.shutdown().await;
}

#[tokio::test]
async fn readyz_is_ok_when_redis_answers_and_discovery_is_fetched() {
    let stack = stack(Store::Redis, OpsOptions::default()).await;
    let ready = admin_get(&stack, "/readyz").await;
    assert_eq!(ready.status, 200, "{ready:?}");
    let body: serde_json::Value = serde_json::from_str(&ready.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "ready": true,
            "configs": [{"config": CONFIG_ID, "redis": "ok", "discovery": "ok"}],
        })
    );
    stack.server.shutdown().await;
}

#[tokio::test]
async fn readyz_is_503_and_names_redis_when_it_stops() {
    let mut stack = stack(Store::Redis, OpsOptions::default()).await;
    assert_eq!(admin_get(&stack, "/readyz").await.status, 200);
    let pings = "extauth_redis_command_duration_seconds_count{op=\"ping\"}";
    assert!(sample(&admin_get(&stack, "/metrics").await.body, pings) >= 1.0);
    stack.redis.as_mut().unwrap().stop();
    let down = admin_get(&stack, "/readyz").await;
    assert_eq!(down.status, 503, "{down:?}");
    let body: serde_json::Value = serde_json::from_str(&down.body).unwrap();
    assert_eq!(body["ready"], false);
    let config = &body["configs"][0];
    assert_eq!(config["config"], CONFIG_ID);
    assert_eq!(config["discovery"], "ok", "discovery stays cached");
    assert!(
        config["redis"].as_str().unwrap().starts_with("error: "),
        "{body}"
    );
    stack.server.shutdown().await;
}

#[tokio::test]
async fn readyz_is_503_and_names_discovery_when_the_idp_never_answered() {
    // Loaded against a port where no IdP listens: discovery cannot be fetched.
    let dead = format!(
        "http://127.0.0.1:{}",
        extauth::testing::free_port().unwrap()
    );
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = extauth::server::start(
        loaded(&dead, 1),
        extauth::server::ServeOptions {
            grpc: any,
            http: any,
            admin: any,
            session_store: extauth::server::StoreChoice::Memory,
        },
    )
    .await
    .unwrap();
    let url = format!("http://{}/readyz", server.admin_addr());
    let answer = Answer::read(client().get(url).send().await.unwrap()).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(
        body["configs"][0]["redis"], "ok",
        "the memory store always answers"
    );
    assert!(
        body["configs"][0]["discovery"]
            .as_str()
            .unwrap()
            .starts_with("error: "),
        "{body}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn grpc_checks_are_counted_under_their_transport() {
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
    use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
    use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};

    let stack = stack(Store::Memory, OpsOptions::default()).await;
    let before = admin_get(&stack, "/metrics").await.body;
    let mut grpc = AuthorizationClient::connect(format!("http://{}", stack.server.grpc_addr()))
        .await
        .unwrap();
    let request = CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                time: None,
                http: Some(HttpRequest {
                    method: "POST".into(),
                    path: "/openai".into(),
                    host: APP_HOST.into(),
                    scheme: "http".into(),
                    ..HttpRequest::default()
                }),
            }),
            ..AttributeContext::default()
        }),
    };
    grpc.check(request).await.unwrap();
    let after = admin_get(&stack, "/metrics").await.body;
    assert_eq!(
        decisions(&after, "redirect", "grpc") - decisions(&before, "redirect", "grpc"),
        1.0,
        "{after}"
    );
    let checks = "extauth_check_duration_seconds_count{transport=\"grpc\"}";
    assert!(sample(&after, checks) >= 1.0, "{after}");
    stack.server.shutdown().await;
}
