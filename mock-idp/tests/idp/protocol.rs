//! Protocol features beyond the basic code flow: `max_age`, `login_hint`, cancel, required
//! PKCE, `client_credentials`, introspection, revocation, `post.logout.redirect.uris`,
//! several realms, and tokens verifying across a key rotation.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{CLIENT_ID, CLIENT_SECRET, Fixture, browser, callback_of, start, start_with};
use mock_idp::Realm;

const PKCE_CLIENT: &str = "pkce-required";
const SERVICE: &str = "service";
const SERVICE_SECRET: &str = "service-secret";
const LOGOUT_LIST: &str = "logout-list";

/// A second realm with clients that exercise client attributes.
fn extras_realm() -> Realm {
    Realm::from_json_str(
        &json!({
            "realm": "extras",
            "users": [{"username": "user2", "credentials": [{"type": "password", "value": "pw"}]}],
            "clients": [
                {"clientId": PKCE_CLIENT, "publicClient": true,
                 "redirectUris": ["http://127.0.0.1:18080/*"],
                 "attributes": {"pkce.code.challenge.method": "S256"}},
                {"clientId": SERVICE, "secret": SERVICE_SECRET, "serviceAccountsEnabled": true,
                 "standardFlowEnabled": false},
                {"clientId": LOGOUT_LIST, "secret": "s",
                 "redirectUris": ["http://127.0.0.1:18080/*"],
                 "attributes": {"post.logout.redirect.uris": "http://127.0.0.1:18080/bye##http://other.example/*"}},
                {"clientId": "unknown-fields", "secret": "s", "someFutureField": {"x": 1}}
            ],
            "someUnknownRealmField": [1, 2, 3]
        })
        .to_string(),
    )
    .unwrap()
}

async fn start_two_realms() -> Fixture {
    start_with(|b| b.realm(extras_realm())).await
}

fn extras(f: &Fixture, endpoint: &str) -> String {
    format!(
        "{}/protocol/openid-connect/{endpoint}",
        f.idp.issuer("extras")
    )
}

/// The `kid`s of a JWKS, in order.
fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn several_realms_are_served_side_by_side() {
    let f = start_two_realms().await;
    for realm in ["master", "extras"] {
        let url = format!("{}/.well-known/openid-configuration", f.idp.issuer(realm));
        let doc: Value = f.rp.get(url).send().await.unwrap().json().await.unwrap();
        assert_eq!(doc["issuer"], f.idp.issuer(realm));
    }
}

#[tokio::test]
async fn each_realm_signs_with_its_own_keys_and_rotates_alone() {
    let f = start_two_realms().await;
    let master = f.idp.published_kids_of("master");
    let extras = f.idp.published_kids_of("extras");
    assert_eq!((master.len(), extras.len()), (1, 1));
    assert_ne!(master, extras, "Keycloak gives every realm its own keys");
    let jwks_kids = |realm: &'static str| {
        let url = format!("{}/protocol/openid-connect/certs", f.idp.issuer(realm));
        let rp = f.rp.clone();
        async move { kids(&rp.get(url).send().await.unwrap().json().await.unwrap()) }
    };
    assert_eq!(jwks_kids("master").await, master);
    assert_eq!(jwks_kids("extras").await, extras);
    // A master token names master's key, which the extras realm does not publish.
    let tokens = f.tokens(&[]).await;
    let kid = crate::admin::decode_part(tokens["id_token"].as_str().unwrap(), 0)["kid"].clone();
    assert_eq!(kid, json!(master[0]));

    // Rotating one realm leaves the other alone.
    let resp = f
        .admin_post("keys/rotate", json!({"realm": "extras"}))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["realm"], "extras");
    assert_eq!(body["published"].as_array().unwrap().len(), 2);
    assert_eq!(f.idp.published_kids_of("master"), master);
    // Without `realm`, every realm is listed; an unknown realm is a 400 naming the field.
    let all = f.admin_get("keys").await;
    assert_eq!(all["realms"].as_array().unwrap().len(), 2, "{all}");
    let resp = f.admin_post("keys/rotate", json!({"realm": "nope"})).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["path"], "realm", "{body}");
}

#[tokio::test]
async fn max_age_forces_a_new_login_once_the_session_is_older() {
    let f = start().await;
    f.login(&[]).await;
    // Young enough: silent.
    let resp = f
        .browser
        .get(f.authorize_url(&[("max_age", "60")]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    f.idp.clock().advance(120);
    let resp = f
        .browser
        .get(f.authorize_url(&[("max_age", "60")]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "the form again");
    assert!(resp.text().await.unwrap().contains("kc-form-login"));
}

#[tokio::test]
async fn login_hint_prefills_the_username() {
    let f = start().await;
    let html = f
        .login_page(&f.browser, &[("login_hint", "user1@example.com")])
        .await;
    assert!(
        html.contains(r#"name="username" value="user1@example.com""#),
        "{html}"
    );
}

#[tokio::test]
async fn cancel_returns_access_denied_with_state_and_iss() {
    let f = start().await;
    let html = f.login_page(&f.browser, &[]).await;
    let resp = f
        .browser
        .post(crate::common::form_action(&html))
        .form(&[("cancel", "Cancel")])
        .send()
        .await
        .unwrap();
    let cb = callback_of(&resp);
    assert_eq!(cb.names(), ["error", "state", "iss"]);
    assert_eq!(cb.get("error"), Some("access_denied"));
    assert_eq!(cb.get("state"), Some("st4te"));
    assert_eq!(cb.get("iss"), Some(f.issuer().as_str()));
}

#[tokio::test]
async fn a_client_requiring_pkce_refuses_requests_without_it_or_with_another_method() {
    let f = start_two_realms().await;
    let cases = [
        (
            "no pkce",
            vec![],
            "Missing parameter: code_challenge_method",
        ),
        (
            "plain",
            vec![
                ("code_challenge", "a".repeat(43)),
                ("code_challenge_method", "plain".into()),
            ],
            "Invalid parameter: code challenge method is not configured one",
        ),
    ];
    for (label, extra, description) in cases {
        let mut url = url::Url::parse(&extras(&f, "auth")).unwrap();
        url.query_pairs_mut()
            .append_pair("client_id", PKCE_CLIENT)
            .append_pair("redirect_uri", "http://127.0.0.1:18080/cb")
            .append_pair("response_type", "code")
            .append_pair("scope", "openid");
        for (k, v) in &extra {
            url.query_pairs_mut().append_pair(k, v);
        }
        let cb = callback_of(&f.browser.get(url).send().await.unwrap());
        assert_eq!(cb.get("error"), Some("invalid_request"), "{label}");
        assert_eq!(cb.get("error_description"), Some(description), "{label}");
    }
}

#[tokio::test]
async fn client_credentials_issues_a_service_account_token_only_when_enabled() {
    let f = start_two_realms().await;
    let resp =
        f.rp.post(extras(&f, "token"))
            .basic_auth(SERVICE, Some(SERVICE_SECRET))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert!(body.get("refresh_token").is_none() && body.get("id_token").is_none());
    let claims = crate::admin::decode_part(body["access_token"].as_str().unwrap(), 1);
    assert_eq!(claims["preferred_username"], "service-account-service");
    assert_eq!(claims["azp"], SERVICE);

    let resp =
        f.rp.post(f.endpoint("token"))
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized_client");
}

async fn introspect(f: &Fixture, token: &str) -> Value {
    let resp =
        f.rp.post(f.endpoint("token/introspect"))
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn introspection_reports_active_tokens_with_their_claims() {
    let f = start().await;
    let tokens = f.tokens(&[]).await;
    let access = tokens["access_token"].as_str().unwrap();
    let info = introspect(&f, access).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["client_id"], CLIENT_ID);
    assert_eq!(info["username"], "user1");
    assert_eq!(info["token_type"], "Bearer");
    let info = introspect(&f, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(info["active"], true);

    assert_eq!(
        introspect(&f, "not-a-token").await,
        json!({"active": false})
    );
    f.idp.clock().advance(301);
    assert_eq!(
        introspect(&f, access).await,
        json!({"active": false}),
        "expired"
    );

    let resp =
        f.rp.post(f.endpoint("token/introspect"))
            .form(&[("token", access)])
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "clients only");
}

#[tokio::test]
async fn revoked_tokens_stop_working() {
    let f = start().await;
    let tokens = f.tokens(&[]).await;
    for name in ["access_token", "refresh_token"] {
        let resp =
            f.rp.post(f.endpoint("revoke"))
                .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
                .form(&[("token", tokens[name].as_str().unwrap())])
                .send()
                .await
                .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{name}");
        assert_eq!(
            introspect(&f, tokens[name].as_str().unwrap()).await["active"],
            false,
            "{name}"
        );
    }
    let userinfo = f.userinfo(&tokens).await;
    assert_eq!(userinfo.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn post_logout_redirect_uris_attribute_lists_the_allowed_targets() {
    let f = start_two_realms().await;
    let cases = [
        (
            "listed exactly",
            "http://127.0.0.1:18080/bye",
            StatusCode::FOUND,
        ),
        (
            "listed wildcard",
            "http://other.example/x",
            StatusCode::FOUND,
        ),
        (
            "a redirect URI but not listed",
            "http://127.0.0.1:18080/cb",
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (label, uri, want) in cases {
        let resp =
            f.rp.get(extras(&f, "logout"))
                .query(&[
                    ("client_id", LOGOUT_LIST),
                    ("post_logout_redirect_uri", uri),
                ])
                .send()
                .await
                .unwrap();
        assert_eq!(resp.status(), want, "{label}");
    }
}

#[tokio::test]
async fn tokens_signed_before_a_rotation_still_verify_during_the_overlap() {
    let f = start().await;
    let tokens = f.tokens(&[]).await;
    f.idp.rotate_keys().await.unwrap();
    let userinfo = f.userinfo(&tokens).await;
    assert_eq!(userinfo.status(), StatusCode::OK);
}

async fn start_with_alg(alg: mock_idp::SigningAlg) -> Fixture {
    start_with(|b| b.signing_alg(alg)).await
}

/// Verifies a token against the published JWKS with the algorithm its key names.
async fn verify_with_jwks(f: &Fixture, token: &str, alg: jsonwebtoken::Algorithm) -> Value {
    let jwks: jsonwebtoken::jwk::JwkSet = f.jwks().await;
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, alg);
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid in JWKS");
    let mut v = jsonwebtoken::Validation::new(alg);
    v.set_audience(&[CLIENT_ID]);
    v.set_issuer(&[f.issuer()]);
    jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &v,
    )
    .unwrap()
    .claims
}

#[tokio::test]
async fn ps256_and_es256_keys_sign_tokens_that_verify_with_the_jwks() {
    use mock_idp::SigningAlg;
    let cases = [
        (SigningAlg::PS256, jsonwebtoken::Algorithm::PS256, "RSA"),
        (SigningAlg::ES256, jsonwebtoken::Algorithm::ES256, "EC"),
    ];
    for (alg, jwt_alg, kty) in cases {
        let f = start_with_alg(alg).await;
        let jwks: Value = f.jwks().await;
        assert_eq!(jwks["keys"][0]["alg"], alg.name(), "{alg:?}");
        assert_eq!(jwks["keys"][0]["kty"], kty, "{alg:?}");
        let tokens = f.tokens(&[]).await;
        let claims = verify_with_jwks(&f, tokens["id_token"].as_str().unwrap(), jwt_alg).await;
        assert_eq!(claims["preferred_username"], "user1");
        // The IdP verifies its own access tokens with the same key.
        let userinfo = f.userinfo(&tokens).await;
        assert_eq!(userinfo.status(), StatusCode::OK, "{alg:?}");
    }
}

#[tokio::test]
async fn rotation_can_switch_the_algorithm_and_keeps_the_old_key_for_the_overlap() {
    let f = start().await;
    let before = f.tokens(&[]).await;
    let resp = f.admin_post("keys/rotate", json!({"alg": "ES256"})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let cb = f.login_in(&browser(), &[]).await;
    let after: Value = f.exchange(cb.code(), &[]).await.json().await.unwrap();
    verify_with_jwks(
        &f,
        after["id_token"].as_str().unwrap(),
        jsonwebtoken::Algorithm::ES256,
    )
    .await;
    verify_with_jwks(
        &f,
        before["id_token"].as_str().unwrap(),
        jsonwebtoken::Algorithm::RS256,
    )
    .await;
    let bad = f.admin_post("keys/rotate", json!({"alg": "HS256"})).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn scheduled_rotation_follows_the_idp_clock() {
    let f = start_with(|b| {
        b.rotate_keys_every(std::time::Duration::from_secs(600))
            .key_overlap(std::time::Duration::from_secs(60))
    })
    .await;
    let certs = || async { kids(&f.jwks().await) };
    let first = certs().await;
    assert_eq!(first.len(), 1);
    // The clock also ticks for real: keep a margin of seconds around the 600 s boundary.
    f.idp.clock().advance(590);
    assert_eq!(certs().await, first, "not yet due");
    f.idp.clock().advance(10);
    let rotated = certs().await;
    assert_eq!(rotated.len(), 2, "new key first, old key kept");
    assert_eq!(rotated[1], first[0]);
    let tokens = f.tokens(&[]).await;
    let kid = jsonwebtoken::decode_header(tokens["id_token"].as_str().unwrap())
        .unwrap()
        .kid
        .unwrap();
    assert_eq!(kid, rotated[0]);
    f.idp.clock().advance(61);
    assert_eq!(certs().await, vec![rotated[0].clone()], "overlap over");
}
