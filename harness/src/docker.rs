//! Is there a Docker engine, and does it hold an image? Asked before testcontainers is used,
//! because testcontainers with an engine but no local image tries to pull (impossible here)
//! and a bare engine ping says nothing about images.
//!
//! Speaks just enough HTTP/1.0 over the engine's unix socket (`DOCKER_HOST=unix://...`, else
//! `/var/run/docker.sock`) for `GET /_ping` and `GET /images/{name}/json`. Owns no containers:
//! starting them is testcontainers' job, in [`crate::redis::container`] and [`crate::idp`].

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// How to start an engine here, for messages.
pub const START_HINT: &str =
    "start one with `just docker-up` (dockerd --bridge=none --iptables=false) or set DOCKER_HOST";

/// Why an engine or image is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerError {
    /// Nothing answers on the socket.
    #[error("no Docker engine answers at {socket}: {reason}; {START_HINT}")]
    NoEngine {
        /// The socket tried.
        socket: String,
        /// What went wrong.
        reason: String,
    },
    /// The engine answers but does not hold the image (and nothing can be pulled here).
    #[error("image {image} is not present locally (nothing is pulled here): {hint}")]
    NoImage {
        /// The image reference.
        image: String,
        /// How to get it.
        hint: String,
    },
}

/// The engine's unix socket: `DOCKER_HOST` when it is `unix://PATH`, else the default.
pub fn socket_path() -> PathBuf {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"))
}

/// `GET path` on the engine; the status code.
fn get_status(path: &str) -> Result<u16, DockerError> {
    request_status("GET", path)
}

/// `METHOD path` on the engine; the status code.
fn request_status(method: &str, path: &str) -> Result<u16, DockerError> {
    let socket = socket_path();
    let no_engine = |reason: String| DockerError::NoEngine {
        socket: socket.display().to_string(),
        reason,
    };
    let mut stream = UnixStream::connect(&socket).map_err(|e| no_engine(e.to_string()))?;
    let timeout = Some(Duration::from_secs(3));
    stream
        .set_read_timeout(timeout)
        .and_then(|()| stream.set_write_timeout(timeout))
        .map_err(|e| no_engine(e.to_string()))?;
    stream
        .write_all(format!("{method} {path} HTTP/1.0\r\nHost: docker\r\n\r\n").as_bytes())
        .map_err(|e| no_engine(e.to_string()))?;
    let mut head = [0u8; 64];
    let n = stream
        .read(&mut head)
        .map_err(|e| no_engine(e.to_string()))?;
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| no_engine(format!("unexpected answer {:?}", line.trim())))
}

/// Whether an engine answers `/_ping`.
pub fn engine() -> Result<(), DockerError> {
    match get_status("/_ping")? {
        200 => Ok(()),
        other => Err(DockerError::NoEngine {
            socket: socket_path().display().to_string(),
            reason: format!("/_ping answered {other}"),
        }),
    }
}

/// Whether the engine holds `image` (`name:tag`); `hint` says how to get it.
pub fn image(image: &str, hint: &str) -> Result<(), DockerError> {
    engine()?;
    let escaped: String = image
        .chars()
        .map(|c| match c {
            '/' => "%2F".to_owned(),
            ':' => "%3A".to_owned(),
            c => c.to_string(),
        })
        .collect();
    match get_status(&format!("/images/{escaped}/json"))? {
        200 => Ok(()),
        _ => Err(DockerError::NoImage {
            image: image.to_owned(),
            hint: hint.to_owned(),
        }),
    }
}

/// Whether the engine still holds container `id` (running or not).
pub fn container_exists(id: &str) -> Result<bool, DockerError> {
    Ok(get_status(&format!("/containers/{id}/json"))? == 200)
}

/// Removes container `id` (stopping it first); `Ok` when it is gone.
pub fn remove_container(id: &str) -> Result<(), DockerError> {
    match request_status("DELETE", &format!("/containers/{id}?force=true&v=true"))? {
        200..=299 | 404 => Ok(()),
        other => Err(DockerError::NoEngine {
            socket: socket_path().display().to_string(),
            reason: format!("removing container {id} answered {other}"),
        }),
    }
}
