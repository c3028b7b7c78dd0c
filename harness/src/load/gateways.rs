//! The gateways of `harness load --target sim|agentgateway`: two gateways of the same kind
//! in front of the same trivial upstream, one calling extauth's ext_authz, the other the
//! no-op ext_authz server ([`crate::noop_authz`]), so that the gateway's own cost and
//! extauth's are told apart in one run.
//!
//! - `sim`: two [`GatewaySim`]s inside the harness (as the stacks run it);
//! - `agentgateway`: two agentgateway processes (v1.3.1, the stack's config,
//!   [`Agentgateway::start`]).
//!
//! The upstream answers every request with `200` and a two-byte body, from inside the
//! harness: the wiremock upstream of the stacks records every request and would be what
//! limits the run.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use url::Url;

use crate::gateway::agentgateway::{self, Agentgateway, AgentgatewayConfig};
use crate::gateway::process::GatewayProcess;
use crate::gateway::sim::{AppendSemantics, GatewaySim, RunningGateway};

/// An HTTP server that answers `200 ok` to everything, inside this process.
pub struct TrivialUpstream {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl TrivialUpstream {
    /// Serves on a free loopback port.
    pub async fn start() -> Result<Self, String> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| format!("trivial upstream: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("trivial upstream: {e}"))?;
        let app = axum::Router::new().fallback(|| async { "ok" });
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            stop: Some(tx),
            task,
        })
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for TrivialUpstream {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.abort();
    }
}

/// One gateway of the pair.
enum Gateway {
    Sim(RunningGateway),
    Process(GatewayProcess),
}

impl Gateway {
    fn addr(&self) -> SocketAddr {
        match self {
            Gateway::Sim(g) => g.addr(),
            Gateway::Process(p) => p.addr(),
        }
    }

    fn pid(&self) -> Option<u32> {
        match self {
            Gateway::Sim(_) => None,
            Gateway::Process(p) => p.pid(),
        }
    }
}

/// The two gateways and their upstream; dropping it stops them all.
pub struct GatewayPair {
    /// ext_authz: extauth.
    with_extauth: Gateway,
    /// ext_authz: the no-op server.
    with_noop: Gateway,
    _upstream: TrivialUpstream,
}

impl GatewayPair {
    /// Two simulators in this process.
    pub async fn sim(extauth_grpc: SocketAddr, noop_grpc: SocketAddr) -> Result<Self, String> {
        let upstream = TrivialUpstream::start().await?;
        let base = Url::parse(&format!("http://{}", upstream.addr()))
            .map_err(|e| format!("upstream URL: {e}"))?;
        let start = |authz: SocketAddr| {
            let base = base.clone();
            async move {
                let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                    .await
                    .map_err(|e| format!("gateway simulator: {e}"))?;
                GatewaySim::serve(listener, authz, base, AppendSemantics::default())
                    .map_err(|e| e.to_string())
            }
        };
        Ok(Self {
            with_extauth: Gateway::Sim(start(extauth_grpc).await?),
            with_noop: Gateway::Sim(start(noop_grpc).await?),
            _upstream: upstream,
        })
    }

    /// Two agentgateway processes (`binary`, else [`agentgateway::binary`]'s choice), their
    /// files in `dir`.
    pub async fn agentgateway(
        binary: Option<&Path>,
        extauth_grpc: SocketAddr,
        noop_grpc: SocketAddr,
        dir: &Path,
    ) -> Result<Self, String> {
        let binary = agentgateway::binary(binary)?;
        let upstream = TrivialUpstream::start().await?;
        let mut gateways = Vec::new();
        for (name, authz) in [("with-extauth", extauth_grpc), ("with-noop", noop_grpc)] {
            // The gateway's port and its three own ports, held until just before it starts.
            let held = (0..4)
                .map(|_| std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("agentgateway ports: {e}"))?;
            let addrs = held
                .iter()
                .map(std::net::TcpListener::local_addr)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("agentgateway ports: {e}"))?;
            let config = AgentgatewayConfig {
                port: addrs[0].port(),
                extauth_grpc: authz,
                upstream: upstream.addr().to_string(),
                admin: addrs[1],
                stats: addrs[2],
                readiness: addrs[3],
            };
            drop(held);
            let home = dir.join(name);
            let binary = binary.clone();
            let process = tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(&home).map_err(|e| format!("{}: {e}", home.display()))?;
                Agentgateway::start(&binary, &config, &home).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| format!("agentgateway start: {e}"))??;
            gateways.push(Gateway::Process(process));
        }
        let with_noop = gateways.pop().ok_or("agentgateway: not started")?;
        let with_extauth = gateways.pop().ok_or("agentgateway: not started")?;
        Ok(Self {
            with_extauth,
            with_noop,
            _upstream: upstream,
        })
    }

    /// The gateway whose ext_authz is extauth.
    pub fn with_extauth(&self) -> SocketAddr {
        self.with_extauth.addr()
    }

    /// The gateway whose ext_authz is the no-op server.
    pub fn with_noop(&self) -> SocketAddr {
        self.with_noop.addr()
    }

    /// The gateways' process ids (agentgateway), for profiling.
    pub fn pids(&self) -> Vec<u32> {
        [&self.with_extauth, &self.with_noop]
            .into_iter()
            .filter_map(Gateway::pid)
            .collect()
    }
}
