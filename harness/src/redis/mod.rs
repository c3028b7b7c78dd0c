//! Redis backends of a stack, one file each, all with the same shape (start, address, stop
//! on drop):
//! - [`process`]: a throwaway `redis-server` child process on a free loopback port;
//! - [`container`]: the `redis:7` image through testcontainers (host networking).

pub mod container;
pub mod process;

use std::path::PathBuf;
use std::time::Duration;

pub use process::{RedisServer, ping};

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
    /// No usable Docker engine or image (for the container backend).
    #[error("redis container: {0}")]
    Docker(#[source] crate::docker::DockerError),
    /// testcontainers could not start, stop or restart the container.
    #[error("redis container: {0}")]
    Container(String),
    /// A `redis://` URL that does not name a host and port.
    #[error("redis URL {0:?}: expected redis://HOST:PORT")]
    BadUrl(String),
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

#[cfg(test)]
mod tests;
