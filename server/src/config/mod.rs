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
    /// `appUrl` + `callbackPath`, exactly as written, `:80` kept: what the IdP sees.
    pub redirect_uri: String,
    /// `clientId`.
    pub client_id: String,
    /// The client secret from the referenced Secret; `None` for a public client.
    pub client_secret: Option<Secret>,
    /// `issuerUrl` as written (may end with `/`).
    pub issuer_url: String,
    /// The `scope` parameter: configured scopes, then `openid`.
    pub scope: String,
    /// Session settings.
    pub session: SessionConfig,
    /// `headers.idTokenHeader`.
    pub id_token_header: Option<HeaderName>,
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
}

/// Session cookie attributes.
#[derive(Debug, Clone)]
pub struct CookieConfig {
    /// `session.redis.cookieName` (default `__session`).
    pub name: String,
    /// Max-Age, also the Redis TTL (default 30 days, Solo's).
    pub max_age: Duration,
    /// `Secure` (default on).
    pub secure: bool,
    /// `HttpOnly` (default on).
    pub http_only: bool,
    /// `Path` (default `/`).
    pub path: String,
}

/// Session store location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// `session.redis.options.host`.
    Redis {
        /// Host name or address.
        host: String,
        /// Port (default 6379).
        port: u16,
    },
}

impl StoreConfig {
    /// `redis://host:port` for the redis crate.
    pub fn redis_url(&self) -> String {
        match self {
            StoreConfig::Redis { host, port } if host.contains(':') => {
                format!("redis://[{host}]:{port}")
            }
            StoreConfig::Redis { host, port } => format!("redis://{host}:{port}"),
        }
    }
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
