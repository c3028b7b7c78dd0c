//! The pieces of a decision, each group with its baseline:
//! - `state`: signing and verifying the `state` JWT (HS256), beside one HMAC-free base64
//!   decode of the same token;
//! - `id_token`: verifying an ID token from mock-idp (signature with the cached JWKS, `iss`,
//!   `aud`, `exp`), RS256 and ES256, beside decoding its claims without verifying;
//! - `cookie`: finding the session cookie in a `Cookie` header and parsing the id, beside a
//!   plain substring search;
//! - `session_value`: sealing and opening a stored session (JSON, HKDF of the id's secret
//!   half, AES-256-GCM), beside each step alone.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use criterion::{Criterion, criterion_group, criterion_main};
use extauth::clock::SystemClock;
use extauth::config;
use extauth::env::MapEnv;
use extauth::flow::CheckRequest;
use extauth::oidc::Provider;
use extauth::secret::Secret;
use extauth::session::{SessionData, SessionId};
use extauth::state::StateCodec;
use mock_idp::{MockIdp, Realm, RunningIdp, SigningAlg};

const SEED: &str = include_str!("../../scenarios/manifests/seed-authorization-code.yaml");
const REALM: &str = include_str!("../../scenarios/realms/master.json");
const CLIENT_ID: &str = "agentgateway";
const CLIENT_SECRET: &str = "agentgateway-client-secret";
const REDIRECT_URI: &str = "http://127.0.0.1:80/openai";

/// A session like mock-idp's (the tokens' sizes and shapes: what a real login stores).
fn session() -> SessionData {
    benches::mock_idp_like_session()
}

/// A provider for the seed's AuthConfig at `idp`.
fn provider(idp: &str) -> Provider {
    let env = MapEnv::default()
        .with("KEYCLOAK_SECRET", CLIENT_SECRET)
        .with("KEYCLOAK_CLIENT", CLIENT_ID)
        .with("KEYCLOAK_URL", idp)
        .with("INGRESS_GW_ADDRESS", "127.0.0.1")
        .with("REDIS_HOST", "127.0.0.1")
        .with("REDIS_PORT", "6379")
        .with("SIGNING_KEY", "k".repeat(32));
    let loaded = config::load_str("seed.yaml", SEED, &env).expect("seed manifests load");
    Provider::new(Arc::clone(&loaded.auth_configs[0]), Arc::new(SystemClock)).expect("provider")
}

/// An ID token issued by `idp` after a real login (form, code, token endpoint).
async fn id_token(idp: &RunningIdp) -> String {
    let issuer = idp.issuer("master");
    let mut auth = url::Url::parse(&format!("{issuer}/protocol/openid-connect/auth")).expect("url");
    auth.query_pairs_mut()
        .append_pair("client_id", CLIENT_ID)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid email")
        .append_pair("state", "bench");
    let back = extauth::testing::form_login(auth.as_str(), "user1", "password")
        .await
        .expect("login");
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let tokens: serde_json::Value = reqwest::Client::new()
        .post(format!("{issuer}/protocol/openid-connect/token"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token JSON");
    tokens["id_token"].as_str().expect("id_token").to_owned()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let _runtime = rt.enter();

    // state
    let codec = StateCodec::new(&Secret::new("k".repeat(32)));
    let now = 1_700_000_000;
    let url = "http://127.0.0.1:80/openai?model=gpt-4o";
    let issued = codec.issue(url, now).expect("issue");
    let token = issued.token.clone();
    assert!(codec.verify(&token, now).is_ok());
    let mut group = c.benchmark_group("state");
    group.bench_function("baseline_base64_decode_payload", |b| {
        b.iter(|| {
            let payload = black_box(token.as_str()).split('.').nth(1).unwrap_or("");
            black_box(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload))
        })
    });
    group.bench_function("sign", |b| {
        b.iter(|| black_box(codec.issue(black_box(url), now)))
    });
    group.bench_function("verify", |b| {
        b.iter(|| black_box(codec.verify(black_box(&token), now)))
    });
    group.finish();

    // id_token
    let mut group = c.benchmark_group("id_token");
    let realm = || Realm::from_json_str(REALM).expect("realm");
    for alg in [SigningAlg::RS256, SigningAlg::ES256] {
        let idp = rt.block_on(async {
            MockIdp::builder()
                .realm(realm())
                .signing_alg(alg)
                .start()
                .await
                .expect("mock IdP starts")
        });
        let provider = provider(idp.base_url().as_str().trim_end_matches('/'));
        let raw = rt.block_on(id_token(&idp));
        // Discovery and the JWKS are fetched once, here.
        rt.block_on(provider.verify_bearer_id_token(&raw))
            .expect("the ID token verifies");
        let name = alg.name().to_ascii_lowercase();
        group.bench_function(format!("baseline_unverified_claims_{name}"), |b| {
            b.iter(|| black_box(extauth::oidc::unverified_claims(black_box(&raw))))
        });
        group.bench_function(format!("verify_{name}"), |b| {
            b.to_async(&rt).iter(|| async {
                black_box(provider.verify_bearer_id_token(black_box(&raw)).await)
            })
        });
        rt.block_on(idp.shutdown());
    }
    group.finish();

    // cookie
    let id = SessionId::generate();
    let header = format!(
        "_ga=GA1.1.123456789.1700000000; theme=dark; keycloak-session={}; lang=en",
        id.expose()
    );
    let check = CheckRequest::new("GET", "http", "gw", "/openai").with_header("cookie", &header);
    let mut group = c.benchmark_group("cookie");
    group.bench_function("baseline_substring_search", |b| {
        b.iter(|| black_box(black_box(header.as_str()).find("keycloak-session=")))
    });
    group.bench_function("parse_session_cookie", |b| {
        b.iter(|| {
            black_box(
                black_box(&check)
                    .cookie("keycloak-session")
                    .and_then(|v| SessionId::parse(&v)),
            )
        })
    });
    group.finish();

    // session_value
    let data = session();
    let sealed = extauth::session::sealed_value(&id, &data).expect("seal");
    let json = serde_json::to_vec(&data).expect("json");
    let key = extauth::crypto::session_key(&id);
    let aes_sealed = extauth::crypto::seal(&key, &json).expect("seal");
    let mut group = c.benchmark_group("session_value");
    group.bench_function("baseline_json_decode", |b| {
        b.iter(|| black_box(serde_json::from_slice::<SessionData>(black_box(&json))))
    });
    group.bench_function("baseline_hkdf_key", |b| {
        b.iter(|| black_box(extauth::crypto::session_key(black_box(&id))))
    });
    group.bench_function("baseline_aes_gcm_open", |b| {
        b.iter(|| black_box(extauth::crypto::open(&key, black_box(&aes_sealed))))
    });
    group.bench_function("seal", |b| {
        b.iter(|| black_box(extauth::session::sealed_value(black_box(&id), &data)))
    });
    group.bench_function("open", |b| {
        b.iter(|| black_box(extauth::session::open_value(black_box(&id), &sealed)))
    });
    // A value written by extauth before the compact layout (JSON inside the seal).
    let sealed_v1 = extauth::session::seal_v1(&id, &data).expect("seal v1");
    group.bench_function("open_version_1", |b| {
        b.iter(|| black_box(extauth::session::open_value(black_box(&id), &sealed_v1)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
