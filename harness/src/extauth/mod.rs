//! extauth backends of a stack, one file each, all with the same shape (start, addresses,
//! stop on drop):
//! - [`in_process`]: `extauth::server::start` inside the harness, one replica on port 0. The
//!   default: it needs no binary, starts in milliseconds, and is what the unit tests, the
//!   benches and most scenarios use (they test the flow, not the deployment);
//! - [`process`]: `--replicas N`, N `extauth serve` child processes of the real binary, all
//!   given the same rendered manifest and the same `SIGNING_KEY`, each on its own loopback
//!   address (127.0.C.1, 127.0.C.2, ..., as pods have their own IPs) with the same three
//!   ports, so a gateway's health check can name one admin port for all of them. Each child
//!   is recorded with [`crate::cleanup`], killed (`SIGKILL`) or stopped (`SIGTERM`) by its
//!   PID, and restarted on the same address and ports.
//!
//! The binary is found by [`find_binary`]: `--extauth-bin`, else `EXTAUTH_BIN`, else
//! `extauth` next to the running executable in the cargo target folder, where `cargo build
//! -p harness -p extauth` (what the just recipes run first) and `cargo test --workspace`
//! put it. It is never built from here: a test or a run that finds none fails and says how
//! to build it.
//!
//! This module owns starting and stopping extauth; the gateway in front of it and what goes
//! through it belong to [`crate::gateway`] and [`crate::stack`].

pub mod in_process;
pub mod process;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use in_process::InProcessExtauth;
pub use process::{ReplicaSpec, Replicas};

/// The environment variable naming the extauth binary.
pub const EXTAUTH_BIN_ENV: &str = "EXTAUTH_BIN";
/// The most replicas a stack runs (each is a process with three listeners).
pub const MAX_REPLICAS: u16 = 16;

/// How extauth runs in a stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExtauthMode {
    /// One server inside the harness process (no binary needed).
    #[default]
    InProcess,
    /// `replicas` `extauth serve` processes of the real binary.
    Processes {
        /// How many (1 to [`MAX_REPLICAS`]).
        replicas: u16,
    },
}

impl ExtauthMode {
    /// `--replicas N` as a mode; `None` is in-process. Out of range is an error.
    pub fn from_replicas(replicas: Option<u16>) -> Result<Self, ExtauthError> {
        match replicas {
            None => Ok(Self::InProcess),
            Some(n @ 1..=MAX_REPLICAS) => Ok(Self::Processes { replicas: n }),
            Some(n) => Err(ExtauthError::Replicas(n)),
        }
    }

    /// How many replicas run (1 in-process).
    pub fn replicas(self) -> usize {
        match self {
            Self::InProcess => 1,
            Self::Processes { replicas } => usize::from(replicas),
        }
    }
}

/// Why extauth could not start, or a replica could not be killed or restarted.
#[derive(Debug, thiserror::Error)]
pub enum ExtauthError {
    /// No binary where we looked.
    #[error(
        "the extauth binary was not found ({looked}): build it with `cargo build -p harness -p extauth` (the just recipes do), or name it with --extauth-bin or {EXTAUTH_BIN_ENV}"
    )]
    BinaryNotFound {
        /// Where we looked, in order.
        looked: String,
    },
    /// A replica count out of range.
    #[error("--replicas {0}: expected 1 to {MAX_REPLICAS}")]
    Replicas(u16),
    /// Several replicas over extauth's in-memory store would not share sessions.
    #[error(
        "{replicas} replicas share sessions through Redis, but this stack has none (extauth's in-memory store keeps sessions per process): use --redis process, container or url"
    )]
    NeedsRedis {
        /// The replica count asked for.
        replicas: u16,
    },
    /// agentgateway's `extAuthz` policy names one host: it cannot balance over replicas.
    #[error(
        "{replicas} replicas: agentgateway's extAuthz policy names one ext_authz host, so it cannot balance over replicas here; use --gateway sim, caddy or nginx"
    )]
    OneHostGateway {
        /// The replica count asked for.
        replicas: u16,
    },
    /// The in-process server did not start.
    #[error("in-process extauth: {0}")]
    InProcess(#[from] extauth::server::ServeError),
    /// Files, addresses or ports could not be had.
    #[error("cannot prepare extauth replicas: {0}")]
    Prepare(#[source] std::io::Error),
    /// The child could not be spawned.
    #[error("cannot spawn {binary}: {source}")]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A replica exited or its `/readyz` never said 200.
    #[error(
        "extauth replica {index} (admin {admin}) did not become ready within {waited:?}: {reason}; log tail: {log_tail}"
    )]
    NotReady {
        /// Which replica.
        index: usize,
        /// Its admin address.
        admin: SocketAddr,
        /// How long we waited.
        waited: Duration,
        /// What was seen last.
        reason: String,
        /// The end of its log.
        log_tail: String,
    },
    /// An index past the last replica.
    #[error("no extauth replica {index}: this stack runs {replicas} (0 to {})", replicas.saturating_sub(1))]
    NoSuchReplica {
        /// The index asked for.
        index: usize,
        /// How many there are.
        replicas: usize,
    },
    /// A kill of a replica that is not running.
    #[error("extauth replica {0} is not running (killed or stopped already)")]
    NotRunning(usize),
    /// Kill and restart need processes.
    #[error(
        "extauth runs in-process in this stack: killing or restarting a replica needs extauth processes (--replicas N, or stack.replicas in a scenario)"
    )]
    InProcessOnly,
}

/// Where the extauth binary is: `explicit` (`--extauth-bin`), else `env` (the value of
/// `EXTAUTH_BIN`), else `extauth` next to `exe` (the running executable) or, for a test
/// executable in `target/<profile>/deps/`, one folder up.
pub fn find_binary(
    explicit: Option<&Path>,
    env: Option<OsString>,
    exe: Option<&Path>,
) -> Result<PathBuf, ExtauthError> {
    let mut looked = Vec::new();
    let named = explicit
        .map(|p| ("--extauth-bin", p.to_path_buf()))
        .or_else(|| {
            env.filter(|v| !v.is_empty())
                .map(|v| (EXTAUTH_BIN_ENV, PathBuf::from(v)))
        });
    if let Some((source, path)) = named {
        // A binary named on purpose is never replaced by a guess.
        if path.is_file() {
            return Ok(path);
        }
        return Err(ExtauthError::BinaryNotFound {
            looked: format!("{source} {} is not a file", path.display()),
        });
    }
    if let Some(dir) = exe.and_then(Path::parent) {
        let mut dirs = vec![dir.to_path_buf()];
        if dir.file_name().is_some_and(|n| n == "deps")
            && let Some(up) = dir.parent()
        {
            dirs.push(up.to_path_buf());
        }
        for dir in dirs {
            let candidate = dir.join("extauth");
            if candidate.is_file() {
                return Ok(candidate);
            }
            looked.push(candidate.display().to_string());
        }
    }
    Err(ExtauthError::BinaryNotFound {
        looked: if looked.is_empty() {
            format!("no --extauth-bin, no {EXTAUTH_BIN_ENV}, no running executable's folder")
        } else {
            format!(
                "no --extauth-bin, no {EXTAUTH_BIN_ENV}; looked at {}",
                looked.join(", ")
            )
        },
    })
}

/// [`find_binary`] with this process's `EXTAUTH_BIN` and executable.
pub fn locate_binary(explicit: Option<&Path>) -> Result<PathBuf, ExtauthError> {
    let exe = std::env::current_exe().ok();
    find_binary(explicit, std::env::var_os(EXTAUTH_BIN_ENV), exe.as_deref())
}

/// The stack's extauth.
#[derive(Debug)]
pub enum RunningExtauth {
    /// Inside the harness.
    InProcess(InProcessExtauth),
    /// Child processes.
    Processes(Replicas),
}

impl RunningExtauth {
    /// Each replica's gRPC ext_authz address, in replica order.
    pub fn grpc_addrs(&self) -> Vec<SocketAddr> {
        match self {
            Self::InProcess(s) => vec![s.grpc_addr()],
            Self::Processes(r) => r.grpc_addrs(),
        }
    }

    /// Each replica's HTTP-mode address.
    pub fn http_addrs(&self) -> Vec<SocketAddr> {
        match self {
            Self::InProcess(s) => vec![s.http_addr()],
            Self::Processes(r) => r.http_addrs(),
        }
    }

    /// Each replica's admin address (`/healthz`, `/readyz`, `/metrics`).
    pub fn admin_addrs(&self) -> Vec<SocketAddr> {
        match self {
            Self::InProcess(s) => vec![s.admin_addr()],
            Self::Processes(r) => r.admin_addrs(),
        }
    }

    /// Each replica's HTTP listener with the nginx `auth_request` profile.
    pub fn nginx_addrs(&self) -> Vec<SocketAddr> {
        match self {
            Self::InProcess(s) => vec![s.nginx_addr()],
            Self::Processes(r) => r.nginx_addrs(),
        }
    }

    /// The admin port every replica shares (processes only): what a gateway's active health
    /// check names (Caddy's `health_port`).
    pub fn shared_admin_port(&self) -> Option<u16> {
        match self {
            Self::InProcess(_) => None,
            Self::Processes(r) => Some(r.admin_port()),
        }
    }

    /// How many replicas (1 in-process).
    pub fn replicas(&self) -> usize {
        match self {
            Self::InProcess(_) => 1,
            Self::Processes(r) => r.len(),
        }
    }

    /// As `harness up` and reports name it: `in-process` or `N processes`.
    pub fn name(&self) -> String {
        match self {
            Self::InProcess(_) => "in-process".to_owned(),
            Self::Processes(r) if r.len() == 1 => "1 process".to_owned(),
            Self::Processes(r) => format!("{} processes", r.len()),
        }
    }

    /// Each replica's PID, `None` while it is down (in-process: none at all).
    pub fn pids(&self) -> Vec<Option<u32>> {
        match self {
            Self::InProcess(_) => Vec::new(),
            Self::Processes(r) => r.pids(),
        }
    }

    /// `SIGKILL` of replica `index` by its PID (it stays down until [`Self::restart`]).
    pub fn kill(&mut self, index: usize) -> Result<(), ExtauthError> {
        match self {
            Self::InProcess(_) => Err(ExtauthError::InProcessOnly),
            Self::Processes(r) => r.kill(index),
        }
    }

    /// Replica `index` again on the same address and ports (stopped with `SIGTERM` first
    /// when it runs), waiting until its `/readyz` says 200.
    pub async fn restart(&mut self, index: usize) -> Result<(), ExtauthError> {
        match self {
            Self::InProcess(_) => Err(ExtauthError::InProcessOnly),
            Self::Processes(r) => r.restart(index).await,
        }
    }

    /// The last lines of each replica's log: (`extauth N`, text). In-process logs go to the
    /// harness's own output: none.
    pub fn log_tails(&self, lines: usize) -> Vec<(String, String)> {
        match self {
            Self::InProcess(_) => Vec::new(),
            Self::Processes(r) => r.log_tails(lines),
        }
    }

    /// Stops every replica and waits.
    pub async fn stop(self) {
        match self {
            Self::InProcess(s) => s.stop().await,
            Self::Processes(mut r) => r.stop(),
        }
    }
}

#[cfg(test)]
mod tests;
