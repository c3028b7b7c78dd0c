//! Envoy metadata: `autoMapFromMetadata` parameters from the check's `metadata_context`, and
//! `dynamicMetadataFromClaims` on every allowed request.

use http::StatusCode;

use super::signed::{SignedIdp, callback, flow_for, log_in, with_fields};
use crate::flow::{CheckRequest, Decision};
use crate::server::StoreChoice;

fn with_metadata(
    mut check: CheckRequest,
    namespace: &str,
    value: serde_json::Value,
) -> CheckRequest {
    check.metadata.insert(namespace.to_owned(), value);
    check
}

fn location_params(d: Decision) -> Vec<(String, String)> {
    let Decision::Deny(d) = d else {
        panic!("expected the redirect to the IdP");
    };
    assert_eq!(d.status, StatusCode::FOUND, "{}", d.body);
    let location = d
        .headers
        .iter()
        .find(|(n, _)| n == "location")
        .map(|(_, v)| v.clone())
        .unwrap();
    url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

const AUTO_MAP: &str =
    "        authEndpointQueryParams: {prompt: consent}\n        autoMapFromMetadata: {}\n";

#[tokio::test]
async fn authorization_parameters_come_from_the_metadata_namespace_but_never_replace_ours() {
    let idp = SignedIdp::start().await;
    let (flow, _clock) = flow_for(
        &idp,
        with_fields(AUTO_MAP),
        StoreChoice::Memory,
        "127.0.0.1:1",
        &[],
    );
    let check = with_metadata(
        CheckRequest::new("GET", "http", "172.18.0.4", "/openai"),
        "solo_authconfig_oidc",
        serde_json::json!({
            "authEndpointQueryParams": {
                "prompt": "login",
                "acr_values": "gold",
                "max_age": 300,
                "state": "attacker",
                "redirect_uri": "https://evil.example/",
                "nested": {"x": 1},
            },
        }),
    );
    let params = location_params(flow.decide(&check).await);
    let value = |name: &str| -> Vec<&str> {
        params
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(
        value("prompt"),
        ["login"],
        "the metadata wins over the config"
    );
    assert_eq!(value("acr_values"), ["gold"]);
    assert_eq!(value("max_age"), ["300"]);
    assert_eq!(value("state").len(), 1);
    assert_ne!(value("state"), ["attacker"]);
    assert_eq!(value("redirect_uri"), ["http://172.18.0.4:80/openai"]);
    assert!(value("nested").is_empty());
}

#[tokio::test]
async fn metadata_of_another_namespace_or_without_auto_map_is_ignored() {
    let idp = SignedIdp::start().await;
    let metadata = serde_json::json!({"auth_endpoint_query_params": {"acr_values": "gold"}});
    for (fields, namespace) in [
        (AUTO_MAP, "other"),
        (
            "        authEndpointQueryParams: {prompt: consent}\n",
            "solo_authconfig_oidc",
        ),
    ] {
        let (flow, _clock) = flow_for(
            &idp,
            with_fields(fields),
            StoreChoice::Memory,
            "127.0.0.1:1",
            &[],
        );
        let check = with_metadata(
            CheckRequest::new("GET", "http", "172.18.0.4", "/openai"),
            namespace,
            metadata.clone(),
        );
        let params = location_params(flow.decide(&check).await);
        assert!(
            !params.iter().any(|(k, _)| k == "acr_values"),
            "{namespace}"
        );
        assert!(params.iter().any(|(k, v)| k == "prompt" && v == "consent"));
    }
}

#[tokio::test]
async fn token_parameters_come_from_the_callbacks_metadata() {
    let idp = SignedIdp::start().await;
    let (flow, _clock) = flow_for(
        &idp,
        with_fields(
            "        tokenEndpointQueryParams: {audience: configured, resource: r}\n        autoMapFromMetadata: {namespace: gw.params}\n",
        ),
        StoreChoice::Memory,
        "127.0.0.1:1",
        &[],
    );
    let (issued, check) = callback(&flow, "");
    let check = with_metadata(
        check,
        "gw.params",
        serde_json::json!({"token_endpoint_query_params": {"audience": "llm", "code": "forged"}}),
    );
    idp.token_answers(&idp.sign(&idp.claims(&issued.login.nonce)))
        .await;
    let Decision::Deny(d) = flow.decide(&check).await else {
        panic!("a callback is never allowed");
    };
    assert_eq!(d.status, StatusCode::FOUND, "{}", d.body);
    let form = &idp.forms("token").await[0];
    assert_eq!(form["audience"], "llm");
    assert_eq!(form["resource"], "r");
    assert_eq!(form["code"], "the-code");
}

#[tokio::test]
async fn claims_become_dynamic_metadata_with_their_structure() {
    let idp = SignedIdp::start().await;
    let (flow, _clock) = flow_for(
        &idp,
        with_fields(
            "        dynamicMetadataFromClaims: {email: email, groups: groups, absent: not_a_claim}\n",
        ),
        StoreChoice::Memory,
        "127.0.0.1:1",
        &[],
    );
    let cookie = log_in(&flow, &idp, |_| {}).await;
    let check =
        CheckRequest::new("GET", "http", "172.18.0.4", "/openai").with_header("cookie", &cookie);
    let Decision::Allow(allow) = flow.decide(&check).await else {
        panic!("the session is allowed");
    };
    assert_eq!(
        serde_json::Value::Object(allow.dynamic_metadata),
        serde_json::json!({"email": "user1@example.com", "groups": ["llm-users", "admins"]})
    );
}
