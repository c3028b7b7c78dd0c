//! `--replicas N`: N `extauth serve` child processes of the real binary.
//!
//! Every replica gets the same rendered manifest (`--config`), the same environment (at
//! least `SIGNING_KEY`, so a `state` signed by one is accepted by another) and nothing else
//! from the harness's environment. Replica `i` listens on its own loopback address
//! `127.0.C.(i+1)` (`C` picked per stack) with the same gRPC, HTTP, nginx-profile HTTP and admin ports as the
//! others, as pods of one Deployment do; that is what lets Caddy's active health check name
//! one `health_port`. The addresses and ports are probed free before the first start, and a
//! start that loses a port race is tried again on new ones.
//!
//! A replica is ready when its `/readyz` answers 200 (bounded polling). [`Replicas::kill`]
//! sends `SIGKILL` to its PID; [`Replicas::restart`] stops it with `SIGTERM` (bounded, then
//! `SIGKILL`) when it runs, then starts it again on the same address and ports. stdout and
//! stderr go to `extauth-<i>.log` in the stack's folder, appended across restarts.

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::ExtauthError;

/// How long a replica may take to answer `/readyz` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How often `/readyz` is asked.
const READY_POLL: Duration = Duration::from_millis(50);
/// How long a replica stopped with `SIGTERM` may drain before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(5);
/// Address blocks tried when probing free ports.
const ADDRESS_ATTEMPTS: usize = 20;
/// Whole starts tried when a child loses its ports to another process before binding them.
const START_ATTEMPTS: usize = 3;

/// What every replica runs with.
#[derive(Clone)]
pub struct ReplicaSpec {
    /// The `extauth` binary.
    pub binary: PathBuf,
    /// The rendered manifest (`extauth serve --config`).
    pub config: PathBuf,
    /// The children's whole environment (`SIGNING_KEY`, and e.g. a Redis password): values
    /// are secrets and never printed.
    pub env: Vec<(String, String)>,
    /// `--memory-sessions` (only sensible with one replica).
    pub memory_sessions: bool,
    /// Where the logs go.
    pub dir: PathBuf,
}

impl fmt::Debug for ReplicaSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicaSpec")
            .field("binary", &self.binary)
            .field("config", &self.config)
            .field(
                "env",
                &self.env.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            )
            .field("memory_sessions", &self.memory_sessions)
            .field("dir", &self.dir)
            .finish()
    }
}

/// The three ports every replica listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// gRPC ext_authz.
    pub grpc: u16,
    /// HTTP mode.
    pub http: u16,
    /// Admin.
    pub admin: u16,
    /// The HTTP listener with the nginx `auth_request` profile.
    pub nginx: u16,
}

#[derive(Debug)]
struct Replica {
    index: usize,
    ip: Ipv4Addr,
    log: PathBuf,
    child: Option<Child>,
}

/// The running (or partly killed) replicas. Dropping them kills every child.
#[derive(Debug)]
pub struct Replicas {
    spec: ReplicaSpec,
    ports: Ports,
    replicas: Vec<Replica>,
}

impl Replicas {
    /// Starts `count` replicas and waits until each is ready.
    pub async fn start(spec: ReplicaSpec, count: usize) -> Result<Self, ExtauthError> {
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            let (ips, ports) = pick_addresses(count).map_err(ExtauthError::Prepare)?;
            let mut set = Self {
                ports,
                replicas: ips
                    .into_iter()
                    .enumerate()
                    .map(|(index, ip)| Replica {
                        index,
                        ip,
                        log: spec.dir.join(format!("extauth-{index}.log")),
                        child: None,
                    })
                    .collect(),
                spec: spec.clone(),
            };
            for index in 0..count {
                set.spawn(index)?;
            }
            let waits = (0..count).map(|index| set.wait_ready(index));
            let results = futures::future::join_all(waits).await;
            match results.into_iter().find_map(Result::err) {
                None => return Ok(set),
                // A child that exited lost a port race (the manifest was already checked
                // in-process): new addresses.
                Some(e @ ExtauthError::NotReady { .. }) if set.any_exited() => last = Some(e),
                Some(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(ExtauthError::Prepare(std::io::Error::other(
            "no start attempted",
        ))))
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.replicas.len()
    }

    /// Never: a set has at least one replica.
    pub fn is_empty(&self) -> bool {
        self.replicas.is_empty()
    }

    /// The shared ports.
    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// The admin port every replica listens on.
    pub fn admin_port(&self) -> u16 {
        self.ports.admin
    }

    /// gRPC addresses, in replica order.
    pub fn grpc_addrs(&self) -> Vec<SocketAddr> {
        self.addrs(self.ports.grpc)
    }

    /// HTTP-mode addresses.
    pub fn http_addrs(&self) -> Vec<SocketAddr> {
        self.addrs(self.ports.http)
    }

    /// Admin addresses.
    pub fn admin_addrs(&self) -> Vec<SocketAddr> {
        self.addrs(self.ports.admin)
    }

    /// nginx-profile HTTP addresses.
    pub fn nginx_addrs(&self) -> Vec<SocketAddr> {
        self.addrs(self.ports.nginx)
    }

    fn addrs(&self, port: u16) -> Vec<SocketAddr> {
        self.replicas
            .iter()
            .map(|r| SocketAddr::from((r.ip, port)))
            .collect()
    }

    /// Each replica's PID while it runs.
    pub fn pids(&self) -> Vec<Option<u32>> {
        self.replicas
            .iter()
            .map(|r| r.child.as_ref().map(Child::id))
            .collect()
    }

    /// `SIGKILL` of replica `index`; an error when it is not running.
    pub fn kill(&mut self, index: usize) -> Result<(), ExtauthError> {
        let replica = self.replica_mut(index)?;
        let Some(mut child) = replica.child.take() else {
            return Err(ExtauthError::NotRunning(index));
        };
        // `Child::kill` is SIGKILL to exactly this PID.
        let _ = child.kill();
        let _ = child.wait();
        Ok(())
    }

    /// Stops replica `index` with `SIGTERM` when it runs (killed after [`TERM_GRACE`]), then
    /// starts it on the same address and ports and waits until it is ready.
    pub async fn restart(&mut self, index: usize) -> Result<(), ExtauthError> {
        let replica = self.replica_mut(index)?;
        if let Some(child) = replica.child.take() {
            terminate(child).await;
        }
        self.spawn(index)?;
        self.wait_ready(index).await
    }

    /// The last `lines` lines of each replica's log.
    pub fn log_tails(&self, lines: usize) -> Vec<(String, String)> {
        self.replicas
            .iter()
            .map(|r| {
                (
                    format!("extauth {} ({})", r.index, r.ip),
                    crate::logs::file_tail(&r.log, lines),
                )
            })
            .collect()
    }

    /// Kills every replica (by PID) and waits.
    pub fn stop(&mut self) {
        for replica in &mut self.replicas {
            if let Some(mut child) = replica.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    fn replica_mut(&mut self, index: usize) -> Result<&mut Replica, ExtauthError> {
        let replicas = self.replicas.len();
        self.replicas
            .get_mut(index)
            .ok_or(ExtauthError::NoSuchReplica { index, replicas })
    }

    fn any_exited(&mut self) -> bool {
        self.replicas.iter_mut().any(|r| match r.child.as_mut() {
            Some(child) => !matches!(child.try_wait(), Ok(None)),
            None => true,
        })
    }

    fn spawn(&mut self, index: usize) -> Result<(), ExtauthError> {
        let ports = self.ports;
        let spec = self.spec.clone();
        let replica = self.replica_mut(index)?;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&replica.log)
            .map_err(ExtauthError::Prepare)?;
        let _ = writeln!(
            log,
            "[harness] starting extauth replica {index} on {}",
            replica.ip
        );
        let stderr = log.try_clone().map_err(ExtauthError::Prepare)?;
        let addr = |port| SocketAddr::from((replica.ip, port)).to_string();
        let mut command = Command::new(&spec.binary);
        command
            .arg("serve")
            .arg("--config")
            .arg(&spec.config)
            .args(["--grpc", &addr(ports.grpc)])
            .args(["--http", &addr(ports.http)])
            .args(["--admin", &addr(ports.admin)])
            .arg("--http-listener")
            .arg(format!("nginx={}", addr(ports.nginx)))
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            // Plain text in the log file (tails go into failure reports).
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        if spec.memory_sessions {
            command.arg("--memory-sessions");
        }
        let child = command.spawn().map_err(|source| ExtauthError::Spawn {
            binary: spec.binary.clone(),
            source,
        })?;
        crate::cleanup::record_pid("extauth", child.id());
        replica.child = Some(child);
        Ok(())
    }

    async fn wait_ready(&self, index: usize) -> Result<(), ExtauthError> {
        let Some(replica) = self.replicas.get(index) else {
            return Err(ExtauthError::NoSuchReplica {
                index,
                replicas: self.replicas.len(),
            });
        };
        let admin = SocketAddr::from((replica.ip, self.ports.admin));
        let url = format!("http://{admin}/readyz");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .map_err(|e| ExtauthError::Prepare(std::io::Error::other(e)))?;
        let pid = replica.child.as_ref().map(Child::id);
        let started = Instant::now();
        let mut reason = "no answer yet".to_owned();
        while started.elapsed() < READY_TIMEOUT {
            if pid.is_none_or(|pid| !crate::cleanup::process_alive(pid)) {
                reason = "the process exited".to_owned();
                break;
            }
            match client.get(&url).send().await {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body = response.text().await.unwrap_or_default();
                    reason = format!("/readyz answered {status}: {}", body.trim());
                }
                Err(e) => reason = format!("/readyz: {e}"),
            }
            tokio::time::sleep(READY_POLL).await;
        }
        Err(ExtauthError::NotReady {
            index,
            admin,
            waited: started.elapsed(),
            reason,
            log_tail: crate::logs::file_tail(&replica.log, 5).replace('\n', " | "),
        })
    }
}

impl Drop for Replicas {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `SIGTERM` to the child's PID, then up to [`TERM_GRACE`] for it to drain and exit, then
/// `SIGKILL`.
async fn terminate(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let started = Instant::now();
    while started.elapsed() < TERM_GRACE {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `count` loopback addresses `127.0.C.1..=count` and four ports free on all of them.
pub(crate) fn pick_addresses(count: usize) -> std::io::Result<(Vec<Ipv4Addr>, Ports)> {
    let count_u8 = u8::try_from(count)
        .ok()
        .filter(|n| (1..=250).contains(n))
        .ok_or_else(|| std::io::Error::other(format!("{count} replicas: expected 1 to 250")))?;
    for _ in 0..ADDRESS_ATTEMPTS {
        // 127.0.0.N is where stacks put their gateway on port 80: another third octet.
        let c: u8 = rand::random_range(1..=254);
        let ips: Vec<Ipv4Addr> = (1..=count_u8)
            .map(|d| Ipv4Addr::new(127, 0, c, d))
            .collect();
        let first: Vec<TcpListener> = (0..4)
            .map(|_| TcpListener::bind((ips[0], 0)))
            .collect::<Result<_, _>>()?;
        let ports: Vec<u16> = first
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<Result<_, _>>()?;
        let free_everywhere = ips[1..]
            .iter()
            .all(|ip| ports.iter().all(|p| TcpListener::bind((*ip, *p)).is_ok()));
        if free_everywhere {
            return Ok((
                ips,
                Ports {
                    grpc: ports[0],
                    http: ports[1],
                    admin: ports[2],
                    nginx: ports[3],
                },
            ));
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!(
            "no block of {count} loopback addresses with four ports free on all of them after {ADDRESS_ATTEMPTS} tries"
        ),
    ))
}
