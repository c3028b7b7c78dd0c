//! Shared fixtures of the integration suites: extauth on port 0 with the seed's manifests, the
//! mock IdP (Keycloak layout) on port 0, Redis as a real `redis-server` or the memory store,
//! and a plain HTTP client (redirects off) playing the browser and the proxy.

#![allow(dead_code)] // Each suite uses a different part.

use std::net::SocketAddr;
use std::sync::Arc;

use extauth::clock::SystemClock;
use extauth::config::{self, Loaded};
use extauth::env::MapEnv;
use extauth::server::{self, OpsOptions, RunningServer, ServeOptions, StoreChoice};
use extauth::testing::RedisProcess;
use mock_idp::{MockIdp, Realm, RunningIdp};

pub const MANIFEST: &str =
    include_str!("../../../scenarios/manifests/seed-authorization-code.yaml");
pub const REALM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../scenarios/realms/master.json"
);
/// `${INGRESS_GW_ADDRESS}`: `appUrl` is `http://<it>:80`.
pub const GATEWAY: &str = "127.0.0.1";
pub const APP_HOST: &str = "127.0.0.1:80";
pub const CONFIG_ID: &str = "agentgateway-system/oauth-authorization-code";
pub const COOKIE: &str = "keycloak-session";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    Redis,
    Memory,
}

pub struct Stack {
    pub idp: RunningIdp,
    pub server: RunningServer,
    pub http: reqwest::Client,
    pub redis: Option<RedisProcess>,
}

pub async fn idp() -> RunningIdp {
    MockIdp::builder()
        .realm(Realm::from_file(REALM).expect("realm"))
        .public_host("localhost")
        .start()
        .await
        .expect("mock idp")
}

pub fn loaded(idp_base: &str, redis_port: u16) -> Loaded {
    loaded_for_app(idp_base, redis_port, APP_HOST)
}

/// The seed's manifests with `appUrl` = `http://<app_host>` (e.g. a gateway on a free port).
pub fn loaded_for_app(idp_base: &str, redis_port: u16, app_host: &str) -> Loaded {
    loaded_edited(idp_base, redis_port, |m| {
        m.replace("${INGRESS_GW_ADDRESS}:80", app_host)
    })
}

/// The seed's manifests edited by `edit` (a text replacement), loaded for the IdP at
/// `idp_base` and Redis on `redis_port`.
pub fn loaded_edited(idp_base: &str, redis_port: u16, edit: impl Fn(String) -> String) -> Loaded {
    let manifest = edit(MANIFEST.to_owned());
    let env = MapEnv::default()
        .with("KEYCLOAK_SECRET", "agentgateway-client-secret")
        .with("KEYCLOAK_CLIENT", "agentgateway")
        .with("KEYCLOAK_URL", idp_base.trim_end_matches('/'))
        .with("INGRESS_GW_ADDRESS", GATEWAY)
        .with("REDIS_HOST", "127.0.0.1")
        .with("REDIS_PORT", redis_port.to_string())
        .with(
            "SIGNING_KEY",
            "an-ops-test-signing-key-of-at-least-32-bytes",
        );
    config::load_str("seed-authorization-code.yaml", &manifest, &env).expect("seed manifests load")
}

pub async fn start(
    idp: &RunningIdp,
    redis: Option<&RedisProcess>,
    ops: OpsOptions,
) -> RunningServer {
    let loaded = loaded(idp.base_url().as_str(), redis.map_or(1, RedisProcess::port));
    start_loaded(loaded, redis.is_some(), ops).await
}

/// extauth on port 0 serving `loaded`, with Redis sessions (`redis`) or the memory store.
pub async fn start_loaded(loaded: Loaded, redis: bool, ops: OpsOptions) -> RunningServer {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    server::start_with_options(
        loaded,
        ServeOptions {
            grpc: any,
            http: any,
            admin: any,
            session_store: if redis {
                StoreChoice::FromConfig
            } else {
                StoreChoice::Memory
            },
        },
        ops,
        Arc::new(SystemClock),
    )
    .await
    .expect("extauth starts")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub async fn stack(store: Store, ops: OpsOptions) -> Stack {
    let redis = match store {
        Store::Redis => Some(RedisProcess::start().expect("redis-server must be installed")),
        Store::Memory => None,
    };
    let idp = idp().await;
    let server = start(&idp, redis.as_ref(), ops).await;
    Stack {
        idp,
        server,
        http: client(),
        redis,
    }
}

/// One HTTP response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.all(name).into_iter().next()
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub async fn read(resp: reqwest::Response) -> Self {
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = resp.text().await.unwrap_or_default();
        Self {
            status,
            headers,
            body,
        }
    }
}

/// A request to the HTTP listener at `path` with these headers (no `Host` unless given).
pub async fn http_request(
    stack: &Stack,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let url = format!("http://{}{path}", stack.server.http_addr());
    let mut req = stack.http.request(method.parse().unwrap(), url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Answer::read(req.send().await.expect("http check")).await
}

/// A GET on the admin listener.
pub async fn admin_get(stack: &Stack, path: &str) -> Answer {
    let url = format!("http://{}{path}", stack.server.admin_addr());
    Answer::read(stack.http.get(url).send().await.expect("admin")).await
}

/// The browser's part: open the IdP URL, fill Keycloak's form as `user1` / `password`, return
/// the callback URL (with `code` and `state`) the IdP redirects to.
pub async fn log_in(http: &reqwest::Client, auth_url: &str) -> url::Url {
    log_in_as(http, auth_url, "user1", "password")
        .await
        .unwrap_or_else(|page| panic!("user1 logs in; the IdP answered: {page}"))
}

/// As [`log_in`] with any credentials; `Err` holds the page the IdP showed instead of a
/// redirect (e.g. "Invalid username or password."). The form is driven by
/// [`extauth::testing::form_login`] (plain HTTP, no cookies, as this client).
pub async fn log_in_as(
    _http: &reqwest::Client,
    auth_url: &str,
    user: &str,
    password: &str,
) -> Result<url::Url, String> {
    use extauth::testing::{FormLoginError, form_login};
    match form_login(auth_url, user, password).await {
        Ok(callback) => Ok(callback),
        Err(FormLoginError::Refused(page)) => Err(page),
        Err(e) => panic!("the IdP shows its login page: {e}"),
    }
}

pub fn path_and_query(url: &url::Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

/// `name=value` of a `Set-Cookie`.
pub fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().trim().to_owned()
}

/// The `state` JWT's payload.
pub fn jwt_claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("json claims")
}

/// A whole login through the HTTP listener as a forward-auth proxy on loopback does it:
/// returns the session cookie pair and the callback URL.
pub async fn forward_auth_login(stack: &Stack) -> (String, url::Url) {
    let first = forward_auth(stack, "POST", "/openai", &[]).await;
    assert_eq!(first.status, 302, "{first:?}");
    let location = first.header("location").unwrap().to_owned();
    let callback = log_in(&stack.http, &location).await;
    let back = forward_auth(stack, "GET", &path_and_query(&callback), &[]).await;
    assert_eq!(back.status, 302, "{back:?}");
    let cookie = cookie_pair(back.header("set-cookie").expect("a session cookie"));
    (cookie, callback)
}

/// What Caddy's `forward_auth` sends: GET to the auth path with the original method, URI,
/// host and scheme in `X-Forwarded-*`, and the original `Host`.
pub async fn forward_auth(
    stack: &Stack,
    method: &str,
    uri: &str,
    extra: &[(&str, &str)],
) -> Answer {
    let mut headers = vec![
        ("host", APP_HOST),
        ("x-forwarded-method", method),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-host", APP_HOST),
        ("x-forwarded-uri", uri),
    ];
    headers.extend_from_slice(extra);
    http_request(stack, "GET", "/", &headers).await
}

/// One check through the gRPC API at `grpc`, as agentgateway/Envoy sends it (the method,
/// path, `Host` = [`APP_HOST`], lowercase headers with Envoy's pseudo-headers); `edit` may
/// add what a gateway adds (`metadata_context`, a body). Returns the answer as a client would
/// get it, and the raw response.
pub async fn grpc_check(
    grpc: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    edit: impl FnOnce(&mut envoy_types::pb::envoy::service::auth::v3::CheckRequest),
) -> (
    Answer,
    envoy_types::pb::envoy::service::auth::v3::CheckResponse,
) {
    use envoy_types::pb::envoy::config::core::v3::HeaderValueOption;
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
    use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
    use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
    use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};

    let mut client = AuthorizationClient::connect(format!("http://{grpc}"))
        .await
        .expect("grpc connect");
    let mut map: std::collections::HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned()))
        .collect();
    map.insert(":authority".into(), APP_HOST.into());
    map.insert(":path".into(), path.into());
    map.insert(":method".into(), method.into());
    let mut request = CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                time: None,
                http: Some(HttpRequest {
                    method: method.into(),
                    path: path.into(),
                    host: APP_HOST.into(),
                    scheme: "http".into(),
                    headers: map,
                    ..HttpRequest::default()
                }),
            }),
            ..AttributeContext::default()
        }),
    };
    edit(&mut request);
    let response = client.check(request).await.expect("check").into_inner();
    let pairs = |opts: &[HeaderValueOption]| -> Vec<(String, String)> {
        opts.iter()
            .filter_map(|o| o.header.as_ref())
            .map(|h| (h.key.clone(), h.value.clone()))
            .collect()
    };
    let answer = match &response.http_response {
        Some(HttpResponse::DeniedResponse(d)) => Answer {
            status: d.status.as_ref().map_or(403, |s| s.code as u16),
            headers: pairs(&d.headers),
            body: d.body.clone(),
        },
        Some(HttpResponse::OkResponse(ok)) => Answer {
            status: 200,
            headers: pairs(&ok.headers),
            body: String::new(),
        },
        other => panic!("unexpected check response {other:?}"),
    };
    (answer, response)
}
