//! Discovery, JWKS, health and realm lookup.

use mock_idp::MockIdp;
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{self, redact_base, start};

#[tokio::test]
async fn discovery_document_has_keycloak_shape() {
    let f = start().await;
    let url = format!("{}/.well-known/openid-configuration", f.issuer());
    let resp = f.rp.get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    let doc: Value = serde_json::from_str(&redact_base(&text, &f.idp)).unwrap();
    insta::assert_json_snapshot!("discovery", doc);
}

#[tokio::test]
async fn discovery_issuer_matches_the_issuer_the_tokens_carry() {
    let f = start().await;
    let doc: Value =
        f.rp.get(format!("{}/.well-known/openid-configuration", f.issuer()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(doc["issuer"], f.issuer());
    let tokens = f.tokens(&[]).await;
    let claims = f
        .verify(tokens["id_token"].as_str().unwrap(), common::CLIENT_ID)
        .await;
    assert_eq!(claims["iss"], f.issuer());
}

#[tokio::test]
async fn jwks_publishes_one_rs256_signing_key() {
    let f = start().await;
    let jwks: Value = f.jwks().await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["e"], "AQAB");
    assert!(key["kid"].as_str().is_some_and(|k| !k.is_empty()));
    assert!(key["n"].as_str().unwrap().len() >= 342, "2048-bit modulus");
    // The same key through the library's JWK type.
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone()).unwrap();
    assert!(jsonwebtoken::DecodingKey::from_jwk(&set.keys[0]).is_ok());
}

#[tokio::test]
async fn unknown_realm_is_keycloaks_404() {
    let f = start().await;
    let base = f.idp.base_url();
    for path in [
        "realms/nope/.well-known/openid-configuration",
        "realms/nope/protocol/openid-connect/certs",
        "realms/nope/protocol/openid-connect/auth?client_id=agentgateway",
    ] {
        let resp = f.rp.get(base.join(path).unwrap()).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": "Realm does not exist"}),
            "{path}"
        );
    }
}

#[tokio::test]
async fn readiness_probe_answers_up() {
    let f = start().await;
    let resp =
        f.rp.get(f.idp.base_url().join("health/ready").unwrap())
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "UP");
}

#[tokio::test]
async fn public_host_puts_the_bound_port_in_every_url() {
    let idp = MockIdp::builder()
        .realm(common::test_realm())
        .public_host("localhost")
        .start()
        .await
        .unwrap();
    let port = idp.addr().port();
    assert_eq!(idp.base_url().as_str(), format!("http://localhost:{port}/"));
    assert_eq!(
        idp.issuer("master"),
        format!("http://localhost:{port}/realms/master")
    );
    let doc: Value = reqwest::get(format!(
        "http://127.0.0.1:{port}/realms/master/.well-known/openid-configuration"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        doc["authorization_endpoint"],
        format!("http://localhost:{port}/realms/master/protocol/openid-connect/auth")
    );
    idp.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_accepting_connections() {
    let f = start().await;
    let addr = f.idp.addr();
    f.idp.shutdown().await;
    let result = reqwest::get(format!("http://{addr}/health/ready")).await;
    assert!(result.is_err(), "server still answering after shutdown");
}

#[tokio::test]
async fn starting_without_a_realm_is_an_error() {
    let err = MockIdp::builder().start().await.unwrap_err();
    assert!(matches!(err, mock_idp::Error::NoRealm), "{err}");
}

#[tokio::test]
async fn several_realms_are_served_side_by_side() {
    let other = mock_idp::Realm::from_json_str(r#"{"realm":"other"}"#).unwrap();
    let idp = MockIdp::builder()
        .realm(common::test_realm())
        .realm(other)
        .start()
        .await
        .unwrap();
    for realm in ["master", "other"] {
        let url = format!("{}/.well-known/openid-configuration", idp.issuer(realm));
        let doc: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        assert_eq!(doc["issuer"], idp.issuer(realm), "{realm}");
    }
}

#[tokio::test]
async fn the_same_realm_twice_is_an_error() {
    let err = MockIdp::builder()
        .realm(common::test_realm())
        .realm(common::test_realm())
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(err, mock_idp::Error::DuplicateRealm(ref n) if n == "master"),
        "{err}"
    );
}

#[tokio::test]
async fn a_bad_public_host_is_rejected_at_start() {
    let err = MockIdp::builder()
        .realm(common::test_realm())
        .public_host("bad host/x")
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, mock_idp::Error::PublicUrl { .. }), "{err}");
}
