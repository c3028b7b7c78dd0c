//! A complete authorization-code login at the mock IdP over HTTP on loopback: `GET /auth`
//! (the login form), `POST /login-actions/authenticate` (302 with a code), `POST /token`
//! (code exchange, `client_secret_basic`, ID token signed with the cached RS256 key). The
//! baseline, measured in the same run, is one `GET` of the discovery document over the same
//! client: the login/baseline ratio is what three round trips, the form, the password check,
//! the code bookkeeping and the token signatures cost.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use mock_idp::{MockIdp, Realm, RunningIdp};

const REALM: &str = include_str!("../../scenarios/realms/master.json");
const CLIENT_ID: &str = "agentgateway";
const CLIENT_SECRET: &str = "agentgateway-client-secret";
const REDIRECT_URI: &str = "http://127.0.0.1:18080/openai";

/// The login form's `action` (HTML-unescaped).
fn form_action(html: &str) -> Option<String> {
    let form = html.find(r#"<form id="kc-form-login""#)?;
    let start = html[form..].find(r#"action=""#)? + form + 8;
    let end = html[start..].find('"')? + start;
    Some(html[start..end].replace("&amp;", "&"))
}

/// One full login; returns the token response body.
async fn login(client: &reqwest::Client, auth_url: &str, token_url: &str) -> String {
    let html = client
        .get(auth_url)
        .send()
        .await
        .expect("authorize")
        .text()
        .await
        .expect("login page");
    let action = form_action(&html).expect("a login form");
    let answer = client
        .post(action)
        .form(&[
            ("username", "user1"),
            ("password", "password"),
            ("credentialId", ""),
        ])
        .send()
        .await
        .expect("login");
    let location = answer
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .expect("a redirect with the code");
    let code = url::Url::parse(location)
        .expect("callback URL")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let tokens = client
        .post(token_url)
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
        ])
        .send()
        .await
        .expect("token");
    assert!(
        tokens.status().is_success(),
        "token status {}",
        tokens.status()
    );
    tokens.text().await.expect("token body")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let idp: RunningIdp = rt.block_on(async {
        MockIdp::builder()
            .realm(Realm::from_json_str(REALM).expect("realm"))
            .start()
            .await
            .expect("mock IdP starts")
    });
    let issuer = idp.issuer("master");
    let discovery = format!("{issuer}/.well-known/openid-configuration");
    let mut auth = url::Url::parse(&format!("{issuer}/protocol/openid-connect/auth")).expect("url");
    auth.query_pairs_mut()
        .append_pair("client_id", CLIENT_ID)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid email")
        .append_pair("state", "bench")
        .append_pair("nonce", "bench");
    let auth = auth.to_string();
    let token = format!("{issuer}/protocol/openid-connect/token");
    // No cookie store: every login gets the form (no silent SSO), redirects are not followed.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    rt.block_on(async {
        assert!(login(&client, &auth, &token).await.contains("id_token"));
    });

    let mut group = c.benchmark_group("idp_login");
    group.bench_function("baseline_discovery_get", |b| {
        b.to_async(&rt).iter(|| async {
            let body = client
                .get(black_box(discovery.as_str()))
                .send()
                .await
                .expect("discovery")
                .bytes()
                .await
                .expect("body");
            black_box(body)
        })
    });
    group.bench_function("code_login", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(login(&client, black_box(&auth), &token).await) })
    });
    group.finish();
    // The log and the store grow with every login; both are bounded, but say goodbye cleanly.
    rt.block_on(idp.shutdown());
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
