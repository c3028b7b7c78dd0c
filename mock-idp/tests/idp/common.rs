//! Fixtures: a running IdP with a controllable clock, an HTTP client that behaves like a
//! browser without following redirects, and helpers that walk the login flow.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use jsonwebtoken::{DecodingKey, Validation, jwk::JwkSet};
use mock_idp::{Clock, MockIdp, MockIdpBuilder, Realm, RunningIdp};
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use url::Url;

pub const CLIENT_ID: &str = "agentgateway";
pub const CLIENT_SECRET: &str = "agentgateway-client-secret";
pub const REDIRECT_URI: &str = "http://127.0.0.1:18080/openai";
pub const PUBLIC_CLIENT: &str = "public-spa";
pub const ODD_CLIENT: &str = "odd client:id";
pub const ODD_SECRET: &str = "p@ss word+%";

/// A clock the test moves forward by hand.
#[derive(Debug, Default)]
pub struct TestClock {
    offset_secs: AtomicU64,
}

impl TestClock {
    pub fn advance(&self, d: Duration) {
        self.offset_secs.fetch_add(d.as_secs(), Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        SystemTime::now() + Duration::from_secs(self.offset_secs.load(Ordering::SeqCst))
    }
}

/// The scenario realm (`scenarios/realms/master.json`) plus a public client, a client whose
/// credentials need form-encoding, and a disabled user.
pub fn test_realm() -> Realm {
    test_realm_with(Vec::new())
}

/// [`test_realm`] with `extra` clients.
pub fn test_realm_with(extra: Vec<Value>) -> Realm {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scenarios/realms/master.json"
    );
    let mut realm: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    realm["clients"].as_array_mut().unwrap().extend([
        json!({"clientId": PUBLIC_CLIENT, "publicClient": true,
               "redirectUris": ["http://127.0.0.1:18080/spa"]}),
        json!({"clientId": ODD_CLIENT, "secret": ODD_SECRET,
               "redirectUris": ["http://127.0.0.1:18080/*"]}),
    ]);
    realm["clients"].as_array_mut().unwrap().extend(extra);
    realm["users"].as_array_mut().unwrap().push(json!({
        "username": "disabled1", "enabled": false,
        "credentials": [{"type": "password", "value": "password"}]
    }));
    Realm::from_json_str(&realm.to_string()).unwrap()
}

pub struct Fixture {
    pub idp: RunningIdp,
    pub clock: Arc<TestClock>,
    /// A browser-like client: cookie store on, redirects off.
    pub browser: reqwest::Client,
    /// A back-channel client (the relying party's): no cookies, redirects off.
    pub rp: reqwest::Client,
}

pub async fn start() -> Fixture {
    start_with(|b| b).await
}

/// Starts an IdP with the test realm and a [`TestClock`], configured further by `configure`.
pub async fn start_with(configure: impl FnOnce(MockIdpBuilder) -> MockIdpBuilder) -> Fixture {
    start_realm(test_realm(), configure).await
}

/// Starts an IdP serving `realm` (which must be named `master`) with a [`TestClock`].
pub async fn start_realm(
    realm: Realm,
    configure: impl FnOnce(MockIdpBuilder) -> MockIdpBuilder,
) -> Fixture {
    let clock = Arc::new(TestClock::default());
    let idp = configure(MockIdp::builder().realm(realm))
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    Fixture {
        idp,
        clock,
        browser: browser(),
        rp: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

/// The query of a successful or failed authorization response.
#[derive(Debug)]
pub struct Callback {
    pub location: String,
    pub params: Vec<(String, String)>,
}

impl Callback {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn code(&self) -> &str {
        self.get("code").expect("no code in callback")
    }
    pub fn names(&self) -> Vec<&str> {
        self.params.iter().map(|(k, _)| k.as_str()).collect()
    }
}

pub fn callback_of(resp: &reqwest::Response) -> Callback {
    assert_eq!(resp.status(), StatusCode::FOUND, "expected a redirect");
    let location = resp.headers()[LOCATION].to_str().unwrap().to_owned();
    let params = Url::parse(&location)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    Callback { location, params }
}

impl Fixture {
    pub fn issuer(&self) -> String {
        self.idp.issuer("master")
    }

    pub fn endpoint(&self, name: &str) -> String {
        format!("{}/protocol/openid-connect/{name}", self.issuer())
    }

    /// An authorization URL for the confidential client with `extra` parameters; a
    /// parameter given in `extra` replaces the default of the same name.
    pub fn authorize_url(&self, extra: &[(&str, &str)]) -> String {
        let defaults = [
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("response_type", "code"),
            ("scope", "email openid"),
            ("state", "st4te"),
        ];
        let mut url = Url::parse(&self.endpoint("auth")).unwrap();
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in defaults {
                if !extra.iter().any(|(ek, _)| *ek == k) {
                    q.append_pair(k, v);
                }
            }
            for (k, v) in extra {
                if !v.is_empty() {
                    q.append_pair(k, v);
                }
            }
        }
        url.into()
    }

    /// Opens the authorization URL in `browser` and returns the login page HTML.
    pub async fn login_page(&self, browser: &reqwest::Client, extra: &[(&str, &str)]) -> String {
        let resp = browser.get(self.authorize_url(extra)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.text().await.unwrap()
    }

    /// Posts credentials to a login page's form.
    pub async fn submit(
        &self,
        browser: &reqwest::Client,
        html: &str,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        browser
            .post(form_action(html))
            .form(&[
                ("username", username),
                ("password", password),
                ("credentialId", ""),
            ])
            .send()
            .await
            .unwrap()
    }

    /// A full login as user1 in a fresh browser; returns the callback.
    pub async fn login(&self, extra: &[(&str, &str)]) -> Callback {
        self.login_in(&self.browser, extra).await
    }

    pub async fn login_in(&self, browser: &reqwest::Client, extra: &[(&str, &str)]) -> Callback {
        let html = self.login_page(browser, extra).await;
        let resp = self.submit(browser, &html, "user1", "password").await;
        callback_of(&resp)
    }

    /// Exchanges a code with `client_secret_basic`.
    pub async fn exchange(&self, code: &str, extra: &[(&str, &str)]) -> reqwest::Response {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
        ];
        form.extend_from_slice(extra);
        self.rp
            .post(self.endpoint("token"))
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    /// A full login and code exchange; returns the token response.
    pub async fn tokens(&self, extra: &[(&str, &str)]) -> Value {
        let cb = self.login(extra).await;
        let resp = self.exchange(cb.code(), &[]).await;
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    }

    /// `GET userinfo` with the access token of a token response as the bearer token.
    pub async fn userinfo(&self, tokens: &Value) -> reqwest::Response {
        self.rp
            .get(self.endpoint("userinfo"))
            .bearer_auth(tokens["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
    }

    /// The published JWKS, as a `JwkSet` or as raw JSON.
    pub async fn jwks<T: DeserializeOwned>(&self) -> T {
        self.rp
            .get(self.endpoint("certs"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Verifies an RS256 token against the published JWKS and returns its claims.
    pub async fn verify(&self, token: &str, audience: &str) -> Value {
        let jwks: JwkSet = self.jwks().await;
        let header = jsonwebtoken::decode_header(token).unwrap();
        let jwk = jwks
            .find(header.kid.as_deref().unwrap())
            .expect("kid in JWKS");
        let mut v = Validation::new(jsonwebtoken::Algorithm::RS256);
        v.set_audience(&[audience]);
        v.set_issuer(&[self.issuer()]);
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &v)
            .unwrap()
            .claims
    }
}

/// The login form's `action`, HTML-unescaped.
pub fn form_action(html: &str) -> String {
    let form = html
        .find(r#"<form id="kc-form-login""#)
        .expect("login form");
    let start = html[form..].find(r#"action=""#).unwrap() + form + 8;
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].replace("&amp;", "&")
}

/// The text of `<span id="input-error">`, if any.
pub fn input_error(html: &str) -> Option<&str> {
    let start = html.find(r#"id="input-error""#)?;
    let open = html[start..].find('>')? + start + 1;
    let close = html[open..].find("</span>")? + open;
    Some(&html[open..close])
}

/// Replaces the IdP's base URL (which holds the port) with a stable placeholder.
pub fn redact_base(text: &str, idp: &RunningIdp) -> String {
    let base = idp.base_url().to_string();
    text.replace(base.trim_end_matches('/'), "http://[idp]")
}
