//! Redis for tests, from Debian's `redis-server` (7.0, TLS and cluster compiled in; Sentinel
//! is `redis-server FILE --sentinel`):
//! - [`server`]: one server, over TCP, a unix socket or TLS (optionally requiring client
//!   certificates), with a password or an ACL user; stoppable, restartable, pausable;
//! - [`certs`]: a CA, a server and a client certificate generated with `rcgen` at start;
//! - [`sentinel`]: a master, one replica and three sentinels, with a failover on demand and
//!   a kill of the current master by PID;
//! - [`cluster`]: three masters with a replica each, created with `redis-cli --cluster
//!   create`, with a master kill, a `CLUSTER FAILOVER` and a slot move.
//!
//! Each process runs on a free loopback port in its own temporary folder, logs to a file
//! there, and is killed by its PID on drop. Every wait is bounded; a failure says what was
//! awaited and shows the end of the log.

pub mod certs;
pub mod cluster;
pub mod sentinel;
pub mod server;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{ConnectionAddr, FromRedisValue, IntoConnectionInfo as _, RedisConnectionInfo};

use self::certs::TestCerts;

/// How long one control command (`PING`, `ROLE`, `SENTINEL ...`) may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);
/// How often bounded waits look again.
const POLL: Duration = Duration::from_millis(50);

/// Why a Redis part could not be started or driven.
#[derive(Debug, thiserror::Error)]
pub enum RedisSpawnError {
    /// A binary is missing.
    #[error("{binary} not found on PATH or in /usr/bin: install it (apt-get install redis-server)")]
    NotInstalled {
        /// `redis-server` or `redis-cli`.
        binary: &'static str,
    },
    /// A folder, file or process could not be made.
    #[error("could not {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The test certificates could not be generated.
    #[error("could not generate test certificates: {0}")]
    Certs(String),
    /// Something did not happen within its bound.
    #[error("{what} did not happen within {waited:?}: {reason}; log tail: {log_tail}")]
    NotReady {
        /// What was awaited.
        what: String,
        /// How long we waited.
        waited: Duration,
        /// What was seen last.
        reason: String,
        /// The end of the relevant log, lines joined with ` | `.
        log_tail: String,
    },
    /// A control command failed.
    #[error("{what}: {reason}")]
    Command {
        /// The command or step.
        what: String,
        /// The error.
        reason: String,
    },
}

impl RedisSpawnError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}

/// How clients get in: the password (and ACL user) and the TLS certificates. `Debug` never
/// prints the password.
#[derive(Clone, Default)]
pub struct Access {
    /// An ACL user (`AUTH user password`); `None`: the default user.
    pub username: Option<String>,
    /// `requirepass` (or the ACL user's password).
    pub password: Option<String>,
    /// TLS: the certificates; clients present the client certificate.
    pub tls: Option<Arc<TestCerts>>,
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Access")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Access {
    /// A client for `127.0.0.1:port` with these credentials.
    pub fn client(&self, port: u16) -> redis::RedisResult<redis::Client> {
        let addr = match &self.tls {
            Some(_) => ConnectionAddr::TcpTls {
                host: "127.0.0.1".into(),
                port,
                insecure: false,
                tls_params: None,
            },
            None => ConnectionAddr::Tcp("127.0.0.1".into(), port),
        };
        let mut settings = RedisConnectionInfo::default();
        if let Some(password) = &self.password {
            settings = settings.set_password(password);
        }
        if let Some(username) = &self.username {
            settings = settings.set_username(username);
        }
        let info = addr.into_connection_info()?.set_redis_settings(settings);
        match &self.tls {
            Some(certs) => {
                crate::session::redis::ensure_tls_provider();
                redis::Client::build_with_tls(info, certs.client_certificates(true))
            }
            None => redis::Client::open(info),
        }
    }

    /// One command on a fresh connection to `127.0.0.1:port`, bounded.
    pub async fn query<T: FromRedisValue>(&self, port: u16, cmd: &redis::Cmd) -> Result<T, String> {
        let client = self.client(port).map_err(|e| e.to_string())?;
        let work = async {
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(COMMAND_TIMEOUT))
                .set_response_timeout(Some(COMMAND_TIMEOUT));
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map_err(|e| format!("connect to 127.0.0.1:{port}: {e}"))?;
            cmd.query_async::<T>(&mut conn)
                .await
                .map_err(|e| format!("127.0.0.1:{port}: {e}"))
        };
        tokio::time::timeout(COMMAND_TIMEOUT * 2, work)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "127.0.0.1:{port}: no answer within {COMMAND_TIMEOUT:?}"
                ))
            })
    }

    /// [`Access::query`] without a runtime (readiness checks of synchronous starts).
    pub fn query_sync<T: FromRedisValue>(&self, port: u16, cmd: &redis::Cmd) -> Result<T, String> {
        let client = self.client(port).map_err(|e| e.to_string())?;
        let mut conn = client
            .get_connection_with_timeout(COMMAND_TIMEOUT)
            .map_err(|e| format!("connect to 127.0.0.1:{port}: {e}"))?;
        conn.set_read_timeout(Some(COMMAND_TIMEOUT))
            .and_then(|()| conn.set_write_timeout(Some(COMMAND_TIMEOUT)))
            .map_err(|e| e.to_string())?;
        cmd.query::<T>(&mut conn)
            .map_err(|e| format!("127.0.0.1:{port}: {e}"))
    }

    /// The `redis-cli` arguments for these credentials (`-a`, `--user`, `--tls ...`).
    pub(crate) fn cli_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(user) = &self.username {
            args.extend(["--user".to_owned(), user.clone()]);
        }
        if let Some(password) = &self.password {
            args.extend([
                "-a".to_owned(),
                password.clone(),
                "--no-auth-warning".to_owned(),
            ]);
        }
        if let Some(certs) = &self.tls {
            args.push("--tls".to_owned());
            args.extend(["--cacert".to_owned(), certs.ca_file().display().to_string()]);
            args.extend([
                "--cert".to_owned(),
                certs.client_cert_file().display().to_string(),
            ]);
            args.extend([
                "--key".to_owned(),
                certs.client_key_file().display().to_string(),
            ]);
        }
        args
    }
}

/// Finds `name` on `PATH`, or in `/usr/bin` or `/usr/local/bin`.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    from_path
        .into_iter()
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The last `lines` lines of the file at `path`, joined with ` | ` (empty when unreadable).
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join(" | ")
}

/// SIGKILL to exactly this child, then reap it.
pub(crate) fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Sends `signal` (`STOP`, `CONT`, `KILL`) to `pid` with `kill(1)`: no `unsafe` here.
pub(crate) fn signal(pid: u32, signal: &str) -> Result<(), RedisSpawnError> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .map_err(RedisSpawnError::io(format!("run kill -{signal} {pid}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(RedisSpawnError::Command {
            what: format!("kill -{signal} {pid}"),
            reason: format!("exited with {status}"),
        })
    }
}

/// Polls `check` until it returns `Ok`, for at most `limit`; the error keeps the last reason.
pub(crate) async fn wait_until<T, F, Fut>(
    what: &str,
    limit: Duration,
    log: impl Fn() -> String,
    mut check: F,
) -> Result<T, RedisSpawnError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    let mut reason = String::from("not checked yet");
    while started.elapsed() < limit {
        match tokio::time::timeout(limit.saturating_sub(started.elapsed()), check()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => reason = e,
            Err(_) => reason = "the check itself did not finish in time".into(),
        }
        tokio::time::sleep(POLL).await;
    }
    Err(RedisSpawnError::NotReady {
        what: what.to_owned(),
        waited: started.elapsed(),
        reason,
        log_tail: log(),
    })
}

/// How long a master kill waits for its replica to catch up first.
pub(crate) const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(5);

/// The master's `master_repl_offset` and its replicas' `offset`s, from `INFO replication`.
fn replication_offsets(info: &str) -> (Option<u64>, Vec<u64>) {
    let mut master = None;
    let mut replicas = Vec::new();
    for line in info.lines() {
        let line = line.trim();
        if let Some(value) = line.strip_prefix("master_repl_offset:") {
            master = value.parse().ok();
        } else if line.starts_with("slave") && line.contains("offset=") {
            replicas.extend(
                line.split(',')
                    .find_map(|field| field.strip_prefix("offset="))
                    .and_then(|v| v.parse::<u64>().ok()),
            );
        }
    }
    (master, replicas)
}

/// Until a replica of the master on `port` has acknowledged everything the master held when
/// this was called (bounded by [`CATCH_UP_TIMEOUT`]): a kill or failover then loses only what
/// is written from now on, as it would in production, and not, on a starved machine, a write
/// made well before it that the replica had not received yet. Best effort: when no replica
/// catches up (right after a failover the old master may not be a replica yet), a warning
/// says so and `before` (what comes next) goes ahead.
pub(crate) async fn wait_replica_caught_up(
    access: &Access,
    port: u16,
    log: impl Fn() -> String,
    before: &str,
) {
    if let Err(e) = replica_caught_up(access, port, log).await {
        tracing::warn!(error = %e, "{before} before a replica caught up");
    }
}

async fn replica_caught_up(
    access: &Access,
    port: u16,
    log: impl Fn() -> String,
) -> Result<(), RedisSpawnError> {
    let info: String = access
        .query(port, redis::cmd("INFO").arg("replication"))
        .await
        .map_err(|reason| RedisSpawnError::Command {
            what: format!("INFO replication on {port}"),
            reason,
        })?;
    let Some(target) = replication_offsets(&info).0 else {
        return Err(RedisSpawnError::Command {
            what: format!("INFO replication on {port}"),
            reason: "no master_repl_offset".into(),
        });
    };
    wait_until(
        &format!("a replica of 127.0.0.1:{port} at offset {target}"),
        CATCH_UP_TIMEOUT,
        log,
        || async move {
            let info: String = access
                .query(port, redis::cmd("INFO").arg("replication"))
                .await?;
            let (_, replicas) = replication_offsets(&info);
            if replicas.iter().any(|&offset| offset >= target) {
                Ok(())
            } else {
                Err(format!("replica offsets {replicas:?}, master at {target}"))
            }
        },
    )
    .await
}

#[cfg(test)]
mod tests;
