//! A no-op ext_authz gRPC server: every `Authorization/Check` is allowed with an empty
//! `OkHttpResponse`. It is the baseline of the gRPC figures (`harness load --target grpc
//! --baseline noop`): the same tonic server stack as extauth's gRPC listener, with no
//! decision behind it, so that what a check costs beyond the transport can be told apart.
//!
//! It runs inside the harness ([`NoopAuthz::start_in_process`]) or as its own process,
//! `harness noop-authz --listen ADDR` ([`NoopAuthz::spawn`]), to sit beside an extauth that
//! runs as a process. It owns no auth logic.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, HttpResponse, OkHttpResponse,
};
use envoy_types::pb::google::rpc::Status;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a spawned `noop-authz` process gets to listen.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// Why the no-op server could not start.
#[derive(Debug, thiserror::Error)]
pub enum NoopAuthzError {
    /// The address could not be bound.
    #[error("noop-authz cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The process could not be started.
    #[error("noop-authz: cannot start {binary}: {source}")]
    Spawn {
        /// The executable.
        binary: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The process did not listen in time.
    #[error("noop-authz: the process did not listen on {addr} within {READY_WITHIN:?}")]
    NotReady {
        /// Where it should listen.
        addr: SocketAddr,
    },
}

/// The service: allow everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

#[tonic::async_trait]
impl Authorization for AllowAll {
    async fn check(
        &self,
        _request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        Ok(tonic::Response::new(CheckResponse {
            status: Some(Status::default()),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse::default())),
            ..CheckResponse::default()
        }))
    }
}

/// Serves [`AllowAll`] on `listener` until `stop` resolves, as extauth serves its gRPC
/// listener (tonic, `TCP_NODELAY`).
pub async fn serve(
    listener: TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(AuthorizationServer::new(AllowAll))
        .serve_with_incoming_shutdown(incoming, stop)
        .await
}

/// A running no-op server; dropping it stops it.
#[derive(Debug)]
pub struct NoopAuthz {
    addr: SocketAddr,
    run: Run,
}

#[derive(Debug)]
enum Run {
    InProcess {
        stop: Option<oneshot::Sender<()>>,
        task: JoinHandle<()>,
    },
    Process(tokio::process::Child),
}

impl NoopAuthz {
    /// Serves inside this process on a free loopback port.
    pub async fn start_in_process() -> Result<Self, NoopAuthzError> {
        let want = SocketAddr::from(([127, 0, 0, 1], 0));
        let listener = TcpListener::bind(want)
            .await
            .map_err(|source| NoopAuthzError::Bind { addr: want, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| NoopAuthzError::Bind { addr: want, source })?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let stop = async move {
                let _ = rx.await;
            };
            if let Err(e) = serve(listener, stop).await {
                tracing::error!(error = %e, "noop-authz stopped with an error");
            }
        });
        Ok(Self {
            addr,
            run: Run::InProcess {
                stop: Some(tx),
                task,
            },
        })
    }

    /// Runs `binary noop-authz --listen 127.0.0.1:PORT` (the harness executable) and waits
    /// until it accepts connections.
    pub async fn spawn(binary: &Path) -> Result<Self, NoopAuthzError> {
        let port = extauth::testing::free_port().map_err(|source| NoopAuthzError::Bind {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            source,
        })?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = tokio::process::Command::new(binary)
            .arg("noop-authz")
            .arg("--listen")
            .arg(addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| NoopAuthzError::Spawn {
                binary: binary.display().to_string(),
                source,
            })?;
        if let Some(pid) = child.id() {
            crate::cleanup::record_pid("noop-authz", pid);
        }
        let noop = Self {
            addr,
            run: Run::Process(child),
        };
        let deadline = tokio::time::Instant::now() + READY_WITHIN;
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if tokio::time::Instant::now() >= deadline {
                return Err(NoopAuthzError::NotReady { addr });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(noop)
    }

    /// The gRPC address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server (the process by its PID).
    pub async fn stop(mut self) {
        match &mut self.run {
            Run::InProcess { stop, task } => {
                if let Some(tx) = stop.take() {
                    let _ = tx.send(());
                }
                let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
            }
            Run::Process(child) => {
                let _ = child.start_kill();
                let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            }
        }
    }
}

impl Drop for NoopAuthz {
    fn drop(&mut self) {
        match &mut self.run {
            Run::InProcess { stop, task } => {
                if let Some(tx) = stop.take() {
                    let _ = tx.send(());
                }
                task.abort();
            }
            Run::Process(child) => {
                let _ = child.start_kill();
            }
        }
    }
}
