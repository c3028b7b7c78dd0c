//! The scenario file format: a raw serde layer mirroring the YAML, compiled into
//! [`Scenario`] with every step's `expect` typed by the step's kind.
//!
//! ```yaml
//! name: seed-authorization-code          # also the snapshot's name
//! description: what this proves
//! stack:
//!   login: browser                       # browser | http (default browser)
//!   idp: [mock, oidc-provider, keycloak]  # one or a list; the first is the default
//!   gateway: [sim, agentgateway, caddy, nginx]  # sim (= simulator) | agentgateway | caddy | nginx
//!   redis: [process, container]          # auto | process | container | memory | tls | sentinel | cluster
//!   # replicas: 2                        # N `extauth serve` processes (default: one in process)
//!   # realm: realms/master.json          # relative to the scenario file's folder
//!   # manifest: manifests/seed-authorization-code.yaml
//! snapshot: true                         # compare the redacted transcript (default true)
//! steps:
//!   - name: unauthenticated POST is redirected
//!     request: {method: POST, path: /openai, headers: {content-type: application/json}, body: "{}"}
//!     expect: {status: 302, location: {endpoint: "${IDP_URL}/realms/master/protocol/openid-connect/auth"}}
//!   - name: log in
//!     login: {user: user1, password: password, start_from: last_location}
//!     expect: {outcome: success, cookie: {name: keycloak-session, value_pattern: "^[A-Z2-7]{103}=$"}}
//!   - name: Redis goes away
//!     redis: stop                        # stop | start | failover | kill-master
//!   - name: replica 0 dies (needs stack.replicas)
//!     extauth: {kill: 0}                 # {kill: i} (SIGKILL) | {restart: i} (same ports, ready)
//!   - name: the mock IdP's admin API (mock IdP only; see mock-idp/README.md)
//!     idp_admin: {method: POST, path: /admin/mock/faults, body: {kind: id_token_nonce}}
//!     expect: {status: 201}              # default: any 2xx; also body_json: {path: text}
//!   - name: the user logs out at the IdP, whose page loads our front-channel URL
//!     idp_logout: {}                     # after an http-driver login; {frame_cookies: true}
//!     expect: {status: 200, frames: 1, frame_status: 200}
//! ```
//!
//! Strings in requests and expectations may use `${VAR}` with the stack's variables
//! (`GATEWAY_URL`, `APP_URL`, `IDP_URL`, `ISSUER`, `KEYCLOAK_CLIENT`, ...).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::login::Driver;

/// Which IdP the stack runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdpBackend {
    /// The in-process mock IdP (Keycloak layout).
    #[default]
    Mock,
    /// The same mock IdP as the `mock-idp:latest` container (`just images`).
    MockContainer,
    /// panva's oidc-provider (npm) under node.
    OidcProvider,
    /// A Keycloak container (skipped when the image is absent).
    Keycloak,
}

/// Which gateway the stack runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GatewayBackend {
    /// The built-in ext_authz gRPC gateway simulator.
    #[default]
    #[serde(alias = "sim")]
    Simulator,
    /// Caddy `forward_auth` over extauth's HTTP mode.
    Caddy,
    /// nginx `auth_request` over extauth's nginx profile.
    Nginx,
    /// agentgateway itself (`extAuthz` over gRPC, like the simulator).
    Agentgateway,
}

/// Which session store the stack uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisBackend {
    /// A container, else a `redis-server` process, else extauth's memory store.
    #[default]
    Auto,
    /// A `redis-server` process (fails when it is missing).
    Process,
    /// A `redis:7` container through testcontainers (fails without a Docker engine).
    Container,
    /// extauth's memory store.
    Memory,
    /// `redis-server` serving TLS only (extauth: `socketType: TLS`, `tlsCertMountPath`).
    Tls,
    /// Redis Sentinel: a master, one replica, three sentinels.
    Sentinel,
    /// Redis Cluster: three masters with a replica each.
    Cluster,
}

impl IdpBackend {
    /// As scenarios spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mock => "mock",
            Self::MockContainer => "mock-container",
            Self::OidcProvider => "oidc-provider",
            Self::Keycloak => "keycloak",
        }
    }

    /// Whose snapshots it shares: the mock's container answers byte for byte like the
    /// in-process mock, so it has none of its own.
    pub fn snapshot_idp(self) -> Self {
        match self {
            Self::MockContainer => Self::Mock,
            other => other,
        }
    }
}

impl GatewayBackend {
    /// As scenarios spell it (short form).
    pub fn name(self) -> &'static str {
        match self {
            Self::Simulator => "sim",
            Self::Caddy => "caddy",
            Self::Nginx => "nginx",
            Self::Agentgateway => "agentgateway",
        }
    }

    /// Whose snapshots it shares: the simulator models agentgateway, so agentgateway's
    /// transcript must be the simulator's, byte for byte (a difference is a bug in the
    /// simulator).
    pub fn snapshot_gateway(self) -> Self {
        match self {
            Self::Agentgateway => Self::Simulator,
            other => other,
        }
    }
}

impl RedisBackend {
    /// As scenarios spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Process => "process",
            Self::Container => "container",
            Self::Memory => "memory",
            Self::Tls => "tls",
            Self::Sentinel => "sentinel",
            Self::Cluster => "cluster",
        }
    }
}

/// One backend or a list of the valid ones (`idp: [mock, oidc-provider]`); the first is the
/// default, `harness run --matrix` runs them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choices<T>(pub Vec<T>);

impl<T: Copy + Default> Choices<T> {
    /// The default choice (the first).
    pub fn first(&self) -> T {
        self.0.first().copied().unwrap_or_default()
    }
}

impl<T: Default> Default for Choices<T> {
    fn default() -> Self {
        Self(vec![T::default()])
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Choices<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany<T> {
            One(T),
            Many(Vec<T>),
        }
        match OneOrMany::deserialize(d)? {
            OneOrMany::One(one) => Ok(Self(vec![one])),
            OneOrMany::Many(many) if many.is_empty() => {
                Err(serde::de::Error::custom("an empty list of backends"))
            }
            OneOrMany::Many(many) => Ok(Self(many)),
        }
    }
}

/// One combination of backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Combo {
    /// The IdP.
    pub idp: IdpBackend,
    /// The gateway.
    pub gateway: GatewayBackend,
    /// The session store.
    pub redis: RedisBackend,
}

impl std::fmt::Display for Combo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "idp={} gateway={} redis={}",
            self.idp.name(),
            self.gateway.name(),
            self.redis.name()
        )
    }
}

/// `stack:`: how to build the stack for this scenario.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackSpec {
    /// Login driver for `login` steps (default `browser`).
    #[serde(default)]
    pub login: Driver,
    /// IdP backend(s) (default `mock`).
    #[serde(default)]
    pub idp: Choices<IdpBackend>,
    /// Gateway backend(s) (default `simulator`, also spelled `sim`).
    #[serde(default)]
    pub gateway: Choices<GatewayBackend>,
    /// Session store(s) (default `auto`).
    #[serde(default)]
    pub redis: Choices<RedisBackend>,
    /// Realm file, relative to the scenario's folder (default `realms/master.json`).
    pub realm: Option<PathBuf>,
    /// Manifest file, relative to the scenario's folder
    /// (default `manifests/seed-authorization-code.yaml`).
    pub manifest: Option<PathBuf>,
    /// Run this many `extauth serve` processes behind the gateway (1 to 16, each killable
    /// and restartable by `extauth` steps); default: one extauth inside the harness.
    pub replicas: Option<u16>,
}

impl StackSpec {
    /// The default combination: the first of each list.
    pub fn default_combo(&self) -> Combo {
        Combo {
            idp: self.idp.first(),
            gateway: self.gateway.first(),
            redis: self.redis.first(),
        }
    }

    /// Every combination the scenario declares valid, the default first.
    pub fn combos(&self) -> Vec<Combo> {
        let mut all = Vec::new();
        for &idp in &self.idp.0 {
            for &gateway in &self.gateway.0 {
                for &redis in &self.redis.0 {
                    all.push(Combo {
                        idp,
                        gateway,
                        redis,
                    });
                }
            }
        }
        all
    }
}

/// A scenario file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub stack: StackSpec,
    #[serde(default = "yes")]
    pub snapshot: bool,
    pub steps: Vec<RawStep>,
}

fn yes() -> bool {
    true
}

/// One step as written: exactly one of `request`, `login`, `redis`, `extauth`, `idp_admin`,
/// `idp_logout`, `pause_ms`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStep {
    pub name: String,
    pub request: Option<RequestSpec>,
    pub login: Option<LoginSpec>,
    pub redis: Option<RedisAction>,
    pub extauth: Option<RawExtauthAction>,
    pub idp_admin: Option<IdpAdminSpec>,
    pub idp_logout: Option<IdpLogoutSpec>,
    /// Wait this long (1 to 60000 ms), e.g. for a retry delay of the server under test.
    pub pause_ms: Option<u64>,
    pub expect: Option<yaml_serde::Value>,
}

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Its name (and the snapshot's).
    pub name: String,
    /// What it shows, for humans.
    pub description: String,
    /// The stack to build.
    pub stack: StackSpec,
    /// Whether the transcript is snapshotted.
    pub snapshot: bool,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// The file it came from (for relative paths and messages).
    pub path: PathBuf,
}

/// A validated step.
#[derive(Debug, Clone)]
pub struct Step {
    /// Printed as it runs.
    pub name: String,
    /// What it does.
    pub action: Action,
}

/// What a step does, with its expectations.
#[derive(Debug, Clone)]
pub enum Action {
    /// An HTTP request to the gateway.
    Request(RequestSpec, Box<RequestExpect>),
    /// A login at the IdP.
    Login(LoginSpec, LoginExpect),
    /// Stop or start the stack's Redis.
    Redis(RedisAction),
    /// Kill or restart one extauth replica.
    Extauth(ExtauthAction),
    /// A call to the mock IdP's admin API (faults, clock, request log, keys).
    IdpAdmin(IdpAdminSpec, IdpAdminExpect),
    /// The last login's user logs out at the IdP; the frames of its logout page are loaded.
    IdpLogout(IdpLogoutSpec, IdpLogoutExpect),
    /// Wait (`pause_ms`), bounded to a minute.
    Pause(std::time::Duration),
}

/// `request:`: one request to the gateway.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// HTTP method (default `GET`).
    #[serde(default = "get")]
    pub method: String,
    /// Path and query at the gateway, e.g. `/openai`.
    pub path: String,
    /// Request headers (values interpolated).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request body (interpolated).
    pub body: Option<String>,
    /// Send the cookies the last login left for the gateway (none when it failed).
    #[serde(default)]
    pub use_cookie: bool,
}

fn get() -> String {
    "GET".to_owned()
}

/// `expect:` of a request step. Every field is optional; only what is given is checked.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestExpect {
    /// Response status.
    pub status: Option<u16>,
    /// Checks on the `location` header.
    pub location: Option<LocationExpect>,
    /// Claims of the JWT in the location's `state` parameter (decoded, not verified: the
    /// key is extauth's).
    pub state_claims: Option<StateClaimsExpect>,
    /// Response headers: name → check.
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderExpect>,
    /// The response body contains this text.
    pub body_contains: Option<String>,
    /// JSON body fields by dotted path (`choices.0.message.content`) → expected text.
    #[serde(default)]
    pub body_json: BTreeMap<String, String>,
    /// What the upstream (the LLM) received during this step.
    pub upstream_received: Option<UpstreamExpect>,
}

/// Checks on a redirect `location`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationExpect {
    /// The whole location, exactly.
    pub equals: Option<String>,
    /// Origin and path (no query), e.g. the IdP's authorization endpoint.
    pub endpoint: Option<String>,
    /// The query parameter names, exactly and in this order.
    pub params: Option<Vec<String>>,
    /// Parameter values after URL-decoding.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    /// Parameter values as sent (still encoded, e.g. `email+openid`).
    #[serde(default)]
    pub raw_values: BTreeMap<String, String>,
}

/// Checks on the `state` JWT.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateClaimsExpect {
    /// Claim names that must be present (more are allowed unless `only`).
    #[serde(default)]
    pub names: Vec<String>,
    /// No claims beyond `names`.
    #[serde(default)]
    pub only: bool,
    /// `exp - iat`, in seconds.
    pub lifetime_seconds: Option<i64>,
    /// `nbf == iat`.
    #[serde(default)]
    pub nbf_equals_iat: bool,
    /// String claims → expected value.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
}

/// A check on one header.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderExpect {
    /// Present (`true`) or absent (`false`).
    pub present: Option<bool>,
    /// Number of values (repeated headers).
    pub count: Option<usize>,
    /// The (single) value equals this.
    pub equals: Option<String>,
    /// No value equals this (e.g. a forged value the client sent).
    pub not_equals: Option<String>,
    /// The value matches this regular expression.
    pub matches: Option<String>,
    /// The value is an ID token from the stack's IdP (signature via JWKS, `iss`, `aud`,
    /// `exp`) with these claims (`aud` may be a list that contains the value).
    pub id_token: Option<BTreeMap<String, String>>,
}

/// What the upstream received during the step.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamExpect {
    /// Whether the request reached the upstream at all.
    pub reached: Option<bool>,
    /// Headers of the request the upstream received → check.
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderExpect>,
}

/// `login:`: a login at the IdP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginSpec {
    /// Overrides `stack.login` for this step.
    pub driver: Option<Driver>,
    /// Username.
    pub user: String,
    /// Password.
    pub password: String,
    /// `last_location` (the last response's `location`) or a URL (interpolated).
    #[serde(default = "last_location")]
    pub start_from: String,
    /// Bound on the whole login (default 20).
    pub timeout_seconds: Option<u64>,
}

fn last_location() -> String {
    LAST_LOCATION.to_owned()
}

/// The `start_from` value meaning "the last response's location".
pub const LAST_LOCATION: &str = "last_location";

/// How a login ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginResult {
    /// Back at the gateway, logged in.
    #[default]
    Success,
    /// The IdP said "Invalid username or password.".
    InvalidCredentials,
    /// The IdP redirected back with a code, and the gateway answered the callback with an
    /// error status (4xx/5xx) instead of the redirect to the original URL
    /// ([`crate::login::LoginError::CallbackRejected`], from either driver). The step also
    /// fails when that answer set a cookie: a rejected callback must leave no session.
    CallbackRejected,
}

/// `expect:` of a login step; `expect: invalid_credentials` is short for
/// `expect: {outcome: invalid_credentials}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginExpect {
    /// How it ends (default `success`).
    #[serde(default)]
    pub outcome: LoginResult,
    /// A cookie the client holds for the gateway afterwards.
    pub cookie: Option<CookieExpect>,
    /// The URL the login ends on.
    pub final_url: Option<String>,
    /// The status of the last page (http driver only).
    pub final_status: Option<u16>,
    /// The last page's text contains this.
    pub page_contains: Option<String>,
    /// `callback_rejected: {status: N, body_contains: ...}`: the outcome is
    /// `callback_rejected` with exactly this status (`expect: callback_rejected` alone accepts
    /// any rejection). Implies `outcome: callback_rejected`.
    pub callback_rejected: Option<RejectionExpect>,
}

/// How a rejected callback must have been answered.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectionExpect {
    /// The exact status of the gateway's answer to the callback.
    pub status: u16,
    /// Text the answer's body contains (compared with the first 200 characters, whitespace
    /// collapsed, as the login drivers keep them).
    pub body_contains: Option<String>,
}

/// A cookie check.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CookieExpect {
    /// Its name.
    pub name: String,
    /// A regular expression its value matches.
    pub value_pattern: Option<String>,
    /// `HttpOnly`.
    pub http_only: Option<bool>,
}

/// `redis:`: what to do to the stack's Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisAction {
    /// Kill it (a store outage).
    Stop,
    /// Start it again on the same port (empty).
    Start,
    /// A failover driven by Redis (Sentinel: `SENTINEL FAILOVER`; Cluster: `CLUSTER
    /// FAILOVER`), waited for until Redis reports the new master.
    Failover,
    /// SIGKILL of the current master (Cluster: the one holding the most keys), waited for
    /// until its replica is promoted; the killed node then restarts as a replica.
    #[serde(rename = "kill-master", alias = "kill_master")]
    KillMaster,
}

/// `extauth:` as written: `{kill: i}` or `{restart: i}`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExtauthAction {
    pub kill: Option<usize>,
    pub restart: Option<usize>,
}

impl RawExtauthAction {
    /// Exactly one of `kill`, `restart`.
    pub fn action(self) -> Result<ExtauthAction, String> {
        match (self.kill, self.restart) {
            (Some(i), None) => Ok(ExtauthAction::Kill(i)),
            (None, Some(i)) => Ok(ExtauthAction::Restart(i)),
            _ => Err("extauth: expected exactly one of `kill: N`, `restart: N`".to_owned()),
        }
    }
}

/// `extauth:`: what to do to one extauth replica (0-based; the stack must run
/// `stack.replicas` processes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtauthAction {
    /// `{kill: i}`: `SIGKILL` of replica `i` by its PID; it stays down.
    Kill(usize),
    /// `{restart: i}`: replica `i` again on the same address and ports (`SIGTERM` first when
    /// it runs), once its `/readyz` says 200.
    Restart(usize),
}

impl ExtauthAction {
    /// The replica it acts on.
    pub fn replica(self) -> usize {
        match self {
            Self::Kill(i) | Self::Restart(i) => i,
        }
    }
}

/// `idp_admin:`: one call to the mock IdP's admin API (`/admin/mock/...`, see mock-idp's
/// README), e.g. `{method: POST, path: /admin/mock/faults, body: {kind: id_token_nonce}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdpAdminSpec {
    /// HTTP method (default `GET`).
    #[serde(default = "get")]
    pub method: String,
    /// Path (and query) under the IdP's base URL, e.g. `/admin/mock/requests?endpoint=token`.
    pub path: String,
    /// A JSON body, written as YAML (strings interpolated).
    pub body: Option<yaml_serde::Value>,
}

/// `expect:` of an `idp_admin` step. Without it, any 2xx passes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdpAdminExpect {
    /// Response status (default: any 2xx).
    pub status: Option<u16>,
    /// JSON body fields by dotted path (`requests.0.form.code_verifier`) → expected text.
    #[serde(default)]
    pub body_json: BTreeMap<String, String>,
}

/// `idp_logout:`: the user of the last login (http driver: the IdP's cookies it kept) logs
/// out at the IdP's `end_session_endpoint` (from discovery), as a person does, and every
/// `<iframe src>` of the page it answers (OpenID Connect Front-Channel Logout 1.0: each
/// client's `frontchannel.logout.url` with `iss` and `sid`) is loaded, as the browser does.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdpLogoutSpec {
    /// Send the gateway cookies of the last login with the frame requests. Default `false`:
    /// the frames are cross-site (IdP page on `localhost`, gateway on 127.0.0.N), where a
    /// browser keeps `SameSite=Lax` cookies back, so the logout must work from `sid` alone.
    #[serde(default)]
    pub frame_cookies: bool,
}

/// `expect:` of an `idp_logout` step. Without it, the logout page must answer 2xx.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdpLogoutExpect {
    /// The status of the IdP's logout page (default: any 2xx).
    pub status: Option<u16>,
    /// How many frames the page loads.
    pub frames: Option<usize>,
    /// The status every frame answered.
    pub frame_status: Option<u16>,
}
