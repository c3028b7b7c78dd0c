//! Assembles the flow from loaded config and serves it on its listeners (gRPC, HTTP
//! forward-auth, admin, and any extra HTTP listener with its gateway profile). Used by
//! `extauth serve`, by the harness and by tests, on port 0 where they like.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use rand::RngCore as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::{SharedClock, SystemClock};
use crate::config::{Loaded, StoreConfig};
use crate::flow::{Flow, Route};
use crate::oidc::{OidcError, Provider};
use crate::secret::Secret;
use crate::session::memory::MemoryStore;
use crate::session::redis::RedisStore;
use crate::session::{SessionStore, StoreError};
use crate::state::StateCodec;
use crate::transport;
use crate::transport::profile::{HttpListener, Profile};
use crate::transport::proxy::TrustedProxies;

/// Which session store to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreChoice {
    /// What each AuthConfig says (`session.redis`).
    #[default]
    FromConfig,
    /// One in-process store for every AuthConfig (tests; no Redis available).
    Memory,
}

/// Where to listen and which store to use.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// gRPC ext_authz listener.
    pub grpc: SocketAddr,
    /// HTTP ext_authz / forward-auth listener.
    pub http: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
    /// Session store selection.
    pub session_store: StoreChoice,
}

/// Operational settings beside [`ServeOptions`], each with a safe default (kept apart so
/// that existing `ServeOptions { .. }` literals keep compiling).
#[derive(Debug, Clone, Default)]
pub struct OpsOptions {
    /// Peers whose `X-Forwarded-*` headers describe the original request on the HTTP
    /// listener (default: loopback).
    pub trusted_proxies: TrustedProxies,
    /// The gRPC `context_extensions` key, and in HTTP mode the header, whose value
    /// (`namespace/name`) picks the AuthConfig when several are loaded (default
    /// [`crate::flow::CONFIG_SELECTOR`], `x-extauth-config`).
    pub config_selector: Option<String>,
    /// More HTTP listeners, each answering as its gateway expects
    /// ([`crate::transport::profile`]); `ServeOptions::http` is the forward-auth one.
    pub http_listeners: Vec<HttpListener>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listener could not bind.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// A session store could not be created.
    #[error("session store for {config}: {source}")]
    Store {
        /// The AuthConfig.
        config: String,
        /// The cause.
        source: StoreError,
    },
    /// The IdP client could not be created.
    #[error("identity provider client for {config}: {source}")]
    Provider {
        /// The AuthConfig.
        config: String,
        /// The cause.
        source: OidcError,
    },
}

/// A running server. Dropping it stops the listeners.
#[derive(Debug)]
pub struct RunningServer {
    grpc: SocketAddr,
    http: SocketAddr,
    admin: SocketAddr,
    http_listeners: Vec<(Profile, SocketAddr)>,
    flow: Arc<Flow>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// How long [`RunningServer::shutdown`] waits for in-flight requests.
pub const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

impl RunningServer {
    /// Bound gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
    }
    /// Bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }
    /// Bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }
    /// The bound address of the first extra HTTP listener with `profile`
    /// ([`OpsOptions::http_listeners`]); `Profile::ForwardAuth` falls back to
    /// [`Self::http_addr`].
    pub fn http_listener_addr(&self, profile: Profile) -> Option<SocketAddr> {
        self.http_listeners
            .iter()
            .find(|(p, _)| *p == profile)
            .map(|(_, addr)| *addr)
            .or((profile == Profile::ForwardAuth).then_some(self.http))
    }
    /// Every extra HTTP listener's profile and bound address, in the order given.
    pub fn http_listeners(&self) -> &[(Profile, SocketAddr)] {
        &self.http_listeners
    }
    /// The flow (for in-process callers such as benches).
    pub fn flow(&self) -> &Arc<Flow> {
        &self.flow
    }
    /// Stops accepting, lets in-flight requests finish for up to [`DRAIN_LIMIT`] (a client
    /// that keeps a connection open cannot hold the process), then ends the listeners.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let deadline = tokio::time::Instant::now() + DRAIN_LIMIT;
        for mut task in self.tasks.drain(..) {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
    /// Resolves when the server stops (all listeners ended).
    pub async fn wait(mut self) {
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts with the system clock.
pub async fn start(loaded: Loaded, opts: ServeOptions) -> Result<RunningServer, ServeError> {
    start_with_clock(loaded, opts, Arc::new(SystemClock)).await
}

/// Builds the flow for `loaded` (no listeners): for benches and in-process use.
pub fn build_flow(
    loaded: &Loaded,
    store: StoreChoice,
    clock: SharedClock,
) -> Result<Flow, ServeError> {
    let signing_key = loaded.signing_key.clone().unwrap_or_else(|| {
        tracing::warn!(
            "no SIGNING_KEY and no extauth-signing-key Secret: using a generated key; replicas will not share it, so a login started on one replica fails on another"
        );
        generated_key()
    });
    let memory: Arc<dyn SessionStore> = Arc::new(MemoryStore::new(Arc::clone(&clock)));
    let mut routes = Vec::with_capacity(loaded.auth_configs.len());
    for config in &loaded.auth_configs {
        let store: Arc<dyn SessionStore> = match (store, &config.session.store) {
            (StoreChoice::Memory, _) => Arc::clone(&memory),
            (StoreChoice::FromConfig, StoreConfig::Redis(redis)) => {
                Arc::new(RedisStore::open(redis).map_err(|source| ServeError::Store {
                    config: config.id.clone(),
                    source,
                })?)
            }
            // Cookie sessions keep nothing server side.
            (StoreChoice::FromConfig, StoreConfig::Cookie { .. }) => Arc::clone(&memory),
        };
        let provider = Provider::new(Arc::clone(config), Arc::clone(&clock)).map_err(|source| {
            ServeError::Provider {
                config: config.id.clone(),
                source,
            }
        })?;
        routes.push(Route::new(
            Arc::clone(config),
            provider,
            store,
            &signing_key,
        ));
    }
    Ok(Flow::new(routes, StateCodec::new(&signing_key), clock))
}

/// Starts with a given clock (tests move time with [`crate::clock::ManualClock`]).
pub async fn start_with_clock(
    loaded: Loaded,
    opts: ServeOptions,
    clock: SharedClock,
) -> Result<RunningServer, ServeError> {
    start_with_options(loaded, opts, OpsOptions::default(), clock).await
}

/// Starts with operational settings ([`OpsOptions`]) and a given clock.
pub async fn start_with_options(
    loaded: Loaded,
    opts: ServeOptions,
    ops: OpsOptions,
    clock: SharedClock,
) -> Result<RunningServer, ServeError> {
    let mut flow = build_flow(&loaded, opts.session_store, clock)?;
    if let Some(key) = &ops.config_selector {
        flow = flow.with_selector(key.as_str());
    }
    let flow = Arc::new(flow);
    // A topology that cannot be found at all (no sentinel answers, no cluster seed node)
    // is a configuration problem: say so now rather than at every request.
    for route in flow.routes() {
        route
            .store
            .check_at_start()
            .await
            .map_err(|source| ServeError::Store {
                config: route.config.id.clone(),
                source,
            })?;
    }
    let bind = |what: &'static str, addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { what, addr, source })
    };
    let grpc = bind("gRPC", opts.grpc).await?;
    let http = bind("HTTP", opts.http).await?;
    let admin = bind("admin", opts.admin).await?;
    let mut extra = Vec::with_capacity(ops.http_listeners.len());
    for listener in &ops.http_listeners {
        extra.push((listener.profile, bind("HTTP profile", listener.addr).await?));
    }
    let addr = |l: &TcpListener, what, want| {
        l.local_addr().map_err(|source| ServeError::Bind {
            what,
            addr: want,
            source,
        })
    };
    let (grpc_addr, http_addr, admin_addr) = (
        addr(&grpc, "gRPC", opts.grpc)?,
        addr(&http, "HTTP", opts.http)?,
        addr(&admin, "admin", opts.admin)?,
    );
    let mut http_listeners = Vec::with_capacity(extra.len());
    for ((profile, listener), wanted) in extra.iter().zip(&ops.http_listeners) {
        http_listeners.push((*profile, addr(listener, "HTTP profile", wanted.addr)?));
    }
    let (shutdown, rx) = watch::channel(false);

    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };

    let grpc_service = envoy_types::ext_authz::v3::pb::AuthorizationServer::new(
        transport::grpc::AuthorizationService::new(Arc::clone(&flow)),
    );
    let grpc_task = tokio::spawn({
        let rx = rx.clone();
        async move {
            let incoming =
                tonic::transport::server::TcpIncoming::from(grpc).with_nodelay(Some(true));
            if let Err(e) = tonic::transport::Server::builder()
                .add_service(grpc_service)
                .serve_with_incoming_shutdown(incoming, stopped(rx))
                .await
            {
                tracing::error!(error = %e, "gRPC listener failed");
            }
        }
    });
    let serve_http = |listener: TcpListener, profile: Profile| {
        let router =
            transport::http::router_for(profile, Arc::clone(&flow), ops.trusted_proxies.clone())
                .into_make_service_with_connect_info::<SocketAddr>();
        let rx = rx.clone();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(stopped(rx))
                .await
            {
                tracing::error!(error = %e, %profile, "HTTP listener failed");
            }
        })
    };
    let mut tasks = vec![grpc_task, serve_http(http, Profile::ForwardAuth)];
    for (profile, listener) in extra {
        tasks.push(serve_http(listener, profile));
    }
    let admin_router = transport::admin::router(Arc::clone(&flow));
    let admin_task = tokio::spawn({
        let rx = rx.clone();
        async move {
            if let Err(e) = axum::serve(admin, admin_router)
                .with_graceful_shutdown(stopped(rx))
                .await
            {
                tracing::error!(error = %e, "admin listener failed");
            }
        }
    });
    // Warm discovery so the first login does not pay for it; failures are retried on use.
    for route in flow.routes() {
        let flow = Arc::clone(&flow);
        let id = route.config.id.clone();
        tokio::spawn(async move {
            if let Some(route) = flow.routes().iter().find(|r| r.config.id == id)
                && let Err(e) = route.provider.discovered().await
            {
                tracing::warn!(config = %id, error = %e, "discovery failed at startup; will retry on the first request");
                crate::metrics::record_error_kind("discovery_startup");
            }
        });
    }
    let profiles = http_listeners
        .iter()
        .map(|(p, a)| format!("{p}={a}"))
        .collect::<Vec<_>>()
        .join(" ");
    tracing::info!(grpc = %grpc_addr, http = %http_addr, http_profiles = %profiles, admin = %admin_addr, configs = flow.routes().len(), "extauth listening");
    tasks.push(admin_task);
    Ok(RunningServer {
        grpc: grpc_addr,
        http: http_addr,
        admin: admin_addr,
        http_listeners,
        flow,
        shutdown,
        tasks,
    })
}

fn generated_key() -> Secret {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    Secret::new(base64::engine::general_purpose::STANDARD.encode(bytes))
}
