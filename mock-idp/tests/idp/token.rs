//! The token endpoint, the tokens themselves, and userinfo.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CACHE_CONTROL, WWW_AUTHENTICATE};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::common::{
    CLIENT_ID, CLIENT_SECRET, Fixture, ODD_CLIENT, ODD_SECRET, PUBLIC_CLIENT, REDIRECT_URI,
    browser, start,
};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

async fn error_of(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    assert_eq!(
        resp.headers()
            .get(CACHE_CONTROL)
            .map(|v| v.to_str().unwrap()),
        Some("no-store"),
        "token errors are not cacheable"
    );
    (status, resp.json().await.unwrap())
}

fn invalid_grant(description: &str) -> Value {
    json!({ "error": "invalid_grant", "error_description": description })
}

async fn post_token(f: &Fixture, form: &[(&str, &str)]) -> reqwest::Response {
    f.rp.post(f.endpoint("token"))
        .form(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn code_flow_with_client_secret_basic_returns_keycloaks_token_response() {
    let f = start().await;
    let cb = f.login(&[]).await;
    let resp = f.exchange(cb.code(), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[CACHE_CONTROL], "no-store");
    let text = resp.text().await.unwrap();
    let order = [
        "access_token",
        "expires_in",
        "refresh_expires_in",
        "refresh_token",
        "token_type",
        "id_token",
        "not-before-policy",
        "session_state",
        "scope",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|k| {
            text.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("no {k}"))
        })
        .collect();
    assert!(positions.is_sorted(), "fields in Keycloak's order: {text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body.as_object().unwrap().len(), order.len());
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["refresh_expires_in"], 1800);
    assert_eq!(body["not-before-policy"], 0);
    assert_eq!(body["scope"], "openid email profile");
    assert_eq!(body["session_state"], cb.get("session_state").unwrap());
}

#[tokio::test]
async fn code_flow_with_client_secret_post_works() {
    let f = start().await;
    let cb = f.login(&[]).await;
    let resp = post_token(
        &f,
        &[
            ("grant_type", "authorization_code"),
            ("code", cb.code()),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert!(body["id_token"].is_string());
}

#[tokio::test]
async fn basic_credentials_are_form_urlencoded_as_rfc6749_says() {
    let f = start().await;
    let redirect = "http://127.0.0.1:18080/odd";
    let cb = f
        .login(&[("client_id", ODD_CLIENT), ("redirect_uri", redirect)])
        .await;
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let basic = STANDARD.encode(format!("{}:{}", enc(ODD_CLIENT), enc(ODD_SECRET)));
    let resp =
        f.rp.post(f.endpoint("token"))
            .header(AUTHORIZATION, format!("Basic {basic}"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", cb.code()),
                ("redirect_uri", redirect),
            ])
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn id_token_claims_are_keycloaks() {
    let f = start().await;
    let tokens = f.tokens(&[("nonce", "n0nce")]).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert!(header.kid.is_some());
    let claims = f.verify(id_token, CLIENT_ID).await;
    assert_eq!(
        claims["exp"].as_u64().unwrap(),
        claims["iat"].as_u64().unwrap() + 300
    );
    assert_eq!(claims["iss"], f.issuer());
    assert_eq!(claims["sid"], tokens["session_state"]);
    assert_eq!(claims["session_state"], tokens["session_state"]);
    let access = tokens["access_token"].as_str().unwrap();
    let digest = Sha256::digest(access.as_bytes());
    assert_eq!(claims["at_hash"], URL_SAFE_NO_PAD.encode(&digest[..16]));
    insta::assert_json_snapshot!("id_token_claims", claims, {
        ".exp" => "[exp]",
        ".iat" => "[iat]",
        ".auth_time" => "[auth_time]",
        ".jti" => "[jti]",
        ".iss" => "[iss]",
        ".sid" => "[sid]",
        ".session_state" => "[sid]",
        ".at_hash" => "[at_hash]",
    });
}

#[tokio::test]
async fn access_token_claims_are_keycloaks() {
    let f = start().await;
    let tokens = f.tokens(&[]).await;
    let claims = f
        .verify(tokens["access_token"].as_str().unwrap(), "account")
        .await;
    insta::assert_json_snapshot!("access_token_claims", claims, {
        ".exp" => "[exp]",
        ".iat" => "[iat]",
        ".auth_time" => "[auth_time]",
        ".jti" => "[jti]",
        ".iss" => "[iss]",
        ".sid" => "[sid]",
        ".session_state" => "[sid]",
    });
}

#[tokio::test]
async fn nonce_is_echoed_only_when_sent() {
    let f = start().await;
    let with = f.tokens(&[("nonce", "abc-123")]).await;
    let claims = f
        .verify(with["id_token"].as_str().unwrap(), CLIENT_ID)
        .await;
    assert_eq!(claims["nonce"], "abc-123");

    let f = start().await;
    let without = f.tokens(&[]).await;
    let claims = f
        .verify(without["id_token"].as_str().unwrap(), CLIENT_ID)
        .await;
    assert!(claims.get("nonce").is_none());
}

#[tokio::test]
async fn without_openid_scope_there_is_no_id_token() {
    let f = start().await;
    let tokens = f.tokens(&[("scope", "email")]).await;
    assert!(tokens.get("id_token").is_none());
    assert_eq!(tokens["scope"], "email profile");
}

#[tokio::test]
async fn a_replayed_code_is_rejected_even_after_a_successful_exchange() {
    let f = start().await;
    let cb = f.login(&[]).await;
    assert_eq!(f.exchange(cb.code(), &[]).await.status(), StatusCode::OK);
    let (status, body) = error_of(f.exchange(cb.code(), &[]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, invalid_grant("Code not valid"));
}

#[tokio::test]
async fn an_unknown_code_is_rejected() {
    let f = start().await;
    let (status, body) = error_of(f.exchange("not-a-code", &[]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, invalid_grant("Code not valid"));
}

#[tokio::test]
async fn a_code_is_bound_to_its_redirect_uri_and_spent_by_a_mismatch() {
    let f = start().await;
    let cb = f.login(&[]).await;
    let resp =
        f.rp.post(f.endpoint("token"))
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", cb.code()),
                ("redirect_uri", "http://127.0.0.1:18080/other"),
            ])
            .send()
            .await
            .unwrap();
    let (status, body) = error_of(resp).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, invalid_grant("Incorrect redirect_uri"));
    // The right redirect_uri afterwards is too late: the code is spent.
    let (_, body) = error_of(f.exchange(cb.code(), &[]).await).await;
    assert_eq!(body, invalid_grant("Code not valid"));
}

#[tokio::test]
async fn a_code_is_bound_to_its_client() {
    let f = start().await;
    let cb = f.login(&[]).await;
    let resp =
        f.rp.post(f.endpoint("token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", cb.code()),
                ("redirect_uri", REDIRECT_URI),
                ("client_id", ODD_CLIENT),
                ("client_secret", ODD_SECRET),
            ])
            .send()
            .await
            .unwrap();
    let (status, body) = error_of(resp).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, invalid_grant("Code not valid"));
}

#[tokio::test]
async fn a_code_expires_after_60_seconds() {
    let f = start().await;
    let cb = f.login(&[]).await;
    f.clock.advance(Duration::from_secs(60));
    let (status, body) = error_of(f.exchange(cb.code(), &[]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, invalid_grant("Code not valid"));
}

#[tokio::test]
async fn pkce_s256_with_the_right_verifier_succeeds() {
    let f = start().await;
    let challenge = s256(VERIFIER);
    let cb = f
        .login(&[
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .await;
    let resp = f.exchange(cb.code(), &[("code_verifier", VERIFIER)]).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn pkce_failures_are_invalid_grant() {
    let f = start().await;
    let challenge = s256(VERIFIER);
    let wrong = "x".repeat(43);
    let cases = [
        (
            "wrong verifier",
            Some(wrong.as_str()),
            "PKCE verification failed: Code mismatch",
        ),
        ("missing verifier", None, "PKCE code verifier not specified"),
        (
            "malformed verifier",
            Some("short"),
            "PKCE verification failed: Invalid code verifier",
        ),
    ];
    for (label, verifier, description) in cases {
        let cb = f
            .login_in(
                &browser(),
                &[
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                ],
            )
            .await;
        let extra: Vec<(&str, &str)> = verifier.map(|v| ("code_verifier", v)).into_iter().collect();
        let (status, body) = error_of(f.exchange(cb.code(), &extra).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}");
        assert_eq!(body, invalid_grant(description), "{label}");
    }
}

#[tokio::test]
async fn pkce_plain_is_supported_and_is_the_default_method() {
    let f = start().await;
    for method in [Some("plain"), None] {
        let mut params = vec![("code_challenge", VERIFIER)];
        params.extend(method.map(|m| ("code_challenge_method", m)));
        let cb = f.login_in(&browser(), &params).await;
        let resp = f.exchange(cb.code(), &[("code_verifier", VERIFIER)]).await;
        assert_eq!(resp.status(), StatusCode::OK, "{method:?}");
    }
}

#[tokio::test]
async fn a_public_client_authenticates_by_client_id_with_pkce() {
    let f = start().await;
    let redirect = "http://127.0.0.1:18080/spa";
    let challenge = s256(VERIFIER);
    let cb = f
        .login(&[
            ("client_id", PUBLIC_CLIENT),
            ("redirect_uri", redirect),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .await;
    let resp = post_token(
        &f,
        &[
            ("grant_type", "authorization_code"),
            ("code", cb.code()),
            ("redirect_uri", redirect),
            ("client_id", PUBLIC_CLIENT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn refresh_rotates_the_refresh_token() {
    let f = start().await;
    let first = f.tokens(&[("nonce", "n1")]).await;
    let old = first["refresh_token"].as_str().unwrap();
    let refresh = |token: String| {
        let f = &f;
        async move {
            f.rp.post(f.endpoint("token"))
                .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
                .form(&[("grant_type", "refresh_token"), ("refresh_token", &token)])
                .send()
                .await
                .unwrap()
        }
    };
    f.clock.advance(Duration::from_secs(10));
    let resp = refresh(old.to_owned()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let second: Value = resp.json().await.unwrap();
    let new = second["refresh_token"].as_str().unwrap();
    assert_ne!(new, old);
    assert_ne!(second["access_token"], first["access_token"]);
    assert_eq!(second["session_state"], first["session_state"]);
    let id = f
        .verify(second["id_token"].as_str().unwrap(), CLIENT_ID)
        .await;
    let id1 = f
        .verify(first["id_token"].as_str().unwrap(), CLIENT_ID)
        .await;
    assert_eq!(id["nonce"], "n1");
    assert_eq!(
        id["auth_time"], id1["auth_time"],
        "auth_time is the login's"
    );
    assert!(id["iat"].as_u64() > id1["iat"].as_u64());

    let (status, body) = error_of(refresh(old.to_owned()).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, invalid_grant("Invalid refresh token"));
    assert_eq!(refresh(new.to_owned()).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_refresh_token_is_bound_to_its_client() {
    let f = start().await;
    let tokens = f.tokens(&[]).await;
    let resp = post_token(
        &f,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", ODD_CLIENT),
            ("client_secret", ODD_SECRET),
        ],
    )
    .await;
    let (status, body) = error_of(resp).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn a_refresh_token_dies_with_its_idle_session() {
    let f = start().await;
    let tokens = f.tokens(&[]).await;
    f.clock.advance(Duration::from_secs(1800));
    let resp =
        f.rp.post(f.endpoint("token"))
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ])
            .send()
            .await
            .unwrap();
    let (status, body) = error_of(resp).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn bad_client_credentials_are_invalid_client() {
    let f = start().await;
    let cb = f.login(&[]).await;
    let code = cb.code();
    let base = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT_URI),
    ];
    type Case<'a> = (&'a str, Option<(&'a str, &'a str)>, Vec<(&'a str, &'a str)>);
    let cases: [Case<'_>; 4] = [
        ("wrong basic secret", Some((CLIENT_ID, "wrong")), vec![]),
        ("unknown basic client", Some(("nope", "x")), vec![]),
        (
            "wrong post secret",
            None,
            vec![("client_id", CLIENT_ID), ("client_secret", "wrong")],
        ),
        ("no credentials", None, vec![]),
    ];
    for (label, basic, extra) in cases {
        let mut form = base.to_vec();
        form.extend(extra);
        let mut req = f.rp.post(f.endpoint("token")).form(&form);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        let (status, body) = error_of(req.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{label}");
        assert_eq!(
            body,
            json!({"error": "invalid_client",
                   "error_description": "Invalid client or Invalid client credentials"}),
            "{label}"
        );
    }
    // A failed client authentication does not spend the code.
    assert_eq!(f.exchange(code, &[]).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn malformed_token_requests_are_400_json() {
    let f = start().await;
    let cases = [
        ("no grant type", vec![], "invalid_request"),
        (
            "unsupported grant",
            vec![("grant_type", "password")],
            "unsupported_grant_type",
        ),
        (
            "no code",
            vec![("grant_type", "authorization_code")],
            "invalid_request",
        ),
        (
            "no refresh token",
            vec![("grant_type", "refresh_token")],
            "invalid_request",
        ),
        (
            "garbage refresh token",
            vec![("grant_type", "refresh_token"), ("refresh_token", "x.y.z")],
            "invalid_grant",
        ),
    ];
    for (label, form, error) in cases {
        let resp =
            f.rp.post(f.endpoint("token"))
                .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
                .form(&form)
                .send()
                .await
                .unwrap();
        let (status, body) = error_of(resp).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}");
        assert_eq!(body["error"], error, "{label}");
    }
    // A body that is not a form at all is still a client fault.
    let resp =
        f.rp.post(f.endpoint("token"))
            .header("content-type", "application/json")
            .body("{\"grant_type\":1}")
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn userinfo_returns_the_users_claims() {
    let f = start().await;
    let tokens = f.tokens(&[]).await;
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let resp =
            f.rp.request(method.clone(), f.endpoint("userinfo"))
                .bearer_auth(tokens["access_token"].as_str().unwrap())
                .send()
                .await
                .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{method}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body,
            json!({
                "sub": "4f3c1d2e-8a6b-4c3d-9e1f-2a3b4c5d6e7f",
                "email_verified": true,
                "name": "User One",
                "preferred_username": "user1",
                "given_name": "User",
                "family_name": "One",
                "email": "user1@example.com"
            }),
            "{method}"
        );
    }
}

#[tokio::test]
async fn userinfo_rejects_missing_bad_and_expired_tokens() {
    let f = start().await;
    let tokens = f.tokens(&[]).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let id_token = tokens["id_token"].as_str().unwrap().to_owned();
    let cases = [
        ("no token", None, 0),
        ("garbage", Some("garbage".to_owned()), 0),
        ("id token", Some(id_token), 0),
        ("expired", Some(access), 300),
    ];
    for (label, token, advance) in cases {
        f.clock.advance(Duration::from_secs(advance));
        let mut req = f.rp.get(f.endpoint("userinfo"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{label}");
        let challenge = resp.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(challenge.starts_with("Bearer "), "{label}: {challenge}");
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{label}: {challenge}"
        );
    }
}
