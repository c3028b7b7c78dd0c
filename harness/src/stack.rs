//! The whole testbed on loopback: Redis, the mock IdP, the LLM upstream, extauth and the
//! gateway simulator, wired the way the seed guide wires the real thing.
//!
//! extauth is configured from the seed's own manifests (`scenarios/manifests/...`), with the
//! guide's variables (`KEYCLOAK_SECRET`, `KEYCLOAK_CLIENT`, `KEYCLOAK_URL`,
//! `INGRESS_GW_ADDRESS`, `REDIS_HOST`, `REDIS_PORT`) passed through extauth's `MapEnv`, never
//! the process environment. The seed's `appUrl` is `http://${INGRESS_GW_ADDRESS}:80`, so the
//! gateway listens on port 80 of a loopback address 127.0.0.N (one per stack, so parallel
//! stacks do not collide); when port 80 cannot be bound (not root) it takes an ephemeral port
//! and the manifest's `:80` is dropped. The IdP is on `localhost`, the gateway on 127.0.0.x,
//! so a browser keeps their cookies apart, as with two real sites.
//! Everything stops on [`RunningStack::stop`] or on drop.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rand::RngCore as _;
use tokio::net::TcpListener;
use url::Url;

use crate::gateway_sim::{AppendSemantics, GatewayError, GatewaySim, RunningGateway};
use crate::redis::{RedisError, RedisServer};
use crate::upstream::{ReceivedRequest, Upstream};

/// The realm the seed uses.
pub const REALM: &str = "master";
/// The client the realm file registers for the gateway.
pub const DEFAULT_CLIENT: &str = "agentgateway";
/// The login the realm file provides.
pub const DEFAULT_USER: (&str, &str) = ("user1", "password");

/// The `scenarios/` folder of this workspace (realms, manifests, snapshots).
pub fn default_scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("scenarios"), |root| root.join("scenarios"))
}

/// Which session store extauth uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedisMode {
    /// A `redis-server` process when the binary exists, else the in-memory store.
    #[default]
    Auto,
    /// A `redis-server` process; an error when it is missing.
    Process,
    /// extauth's in-memory store (no Redis at all).
    Memory,
}

/// What to bring up.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// The realm export for the IdP.
    pub realm_file: PathBuf,
    /// The seed manifests for extauth.
    pub manifest_file: PathBuf,
    /// The gateway's OIDC client in the realm.
    pub client_id: String,
    /// Session store selection.
    pub redis: RedisMode,
    /// Try port 80 on 127.0.0.N first (as the seed's `:80`); `false` goes straight to an
    /// ephemeral port.
    pub prefer_port_80: bool,
    /// How the gateway reads header options without `append`.
    pub append_semantics: AppendSemantics,
    /// Print the one-line notices (in-memory store, no port 80).
    pub announce: bool,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self::from_scenarios_dir(&default_scenarios_dir())
    }
}

impl StackOptions {
    /// Options using `dir/realms/master.json` and `dir/manifests/seed-authorization-code.yaml`.
    pub fn from_scenarios_dir(dir: &Path) -> Self {
        Self {
            realm_file: dir.join("realms").join("master.json"),
            manifest_file: dir.join("manifests").join("seed-authorization-code.yaml"),
            client_id: DEFAULT_CLIENT.to_owned(),
            redis: RedisMode::Auto,
            prefer_port_80: true,
            append_semantics: AppendSemantics::default(),
            announce: true,
        }
    }
}

/// Why the stack could not come up; each names the part.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// Redis.
    #[error("redis: {0}")]
    Redis(#[from] RedisError),
    /// The realm file.
    #[error("realm file {path}: {source}")]
    Realm {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: mock_idp::RealmError,
    },
    /// The realm has no such confidential client.
    #[error("realm file {path}: no client {client:?} with a secret")]
    Client {
        /// The file.
        path: PathBuf,
        /// The client id.
        client: String,
    },
    /// The IdP did not start.
    #[error("mock IdP: {0}")]
    Idp(#[from] mock_idp::Error),
    /// The manifest file could not be read.
    #[error("manifest {path}: {source}")]
    ManifestRead {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// extauth rejected the manifest.
    #[error("extauth rejected {path}: {source}")]
    Config {
        /// The file.
        path: PathBuf,
        /// The reason.
        source: extauth::config::ConfigError,
    },
    /// extauth did not start.
    #[error("extauth: {0}")]
    Extauth(#[from] extauth::server::ServeError),
    /// The gateway could not bind or start.
    #[error("gateway: {0}")]
    Gateway(#[from] GatewayError),
    /// A temporary file could not be written.
    #[error("stack files: {0}")]
    Files(#[source] std::io::Error),
}

/// The running stack. Dropping it stops everything.
#[derive(Debug)]
pub struct RunningStack {
    // Field order is drop order: the gateway first, Redis last.
    gateway: Option<RunningGateway>,
    extauth: Option<extauth::server::RunningServer>,
    upstream: Upstream,
    idp: Option<mock_idp::RunningIdp>,
    redis: Option<RedisServer>,
    files: tempfile::TempDir,
    manifest_path: PathBuf,
    vars: BTreeMap<String, String>,
    secrets: Vec<String>,
    client_id: String,
    notes: Vec<String>,
}

/// One stack; see [`Stack::up`].
#[derive(Debug)]
pub struct Stack;

impl Stack {
    /// Brings everything up (see the module docs).
    pub async fn up(options: StackOptions) -> Result<RunningStack, StackError> {
        let mut notes = Vec::new();
        let mut announce = |line: String| {
            if options.announce {
                println!("{line}");
            }
            notes.push(line);
        };

        // Redis (or the memory store).
        let redis = match options.redis {
            RedisMode::Memory => None,
            RedisMode::Process => Some(RedisServer::start()?),
            RedisMode::Auto => match RedisServer::start() {
                Ok(server) => Some(server),
                Err(RedisError::NotFound) => {
                    announce(
                        "redis-server not found: extauth uses its in-memory session store (apt-get install redis-server for the real thing)".to_owned(),
                    );
                    None
                }
                Err(e) => return Err(e.into()),
            },
        };

        // The IdP, on `localhost`.
        let realm = mock_idp::Realm::from_file(&options.realm_file).map_err(|source| {
            StackError::Realm {
                path: options.realm_file.clone(),
                source,
            }
        })?;
        let client_secret = realm
            .client(&options.client_id)
            .and_then(|c| c.secret())
            .map(|s| s.expose().to_owned())
            .ok_or_else(|| StackError::Client {
                path: options.realm_file.clone(),
                client: options.client_id.clone(),
            })?;
        let idp = mock_idp::MockIdp::builder()
            .realm(realm)
            .listen(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .public_host("localhost")
            .start()
            .await?;
        let idp_url = idp.base_url().as_str().trim_end_matches('/').to_owned();

        let upstream = Upstream::start().await;

        // The gateway's address decides INGRESS_GW_ADDRESS, so bind it before extauth loads.
        let (listener, on_port_80) = bind_gateway(options.prefer_port_80).await?;
        let gateway_addr = listener.local_addr().map_err(|source| GatewayError::Bind {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            source,
        })?;
        let mut manifest = std::fs::read_to_string(&options.manifest_file).map_err(|source| {
            StackError::ManifestRead {
                path: options.manifest_file.clone(),
                source,
            }
        })?;
        let (ingress, app_url, gateway_url) = if on_port_80 {
            let ip = gateway_addr.ip();
            (
                ip.to_string(),
                format!("http://{ip}:80"),
                format!("http://{ip}"),
            )
        } else {
            manifest = manifest.replace("${INGRESS_GW_ADDRESS}:80", "${INGRESS_GW_ADDRESS}");
            announce(format!(
                "port 80 could not be bound (not root?): the gateway listens on {gateway_addr} and the manifest's appUrl drops `:80`"
            ));
            let a = gateway_addr.to_string();
            (a.clone(), format!("http://{a}"), format!("http://{a}"))
        };

        let (redis_host, redis_port, store) = match &redis {
            Some(server) => (
                server.host().to_owned(),
                server.port().to_string(),
                extauth::server::StoreChoice::FromConfig,
            ),
            // The manifest still names a Redis host; extauth is told to use memory instead.
            None => (
                "127.0.0.1".to_owned(),
                "6379".to_owned(),
                extauth::server::StoreChoice::Memory,
            ),
        };
        let signing_key = random_key();
        let env: BTreeMap<String, String> = [
            ("KEYCLOAK_SECRET", client_secret.clone()),
            ("KEYCLOAK_CLIENT", options.client_id.clone()),
            ("KEYCLOAK_URL", idp_url.clone()),
            ("INGRESS_GW_ADDRESS", ingress.clone()),
            ("REDIS_HOST", redis_host),
            ("REDIS_PORT", redis_port),
            ("SIGNING_KEY", signing_key.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let map_env = extauth::env::MapEnv::from_iter(env.clone());
        let source_name = options.manifest_file.display().to_string();
        let loaded =
            extauth::config::load_str(&source_name, &manifest, &map_env).map_err(|source| {
                StackError::Config {
                    path: options.manifest_file.clone(),
                    source,
                }
            })?;

        // A rendered copy (variables filled in) for humans: `extauth validate` takes it as is.
        let files = tempfile::Builder::new()
            .prefix("harness-stack-")
            .tempdir()
            .map_err(StackError::Files)?;
        let manifest_path = files.path().join("seed-authorization-code.rendered.yaml");
        std::fs::write(&manifest_path, render(&manifest, &env)).map_err(StackError::Files)?;

        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let extauth = extauth::server::start(
            loaded,
            extauth::server::ServeOptions {
                grpc: loopback,
                http: loopback,
                admin: loopback,
                session_store: store,
            },
        )
        .await?;
        let upstream_url = Url::parse(&upstream.url()).map_err(|e| {
            StackError::Files(std::io::Error::new(ErrorKind::InvalidData, e.to_string()))
        })?;
        let gateway = GatewaySim::serve(
            listener,
            extauth.grpc_addr(),
            upstream_url,
            options.append_semantics,
        )?;

        let mut vars = BTreeMap::new();
        let mut set = |k: &str, v: String| {
            vars.insert(k.to_owned(), v);
        };
        set("GATEWAY_URL", gateway_url);
        set("APP_URL", app_url);
        set("INGRESS_GW_ADDRESS", ingress);
        set("IDP_URL", idp_url.clone());
        set("KEYCLOAK_URL", idp_url);
        set("ISSUER", idp.issuer(REALM));
        set("KEYCLOAK_CLIENT", options.client_id.clone());
        set("UPSTREAM_URL", upstream.url());
        set("EXTAUTH_GRPC", extauth.grpc_addr().to_string());
        set("EXTAUTH_HTTP", extauth.http_addr().to_string());
        set("EXTAUTH_ADMIN", extauth.admin_addr().to_string());
        set(
            "REDIS_URL",
            redis
                .as_ref()
                .map_or_else(|| "memory".to_owned(), RedisServer::url),
        );
        Ok(RunningStack {
            gateway: Some(gateway),
            extauth: Some(extauth),
            upstream,
            idp: Some(idp),
            redis,
            files,
            manifest_path,
            vars,
            secrets: vec![client_secret, signing_key],
            client_id: options.client_id,
            notes,
        })
    }
}

impl RunningStack {
    fn var(&self, name: &str) -> &str {
        self.vars.get(name).map_or("", String::as_str)
    }

    /// The gateway's URL, no trailing slash (`http://127.0.0.N` on port 80).
    pub fn gateway_url(&self) -> &str {
        self.var("GATEWAY_URL")
    }

    /// The `appUrl` extauth was given (`http://127.0.0.N:80`, `:80` kept as in the seed).
    pub fn app_url(&self) -> &str {
        self.var("APP_URL")
    }

    /// The IdP base URL, `KEYCLOAK_URL` (`http://localhost:N`).
    pub fn idp_url(&self) -> &str {
        self.var("IDP_URL")
    }

    /// The realm's issuer.
    pub fn issuer(&self) -> &str {
        self.var("ISSUER")
    }

    /// The OIDC client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// extauth's gRPC address.
    pub fn extauth_grpc(&self) -> &str {
        self.var("EXTAUTH_GRPC")
    }

    /// extauth's HTTP address.
    pub fn extauth_http(&self) -> &str {
        self.var("EXTAUTH_HTTP")
    }

    /// extauth's admin address.
    pub fn extauth_admin(&self) -> &str {
        self.var("EXTAUTH_ADMIN")
    }

    /// `redis://127.0.0.1:N`, or `memory` when extauth uses its in-memory store.
    pub fn redis_url(&self) -> &str {
        self.var("REDIS_URL")
    }

    /// The Redis process, to stop and restart it mid-run.
    pub fn redis_mut(&mut self) -> Option<&mut RedisServer> {
        self.redis.as_mut()
    }

    /// The upstream's URL.
    pub fn upstream_url(&self) -> &str {
        self.var("UPSTREAM_URL")
    }

    /// What the upstream received so far.
    pub async fn upstream_requests(&self) -> Vec<ReceivedRequest> {
        self.upstream.received().await
    }

    /// The manifest as extauth read it, with the variables filled in.
    pub fn manifest_path(&self) -> &Path {
        &self.manifest_path
    }

    /// The stack's folder of temporary files.
    pub fn files_dir(&self) -> &Path {
        self.files.path()
    }

    /// Variables for scenarios: `GATEWAY_URL`, `APP_URL`, `IDP_URL`, `KEYCLOAK_URL`,
    /// `ISSUER`, `KEYCLOAK_CLIENT`, `INGRESS_GW_ADDRESS`, `UPSTREAM_URL`, `REDIS_URL`,
    /// `EXTAUTH_GRPC`, `EXTAUTH_HTTP`, `EXTAUTH_ADMIN`. No secrets.
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// Values that must never appear in output (client secret, signing key).
    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }

    /// The notices printed at start (in-memory store, no port 80).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Stops everything, gateway first, and waits for it.
    pub async fn stop(mut self) {
        if let Some(gateway) = self.gateway.take() {
            gateway.shutdown().await;
        }
        if let Some(extauth) = self.extauth.take() {
            extauth.shutdown().await;
        }
        if let Some(idp) = self.idp.take() {
            idp.shutdown().await;
        }
        if let Some(mut redis) = self.redis.take() {
            redis.stop();
        }
    }
}

/// Binds the gateway: port 80 on the first free 127.0.0.N (N in 2..=254), else an ephemeral
/// port on 127.0.0.1. Returns whether it got port 80.
async fn bind_gateway(prefer_port_80: bool) -> Result<(TcpListener, bool), StackError> {
    if prefer_port_80 {
        for n in 2..=254u8 {
            let addr = SocketAddr::from((Ipv4Addr::new(127, 0, 0, n), 80));
            match TcpListener::bind(addr).await {
                Ok(listener) => return Ok((listener, true)),
                Err(e) if e.kind() == ErrorKind::AddrInUse => {}
                // Not allowed (not root) or no such address: no other N will do better.
                Err(_) => break,
            }
        }
    }
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| GatewayError::Bind { addr, source })?;
    Ok((listener, false))
}

/// `${VAR}` filled from `env`; unknown variables are left as written.
pub fn render(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                match env.get(name) {
                    Some(value) => out.push_str(value),
                    None => out.push_str(&rest[at..at + 2 + end + 1]),
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[at..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn random_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests;
