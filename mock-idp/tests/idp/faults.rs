//! Every fault, switched on through the admin API, observed from the relying party's side.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::admin::decode_part;
use crate::common::{CLIENT_ID, REDIRECT_URI, start};

/// Logs in, exchanges the code, and returns the ID token.
async fn id_token_with(fault: &str) -> (crate::common::Fixture, String) {
    let f = start().await;
    f.add_fault(json!({"kind": fault, "realm": "master", "client": CLIENT_ID}))
        .await;
    let tokens = f.tokens(&[("nonce", "n0nce")]).await;
    let token = tokens["id_token"].as_str().unwrap().to_owned();
    (f, token)
}

#[tokio::test]
async fn id_token_claim_faults_spoil_exactly_their_claim() {
    type Check = fn(&Value, &Value, &str) -> bool;
    let cases: [(&str, Check); 10] = [
        ("id_token_issuer", |c, _, iss| c["iss"] != iss),
        ("id_token_audience", |c, _, _| c["aud"] != CLIENT_ID),
        ("id_token_nonce", |c, _, _| c["nonce"] != "n0nce"),
        ("id_token_missing_sub", |c, _, _| c.get("sub").is_none()),
        ("id_token_missing_aud", |c, _, _| c.get("aud").is_none()),
        ("id_token_missing_iat", |c, _, _| c.get("iat").is_none()),
        ("id_token_expired", |c, _, _| {
            c["exp"].as_u64().unwrap() + 3000 < c["auth_time"].as_u64().unwrap()
        }),
        ("id_token_iat_future", |c, _, _| {
            c["iat"].as_u64().unwrap() > c["auth_time"].as_u64().unwrap() + 3000
        }),
        ("id_token_extra_audience", |c, _, _| {
            c["aud"] == json!([CLIENT_ID, "untrusted-audience"])
        }),
        ("id_token_no_kid", |_, h, _| {
            h.get("kid").is_none() && h["alg"] == "RS256"
        }),
    ];
    for (fault, check) in cases {
        let (f, token) = id_token_with(fault).await;
        let header = decode_part(&token, 0);
        let claims = decode_part(&token, 1);
        assert!(
            check(&claims, &header, &f.issuer()),
            "{fault}: {header} {claims}"
        );
        // Once: the next login is clean.
        let cb = f.login_in(&crate::common::browser(), &[]).await;
        let clean: Value = f.exchange(cb.code(), &[]).await.json().await.unwrap();
        f.verify(clean["id_token"].as_str().unwrap(), CLIENT_ID)
            .await;
    }
}

#[tokio::test]
async fn a_corrupted_signature_does_not_verify_against_the_jwks() {
    let (f, token) = id_token_with("id_token_bad_signature").await;
    let header = decode_part(&token, 0);
    let jwks: jsonwebtoken::jwk::JwkSet = f.jwks().await;
    let jwk = jwks.find(header["kid"].as_str().unwrap()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[CLIENT_ID]);
    let err = jsonwebtoken::decode::<Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &v,
    )
    .unwrap_err();
    assert!(matches!(
        err.kind(),
        jsonwebtoken::errors::ErrorKind::InvalidSignature
    ));
}

#[tokio::test]
async fn alg_none_has_no_signature() {
    let (_f, token) = id_token_with("id_token_alg_none").await;
    assert_eq!(decode_part(&token, 0), json!({"alg": "none", "typ": "JWT"}));
    assert!(token.ends_with('.'));
}

#[tokio::test]
async fn no_kid_with_several_keys_publishes_an_extra_key() {
    let (f, token) = id_token_with("id_token_no_kid_multiple_keys").await;
    assert!(decode_part(&token, 0).get("kid").is_none());
    let jwks: Value = f.jwks().await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_signing_key_rotated_fault_signs_with_a_kid_not_published_before() {
    let f = start().await;
    let before: Value = f.jwks().await;
    f.add_fault(json!({"kind": "signing_key_rotated"})).await;
    let tokens = f.tokens(&[]).await;
    let kid = decode_part(tokens["id_token"].as_str().unwrap(), 0)["kid"].clone();
    assert!(!before.to_string().contains(kid.as_str().unwrap()));
    f.verify(tokens["id_token"].as_str().unwrap(), CLIENT_ID)
        .await;
    assert!(f.idp.faults().list().is_empty(), "it acted when added");
}

#[tokio::test]
async fn the_rotated_at_signing_fault_signs_with_a_key_published_only_then() {
    let f = start().await;
    f.add_fault(json!({"kind": "signing_key_rotated_at_signing", "mode": "sticky"}))
        .await;
    // Added: the JWKS does not change yet (the new key is staged, unpublished).
    let mut published: Value = f.jwks().await;
    assert_eq!(published["keys"].as_array().unwrap().len(), 1);
    let mut seen = Vec::new();
    for login in 0..2 {
        let cb = f.login_in(&crate::common::browser(), &[]).await;
        let tokens: Value = f.exchange(cb.code(), &[]).await.json().await.unwrap();
        let id_token = tokens["id_token"].as_str().unwrap();
        let kid = decode_part(id_token, 0)["kid"].as_str().unwrap().to_owned();
        assert!(
            !published.to_string().contains(&kid),
            "login {login}: the kid was not in the JWKS fetched just before"
        );
        // ...and is in it now, beside the previous key (kept for the overlap).
        f.verify(id_token, CLIENT_ID).await;
        assert!(!seen.contains(&kid), "a new key every time while sticky");
        seen.push(kid);
        published = f.jwks().await;
        // The sticky fault stages the next key off the request path (RSA generation).
        let mut staged = 0;
        for _ in 0..200 {
            let keys: Value = f.admin_get("keys").await;
            staged = keys["staged"].as_u64().unwrap();
            if staged == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(staged, 1, "the next key is staged within 10 s");
    }
    assert_eq!(f.idp.faults().list()[0].hits, 2);
}

#[tokio::test]
async fn refresh_faults_change_the_refreshed_id_token_only() {
    let cases = [
        ("refresh_changed_issuer", "iss"),
        ("refresh_changed_subject", "sub"),
        ("refresh_changed_audience", "aud"),
    ];
    for (fault, claim) in cases {
        let f = start().await;
        f.add_fault(json!({"kind": fault})).await;
        let first = f.tokens(&[]).await;
        let original = f.decode(first["id_token"].as_str().unwrap());
        let resp =
            f.rp.post(f.endpoint("token"))
                .basic_auth(CLIENT_ID, Some(crate::common::CLIENT_SECRET))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", first["refresh_token"].as_str().unwrap()),
                ])
                .send()
                .await
                .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{fault}");
        let refreshed: Value = resp.json().await.unwrap();
        let claims = f.decode(refreshed["id_token"].as_str().unwrap());
        assert_ne!(claims[claim], original[claim], "{fault}");
    }
}

#[tokio::test]
async fn discovery_and_userinfo_faults_change_their_documents() {
    let f = start().await;
    f.add_fault(json!({"kind": "discovery_issuer_mismatch"}))
        .await;
    let url = format!("{}/.well-known/openid-configuration", f.issuer());
    let doc: Value = f.rp.get(&url).send().await.unwrap().json().await.unwrap();
    assert_ne!(doc["issuer"], f.issuer());
    let doc: Value = f.rp.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["issuer"], f.issuer(), "once");

    let tokens = f.tokens(&[]).await;
    let sub = f.decode(tokens["id_token"].as_str().unwrap())["sub"].clone();
    f.add_fault(json!({"kind": "userinfo_sub_mismatch"})).await;
    let info: Value = f.userinfo(&tokens).await.json().await.unwrap();
    assert_ne!(info["sub"], sub);
}

#[tokio::test]
async fn flow_faults_spoil_the_authorization_response() {
    let f = start().await;
    f.add_fault(json!({"kind": "state_altered"})).await;
    let cb = f.login(&[]).await;
    assert_ne!(cb.get("state"), Some("st4te"));
    assert!(cb.get("state").is_some());

    f.add_fault(json!({"kind": "state_dropped"})).await;
    let cb = f.login_in(&crate::common::browser(), &[]).await;
    assert_eq!(cb.get("state"), None);

    f.add_fault(json!({"kind": "authorization_issuer_wrong"}))
        .await;
    let cb = f.login_in(&crate::common::browser(), &[]).await;
    assert_ne!(cb.get("iss"), Some(f.issuer().as_str()));

    f.add_fault(json!({"kind": "code_for_other_client"})).await;
    let cb = f.login_in(&crate::common::browser(), &[]).await;
    let resp = f.exchange(cb.code(), &[]).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "Code not valid");
}

#[tokio::test]
async fn operational_faults_act_on_their_endpoint_only() {
    let f = start().await;
    let certs = f.endpoint("certs");
    f.add_fault(json!({"kind": "status", "endpoint": "jwks", "status": 503}))
        .await;
    let resp = f.rp.get(&certs).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        f.rp.get(&certs).send().await.unwrap().status(),
        StatusCode::OK
    );

    f.add_fault(json!({"kind": "connection_reset", "endpoint": "jwks"}))
        .await;
    let dropped = match f.rp.get(&certs).send().await {
        Err(_) => true,
        Ok(resp) => resp.bytes().await.is_err(),
    };
    assert!(dropped, "the connection should be cut");

    f.add_fault(json!({"kind": "latency", "endpoint": "jwks", "ms": 150, "max_ms": 200}))
        .await;
    let started = std::time::Instant::now();
    assert_eq!(
        f.rp.get(&certs).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert!(started.elapsed() >= Duration::from_millis(150));

    f.add_fault(json!({"kind": "timeout", "endpoint": "token", "seconds": 30}))
        .await;
    let hung =
        f.rp.post(f.endpoint("token"))
            .timeout(Duration::from_millis(300))
            .form(&[
                ("grant_type", "authorization_code"),
                ("redirect_uri", REDIRECT_URI),
            ])
            .send()
            .await;
    assert!(hung.is_err_and(|e| e.is_timeout()));

    let log = f.admin_get("requests?endpoint=jwks").await;
    assert_eq!(log["requests"][0]["status"], 503);
}
