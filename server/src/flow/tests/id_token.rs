//! One answer for every ID token that fails validation: 403 with [`INVALID_ID_TOKEN`], no
//! cookie, and `/metrics` counting an invalid token (not an unavailable IdP). One test per
//! check, each against a token that passes every other check.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use super::signed::{CLIENT_ID, NOW, OTHER_RSA_KEY, RSA_KEY, SignedIdp, callback, flow_for};
use crate::flow::Decision;
use crate::flow::error::INVALID_ID_TOKEN;
use crate::server::StoreChoice;

/// How a test makes its ID token from the valid claims of the login.
enum Token {
    /// The valid claims, edited.
    Claims(fn(&mut serde_json::Value)),
    /// Any text, made from the valid claims and the IdP's signing key.
    Raw(fn(&serde_json::Value, &SignedIdp) -> String),
}

fn unsigned(header: &serde_json::Value, claims: &serde_json::Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn remove(claims: &mut serde_json::Value, name: &str) {
    claims.as_object_mut().unwrap().remove(name);
}

async fn callback_answer(token: Token) -> crate::flow::Deny {
    let idp = SignedIdp::start().await;
    let (flow, _clock) = flow_for(&idp, |t| t, StoreChoice::Memory, "127.0.0.1:1", &[]);
    let (issued, check) = callback(&flow, "");
    let mut claims = idp.claims(&issued.login.nonce);
    let id_token = match token {
        Token::Claims(edit) => {
            edit(&mut claims);
            idp.sign(&claims)
        }
        Token::Raw(make) => make(&claims, &idp),
    };
    idp.token_answers(&id_token).await;
    match flow.decide(&check).await {
        Decision::Deny(d) => d,
        Decision::Allow(a) => panic!("a callback is never allowed: {a:?}"),
    }
}

fn invalid_count() -> u64 {
    crate::metrics::counter_value("extauth_errors_total", &[("kind", "idp_id_token_invalid")])
}

/// The callback with `token` gets the one invalid-ID-token answer and is counted as such.
async fn refused(token: Token) {
    let before = invalid_count();
    let d = callback_answer(token).await;
    assert_eq!(d.status, StatusCode::FORBIDDEN, "{}", d.body);
    assert_eq!(d.body, INVALID_ID_TOKEN);
    let names: Vec<&str> = d.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert!(!names.contains(&"set-cookie"), "{names:?}");
    assert!(
        d.headers
            .iter()
            .any(|(n, v)| n == "x-content-type-options" && v == "nosniff")
    );
    assert!(invalid_count() > before, "counted as an invalid ID token");
}

#[tokio::test]
async fn a_valid_id_token_completes_the_login() {
    let d = callback_answer(Token::Claims(|_| {})).await;
    assert_eq!(d.status, StatusCode::FOUND, "{}", d.body);
}

#[tokio::test]
async fn a_signature_by_another_key_is_refused() {
    refused(Token::Raw(|claims, _| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("k1".into());
        let other = EncodingKey::from_rsa_pem(OTHER_RSA_KEY.as_bytes()).unwrap();
        jsonwebtoken::encode(&header, claims, &other).unwrap()
    }))
    .await;
}

#[tokio::test]
async fn an_unsigned_alg_none_token_is_refused() {
    refused(Token::Raw(|claims, _| {
        unsigned(&serde_json::json!({"alg": "none", "typ": "JWT"}), claims)
    }))
    .await;
}

#[tokio::test]
async fn an_hs256_token_keyed_with_the_client_secret_is_refused() {
    refused(Token::Raw(|claims, _| {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(b"s3cr3t"),
        )
        .unwrap()
    }))
    .await;
}

#[tokio::test]
async fn a_kid_missing_from_the_jwks_is_refused() {
    refused(Token::Raw(|claims, _| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("not-in-the-jwks".into());
        let key = EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()).unwrap();
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }))
    .await;
}

#[tokio::test]
async fn another_issuer_is_refused() {
    refused(Token::Claims(|c| {
        c["iss"] = "https://evil.example/realms/master".into()
    }))
    .await;
}

#[tokio::test]
async fn another_audience_is_refused() {
    refused(Token::Claims(|c| c["aud"] = "another-client".into())).await;
}

#[tokio::test]
async fn an_untrusted_extra_audience_is_refused() {
    refused(Token::Claims(|c| {
        c["aud"] = serde_json::json!([CLIENT_ID, "another-client"])
    }))
    .await;
}

#[tokio::test]
async fn an_azp_naming_another_client_is_refused() {
    refused(Token::Claims(|c| c["azp"] = "another-client".into())).await;
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    refused(Token::Claims(|c| {
        c["iat"] = (NOW - 7200).into();
        c["exp"] = (NOW - 3600).into();
    }))
    .await;
}

#[tokio::test]
async fn an_iat_in_the_future_is_refused() {
    refused(Token::Claims(|c| c["iat"] = (NOW + 3600).into())).await;
}

#[tokio::test]
async fn an_nbf_in_the_future_is_refused() {
    refused(Token::Claims(|c| c["nbf"] = (NOW + 3600).into())).await;
}

#[tokio::test]
async fn another_nonce_is_refused() {
    refused(Token::Claims(|c| c["nonce"] = "a-replayed-nonce".into())).await;
}

#[tokio::test]
async fn a_missing_nonce_is_refused() {
    refused(Token::Claims(|c| remove(c, "nonce"))).await;
}

#[tokio::test]
async fn a_missing_sub_is_refused() {
    refused(Token::Claims(|c| remove(c, "sub"))).await;
}

#[tokio::test]
async fn a_missing_iat_is_refused() {
    refused(Token::Claims(|c| remove(c, "iat"))).await;
}

#[tokio::test]
async fn a_missing_exp_is_refused() {
    refused(Token::Claims(|c| remove(c, "exp"))).await;
}

#[tokio::test]
async fn a_missing_aud_is_refused() {
    refused(Token::Claims(|c| remove(c, "aud"))).await;
}

#[tokio::test]
async fn a_missing_iss_is_refused() {
    refused(Token::Claims(|c| remove(c, "iss"))).await;
}

#[tokio::test]
async fn an_at_hash_of_another_access_token_is_refused() {
    refused(Token::Claims(|c| {
        c["at_hash"] = "AAAAAAAAAAAAAAAAAAAAAA".into()
    }))
    .await;
}

#[tokio::test]
async fn a_malformed_jwt_is_refused() {
    refused(Token::Raw(|_, _| "not-a-jwt".into())).await;
}

#[tokio::test]
async fn a_jwt_whose_payload_is_not_json_is_refused() {
    refused(Token::Raw(|_, _| {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k1"}"#),
            URL_SAFE_NO_PAD.encode("not json"),
            URL_SAFE_NO_PAD.encode("sig")
        )
    }))
    .await;
}
