//! Configuration: the seed's Kubernetes manifests in, validated runtime config out.
//!
//! Two layers (STYLE.md): [`raw`] mirrors the YAML with serde and denies unknown fields;
//! [`compile`] validates it into [`OidcConfig`], the only type the rest of the server reads.
//! Loading never reaches the network: discovery happens in [`crate::oidc`].

// Config errors are built once, at startup or by `extauth validate`; their size does not matter
// and boxing every variant would make the reasons harder to build and to match in tests.
#![allow(clippy::result_large_err)]

pub mod compile;
pub mod error;
pub mod manifest;
pub mod raw;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;

pub use error::{ConfigError, DocLabel};

use crate::env::EnvSource;
use crate::secret::Secret;

/// An AuthConfig's identity: `namespace/name`.
pub type ConfigId = String;

/// One validated `oauth2.oidcAuthorizationCode` AuthConfig.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// `namespace/name` of the AuthConfig.
    pub id: ConfigId,
    /// `appUrl` as written (no trailing `/`), e.g. `http://172.18.0.4:80`.
    pub app_url: String,
    /// `appUrl` parsed (note: `url` drops a default port such as `:80`).
    pub app_origin: url::Url,
    /// `callbackPath`, starting with `/`.
    pub callback_path: String,
    /// `callbackPath` compiled when `parseCallbackPathAsRegex` is set (anchored).
    pub callback_regex: Option<regex::Regex>,
    /// `appUrl` + `callbackPath`, exactly as written, `:80` kept: what the IdP sees.
    pub redirect_uri: String,
    /// `clientId`.
    pub client_id: String,
    /// How extauth authenticates at the token and revocation endpoints
    /// (`clientAuthentication`, or the deprecated `clientSecretRef` / `disableClientSecret`).
    pub client_auth: ClientAuth,
    /// `issuerUrl` as written (may end with `/`).
    pub issuer_url: String,
    /// The `scope` parameter: configured scopes, then `openid`.
    pub scope: String,
    /// Session settings.
    pub session: SessionConfig,
    /// `headers.idTokenHeader`.
    pub id_token_header: Option<HeaderName>,
    /// `headers.accessTokenHeader`.
    pub access_token_header: Option<HeaderName>,
    /// `headers.useBearerSchemaForAuthorization`.
    pub use_bearer_schema: bool,
    /// `identityToken.claimsToHeaders`.
    pub id_token_claims: Vec<ClaimToHeader>,
    /// `accessToken.claimsToHeaders`.
    pub access_token_claims: Vec<ClaimToHeader>,
    /// `sessionIdHeaderName`.
    pub session_id_header: Option<HeaderName>,
    /// `logoutPath`.
    pub logout_path: Option<String>,
    /// `afterLogoutUrl` (default `appUrl` + `/`).
    pub after_logout_url: String,
    /// `endSessionProperties.methodType`.
    pub end_session_method: EndSessionMethod,
    /// `discoveryOverride`, as discovery-document keys and JSON values.
    pub discovery_override: serde_json::Map<String, serde_json::Value>,
    /// `discoveryPollInterval` (default 30 minutes).
    pub discovery_poll_interval: Duration,
    /// `jwksCacheRefreshPolicy`.
    pub jwks_refresh: JwksRefreshPolicy,
    /// `authEndpointQueryParams`.
    pub auth_endpoint_query_params: BTreeMap<String, String>,
    /// `tokenEndpointQueryParams`.
    pub token_endpoint_query_params: BTreeMap<String, String>,
    /// `spec.failOnRedirect`.
    pub fail_on_redirect: bool,
    /// extauth extension `unauthorizedForNonBrowser` (default true).
    pub unauthorized_for_non_browser: bool,
    /// extauth extension `strictLoginBinding` (default false).
    pub strict_login_binding: bool,
    /// extauth extension `maxPendingLogins` (default 5).
    pub max_pending_logins: usize,
    /// `frontChannelLogout.path` (default: none).
    pub front_channel_logout_path: Option<String>,
    /// extauth extension `backChannelLogout.path` (default: none).
    pub back_channel_logout_path: Option<String>,
    /// `dynamicMetadataFromClaims`: (metadata key, ID-token claim), sorted by key.
    pub dynamic_metadata_from_claims: Vec<(String, String)>,
    /// `autoMapFromMetadata.namespace` when `autoMapFromMetadata` is set.
    pub auto_map_namespace: Option<String>,
}

impl OidcConfig {
    /// The client secret, in `client_secret_basic` mode.
    pub fn client_secret(&self) -> Option<&Secret> {
        match &self.client_auth {
            ClientAuth::Secret(secret) => Some(secret),
            ClientAuth::Public | ClientAuth::PrivateKeyJwt(_) => None,
        }
    }
}

/// How the client authenticates to the IdP's token and revocation endpoints.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// `client_secret_basic` (RFC 6749 2.3.1) with this secret.
    Secret(Secret),
    /// A public client (`disableClientSecret: true`): `client_id` in the form, no secret;
    /// PKCE protects the code.
    Public,
    /// `private_key_jwt` (RFC 7523): a signed `client_assertion` per request.
    PrivateKeyJwt(PrivateKeyJwtConfig),
}

/// `clientAuthentication.privateKeyJwt`, resolved.
#[derive(Debug, Clone)]
pub struct PrivateKeyJwtConfig {
    /// The signing key from `signingKeyRef` (parsed and checked at load).
    pub key: Arc<crate::assertion::AssertionKey>,
    /// `validFor` (default 5 s): each assertion's `exp` - `iat`.
    pub valid_for: Duration,
}

/// One `claimsToHeaders` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToHeader {
    /// Claim name.
    pub claim: String,
    /// Upstream header.
    pub header: HeaderName,
    /// Append instead of overwrite.
    pub append: bool,
}

/// How the IdP's `end_session_endpoint` is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EndSessionMethod {
    /// The browser is redirected there with `id_token_hint` in the query (default).
    #[default]
    Get,
    /// The browser gets an auto-submitting form that POSTs `id_token_hint`.
    Post,
}

/// What an unknown `kid` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwksRefreshPolicy {
    /// Fail the token.
    Never,
    /// Refetch every time.
    Always,
    /// At most this many refetches per poll interval.
    MaxPerInterval(u32),
}

/// Where and how sessions are kept.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// `session.failOnFetchFailure` (default false).
    pub fail_on_fetch_failure: bool,
    /// The session cookie.
    pub cookie: CookieConfig,
    /// The store.
    pub store: StoreConfig,
    /// `allowRefreshing` (default true).
    pub allow_refreshing: bool,
    /// `redis.preExpiryBuffer` (default 2 s).
    pub pre_expiry_buffer: Duration,
    /// `redis.headerName`: a request header that may carry the session id.
    pub header_name: Option<HeaderName>,
    /// `targetDomain`: cookies are only set for this host.
    pub target_domain: Option<String>,
}

/// `SameSite` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// `Lax`.
    Lax,
    /// `Strict`.
    Strict,
    /// `None`.
    None,
}

/// Session cookie attributes.
#[derive(Debug, Clone)]
pub struct CookieConfig {
    /// `session.redis.cookieName` (default `__session`).
    pub name: String,
    /// Max-Age, also the Redis TTL (default 30 days, Solo's). `None`: a browser-session
    /// cookie (`maxAge: 0`); the Redis TTL is then the default 30 days.
    pub max_age: Option<Duration>,
    /// `Secure` (default on).
    pub secure: bool,
    /// `HttpOnly` (default on).
    pub http_only: bool,
    /// `Path` (default `/`).
    pub path: String,
    /// `Domain` (default: host-only).
    pub domain: Option<String>,
    /// `SameSite` (default: omitted).
    pub same_site: Option<SameSite>,
}

impl CookieConfig {
    /// How long a session lives in the store.
    pub fn ttl(&self) -> Duration {
        self.max_age.unwrap_or(compile::DEFAULT_COOKIE_MAX_AGE)
    }
}

/// Session store location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// `session.redis`.
    Redis(Box<RedisConfig>),
    /// No `redis`: the tokens live in the cookie, encrypted.
    Cookie {
        /// `cipherConfig` key (32 bytes), or `None`: derived from the signing key.
        cipher_key: Option<Secret>,
        /// `cookie.keyPrefix` (prefixed to the cookie name).
        key_prefix: String,
    },
}

impl StoreConfig {
    /// The Redis settings (`None` in cookie mode).
    pub fn redis(&self) -> Option<&RedisConfig> {
        match self {
            StoreConfig::Redis(redis) => Some(redis),
            StoreConfig::Cookie { .. } => None,
        }
    }

    /// `options.poolSize` in Redis mode; 1 for cookie sessions (no connection at all).
    pub fn pool_size(&self) -> usize {
        match self {
            StoreConfig::Redis(redis) => redis.pool_size as usize,
            StoreConfig::Cookie { .. } => 1,
        }
    }

    /// The Redis key prefix (empty in cookie mode).
    pub fn key_prefix(&self) -> &str {
        match self {
            StoreConfig::Redis(redis) => &redis.key_prefix,
            StoreConfig::Cookie { key_prefix, .. } => key_prefix,
        }
    }
}

/// `session.redis`: where the sessions live and how to reach them. Built by
/// [`compile::redis`]; read by [`crate::session::redis`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `options.host` (standalone), or `options.sentinel` / `options.cluster`.
    pub topology: RedisTopology,
    /// `options.db` (default 0; always 0 with a cluster).
    pub db: u32,
    /// `options.poolSize` (default 10): connections per server.
    pub pool_size: u32,
    /// `keyPrefix` (default empty).
    pub key_prefix: String,
    /// `options.socketType: TLS` with the files of `options.tlsCertMountPath`.
    pub tls: Option<RedisTls>,
    /// `REDIS_USERNAME` / `REDIS_PASSWORD`: the data nodes' credentials.
    pub auth: RedisAuth,
    /// `REDIS_SENTINEL_USERNAME` / `REDIS_SENTINEL_PASSWORD`: the sentinels' own.
    pub sentinel_auth: RedisAuth,
    /// `options.commandTimeout` (default 1 s): the bound of every Redis call, connecting
    /// included.
    pub command_timeout: Duration,
    /// `options.durableSessions` (default off).
    pub durable: Option<DurableSessions>,
    /// `options.clientSideCache` (default off; standalone only): sessions kept in memory
    /// between checks, dropped when Redis says their key changed.
    pub client_side_cache: bool,
}

/// Which Redis deployment holds the sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTopology {
    /// One server (`options.host`).
    Standalone(RedisAddress),
    /// A master found through Redis Sentinel.
    Sentinel {
        /// `sentinel.masterName`.
        master_name: String,
        /// `sentinel.addresses`.
        sentinels: Vec<HostPort>,
    },
    /// A Redis Cluster, from its seed nodes (`cluster.nodes`).
    Cluster {
        /// The seed nodes.
        nodes: Vec<HostPort>,
    },
}

/// Where a standalone server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisAddress {
    /// `host:port`.
    Tcp(HostPort),
    /// `unix:///path/redis.sock`.
    Unix(std::path::PathBuf),
}

/// A host (name or address) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Name, IPv4 or IPv6 address (without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// TLS to Redis: the PEM files read from `tlsCertMountPath` at load.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisTls {
    /// The folder, for messages.
    pub mount_path: std::path::PathBuf,
    /// `ca.crt`: the CA that signed the servers' certificates.
    pub ca: Vec<u8>,
    /// `tls.crt` and `tls.key`: the client certificate for mutual TLS.
    pub client: Option<(Vec<u8>, Secret)>,
}

impl std::fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTls")
            .field("mount_path", &self.mount_path)
            .field("client_certificate", &self.client.is_some())
            .finish()
    }
}

/// Redis credentials from the environment. `Debug` never prints the password ([`Secret`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisAuth {
    /// An ACL user (`AUTH user password`); `None`: the default user.
    pub username: Option<String>,
    /// The password.
    pub password: Option<Secret>,
}

/// `options.durableSessions`: `WAIT replicas timeout` after a session is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurableSessions {
    /// Replicas that must acknowledge the write.
    pub replicas: u32,
    /// How long to wait for them.
    pub timeout: Duration,
}

/// Everything loaded from the `--config` files.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The AuthConfigs, in file order.
    pub auth_configs: Vec<Arc<OidcConfig>>,
    /// The state signing key from `SIGNING_KEY` or the `extauth-signing-key` Secret.
    pub signing_key: Option<Secret>,
    /// Documents that are not for extauth (e.g. the gateway policy), as labels.
    pub skipped: Vec<DocLabel>,
}

/// The outcome for one AuthConfig, as `extauth validate` prints it.
#[derive(Debug)]
pub struct Verdict {
    /// The AuthConfig's label.
    pub label: DocLabel,
    /// ACCEPTED (`Ok`) or REJECTED with the reason.
    pub result: Result<Arc<OidcConfig>, ConfigError>,
}

/// What `validate` reports: a file-level failure, or one verdict per AuthConfig.
#[derive(Debug)]
pub struct Report {
    /// Verdicts, in file order.
    pub verdicts: Vec<Verdict>,
    /// Non-extauth documents that were skipped.
    pub skipped: Vec<DocLabel>,
    /// The signing key, or the reason it is unusable.
    pub signing_key: Result<Option<Secret>, ConfigError>,
}

impl Report {
    /// All accepted, or the first rejection.
    pub fn into_loaded(self) -> Result<Loaded, ConfigError> {
        let signing_key = self.signing_key?;
        let auth_configs = self
            .verdicts
            .into_iter()
            .map(|v| v.result)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Loaded {
            auth_configs,
            signing_key,
            skipped: self.skipped,
        })
    }
}

/// Reads `paths` and validates every AuthConfig in them. File-level problems (unreadable,
/// not YAML, placeholders, no AuthConfig at all) are errors; per-AuthConfig problems are
/// verdicts.
pub fn validate_files(
    paths: &[impl AsRef<Path>],
    env: &dyn EnvSource,
) -> Result<Report, ConfigError> {
    let mut sources = Vec::with_capacity(paths.len());
    for path in paths {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        sources.push((path.display().to_string(), text));
    }
    validate_sources(&sources, env)
}

/// [`validate_files`] over texts already in memory: `(name, text)` pairs.
pub fn validate_sources(
    sources: &[(String, String)],
    env: &dyn EnvSource,
) -> Result<Report, ConfigError> {
    let mut docs = Vec::new();
    for (name, text) in sources {
        docs.extend(manifest::parse_documents(name, text, env)?);
    }
    let report = compile::compile_all(&docs, env);
    if report.verdicts.is_empty() {
        return Err(ConfigError::NoAuthConfig {
            sources: sources
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(report)
}

/// Loads `paths` for serving: every AuthConfig must be accepted.
pub fn load_files(paths: &[impl AsRef<Path>], env: &dyn EnvSource) -> Result<Loaded, ConfigError> {
    validate_files(paths, env)?.into_loaded()
}

/// Loads one text (named `source_name` in messages) for serving.
pub fn load_str(source_name: &str, text: &str, env: &dyn EnvSource) -> Result<Loaded, ConfigError> {
    validate_sources(&[(source_name.to_owned(), text.to_owned())], env)?.into_loaded()
}

/// A checked Kubernetes Secret: its `type` and its decoded values.
#[derive(Debug)]
pub(crate) struct CompiledSecret {
    pub type_: Option<String>,
    pub values: BTreeMap<String, Secret>,
}

/// Secrets by `namespace/name`, each already checked (or the reason it is unusable, shared by
/// every AuthConfig that references it).
pub(crate) type SecretIndex =
    BTreeMap<String, (DocLabel, Result<CompiledSecret, Arc<ConfigError>>)>;
