use std::collections::HashSet;

use jsonwebtoken::{DecodingKey, Validation};

use super::*;

const RSA_PKCS8: &str = include_str!("../../tests/fixtures/keys/rsa-pkcs8.pem");
const RSA_PKCS1: &str = include_str!("../../tests/fixtures/keys/rsa-pkcs1.pem");
const RSA_PUBLIC: &str = include_str!("../../tests/fixtures/keys/rsa-public.pem");
const EC_PKCS8: &str = include_str!("../../tests/fixtures/keys/ec-p256-pkcs8.pem");
const EC_SEC1: &str = include_str!("../../tests/fixtures/keys/ec-p256-sec1.pem");
const EC_PUBLIC: &str = include_str!("../../tests/fixtures/keys/ec-p256-public.pem");

const TOKEN_ENDPOINT: &str = "http://idp.example/realms/master/protocol/openid-connect/token";
const NOW: i64 = 1_768_504_473;

fn claims(jwt: &str, public: &DecodingKey, alg: Algorithm) -> serde_json::Value {
    let mut v = Validation::new(alg);
    v.set_audience(&[TOKEN_ENDPOINT]);
    v.validate_exp = false;
    jsonwebtoken::decode::<serde_json::Value>(jwt, public, &v)
        .expect("the assertion verifies with the public key")
        .claims
}

#[test]
fn an_rsa_key_signs_rs256_assertions_with_the_rfc_7523_claims() {
    let key = AssertionKey::from_pem(RSA_PKCS8, None, None).unwrap();
    assert_eq!(key.alg(), Algorithm::RS256);
    let jwt = key
        .sign("agentgateway", TOKEN_ENDPOINT, NOW, Duration::from_secs(5))
        .unwrap();
    let header = jsonwebtoken::decode_header(&jwt).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.kid, None);
    let c = claims(
        &jwt,
        &DecodingKey::from_rsa_pem(RSA_PUBLIC.as_bytes()).unwrap(),
        Algorithm::RS256,
    );
    assert_eq!(c["iss"], "agentgateway");
    assert_eq!(c["sub"], "agentgateway");
    assert_eq!(c["aud"], TOKEN_ENDPOINT);
    assert_eq!(c["iat"], NOW);
    assert_eq!(c["exp"], NOW + 5);
    assert!(c["jti"].as_str().is_some_and(|j| j.len() >= 16), "{c}");
}

#[test]
fn every_assertion_has_a_new_jti() {
    let key = AssertionKey::from_pem(RSA_PKCS1, None, None).unwrap();
    let public = DecodingKey::from_rsa_pem(RSA_PUBLIC.as_bytes()).unwrap();
    let jtis: HashSet<String> = (0..5)
        .map(|_| {
            let jwt = key
                .sign("c", TOKEN_ENDPOINT, NOW, Duration::from_secs(5))
                .unwrap();
            claims(&jwt, &public, Algorithm::RS256)["jti"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(jtis.len(), 5);
}

#[test]
fn an_ec_key_signs_es256_and_a_configured_kid_is_in_the_header() {
    let key = AssertionKey::from_pem(EC_PKCS8, None, Some("client-key-1".into())).unwrap();
    assert_eq!(key.alg(), Algorithm::ES256);
    let jwt = key
        .sign("c", TOKEN_ENDPOINT, NOW, Duration::from_secs(5))
        .unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(&jwt).unwrap().kid.as_deref(),
        Some("client-key-1")
    );
    let c = claims(
        &jwt,
        &DecodingKey::from_ec_pem(EC_PUBLIC.as_bytes()).unwrap(),
        Algorithm::ES256,
    );
    assert_eq!(c["sub"], "c");
}

#[test]
fn a_named_algorithm_is_used_when_it_fits_the_key() {
    let key = AssertionKey::from_pem(RSA_PKCS8, Some("PS256"), None).unwrap();
    assert_eq!(key.alg(), Algorithm::PS256);
    let jwt = key
        .sign("c", TOKEN_ENDPOINT, NOW, Duration::from_secs(5))
        .unwrap();
    claims(
        &jwt,
        &DecodingKey::from_rsa_pem(RSA_PUBLIC.as_bytes()).unwrap(),
        Algorithm::PS256,
    );
}

#[test]
fn a_sub_second_lifetime_rounds_up_to_a_whole_second() {
    let key = AssertionKey::from_pem(RSA_PKCS8, None, None).unwrap();
    let public = DecodingKey::from_rsa_pem(RSA_PUBLIC.as_bytes()).unwrap();
    for (valid_for, lifetime) in [
        (Duration::from_millis(1500), 2),
        (Duration::from_millis(1), 1),
        (Duration::ZERO, 1),
        (Duration::from_secs(30), 30),
    ] {
        let jwt = key.sign("c", TOKEN_ENDPOINT, NOW, valid_for).unwrap();
        let c = claims(&jwt, &public, Algorithm::RS256);
        assert_eq!(c["exp"], NOW + lifetime, "{valid_for:?}");
    }
}

#[test]
fn unusable_keys_and_algorithms_are_refused_with_a_reason() {
    let cases: [(&str, &str, Option<&str>, &str); 7] = [
        ("sec1 ec key", EC_SEC1, None, "convert it to PKCS#8"),
        (
            "a public key",
            RSA_PUBLIC,
            None,
            "expected a PEM private key",
        ),
        ("not pem", "hello", None, "expected a PEM private key"),
        (
            "garbage pem",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            None,
            "not a usable",
        ),
        (
            "hmac alg",
            RSA_PKCS8,
            Some("HS256"),
            "not a private-key algorithm",
        ),
        ("unknown alg", RSA_PKCS8, Some("RS999"), "unknown algorithm"),
        (
            "ec alg for an rsa key",
            RSA_PKCS8,
            Some("ES256"),
            "does not fit ES256",
        ),
    ];
    for (label, pem, alg, want) in cases {
        let err = AssertionKey::from_pem(pem, alg, None).expect_err(label);
        assert!(err.to_string().contains(want), "{label}: {err}");
    }
}

#[test]
fn debug_never_prints_the_key() {
    let key = AssertionKey::from_pem(RSA_PKCS8, None, None).unwrap();
    let printed = format!("{key:?}");
    assert!(printed.contains("RS256"), "{printed}");
    assert!(!printed.contains("MII"), "{printed}");
}
