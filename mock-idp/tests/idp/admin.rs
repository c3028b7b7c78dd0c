//! The admin API (`/admin/mock/...`): clock, request log, faults and keys, over HTTP, and the
//! same controls through the `RunningIdp` handle.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{CLIENT_ID, Fixture, start};

impl Fixture {
    pub fn admin(&self, path: &str) -> String {
        format!("{}admin/mock/{path}", self.idp.base_url())
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> reqwest::Response {
        self.rp
            .post(self.admin(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn admin_get(&self, path: &str) -> Value {
        let resp = self.rp.get(self.admin(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
        resp.json().await.unwrap()
    }

    pub async fn add_fault(&self, fault: Value) {
        let resp = self.admin_post("faults", fault.clone()).await;
        assert_eq!(resp.status(), StatusCode::CREATED, "fault {fault}");
    }
}

#[tokio::test]
async fn the_clock_can_be_read_set_and_advanced() {
    let f = start().await;
    let resp = f
        .admin_post("clock", json!({"now": 2_000_000_000u64}))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let now = f.admin_get("clock").await["now"].as_u64().unwrap();
    assert!((2_000_000_000..2_000_000_005).contains(&now), "{now}");

    let resp = f.admin_post("clock/advance", json!({"seconds": 600})).await;
    let body: Value = resp.json().await.unwrap();
    assert!(body["now"].as_u64().unwrap() >= 2_000_000_600);

    f.idp.clock().advance(-600);
    let now = f.admin_get("clock").await["now"].as_u64().unwrap();
    assert!(now < 2_000_000_010);
}

#[tokio::test]
async fn issued_tokens_use_the_idp_clock() {
    let f = start().await;
    f.idp.clock().set(2_000_000_000);
    let tokens = f.tokens(&[("nonce", "n")]).await;
    let claims = f.decode(tokens["id_token"].as_str().unwrap());
    let iat = claims["iat"].as_u64().unwrap();
    assert!((2_000_000_000..2_000_000_005).contains(&iat), "{iat}");
    assert_eq!(claims["exp"].as_u64().unwrap(), iat + 300);
    assert!(claims["auth_time"].as_u64().unwrap() >= 2_000_000_000);
}

#[tokio::test]
async fn bad_admin_input_is_a_400_naming_the_field() {
    let f = start().await;
    let resp = f.admin_post("clock", json!({"now": "soon"})).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["path"], "now");

    let resp = f
        .admin_post("faults", json!({"kind": "no_such_fault"}))
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    let resp = f
        .admin_post(
            "faults",
            json!({"kind": "status", "endpoint": "token", "status": 200}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    let resp = f
        .admin_post("faults", json!({"kind": "id_token_nonce", "realm": "nope"}))
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_request_log_records_parameters_with_secrets_redacted() {
    let f = start().await;
    let cb = f
        .login(&[
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ])
        .await;
    let resp = f
        .exchange(
            cb.code(),
            &[(
                "code_verifier",
                "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            )],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);

    let log = f.admin_get("requests?endpoint=token").await;
    assert_eq!(log["count"], 1);
    let entry = &log["requests"][0];
    assert_eq!(entry["method"], "POST");
    assert_eq!(entry["realm"], "master");
    assert_eq!(entry["client_id"], CLIENT_ID);
    assert_eq!(entry["status"], 200);
    assert_eq!(entry["form"]["grant_type"], "authorization_code");
    assert_eq!(entry["form"]["code_verifier"], "[redacted]");
    assert_eq!(entry["form"]["code"], "[redacted]");
    assert!(
        entry["headers"]
            .as_array()
            .unwrap()
            .contains(&json!("authorization"))
    );
    let text = log.to_string();
    assert!(!text.contains("dBjftJeZ4CVP"), "verifier leaked: {text}");

    let login = f.admin_get("requests?endpoint=login").await;
    assert_eq!(login["requests"][0]["form"]["password"], "[redacted]");
    assert_eq!(f.admin_get("requests?endpoint=userinfo").await["count"], 0);

    let resp = f.rp.delete(f.admin("requests")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(f.idp.requests().is_empty());
}

#[tokio::test]
async fn faults_are_listed_and_deleted() {
    let f = start().await;
    f.add_fault(json!({"kind": "id_token_nonce", "mode": "sticky", "client": CLIENT_ID}))
        .await;
    f.add_fault(json!({"kind": "latency", "endpoint": "jwks", "ms": 1}))
        .await;
    let list = f.admin_get("faults").await;
    let faults = list["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 2);
    assert_eq!(faults[0]["kind"], "id_token_nonce");
    assert_eq!(faults[0]["mode"], "sticky");
    assert_eq!(faults[0]["hits"], 0);
    let id = faults[1]["id"].as_u64().unwrap();

    let resp =
        f.rp.delete(f.admin(&format!("faults/{id}")))
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp =
        f.rp.delete(f.admin(&format!("faults/{id}")))
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = f.rp.delete(f.admin("faults")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(f.idp.faults().list().is_empty());
}

#[tokio::test]
async fn key_rotation_keeps_the_old_key_published_for_the_overlap() {
    let f = start().await;
    let before = f.admin_get("keys").await;
    let old = before["signing_kid"].as_str().unwrap().to_owned();
    let after: Value =
        f.rp.post(f.admin("keys/rotate"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let new = after["signing_kid"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(after["published"], json!([new, old]));

    let tokens = f.tokens(&[]).await;
    let header = jsonwebtoken::decode_header(tokens["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(header.kid.as_deref(), Some(new.as_str()));

    f.idp.clock().advance(3601);
    assert_eq!(f.idp.published_kids(), vec![new]);
}

impl Fixture {
    /// The claims of a JWT, not verified.
    pub fn decode(&self, token: &str) -> Value {
        decode_part(token, 1)
    }
}

/// Part `i` (0 header, 1 claims) of a JWT as JSON.
pub fn decode_part(token: &str, i: usize) -> Value {
    use base64::Engine as _;
    let part = token.split('.').nth(i).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}
