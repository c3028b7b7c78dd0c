//! A wiremock IdP that signs: discovery, a real JWKS (the RSA test key, `kid` `k1`), a
//! revocation endpoint, and a token endpoint answering with whatever ID token a test signs.
//! For the paths that need a correctly (or precisely incorrectly) signed token.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::super::*;
use crate::clock::ManualClock;
use crate::config::{self, Loaded};
use crate::env::MapEnv;
use crate::server::{StoreChoice, build_flow};

pub(crate) const RSA_KEY: &str = include_str!("../../../tests/fixtures/keys/rsa-pkcs8.pem");
pub(crate) const OTHER_RSA_KEY: &str =
    include_str!("../../../tests/fixtures/keys/rsa-other-pkcs8.pem");
pub(crate) const CLIENT_ID: &str = "agentgateway";
pub(crate) const NOW: i64 = super::NOW;
const SEED: &str = include_str!("../../../tests/fixtures/seed-step2.yaml");

pub(crate) struct SignedIdp {
    pub server: MockServer,
    pub issuer: String,
    key: EncodingKey,
}

impl SignedIdp {
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        let issuer = format!("{}/realms/master", server.uri());
        let key = EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()).unwrap();
        let idp = Self {
            server,
            issuer,
            key,
        };
        idp.mount_discovery().await;
        idp
    }

    /// The endpoint URL `name` (`token`, `revoke`, `certs`...).
    pub fn endpoint(&self, name: &str) -> String {
        format!("{}/protocol/openid-connect/{name}", self.issuer)
    }

    async fn mount_discovery(&self) {
        let mut jwk = serde_json::to_value(
            jsonwebtoken::jwk::Jwk::from_encoding_key(&self.key, Algorithm::RS256).unwrap(),
        )
        .unwrap();
        jwk["kid"] = "k1".into();
        jwk["use"] = "sig".into();
        Mock::given(method("GET"))
            .and(path("/realms/master/.well-known/openid-configuration"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "issuer": self.issuer,
                "authorization_endpoint": self.endpoint("auth"),
                "token_endpoint": self.endpoint("token"),
                "jwks_uri": self.endpoint("certs"),
                "revocation_endpoint": self.endpoint("revoke"),
                "end_session_endpoint": self.endpoint("logout"),
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
            })))
            .mount(&self.server)
            .await;
        Mock::given(method("GET"))
            .and(path("/realms/master/protocol/openid-connect/certs"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(serde_json::json!({"keys": [jwk]})),
            )
            .mount(&self.server)
            .await;
        Mock::given(method("POST"))
            .and(path("/realms/master/protocol/openid-connect/revoke"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&self.server)
            .await;
    }

    /// Valid ID-token claims for a login with `nonce`.
    pub fn claims(&self, nonce: &str) -> serde_json::Value {
        serde_json::json!({
            "iss": self.issuer,
            "sub": "user-1",
            "aud": CLIENT_ID,
            "azp": CLIENT_ID,
            "iat": NOW,
            "exp": NOW + 300,
            "nonce": nonce,
            "sid": "idp-session-1",
            "email": "user1@example.com",
            "groups": ["llm-users", "admins"],
        })
    }

    /// `claims` signed with the JWKS key (RS256, `kid` `k1`).
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("k1".into());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }

    /// The next token responses carry `id_token` (a reset keeps discovery and the JWKS).
    pub async fn token_answers(&self, id_token: &str) {
        self.server.reset().await;
        self.mount_discovery().await;
        Mock::given(method("POST"))
            .and(path("/realms/master/protocol/openid-connect/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "access_token": "access-token-1",
                "token_type": "Bearer",
                "expires_in": 300,
                "refresh_token": "refresh-token-1",
                "id_token": id_token,
            })))
            .mount(&self.server)
            .await;
    }

    /// The form bodies of the requests received on endpoint `name`.
    pub async fn forms(&self, name: &str) -> Vec<std::collections::HashMap<String, String>> {
        let suffix = format!("/openid-connect/{name}");
        self.server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path().ends_with(&suffix))
            .map(|r| form_urlencoded::parse(&r.body).into_owned().collect())
            .collect()
    }

    /// The requests received on endpoint `name`.
    pub async fn requests(&self, name: &str) -> Vec<wiremock::Request> {
        let suffix = format!("/openid-connect/{name}");
        self.server
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.url.path().ends_with(&suffix))
            .collect()
    }
}

/// A flow over the seed's manifests against `idp`, edited by `edit` (a text replacement on
/// the manifest), with the memory store or Redis at `redis_host`.
pub(crate) fn flow_for(
    idp: &SignedIdp,
    edit: impl Fn(String) -> String,
    store: StoreChoice,
    redis_host: &str,
    secrets: &[(&str, &str)],
) -> (Flow, ManualClock) {
    let mut text = edit(SEED.replace("ext-cache-enterprise-agentgateway:6379", redis_host));
    for (name, yaml) in secrets {
        text.push_str(&format!("---\n{}", secret_doc(name, yaml)));
    }
    let env = MapEnv::default()
        .with("KEYCLOAK_SECRET", "s3cr3t")
        .with("KEYCLOAK_CLIENT", CLIENT_ID)
        .with("KEYCLOAK_URL", idp.server.uri())
        .with("INGRESS_GW_ADDRESS", "172.18.0.4")
        .with("SIGNING_KEY", "k".repeat(32));
    let loaded: Loaded = config::load_str("seed.yaml", &text, &env).unwrap();
    let clock = ManualClock::new(NOW);
    let flow = build_flow(&loaded, store, Arc::new(clock.clone())).unwrap();
    (flow, clock)
}

/// A Secret named `name` in the seed's namespace, with `string_data` (YAML lines, indented
/// by the caller's text as given).
fn secret_doc(name: &str, string_data: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: agentgateway-system\nstringData:\n{string_data}"
    )
}

/// The seed manifest with `extra` (8-space-indented lines) added to `oidcAuthorizationCode`.
pub(crate) fn with_fields(extra: &'static str) -> impl Fn(String) -> String {
    move |text: String| text.replace("        headers:\n", &format!("{extra}        headers:\n"))
}

/// A callback for a login just started: the state, and the request the browser sends.
pub(crate) fn callback(
    flow: &Flow,
    query_extra: &str,
) -> (crate::state::IssuedState, CheckRequest) {
    let issued = flow.state().issue("http://172.18.0.4/openai", NOW).unwrap();
    let target = format!("/openai?code=the-code&state={}{query_extra}", issued.token);
    (
        issued,
        CheckRequest::new("GET", "http", "172.18.0.4", &target),
    )
}

/// A whole login through the callback with an ID token made of `claims`; the session cookie
/// pair (`keycloak-session=...`).
pub(crate) async fn log_in(
    flow: &Flow,
    idp: &SignedIdp,
    edit: impl Fn(&mut serde_json::Value),
) -> String {
    let (issued, check) = callback(flow, "");
    let mut claims = idp.claims(&issued.login.nonce);
    edit(&mut claims);
    idp.token_answers(&idp.sign(&claims)).await;
    let d = match flow.decide(&check).await {
        Decision::Deny(d) => d,
        Decision::Allow(a) => panic!("expected the callback's redirect, got {a:?}"),
    };
    assert_eq!(d.status, http::StatusCode::FOUND, "{}", d.body);
    d.headers
        .iter()
        .find(|(n, v)| n == "set-cookie" && v.starts_with("keycloak-session="))
        .map(|(_, v)| v.split(';').next().unwrap().to_owned())
        .expect("a session cookie")
}
