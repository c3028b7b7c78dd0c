//! The scenario file format: a raw serde layer mirroring the YAML, compiled into
//! [`Scenario`] with every step's `expect` typed by the step's kind.
//!
//! ```yaml
//! name: seed-authorization-code          # also the snapshot's name
//! description: what this proves
//! stack:
//!   login: browser                       # browser | http (default browser)
//!   idp: mock                            # mock (only one for now)
//!   gateway: simulator                   # simulator (only one for now)
//!   redis: auto                          # auto | process | memory (default auto)
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
//!     redis: stop                        # stop | start
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
#[serde(rename_all = "snake_case")]
pub enum IdpBackend {
    /// The in-process mock IdP (Keycloak layout).
    #[default]
    Mock,
}

/// Which gateway the stack runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GatewayBackend {
    /// The built-in ext_authz gRPC gateway simulator.
    #[default]
    Simulator,
}

/// Which session store the stack uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisBackend {
    /// A `redis-server` process when installed, else extauth's memory store.
    #[default]
    Auto,
    /// A `redis-server` process (fails when it is missing).
    Process,
    /// extauth's memory store.
    Memory,
}

/// `stack:`: how to build the stack for this scenario.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackSpec {
    /// Login driver for `login` steps (default `browser`).
    #[serde(default)]
    pub login: Driver,
    /// IdP backend (default `mock`).
    #[serde(default)]
    pub idp: IdpBackend,
    /// Gateway backend (default `simulator`).
    #[serde(default)]
    pub gateway: GatewayBackend,
    /// Session store (default `auto`).
    #[serde(default)]
    pub redis: RedisBackend,
    /// Realm file, relative to the scenario's folder (default `realms/master.json`).
    pub realm: Option<PathBuf>,
    /// Manifest file, relative to the scenario's folder
    /// (default `manifests/seed-authorization-code.yaml`).
    pub manifest: Option<PathBuf>,
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

/// One step as written: exactly one of `request`, `login`, `redis`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStep {
    pub name: String,
    pub request: Option<RequestSpec>,
    pub login: Option<LoginSpec>,
    pub redis: Option<RedisAction>,
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
}
