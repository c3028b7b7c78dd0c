//! How extauth authenticates at the token and revocation endpoints, as the IdP sees it:
//! `private_key_jwt` (a fresh RFC 7523 assertion per request), a public client
//! (`disableClientSecret`), and the client secret in Solo's current spelling.

use std::collections::{HashMap, HashSet};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::signed::{CLIENT_ID, RSA_KEY, SignedIdp, flow_for, log_in};
use crate::assertion::ASSERTION_TYPE;
use crate::flow::{CheckRequest, Decision};
use crate::server::StoreChoice;

const RSA_PUBLIC: &str = include_str!("../../../tests/fixtures/keys/rsa-public.pem");

const SECRET_REF: &str = "        clientSecretRef:\n          name: oauth-keycloak\n          namespace: agentgateway-system\n";

/// The seed with its `clientSecretRef` replaced by `auth` (8-space-indented lines), and a
/// logout path (for revocation).
fn client_auth(auth: &'static str) -> impl Fn(String) -> String {
    move |t: String| {
        assert!(t.contains(SECRET_REF));
        t.replace(SECRET_REF, &format!("{auth}        logoutPath: /logout\n"))
    }
}

/// `string_data` lines of a Secret holding the RSA test key under `private-key`.
fn key_secret() -> String {
    let pem: String = RSA_KEY.lines().map(|l| format!("    {l}\n")).collect();
    format!("  private-key: |\n{pem}")
}

/// The claims of `form`'s `client_assertion`, verified with the client's public key.
fn assertion_claims(idp: &SignedIdp, form: &HashMap<String, String>) -> serde_json::Value {
    assert_eq!(form["client_assertion_type"], ASSERTION_TYPE);
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[idp.endpoint("token")]);
    v.validate_exp = false;
    jsonwebtoken::decode::<serde_json::Value>(
        &form["client_assertion"],
        &DecodingKey::from_rsa_pem(RSA_PUBLIC.as_bytes()).unwrap(),
        &v,
    )
    .expect("the assertion is signed with the client's key, for the token endpoint")
    .claims
}

fn get(path: &str, cookie: &str) -> CheckRequest {
    CheckRequest::new("GET", "http", "172.18.0.4", path).with_header("cookie", cookie)
}

#[tokio::test]
async fn private_key_jwt_signs_a_new_assertion_for_the_code_the_refresh_and_the_revocation() {
    let idp = SignedIdp::start().await;
    let secret = key_secret();
    let (flow, clock) = flow_for(
        &idp,
        client_auth(
            "        clientAuthentication:\n          privateKeyJwt:\n            signingKeyRef: {name: client-key}\n            validFor: 30s\n",
        ),
        StoreChoice::Memory,
        "127.0.0.1:1",
        &[("client-key", &secret)],
    );
    let cookie = log_in(&flow, &idp, |_| {}).await;
    // Within the pre-expiry buffer: the next request refreshes.
    clock.advance(299);
    assert!(matches!(
        flow.decide(&get("/openai", &cookie)).await,
        Decision::Allow(_)
    ));
    let _ = flow.decide(&get("/logout", &cookie)).await;

    let mut forms = idp.forms("token").await;
    forms.extend(idp.forms("revoke").await);
    let grants: Vec<&str> = forms
        .iter()
        .map(|f| f.get("grant_type").map_or("revocation", String::as_str))
        .collect();
    assert_eq!(
        grants,
        [
            "authorization_code",
            "refresh_token",
            "revocation",
            "revocation"
        ]
    );
    let mut jtis = HashSet::new();
    for form in &forms {
        assert!(!form.contains_key("client_secret"), "{form:?}");
        assert_eq!(form["client_id"], CLIENT_ID);
        let c = assertion_claims(&idp, form);
        assert_eq!(c["iss"], CLIENT_ID);
        assert_eq!(c["sub"], CLIENT_ID);
        assert_eq!(
            c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
            30,
            "validFor"
        );
        jtis.insert(c["jti"].as_str().unwrap().to_owned());
    }
    assert_eq!(jtis.len(), 4, "a new jti for every request");
    for r in idp.requests("token").await {
        assert!(
            r.headers.get("authorization").is_none(),
            "no Basic credentials"
        );
    }
}

#[tokio::test]
async fn a_public_client_sends_its_id_and_the_pkce_verifier_but_no_secret() {
    for auth in [
        "        disableClientSecret: true\n",
        "        clientAuthentication:\n          clientSecret: {disableClientSecret: true}\n",
    ] {
        let idp = SignedIdp::start().await;
        let (flow, _clock) = flow_for(
            &idp,
            client_auth(auth),
            StoreChoice::Memory,
            "127.0.0.1:1",
            &[],
        );
        log_in(&flow, &idp, |_| {}).await;
        let form = &idp.forms("token").await[0];
        assert_eq!(form["client_id"], CLIENT_ID, "{auth}");
        assert!(form["code_verifier"].len() >= 43, "{auth}");
        assert!(!form.contains_key("client_secret"), "{auth}");
        assert!(!form.contains_key("client_assertion"), "{auth}");
        let request = &idp.requests("token").await[0];
        assert!(request.headers.get("authorization").is_none(), "{auth}");
    }
}

#[tokio::test]
async fn the_current_client_secret_spelling_authenticates_with_basic_credentials() {
    let idp = SignedIdp::start().await;
    let (flow, _clock) = flow_for(
        &idp,
        client_auth(
            "        clientAuthentication:\n          clientSecret:\n            clientSecretRef: {name: oauth-keycloak, namespace: agentgateway-system}\n",
        ),
        StoreChoice::Memory,
        "127.0.0.1:1",
        &[],
    );
    log_in(&flow, &idp, |_| {}).await;
    let request = &idp.requests("token").await[0];
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("agentgateway:s3cr3t");
    assert_eq!(
        request
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap(),
        format!("Basic {basic}")
    );
}
