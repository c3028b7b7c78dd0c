//! The whole testbed on loopback: Redis, the IdP, the LLM upstream, extauth and the
//! gateway, wired the way the seed guide wires the real thing.
//!
//! Backends: extauth in process, or `--replicas N` processes of the real binary
//! ([`crate::extauth`]); Redis as a `redis-server` process, a `redis:7` container
//! (testcontainers), a URL, or extauth's memory store; `auto` tries the container (when a
//! Docker engine answers and holds the image), then the process, then memory, saying which
//! it fell back to. The IdP is one of [`crate::idp`]'s. The gateway is the ext_authz gRPC
//! simulator (balancing over the replicas), agentgateway itself
//! ([`crate::gateway::agentgateway`]), Caddy `forward_auth` over extauth's HTTP mode
//! ([`crate::gateway::caddy`]) or nginx `auth_request` over extauth's nginx profile
//! ([`crate::gateway::nginx`]). A stack can also be *external* ([`StackOptions::external`]):
//! nothing is started, the scenario talks to a gateway and IdP at given URLs, and what needs
//! the stack's insides (the upstream's records, Redis, extauth's processes) is not
//! checkable.
//!
//! extauth is configured from the seed's own manifests (`scenarios/manifests/...`), with the
//! guide's variables (`KEYCLOAK_SECRET`, `KEYCLOAK_CLIENT`, `KEYCLOAK_URL`,
//! `INGRESS_GW_ADDRESS`, `REDIS_HOST`, `REDIS_PORT`) passed through extauth's `MapEnv`, never
//! the process environment. The seed's `appUrl` is `http://${INGRESS_GW_ADDRESS}:80`, so the
//! gateway listens on port 80 of a loopback address 127.0.0.N (one per stack, so parallel
//! stacks do not collide); when port 80 cannot be bound (not root) it takes an ephemeral port
//! and the manifest's `:80` is dropped (agentgateway, whose binds take no address, always
//! listens on a free port of every address). The IdP is on `localhost`, the gateway on 127.0.0.x,
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

use crate::extauth::{
    ExtauthError, ExtauthMode, InProcessExtauth, ReplicaSpec, Replicas, RunningExtauth,
};
use crate::gateway::agentgateway::{self, Agentgateway, AgentgatewayConfig};
use crate::gateway::caddy::{CaddyConfig, CaddyGateway};
use crate::gateway::nginx::{NginxConfig, NginxGateway};
use crate::gateway::process::{GatewayProcess, ProcessError};
use crate::gateway::sim::{AppendSemantics, GatewayError, GatewaySim, RunningGateway};
use crate::idp::{IdpError, IdpMode, IdpSetup, RunningIdp};
use crate::redis::cluster::ClusterRedis;
use crate::redis::container::RedisContainer;
use crate::redis::sentinel::SentinelRedis;
use crate::redis::tls::TlsRedis;
use crate::redis::{RedisError, RedisServer};
use crate::upstream::{ReceivedRequest, Upstream};

/// How many times (100 ms apart) to ask extauth's `/readyz` after Redis comes back.
const READY_ATTEMPTS: usize = 50;

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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RedisMode {
    /// A `redis:7` container when a Docker engine answers and holds the image, else a
    /// `redis-server` process when the binary exists, else the in-memory store (each fallback
    /// is announced).
    #[default]
    Auto,
    /// A `redis-server` process; an error when it is missing.
    Process,
    /// A `redis:7` container through testcontainers; an error (one line, with how to start an
    /// engine) when no Docker engine answers or the image is missing.
    Container,
    /// extauth's in-memory store (no Redis at all).
    Memory,
    /// A Redis we did not start, `redis://HOST:PORT`.
    Url(String),
    /// `redis-server` serving TLS only, with certificates generated at start.
    Tls,
    /// A master, a replica and three sentinels.
    Sentinel,
    /// Three masters with a replica each.
    Cluster,
}

/// Which gateway fronts extauth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GatewayMode {
    /// The built-in ext_authz gRPC simulator.
    #[default]
    Simulator,
    /// Debian's Caddy with `forward_auth` to extauth's HTTP mode.
    Caddy,
    /// Debian's nginx with `auth_request` to extauth's nginx profile.
    Nginx,
    /// agentgateway (standalone config) with `extAuthz` to extauth's gRPC listener.
    Agentgateway,
}

impl GatewayMode {
    /// As scenarios and `--gateway` spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Simulator => "sim",
            Self::Caddy => "caddy",
            Self::Nginx => "nginx",
            Self::Agentgateway => "agentgateway",
        }
    }
}

/// A deployment the harness did not start: a gateway and an IdP at these URLs.
#[derive(Debug, Clone)]
pub struct ExternalTarget {
    /// The gateway (`http://${INGRESS_GW_ADDRESS}`), no trailing slash.
    pub gateway_url: String,
    /// The IdP's base URL (`KEYCLOAK_URL`).
    pub idp_url: String,
    /// The realm (default `master`).
    pub realm: String,
    /// The gateway's client id.
    pub client_id: String,
    /// The `appUrl` the deployment was given; default: the gateway URL with `:80` added
    /// when it is `http` without a port (the seed's `http://${INGRESS_GW_ADDRESS}:80`).
    pub app_url: Option<String>,
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
    /// The IdP backend.
    pub idp: IdpMode,
    /// The gateway backend.
    pub gateway: GatewayMode,
    /// Start nothing: run against this deployment.
    pub external: Option<ExternalTarget>,
    /// Try port 80 on 127.0.0.N first (as the seed's `:80`); `false` goes straight to an
    /// ephemeral port.
    pub prefer_port_80: bool,
    /// Listen exactly here instead (e.g. `127.0.0.1:8080`, the guide's port-forward tab).
    pub gateway_listen: Option<SocketAddr>,
    /// How the gateway reads header options without `append`.
    pub append_semantics: AppendSemantics,
    /// The agentgateway binary (`--agentgateway`); default: `PATH`, then
    /// `../shared/bin/agentgateway` ([`agentgateway::binary`]).
    pub agentgateway: Option<PathBuf>,
    /// Print the one-line notices (in-memory store, no port 80).
    pub announce: bool,
    /// extauth in process (default) or as `--replicas N` processes.
    pub extauth: ExtauthMode,
    /// The extauth binary for [`ExtauthMode::Processes`] (default: see
    /// [`crate::extauth::find_binary`]).
    pub extauth_bin: Option<PathBuf>,
    /// `requirepass` on every Redis the stack starts, and `REDIS_PASSWORD` for extauth (also
    /// given to a `Url` Redis).
    pub redis_password: Option<String>,
    /// extauth's `durableSessions` (`WAIT` for one replica, 500 ms) on a Sentinel or Cluster
    /// Redis; an error on a Redis without replicas.
    pub redis_durable: bool,
    /// extauth's `clientSideCache` on a standalone Redis; an error on other stores.
    pub redis_client_cache: bool,
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
            idp: IdpMode::Mock,
            gateway: GatewayMode::Simulator,
            external: None,
            prefer_port_80: true,
            gateway_listen: None,
            append_semantics: AppendSemantics::default(),
            agentgateway: None,
            announce: true,
            extauth: ExtauthMode::InProcess,
            extauth_bin: None,
            redis_password: None,
            redis_durable: false,
            redis_client_cache: false,
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
    /// The IdP did not start (or this backend is skipped here).
    #[error("IdP: {0}")]
    Idp(#[from] IdpError),
    /// A gateway process (Caddy, nginx, agentgateway) did not start.
    #[error("gateway: {0}")]
    GatewayProcess(#[from] ProcessError),
    /// The gateway cannot run on this machine (no agentgateway binary): a skip.
    #[error("gateway: {0}")]
    GatewayUnavailable(String),
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
        source: Box<extauth::config::ConfigError>,
    },
    /// extauth did not start.
    #[error("extauth: {0}")]
    Extauth(#[from] ExtauthError),
    /// The gateway could not bind or start.
    #[error("gateway: {0}")]
    Gateway(#[from] GatewayError),
    /// A temporary file could not be written.
    #[error("stack files: {0}")]
    Files(#[source] std::io::Error),
}

impl StackError {
    /// The one-line reason when this stack cannot run on this machine (e.g. Keycloak's image
    /// is absent): a skip, not a failure.
    pub fn skip_reason(&self) -> Option<String> {
        match self {
            Self::Idp(IdpError::Skipped(reason)) | Self::GatewayUnavailable(reason) => {
                Some(reason.clone())
            }
            _ => None,
        }
    }
}

/// The stack's Redis.
#[derive(Debug)]
pub enum RedisHandle {
    /// A `redis-server` child process.
    Process(RedisServer),
    /// A `redis:7` container.
    Container(Box<RedisContainer>),
    /// Not ours.
    External(String),
    /// A TLS-only `redis-server`.
    Tls(Box<TlsRedis>),
    /// A Sentinel topology.
    Sentinel(Box<SentinelRedis>),
    /// A Redis Cluster.
    Cluster(Box<ClusterRedis>),
}

impl RedisHandle {
    fn url(&self) -> String {
        match self {
            Self::Process(p) => p.url(),
            Self::Container(c) => c.url(),
            Self::External(url) => url.clone(),
            Self::Tls(t) => t.url(),
            Self::Sentinel(t) => t.url(),
            Self::Cluster(t) => t.url(),
        }
    }

    /// The `session.redis.options` lines replacing the seed's `host:` line, for the
    /// topologies extauth cannot reach through `${REDIS_HOST}:${REDIS_PORT}`.
    fn manifest_options(&self) -> Option<(Vec<String>, &'static str)> {
        match self {
            Self::Tls(t) => Some((t.manifest_options(), "tls")),
            Self::Sentinel(t) => Some((t.manifest_options(), "sentinel")),
            Self::Cluster(t) => Some((t.manifest_options(), "cluster")),
            Self::Process(_) | Self::Container(_) | Self::External(_) => None,
        }
    }

    /// `REDIS_TOPOLOGY` and the topology's addresses, for scenarios and the env file.
    fn vars(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Sentinel(t) => t.vars(),
            Self::Cluster(t) => t.vars(),
            Self::Tls(_) => vec![("REDIS_TOPOLOGY", "tls".to_owned())],
            Self::Process(_) | Self::Container(_) | Self::External(_) => {
                vec![("REDIS_TOPOLOGY", "standalone".to_owned())]
            }
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Process(_) => "process",
            Self::Container(_) => "container",
            Self::External(_) => "url",
            Self::Tls(_) => "tls",
            Self::Sentinel(_) => "sentinel",
            Self::Cluster(_) => "cluster",
        }
    }

    async fn stop(self) {
        match self {
            Self::Process(mut p) => p.stop(),
            Self::Container(c) => c.remove().await,
            // The rest stop their processes when dropped.
            Self::External(_) | Self::Tls(_) | Self::Sentinel(_) | Self::Cluster(_) => {}
        }
    }
}

/// The stack's gateway.
#[derive(Debug)]
enum GatewayHandle {
    Simulator(RunningGateway),
    /// Caddy, nginx or agentgateway.
    Process(GatewayProcess),
}

/// The running stack. Dropping it stops everything.
#[derive(Debug)]
pub struct RunningStack {
    // Field order is drop order: the gateway first, Redis last.
    gateway: Option<GatewayHandle>,
    /// The gateway's 127.0.0.N, held for this stack until it is dropped (after the gateway).
    _gateway_reservation: Option<GatewayReservation>,
    extauth: Option<RunningExtauth>,
    upstream: Option<Upstream>,
    idp: Option<RunningIdp>,
    redis: Option<RedisHandle>,
    files: tempfile::TempDir,
    manifest_path: PathBuf,
    vars: BTreeMap<String, String>,
    secrets: Vec<String>,
    client_id: String,
    notes: Vec<String>,
    backends: BTreeMap<String, String>,
}

/// One stack; see [`Stack::up`].
#[derive(Debug)]
pub struct Stack;

impl Stack {
    /// Brings everything up (see the module docs).
    pub async fn up(options: StackOptions) -> Result<RunningStack, StackError> {
        if let Some(target) = &options.external {
            return Self::external(target);
        }
        let mut notes = Vec::new();
        let mut announce = |line: String| {
            if options.announce {
                println!("{line}");
            }
            notes.push(line);
        };
        // A gateway that cannot run here is a skip, decided before anything starts.
        let agentgateway_binary = match options.gateway {
            GatewayMode::Agentgateway => Some(
                agentgateway::binary(options.agentgateway.as_deref())
                    .map_err(StackError::GatewayUnavailable)?,
            ),
            _ => None,
        };
        let files = tempfile::Builder::new()
            .prefix("harness-stack-")
            .tempdir()
            .map_err(StackError::Files)?;
        // A missing extauth binary, or replicas without a shared store, fail before anything
        // starts.
        let extauth_bin = match options.extauth {
            ExtauthMode::InProcess => None,
            ExtauthMode::Processes { replicas } => {
                if replicas > 1 && options.redis == RedisMode::Memory {
                    return Err(ExtauthError::NeedsRedis { replicas }.into());
                }
                if replicas > 1 && options.gateway == GatewayMode::Agentgateway {
                    return Err(ExtauthError::OneHostGateway { replicas }.into());
                }
                Some(crate::extauth::locate_binary(
                    options.extauth_bin.as_deref(),
                )?)
            }
        };

        // Redis (or the memory store).
        let password = options.redis_password.as_deref();
        let redis = match &options.redis {
            RedisMode::Memory => None,
            RedisMode::Process => Some(RedisHandle::Process(crate::redis::process::start(
                password,
            )?)),
            RedisMode::Container => Some(RedisHandle::Container(Box::new(
                RedisContainer::start(password).await?,
            ))),
            RedisMode::Url(url) => Some(RedisHandle::External(url.clone())),
            RedisMode::Tls => Some(RedisHandle::Tls(Box::new(TlsRedis::start(password)?))),
            RedisMode::Sentinel => Some(RedisHandle::Sentinel(Box::new(
                SentinelRedis::start(password).await?,
            ))),
            RedisMode::Cluster => Some(RedisHandle::Cluster(Box::new(
                ClusterRedis::start(password).await?,
            ))),
            RedisMode::Auto => match RedisContainer::start(password).await {
                Ok(container) => Some(RedisHandle::Container(Box::new(container))),
                Err(why) => match crate::redis::process::start(password) {
                    Ok(server) => {
                        announce(format!(
                            "redis auto: no container ({why}); using a redis-server process"
                        ));
                        Some(RedisHandle::Process(server))
                    }
                    Err(RedisError::NotFound) => {
                        announce(format!(
                            "redis auto: no container ({why}) and no redis-server: extauth uses its in-memory session store"
                        ));
                        None
                    }
                    Err(e) => return Err(e.into()),
                },
            },
        };

        let upstream = Upstream::start().await;

        // The gateway's address decides INGRESS_GW_ADDRESS, so bind it before extauth loads.
        let (listener, on_port_80, reservation) = match options.gateway_listen {
            // agentgateway listens on its port on every address: hold the port there.
            _ if options.gateway == GatewayMode::Agentgateway => {
                let port = options.gateway_listen.map_or(0, |a| a.port());
                (bind_every_address(port).await?, false, None)
            }
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| GatewayError::Bind { addr, source })?;
                (listener, addr.port() == 80, None)
            }
            None => bind_gateway(options.prefer_port_80).await?,
        };
        let mut gateway_addr = listener.local_addr().map_err(|source| GatewayError::Bind {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            source,
        })?;
        if gateway_addr.ip().is_unspecified() {
            // The wildcard holder of agentgateway's port: the stack talks to it on loopback.
            gateway_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, gateway_addr.port()));
        }
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
            if options.gateway_listen.is_none() && options.gateway != GatewayMode::Agentgateway {
                announce(format!(
                    "port 80 could not be bound (not root?): the gateway listens on {gateway_addr} and the manifest's appUrl drops `:80`"
                ));
            }
            let a = gateway_addr.to_string();
            (a.clone(), format!("http://{a}"), format!("http://{a}"))
        };

        // The realm may name the gateway (a client's `backchannel.logout.url`,
        // `frontchannel.logout.url`): `${APP_URL}`, `${GATEWAY_URL}` and
        // `${INGRESS_GW_ADDRESS}` are filled in, and every IdP reads the rendered copy.
        let realm_file = render_realm(
            &options.realm_file,
            files.path(),
            &[
                ("APP_URL", app_url.as_str()),
                ("GATEWAY_URL", gateway_url.as_str()),
                ("INGRESS_GW_ADDRESS", ingress.as_str()),
            ],
        )?;
        let realm =
            mock_idp::Realm::from_file(&realm_file).map_err(|source| StackError::Realm {
                path: options.realm_file.clone(),
                source,
            })?;
        let client_secret = realm
            .client(&options.client_id)
            .and_then(|c| c.secret())
            .map(|s| s.expose().to_owned())
            .ok_or_else(|| StackError::Client {
                path: options.realm_file.clone(),
                client: options.client_id.clone(),
            })?;

        let redis_url = redis.as_ref().map(RedisHandle::url);
        let mut topology_options = redis.as_ref().and_then(RedisHandle::manifest_options);
        // The store asked for, for the errors of options it does not take.
        let backend = || {
            redis
                .as_ref()
                .map_or("memory", RedisHandle::name)
                .to_owned()
        };
        if options.redis_durable {
            match &mut topology_options {
                Some((lines, "sentinel" | "cluster")) => {
                    lines.push(crate::redis::DURABLE_OPTION.to_owned());
                }
                _ => {
                    return Err(RedisError::DurableNeedsReplicas { backend: backend() }.into());
                }
            }
        }
        if options.redis_client_cache {
            match (&mut topology_options, &redis) {
                (Some((lines, "tls")), _) => {
                    lines.push(crate::redis::CLIENT_CACHE_OPTION.to_owned());
                }
                (None, Some(_)) => {
                    let lines = [
                        crate::redis::SEED_HOST_LINE.to_owned(),
                        crate::redis::CLIENT_CACHE_OPTION.to_owned(),
                    ];
                    manifest = crate::redis::with_options(&manifest, &lines, "standalone")?;
                }
                _ => {
                    return Err(
                        RedisError::ClientCacheNeedsStandalone { backend: backend() }.into(),
                    );
                }
            }
        }
        if let Some((lines, topology)) = &topology_options {
            manifest = crate::redis::with_options(&manifest, lines, topology)?;
        }
        let (redis_host, redis_port, store) = match &redis_url {
            // The manifest names the servers itself (see `with_options`).
            Some(_) if topology_options.is_some() => (
                "127.0.0.1".to_owned(),
                "6379".to_owned(),
                extauth::server::StoreChoice::FromConfig,
            ),
            Some(url) => {
                let parsed = Url::parse(url).map_err(|_| RedisError::BadUrl(url.clone()))?;
                let host = parsed
                    .host_str()
                    .ok_or_else(|| RedisError::BadUrl(url.clone()))?;
                (
                    host.to_owned(),
                    parsed.port().unwrap_or(6379).to_string(),
                    extauth::server::StoreChoice::FromConfig,
                )
            }
            // The manifest still names a Redis host; extauth is told to use memory instead.
            None => (
                "127.0.0.1".to_owned(),
                "6379".to_owned(),
                extauth::server::StoreChoice::Memory,
            ),
        };
        let signing_key = random_key();
        let mut env: BTreeMap<String, String> = [
            ("KEYCLOAK_SECRET", client_secret.clone()),
            ("KEYCLOAK_CLIENT", options.client_id.clone()),
            ("KEYCLOAK_URL", "http://localhost:1".to_owned()),
            ("INGRESS_GW_ADDRESS", ingress.clone()),
            ("REDIS_HOST", redis_host),
            ("REDIS_PORT", redis_port),
            ("SIGNING_KEY", signing_key.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if let Some(password) = password {
            env.insert(
                extauth::config::compile::redis::REDIS_PASSWORD_ENV.to_owned(),
                password.to_owned(),
            );
        }
        let source_name = options.manifest_file.display().to_string();
        let load = |env: &BTreeMap<String, String>| {
            let map_env = extauth::env::MapEnv::from_iter(env.clone());
            extauth::config::load_str(&source_name, &manifest, &map_env).map_err(|source| {
                StackError::Config {
                    path: options.manifest_file.clone(),
                    source: Box::new(source),
                }
            })
        };
        // A first read tells the IdP the exact redirect URIs (oidc-provider takes no
        // wildcards); the IdP's URL is not known yet and does not change them.
        let mut redirect_uris: Vec<String> = Vec::new();
        for config in &load(&env)?.auth_configs {
            for uri in [
                config.redirect_uri.clone(),
                format!("{gateway_url}{}", config.callback_path),
            ] {
                if !redirect_uris.contains(&uri) {
                    redirect_uris.push(uri);
                }
            }
        }

        // The IdP, on `localhost`.
        let idp = RunningIdp::start(
            &options.idp,
            realm,
            &IdpSetup {
                realm_file,
                client_id: options.client_id.clone(),
                redirect_uris,
                dir: files.path().to_path_buf(),
            },
        )
        .await?;
        let idp_url = idp.base_url();
        env.insert("KEYCLOAK_URL".to_owned(), idp_url.clone());
        let loaded = load(&env)?;
        let id_token_header = loaded
            .auth_configs
            .iter()
            .find_map(|c| c.id_token_header.as_ref())
            .map_or_else(|| "jwt".to_owned(), |h| h.as_str().to_owned());

        // A rendered copy (variables filled in) for humans: `extauth validate` takes it as is.
        let manifest_path = files.path().join("seed-authorization-code.rendered.yaml");
        std::fs::write(&manifest_path, render(&manifest, &env)).map_err(StackError::Files)?;

        let extauth = match (options.extauth, extauth_bin) {
            (ExtauthMode::Processes { replicas }, Some(binary)) => {
                let memory = store == extauth::server::StoreChoice::Memory;
                if memory && replicas > 1 {
                    return Err(ExtauthError::NeedsRedis { replicas }.into());
                }
                let spec = ReplicaSpec {
                    binary,
                    config: manifest_path.clone(),
                    // The rendered manifest holds everything else; secrets come from the
                    // environment, as in a pod.
                    env: std::iter::once(("SIGNING_KEY".to_owned(), signing_key.clone()))
                        .chain(password.map(|p| {
                            (
                                extauth::config::compile::redis::REDIS_PASSWORD_ENV.to_owned(),
                                p.to_owned(),
                            )
                        }))
                        .collect(),
                    memory_sessions: memory,
                    dir: files.path().to_path_buf(),
                };
                RunningExtauth::Processes(Replicas::start(spec, usize::from(replicas)).await?)
            }
            _ => RunningExtauth::InProcess(InProcessExtauth::start(loaded, store).await?),
        };
        let grpc_addrs = extauth.grpc_addrs();
        let http_addrs = extauth.http_addrs();
        let admin_addrs = extauth.admin_addrs();
        let nginx_addrs = extauth.nginx_addrs();
        let upstream_url = Url::parse(&upstream.url()).map_err(|e| {
            StackError::Files(std::io::Error::new(ErrorKind::InvalidData, e.to_string()))
        })?;
        let gateway = match options.gateway {
            GatewayMode::Simulator => GatewayHandle::Simulator(GatewaySim::serve_balanced(
                listener,
                &grpc_addrs,
                upstream_url,
                options.append_semantics,
            )?),
            // The process gateways bind the address themselves: it is freed just before.
            GatewayMode::Caddy => {
                drop(listener);
                let config = CaddyConfig {
                    listen: gateway_addr,
                    extauth_http: http_addrs.clone(),
                    health_port: extauth.shared_admin_port(),
                    upstream: upstream.addr().to_string(),
                    id_token_header,
                };
                start_process(files.path(), move |dir| CaddyGateway::start(&config, dir)).await?
            }
            GatewayMode::Nginx => {
                drop(listener);
                let config = NginxConfig {
                    listen: gateway_addr,
                    extauth_nginx: nginx_addrs.clone(),
                    upstream: upstream.addr().to_string(),
                    id_token_header,
                };
                start_process(files.path(), move |dir| NginxGateway::start(&config, dir)).await?
            }
            GatewayMode::Agentgateway => {
                let binary = agentgateway_binary.unwrap_or_default();
                // Its own ports are held, like the gateway's, until just before it starts:
                // stacks run side by side, and a port freed early can be handed out again.
                let held = (0..3)
                    .map(|_| std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(ProcessError::start("agentgateway"))?;
                let addr = |i: usize| {
                    held[i]
                        .local_addr()
                        .map_err(ProcessError::start("agentgateway"))
                };
                let config = AgentgatewayConfig {
                    port: gateway_addr.port(),
                    extauth_grpc: grpc_addrs[0],
                    upstream: upstream.addr().to_string(),
                    admin: addr(0)?,
                    stats: addr(1)?,
                    readiness: addr(2)?,
                };
                drop(held);
                drop(listener);
                start_process(files.path(), move |dir| {
                    Agentgateway::start(&binary, &config, dir)
                })
                .await?
            }
        };

        let mut vars = BTreeMap::new();
        let mut set = |k: &str, v: String| {
            vars.insert(k.to_owned(), v);
        };
        set("GATEWAY_URL", gateway_url);
        set("APP_URL", app_url);
        set("INGRESS_GW_ADDRESS", ingress);
        set("IDP_URL", idp_url.clone());
        set("KEYCLOAK_URL", idp_url.clone());
        set("ISSUER", format!("{idp_url}/realms/{REALM}"));
        set("KEYCLOAK_CLIENT", options.client_id.clone());
        set("UPSTREAM_URL", upstream.url());
        // Replica 0's listeners; every replica's admin address in EXTAUTH_ADMINS.
        let first =
            |addrs: &[SocketAddr]| addrs.first().map(ToString::to_string).unwrap_or_default();
        set("EXTAUTH_GRPC", first(&grpc_addrs));
        set("EXTAUTH_HTTP", first(&http_addrs));
        set("EXTAUTH_HTTP_NGINX", first(&nginx_addrs));
        set("EXTAUTH_ADMIN", first(&admin_addrs));
        set("EXTAUTH_ADMINS", join(&admin_addrs));
        set(
            "REDIS_URL",
            redis_url.unwrap_or_else(|| "memory".to_owned()),
        );
        for (key, value) in redis.as_ref().map(RedisHandle::vars).unwrap_or_default() {
            set(key, value);
        }
        let backends = [
            ("idp", idp.name().to_owned()),
            ("gateway", options.gateway.name().to_owned()),
            (
                "redis",
                redis
                    .as_ref()
                    .map_or("memory", RedisHandle::name)
                    .to_owned(),
            ),
            ("extauth", extauth.name()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Ok(RunningStack {
            gateway: Some(gateway),
            _gateway_reservation: reservation,
            extauth: Some(extauth),
            upstream: Some(upstream),
            idp: Some(idp),
            redis,
            files,
            manifest_path,
            vars,
            secrets: [client_secret, signing_key]
                .into_iter()
                .chain(options.redis_password.clone())
                .collect(),
            client_id: options.client_id,
            notes,
            backends,
        })
    }

    /// A stack that starts nothing: the deployment at `target`.
    fn external(target: &ExternalTarget) -> Result<RunningStack, StackError> {
        let files = tempfile::Builder::new()
            .prefix("harness-external-")
            .tempdir()
            .map_err(StackError::Files)?;
        let gateway_url = target.gateway_url.trim_end_matches('/').to_owned();
        let idp_url = target.idp_url.trim_end_matches('/').to_owned();
        let parsed = Url::parse(&gateway_url).map_err(|e| {
            StackError::Files(std::io::Error::new(
                ErrorKind::InvalidInput,
                format!("gateway URL {gateway_url:?}: {e}"),
            ))
        })?;
        let app_url = target.app_url.clone().unwrap_or_else(|| {
            if parsed.scheme() == "http" && parsed.port().is_none() {
                format!("{gateway_url}:80")
            } else {
                gateway_url.clone()
            }
        });
        let ingress = parsed.host_str().unwrap_or_default().to_owned();
        let ingress = match parsed.port() {
            Some(port) => format!("{ingress}:{port}"),
            None => ingress,
        };
        let mut vars = BTreeMap::new();
        for (k, v) in [
            ("GATEWAY_URL", gateway_url),
            ("APP_URL", app_url),
            ("INGRESS_GW_ADDRESS", ingress),
            ("IDP_URL", idp_url.clone()),
            ("KEYCLOAK_URL", idp_url.clone()),
            ("ISSUER", format!("{idp_url}/realms/{}", target.realm)),
            ("KEYCLOAK_CLIENT", target.client_id.clone()),
            ("REDIS_URL", "unknown (external)".to_owned()),
        ] {
            vars.insert(k.to_owned(), v);
        }
        Ok(RunningStack {
            gateway: None,
            _gateway_reservation: None,
            extauth: None,
            upstream: None,
            idp: None,
            redis: None,
            manifest_path: files.path().join("none"),
            files,
            vars,
            secrets: Vec::new(),
            client_id: target.client_id.clone(),
            notes: Vec::new(),
            backends: [("target", "url")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
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

    /// The Redis process (process and TLS backends), e.g. for its PID.
    pub fn redis_mut(&mut self) -> Option<&mut RedisServer> {
        match self.redis.as_mut() {
            Some(RedisHandle::Process(p)) => Some(p),
            Some(RedisHandle::Tls(t)) => Some(t.server()),
            _ => None,
        }
    }

    /// Whether the harness started this stack (`false` for an external target: the
    /// upstream's records and Redis are out of reach).
    pub fn is_external(&self) -> bool {
        self.extauth.is_none()
    }

    /// The backends, by part (`idp`, `gateway`, `redis`), as scenarios spell them.
    pub fn backends(&self) -> &BTreeMap<String, String> {
        &self.backends
    }

    /// Stops the stack's Redis (an outage), keeping its port for [`Self::redis_start`].
    pub async fn redis_stop(&mut self) -> Result<(), String> {
        match self.redis.as_mut() {
            Some(RedisHandle::Process(p)) => {
                p.stop();
                Ok(())
            }
            Some(RedisHandle::Tls(t)) => {
                t.server().stop();
                Ok(())
            }
            Some(RedisHandle::Sentinel(_) | RedisHandle::Cluster(_)) => Err(
                "a Sentinel or Cluster topology is not stopped as one server: use `redis: failover` or `redis: kill-master`".into(),
            ),
            Some(RedisHandle::Container(c)) => c.stop().await.map_err(|e| e.to_string()),
            Some(RedisHandle::External(url)) => Err(format!(
                "Redis at {url} was not started by the harness: not stoppable"
            )),
            None => Err(self.no_redis()),
        }
    }

    /// Starts the stack's Redis again on the same port (empty), then waits (bounded) until
    /// extauth's `/readyz` sees it, so the next step does not race extauth's reconnect.
    pub async fn redis_start(&mut self) -> Result<(), String> {
        match self.redis.as_mut() {
            Some(RedisHandle::Process(p)) => p.start_again().map_err(|e| e.to_string())?,
            Some(RedisHandle::Tls(t)) => t.server().start_again().map_err(|e| e.to_string())?,
            Some(RedisHandle::Sentinel(_) | RedisHandle::Cluster(_)) => {
                return Err(
                    "a Sentinel or Cluster topology is not started as one server: use `redis: failover` or `redis: kill-master`".into(),
                );
            }
            Some(RedisHandle::Container(c)) => {
                c.start_again().await.map_err(|e| e.to_string())?;
            }
            Some(RedisHandle::External(url)) => {
                return Err(format!(
                    "Redis at {url} was not started by the harness: not startable"
                ));
            }
            None => return Err(self.no_redis()),
        }
        // Every running replica must see it (in process: no PIDs, one replica).
        let pids = self.extauth_pids();
        let running: Vec<String> = self
            .extauth_admins()
            .into_iter()
            .enumerate()
            .filter(|(i, _)| pids.get(*i).is_none_or(Option::is_some))
            .map(|(_, admin)| format!("http://{admin}/readyz"))
            .collect();
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(2))
            .build()
            .map_err(|e| e.to_string())?;
        for ready in running {
            let mut ok = false;
            for _ in 0..READY_ATTEMPTS {
                if client
                    .get(&ready)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
                {
                    ok = true;
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            if !ok {
                return Err(format!(
                    "Redis is back but extauth's {ready} did not turn ready"
                ));
            }
        }
        Ok(())
    }

    /// How many extauth replicas run behind the gateway (1 in process, 0 for a URL target).
    pub fn extauth_replicas(&self) -> usize {
        self.extauth.as_ref().map_or(0, RunningExtauth::replicas)
    }

    /// Each extauth replica's PID, `None` while it is down; empty when extauth runs in
    /// process (or for a URL target).
    pub fn extauth_pids(&self) -> Vec<Option<u32>> {
        self.extauth
            .as_ref()
            .map(RunningExtauth::pids)
            .unwrap_or_default()
    }

    /// Each extauth replica's admin address (`/healthz`, `/readyz`, `/metrics`).
    pub fn extauth_admins(&self) -> Vec<SocketAddr> {
        self.extauth
            .as_ref()
            .map(RunningExtauth::admin_addrs)
            .unwrap_or_default()
    }

    /// Each extauth replica's (gRPC, HTTP, admin) addresses, in replica order.
    pub fn extauth_listeners(&self) -> Vec<(SocketAddr, SocketAddr, SocketAddr)> {
        self.extauth.as_ref().map_or_else(Vec::new, |e| {
            e.grpc_addrs()
                .into_iter()
                .zip(e.http_addrs())
                .zip(e.admin_addrs())
                .map(|((grpc, http), admin)| (grpc, http, admin))
                .collect()
        })
    }

    /// `SIGKILL` of extauth replica `index` (it stays down until [`Self::extauth_restart`]).
    pub fn extauth_kill(&mut self, index: usize) -> Result<(), String> {
        match self.extauth.as_mut() {
            Some(extauth) => extauth.kill(index).map_err(|e| e.to_string()),
            None => Err(self.not_ours("extauth")),
        }
    }

    /// extauth replica `index` again on the same address and ports (stopped with `SIGTERM`
    /// first when it runs), once its `/readyz` says 200.
    pub async fn extauth_restart(&mut self, index: usize) -> Result<(), String> {
        match self.extauth.as_mut() {
            Some(extauth) => extauth.restart(index).await.map_err(|e| e.to_string()),
            None => Err(self.not_ours("extauth")),
        }
    }

    fn not_ours(&self, what: &str) -> String {
        format!("not checkable against a URL target: the harness does not control its {what}")
    }

    /// A failover Redis drives itself (Sentinel: `SENTINEL FAILOVER`; Cluster: `CLUSTER
    /// FAILOVER` on the busiest master's replica), waited for (bounded) until Redis reports
    /// the new master. Returns how long Redis took: the window extauth's errors are compared
    /// with.
    pub async fn redis_failover(&mut self) -> Result<std::time::Duration, String> {
        match self.redis.as_mut() {
            Some(RedisHandle::Sentinel(t)) => t.failover().await.map_err(|e| e.to_string()),
            Some(RedisHandle::Cluster(t)) => t.failover().await.map_err(|e| e.to_string()),
            Some(other) => Err(self_has_no_replica(other.name())),
            None => Err(self.no_redis()),
        }
    }

    /// SIGKILL of the current master by its PID (Cluster: the busiest master), waited for
    /// (bounded) until Redis promoted its replica; the killed node is then started again and
    /// rejoins as a replica. Returns how long the promotion took.
    pub async fn redis_kill_master(&mut self) -> Result<std::time::Duration, String> {
        match self.redis.as_mut() {
            Some(RedisHandle::Sentinel(t)) => t.kill_master().await.map_err(|e| e.to_string()),
            Some(RedisHandle::Cluster(t)) => t.kill_master().await.map_err(|e| e.to_string()),
            Some(other) => Err(self_has_no_replica(other.name())),
            None => Err(self.no_redis()),
        }
    }

    fn no_redis(&self) -> String {
        if self.is_external() {
            "not checkable against a URL target: the harness does not control its Redis".into()
        } else {
            "this stack has no Redis (stack.redis: memory, or neither a container nor redis-server was available)".into()
        }
    }

    /// The PIDs of the child processes this stack runs now: (what, PID).
    pub fn pids(&self) -> Vec<(String, u32)> {
        let mut pids = Vec::new();
        match &self.redis {
            Some(RedisHandle::Process(p)) => {
                pids.extend(p.pid().map(|pid| ("redis-server".to_owned(), pid)));
            }
            Some(RedisHandle::Sentinel(t)) => pids.extend(t.pids()),
            Some(RedisHandle::Cluster(t)) => pids.extend(t.pids()),
            _ => {}
        }
        if let Some(RedisHandle::Tls(t)) = &self.redis
            && let Some(pid) = t.pid()
        {
            pids.push(("redis-server (tls)".to_owned(), pid));
        }
        if let Some(GatewayHandle::Process(p)) = &self.gateway
            && let Some(pid) = p.pid()
        {
            pids.push((p.what().to_owned(), pid));
        }
        if let Some(pid) = self.idp.as_ref().and_then(RunningIdp::pid) {
            pids.push(("node oidc-provider".to_owned(), pid));
        }
        for (index, pid) in self.extauth_pids().into_iter().enumerate() {
            if let Some(pid) = pid {
                pids.push((format!("extauth {index}"), pid));
            }
        }
        pids
    }

    /// The last lines of each backend's log that has one: (part, text).
    pub async fn log_tails(&self, lines: usize) -> Vec<(String, String)> {
        let mut tails = Vec::new();
        match &self.redis {
            Some(RedisHandle::Process(p)) => tails.push(("redis-server".into(), p.log_tail(lines))),
            Some(RedisHandle::Container(c)) => {
                tails.push(("redis container".into(), c.log_tail(lines).await));
            }
            Some(RedisHandle::Tls(t)) => {
                tails.push(("redis-server (tls)".into(), t.log_tail(lines)))
            }
            Some(RedisHandle::Sentinel(t)) => tails.extend(t.log_tails(lines)),
            Some(RedisHandle::Cluster(t)) => tails.extend(t.log_tails(lines)),
            _ => {}
        }
        if let Some(GatewayHandle::Process(p)) = &self.gateway {
            tails.push((p.what().into(), p.log_tail(lines)));
        }
        if let Some(idp) = &self.idp {
            let tail = idp.log_tail(lines).await;
            if !tail.is_empty() {
                tails.push((idp.name().to_owned(), tail));
            }
        }
        if let Some(extauth) = &self.extauth {
            tails.extend(extauth.log_tails(lines));
        }
        tails
    }

    /// The upstream's URL.
    pub fn upstream_url(&self) -> &str {
        self.var("UPSTREAM_URL")
    }

    /// How many `dynamic_metadata` records the gateway received from ext_authz so far (a
    /// mark for [`Stack::gateway_dynamic_metadata_since`]).
    pub fn gateway_dynamic_metadata_count(&self) -> usize {
        match &self.gateway {
            Some(GatewayHandle::Simulator(sim)) => sim.dynamic_metadata_count(),
            _ => self.gateway_dynamic_metadata_since(0).len(),
        }
    }

    /// The `dynamic_metadata` the gateway received from ext_authz after the first `count`:
    /// the simulator keeps it (its latest records), agentgateway logs it (see
    /// [`agentgateway::AccessLog`]); Caddy and nginx have none (HTTP ext-auth).
    pub fn gateway_dynamic_metadata_since(&self, count: usize) -> Vec<serde_json::Value> {
        match &self.gateway {
            Some(GatewayHandle::Simulator(sim)) => sim.dynamic_metadata_since(count),
            Some(GatewayHandle::Process(p)) if p.what() == "agentgateway" => {
                let mut all = agentgateway::AccessLog::read(p.log_path()).dynamic_metadata;
                all.drain(..count.min(all.len()));
                all
            }
            _ => Vec::new(),
        }
    }

    /// How many requests the gateway has logged as finished, for a gateway whose
    /// observations come from its log (agentgateway writes the line just after the answer,
    /// so a reader waits for it); `None` for the others, whose records are complete when
    /// the answer arrives.
    pub fn gateway_requests_logged(&self) -> Option<usize> {
        match &self.gateway {
            Some(GatewayHandle::Process(p)) if p.what() == "agentgateway" => {
                Some(agentgateway::AccessLog::read(p.log_path()).requests)
            }
            _ => None,
        }
    }

    /// What the upstream received so far (nothing for an external target).
    pub async fn upstream_requests(&self) -> Vec<ReceivedRequest> {
        match &self.upstream {
            Some(upstream) => upstream.received().await,
            None => Vec::new(),
        }
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
    /// `EXTAUTH_GRPC`, `EXTAUTH_HTTP`, `EXTAUTH_HTTP_NGINX`, `EXTAUTH_ADMIN` (replica 0's),
    /// `EXTAUTH_ADMINS` (every replica's, comma-separated). No secrets.
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
        match self.gateway.take() {
            Some(GatewayHandle::Simulator(gateway)) => gateway.shutdown().await,
            Some(GatewayHandle::Process(mut process)) => process.stop(),
            None => {}
        }
        if let Some(extauth) = self.extauth.take() {
            extauth.stop().await;
        }
        if let Some(idp) = self.idp.take() {
            idp.stop().await;
        }
        if let Some(redis) = self.redis.take() {
            redis.stop().await;
        }
    }
}

/// Why a failover cannot happen on this Redis backend.
fn self_has_no_replica(backend: &str) -> String {
    format!(
        "Redis `{backend}` is one server without replicas: a failover needs stack.redis `sentinel` or `cluster`"
    )
}

/// The 127.0.0.N addresses that stacks of this process hold for their gateway. A Caddy
/// gateway frees its address for a moment before Caddy binds it; without this set another
/// stack starting in parallel could take it in that gap.
static RESERVED_GATEWAYS: std::sync::Mutex<std::collections::BTreeSet<u8>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// A gateway address held by one stack; released when dropped.
#[derive(Debug)]
struct GatewayReservation(u8);

impl GatewayReservation {
    fn take(n: u8) -> Option<Self> {
        let newly_held = RESERVED_GATEWAYS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(n);
        // The lock is released here: a `Self` may only exist (and be dropped, which locks
        // again) when this call took `n`. An eager `then_some(Self(n))` would build one for
        // an `n` held elsewhere and drop it under the lock: a self-deadlock, and it would
        // free the other stack's address.
        if newly_held { Some(Self(n)) } else { None }
    }
}

impl Drop for GatewayReservation {
    fn drop(&mut self) {
        RESERVED_GATEWAYS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.0);
    }
}

/// Binds the gateway: port 80 on the first free 127.0.0.N (N in 2..=254), else an ephemeral
/// port on 127.0.0.1. Returns whether it got port 80, and the address's reservation.
async fn bind_gateway(
    prefer_port_80: bool,
) -> Result<(TcpListener, bool, Option<GatewayReservation>), StackError> {
    if prefer_port_80 {
        // A random start, so that parallel harness processes rarely try the same address;
        // within this process the reservations keep stacks apart.
        let start = rand::random_range(0..253u16);
        for i in 0..253u16 {
            let n = u8::try_from(2 + (start + i) % 253).unwrap_or(2);
            let Some(reservation) = GatewayReservation::take(n) else {
                continue;
            };
            let addr = SocketAddr::from((Ipv4Addr::new(127, 0, 0, n), 80));
            match TcpListener::bind(addr).await {
                Ok(listener) => return Ok((listener, true, Some(reservation))),
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
    Ok((listener, false, None))
}

/// A listener on `port` (0: a free one) of every address, IPv6 and IPv4 when the host has
/// both: a port agentgateway can take whole.
async fn bind_every_address(port: u16) -> Result<TcpListener, StackError> {
    let v6 = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port));
    match TcpListener::bind(v6).await {
        Ok(listener) => Ok(listener),
        Err(_) => {
            let v4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
            TcpListener::bind(v4)
                .await
                .map_err(|source| GatewayError::Bind { addr: v4, source }.into())
        }
    }
}

/// Starts a process gateway off the runtime (it waits, blocking, until ready) with the
/// stack's folder.
async fn start_process(
    dir: &Path,
    start: impl FnOnce(&Path) -> Result<GatewayProcess, ProcessError> + Send + 'static,
) -> Result<GatewayHandle, StackError> {
    let dir = dir.to_path_buf();
    let process = tokio::task::spawn_blocking(move || start(&dir))
        .await
        .map_err(|e| StackError::Files(std::io::Error::other(format!("gateway start: {e}"))))??;
    Ok(GatewayHandle::Process(process))
}

/// `realm_file` itself, or, when it uses `${VAR}` of `vars`, a copy with them filled in,
/// written into `dir`.
fn render_realm(
    realm_file: &Path,
    dir: &Path,
    vars: &[(&str, &str)],
) -> Result<PathBuf, StackError> {
    let text = std::fs::read_to_string(realm_file).map_err(|source| StackError::Realm {
        path: realm_file.to_owned(),
        source: mock_idp::RealmError::Read {
            file: realm_file.to_owned(),
            source,
        },
    })?;
    if !vars
        .iter()
        .any(|(k, _)| text.contains(&format!("${{{k}}}")))
    {
        return Ok(realm_file.to_owned());
    }
    let env = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let rendered = dir.join("realm.rendered.json");
    std::fs::write(&rendered, render(&text, &env)).map_err(StackError::Files)?;
    Ok(rendered)
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

/// `a,b,c`.
fn join(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn random_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests;
