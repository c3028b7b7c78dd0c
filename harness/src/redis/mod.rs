//! Redis backends of a stack, one file each, all with the same shape (start, address,
//! the `options` lines extauth's manifest gets, stop on drop):
//! - [`process`]: a throwaway `redis-server` child process on a free loopback port;
//! - [`container`]: the `redis:7` image through testcontainers (host networking);
//! - [`tls`]: `redis-server` serving TLS only, certificates generated at start, extauth
//!   configured through `socketType: TLS` and `tlsCertMountPath`;
//! - [`sentinel`]: a master, one replica and three sentinels;
//! - [`cluster`]: three masters with a replica each.
//!
//! The processes come from extauth's shared spawners ([`extauth::testing`]); every child
//! they start is recorded in [`crate::cleanup`] through the spawn hook.

pub mod cluster;
pub mod container;
pub mod process;
pub mod sentinel;
pub mod tls;

use std::path::PathBuf;
use std::time::Duration;

use extauth::testing::RedisSpawnError;

pub use process::{RedisServer, ping};

/// The `durableSessions` option line `--durable-sessions` adds (one replica, 500 ms).
pub const DURABLE_OPTION: &str = "durableSessions: {replicas: 1, timeout: 500ms}";

/// The option line `--client-side-cache` adds (standalone Redis only).
pub const CLIENT_CACHE_OPTION: &str = "clientSideCache: true";

/// The line of the seed manifest that topology options replace.
pub const SEED_HOST_LINE: &str = "host: ${REDIS_HOST}:${REDIS_PORT}";

/// Why Redis could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The `redis-server` binary is not on this machine.
    #[error("redis-server not found: install it (apt-get install redis-server)")]
    NotFound,
    /// The temporary directory or a free port could not be had.
    #[error("cannot prepare redis-server: {0}")]
    Prepare(#[source] std::io::Error),
    /// The process could not be spawned.
    #[error("cannot spawn {binary}: {source}")]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A topology (Sentinel, Cluster, TLS) could not be started or driven.
    #[error("{0}")]
    Topology(#[source] RedisSpawnError),
    /// No usable Docker engine or image (for the container backend).
    #[error("redis container: {0}")]
    Docker(#[source] crate::docker::DockerError),
    /// testcontainers could not start, stop or restart the container.
    #[error("redis container: {0}")]
    Container(String),
    /// A `redis://` URL that does not name a host and port.
    #[error("redis URL {0:?}: expected redis://HOST:PORT")]
    BadUrl(String),
    /// The manifest has no line for the topology options to replace.
    #[error(
        "the manifest has no `{SEED_HOST_LINE}` line under session.redis.options to replace with the {topology} options"
    )]
    NoHostLine {
        /// The topology.
        topology: &'static str,
    },
    /// `durableSessions` asked of a Redis without replicas.
    #[error(
        "durable sessions wait for a replica: this needs --redis sentinel or cluster, not {backend}"
    )]
    DurableNeedsReplicas {
        /// The backend asked for.
        backend: String,
    },
    /// `clientSideCache` asked of a store it does not apply to.
    #[error(
        "extauth's client-side cache is for a standalone Redis: this needs --redis process, container, tls or url, not {backend}"
    )]
    ClientCacheNeedsStandalone {
        /// The backend asked for.
        backend: String,
    },
    /// The process exited or never answered `PING`.
    #[error(
        "redis-server on port {port} did not become ready within {waited:?}: {reason}; log tail: {log_tail}"
    )]
    NotReady {
        /// The port it was told to use.
        port: u16,
        /// How long we waited.
        waited: Duration,
        /// What was seen last.
        reason: String,
        /// The end of its log file.
        log_tail: String,
    },
}

impl From<RedisSpawnError> for RedisError {
    fn from(e: RedisSpawnError) -> Self {
        match e {
            RedisSpawnError::NotInstalled {
                binary: "redis-server",
            } => Self::NotFound,
            other => Self::Topology(other),
        }
    }
}

/// Records every child extauth's spawners start (idempotent).
pub(crate) fn record_children() {
    extauth::testing::set_spawn_hook(crate::cleanup::record_pid);
}

/// `manifest` with the seed's `host: ${REDIS_HOST}:${REDIS_PORT}` line replaced by `lines`,
/// at its indentation (how a Sentinel, Cluster or TLS stack configures extauth while the
/// seed manifest stays as the guide has it).
pub fn with_options(
    manifest: &str,
    lines: &[String],
    topology: &'static str,
) -> Result<String, RedisError> {
    let mut out = String::with_capacity(manifest.len());
    let mut replaced = false;
    for line in manifest.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        if !replaced && body.trim() == SEED_HOST_LINE {
            let indent = &body[..body.len() - body.trim_start().len()];
            for option in lines {
                out.push_str(indent);
                out.push_str(option);
                out.push('\n');
            }
            replaced = true;
        } else {
            out.push_str(line);
        }
    }
    if replaced {
        Ok(out)
    } else {
        Err(RedisError::NoHostLine { topology })
    }
}

#[cfg(test)]
mod tests;
