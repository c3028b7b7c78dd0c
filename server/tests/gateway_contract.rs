//! What extauth gives a gateway and takes from it, over real sockets (extauth and the mock
//! IdP on port 0, the memory store): `X-Content-Type-Options: nosniff` on every answer of the
//! HTTP, gRPC and admin listeners; no attacker text in any body; the gRPC metadata both ways
//! (`dynamicMetadataFromClaims` out, `autoMapFromMetadata` in); request bodies (a back-channel
//! `logout_token`) reaching the flow through both listeners.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::google::protobuf::Struct;
use extauth::server::OpsOptions;
use support::{APP_HOST, Answer, Stack};

mod support;

const FIELDS: &str = "        backChannelLogout: {path: /bc-logout}\n        frontChannelLogout: {path: /fc-logout}\n        dynamicMetadataFromClaims: {email: email, user: preferred_username}\n        autoMapFromMetadata: {}\n";

async fn stack() -> Stack {
    let idp = support::idp().await;
    let loaded = support::loaded_edited(idp.base_url().as_str(), 1, |m| {
        m.replace("${INGRESS_GW_ADDRESS}:80", APP_HOST)
            .replace("        headers:\n", &format!("{FIELDS}        headers:\n"))
    });
    let server = support::start_loaded(loaded, false, OpsOptions::default()).await;
    Stack {
        idp,
        server,
        http: support::client(),
        redis: None,
    }
}

async fn http(stack: &Stack, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut all = vec![("host", APP_HOST)];
    all.extend_from_slice(headers);
    support::http_request(stack, method, path, &all).await
}

fn assert_nosniff(label: &str, answer: &Answer) {
    assert_eq!(
        answer.header("x-content-type-options"),
        Some("nosniff"),
        "{label}: {answer:?}"
    );
}

fn json(value: serde_json::Value) -> Struct {
    extauth::transport::pb_struct::from_json(value.as_object().unwrap())
}

#[tokio::test]
async fn every_answer_of_the_http_and_admin_listeners_carries_nosniff() {
    let stack = stack().await;
    let (cookie, _) = support::forward_auth_login(&stack).await;
    let cases: Vec<(&str, Answer, u16)> = vec![
        (
            "login redirect",
            http(&stack, "GET", "/openai", &[]).await,
            302,
        ),
        (
            "401 for XHR",
            http(
                &stack,
                "GET",
                "/openai",
                &[("x-requested-with", "XMLHttpRequest")],
            )
            .await,
            401,
        ),
        (
            "bad state",
            http(&stack, "GET", "/openai?code=c&state=x", &[]).await,
            400,
        ),
        (
            "idp error",
            http(&stack, "GET", "/openai?error=access_denied", &[]).await,
            401,
        ),
        (
            "unknown AuthConfig",
            http(&stack, "GET", "/openai", &[("x-extauth-config", "a/b")]).await,
            403,
        ),
        (
            "wrong method",
            http(&stack, "GET", "/bc-logout", &[]).await,
            405,
        ),
        (
            "allowed",
            support::forward_auth(&stack, "GET", "/openai", &[("cookie", &cookie)]).await,
            200,
        ),
    ];
    for (label, answer, status) in &cases {
        assert_eq!(answer.status, *status, "{label}: {answer:?}");
        assert_nosniff(label, answer);
    }
    for path in ["/healthz", "/readyz", "/metrics"] {
        let answer = support::admin_get(&stack, path).await;
        assert_nosniff(path, &answer);
    }
}

#[tokio::test]
async fn every_denial_over_grpc_carries_nosniff() {
    let stack = stack().await;
    let grpc = stack.server.grpc_addr();
    for (path, status) in [
        ("/openai", 302),
        ("/openai?code=c&state=x", 400),
        ("/openai?error=access_denied", 401),
    ] {
        let (answer, _) = support::grpc_check(grpc, "GET", path, &[], |_| {}).await;
        assert_eq!(answer.status, status, "{path}: {answer:?}");
        assert_nosniff(path, &answer);
    }
}

#[tokio::test]
async fn a_scripted_callback_error_is_answered_without_the_script_on_both_transports() {
    let stack = stack().await;
    let path =
        "/openai?error=%3Cscript%3Ealert(1)%3C%2Fscript%3E&error_description=%3Cb%3Ehi%3C%2Fb%3E";
    let body = "The identity provider did not complete the login: unknown error.\n";
    let over_http = http(&stack, "GET", path, &[]).await;
    let (over_grpc, _) =
        support::grpc_check(stack.server.grpc_addr(), "GET", path, &[], |_| {}).await;
    for (label, answer) in [("http", over_http), ("grpc", over_grpc)] {
        assert_eq!(answer.status, 401, "{label}");
        assert_eq!(answer.body, body, "{label}");
        assert_eq!(
            answer.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "{label}"
        );
        assert_nosniff(label, &answer);
    }
}

#[tokio::test]
async fn claims_come_back_as_grpc_dynamic_metadata() {
    let stack = stack().await;
    let (cookie, _) = support::forward_auth_login(&stack).await;
    let (answer, raw) = support::grpc_check(
        stack.server.grpc_addr(),
        "POST",
        "/openai",
        &[("cookie", &cookie)],
        |_| {},
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let metadata = raw.dynamic_metadata.expect("dynamic_metadata on the allow");
    assert_eq!(
        extauth::transport::pb_struct::to_json(&metadata),
        serde_json::json!({"email": "user1@example.com", "user": "user1"})
    );
    // A denial carries none.
    let (_, raw) =
        support::grpc_check(stack.server.grpc_addr(), "POST", "/openai", &[], |_| {}).await;
    assert_eq!(raw.dynamic_metadata, None);
}

#[tokio::test]
async fn metadata_context_parameters_reach_the_authorization_request_over_grpc() {
    let stack = stack().await;
    let (answer, _) = support::grpc_check(stack.server.grpc_addr(), "GET", "/openai", &[], |r| {
        let attributes = r.attributes.as_mut().unwrap();
        let mut metadata = Metadata::default();
        metadata.filter_metadata.insert(
            "solo_authconfig_oidc".into(),
            json(serde_json::json!({"authEndpointQueryParams": {"acr_values": "gold"}})),
        );
        attributes.metadata_context = Some(metadata);
    })
    .await;
    assert_eq!(answer.status, 302, "{answer:?}");
    let location = url::Url::parse(answer.header("location").unwrap()).unwrap();
    assert!(
        location
            .query_pairs()
            .any(|(k, v)| k == "acr_values" && v == "gold"),
        "{location}"
    );
}

#[tokio::test]
async fn a_logout_token_in_the_body_reaches_the_flow_through_both_listeners() {
    let stack = stack().await;
    let invalid = serde_json::json!({
        "error": "invalid_request",
        "error_description": "the logout token is not valid",
    });
    let url = format!("http://{}/bc-logout", stack.server.http_addr());
    let over_http = Answer::read(
        stack
            .http
            .post(&url)
            .header("host", APP_HOST)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("logout_token=not-a-jwt")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let (over_grpc, _) = support::grpc_check(
        stack.server.grpc_addr(),
        "POST",
        "/bc-logout",
        &[("content-type", "application/x-www-form-urlencoded")],
        |r| {
            let http = r.attributes.as_mut().unwrap().request.as_mut().unwrap();
            http.http.as_mut().unwrap().body = "logout_token=not-a-jwt".into();
        },
    )
    .await;
    for (label, answer) in [("http", over_http), ("grpc", over_grpc)] {
        assert_eq!(answer.status, 400, "{label}: {answer:?}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&answer.body).unwrap(),
            invalid,
            "{label}"
        );
        assert_eq!(
            answer.header("content-type"),
            Some("application/json"),
            "{label}"
        );
    }
    // Without the body (a gateway that does not forward it) the answer says so.
    let (answer, _) =
        support::grpc_check(stack.server.grpc_addr(), "POST", "/bc-logout", &[], |_| {}).await;
    assert_eq!(answer.status, 400);
    assert!(answer.body.contains("with_request_body"), "{answer:?}");
}
