//! What the gateways that run as child processes share (Caddy, nginx, agentgateway): finding
//! the binary, spawning it with its log in the stack's folder, waiting until it is ready,
//! and killing it by PID on [`GatewayProcess::stop`] or drop.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a gateway process may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a gateway process could not run.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The binary is not installed: `what` and how to get it.
    #[error("{what} not found: {how}")]
    NotFound {
        /// The gateway.
        what: &'static str,
        /// How to install it.
        how: String,
    },
    /// Files could not be written or the process spawned.
    #[error("cannot start {what}: {source}")]
    Start {
        /// The gateway.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// Its configuration was refused (a check before the start).
    #[error("{what} refused its generated configuration {file}: {message}")]
    Config {
        /// The gateway.
        what: &'static str,
        /// The generated file.
        file: PathBuf,
        /// What it said.
        message: String,
    },
    /// It exited or never became ready.
    #[error(
        "{what} on {addr} did not become ready within {waited:?}: {reason}; log tail: {log_tail}"
    )]
    NotReady {
        /// The gateway.
        what: &'static str,
        /// Where it should listen.
        addr: SocketAddr,
        /// How long we waited.
        waited: Duration,
        /// What was seen.
        reason: String,
        /// The end of its log.
        log_tail: String,
    },
}

impl ProcessError {
    /// A [`ProcessError::Start`] for `what`.
    pub fn start(what: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Start { what, source }
    }
}

/// The first file named `name` in the folders of `PATH`, then in `also`.
pub fn find_on_path(name: &str, also: &[&Path]) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(also.iter().map(|p| p.to_path_buf()))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// How to tell that a started gateway is ready.
#[derive(Debug, Clone)]
pub enum Readiness {
    /// Its listen address accepts TCP connections.
    Listening,
    /// This URL (e.g. a readiness endpoint) answers 200, and the listen address accepts.
    Http(String),
}

/// A running gateway child process.
#[derive(Debug)]
pub struct GatewayProcess {
    what: &'static str,
    child: Option<Child>,
    listen: SocketAddr,
    log: PathBuf,
}

impl GatewayProcess {
    /// Spawns `command` (stdout and stderr into the file `log`, whose tail failure reports
    /// show), records its PID for the leftovers check, and waits up to [`READY_TIMEOUT`]
    /// for `ready`.
    pub fn start(
        what: &'static str,
        command: Command,
        listen: SocketAddr,
        log: PathBuf,
        ready: &Readiness,
    ) -> Result<Self, ProcessError> {
        Self::start_with_log(what, command, listen, (log.clone(), log), ready)
    }

    /// As [`Self::start`], with the output in `files.0` and the log whose tail failure
    /// reports show in `files.1` (a gateway that writes its own log file, as nginx does).
    pub fn start_with_log(
        what: &'static str,
        mut command: Command,
        listen: SocketAddr,
        files: (PathBuf, PathBuf),
        ready: &Readiness,
    ) -> Result<Self, ProcessError> {
        let (output, log) = files;
        let log_file = std::fs::File::create(&output).map_err(ProcessError::start(what))?;
        let err_file = log_file.try_clone().map_err(ProcessError::start(what))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(err_file)
            .spawn()
            .map_err(ProcessError::start(what))?;
        crate::cleanup::record_pid(what, child.id());
        let mut gateway = Self {
            what,
            child: Some(child),
            listen,
            log,
        };
        let started = Instant::now();
        let mut reason = String::from("not ready yet");
        while started.elapsed() < READY_TIMEOUT {
            if let Some(child) = gateway.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                gateway.child = None;
                reason = format!("process exited with {status}");
                break;
            }
            match is_ready(listen, ready) {
                Ok(()) => return Ok(gateway),
                Err(why) => reason = why,
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let log_tail = gateway.log_tail(5);
        gateway.stop();
        Err(ProcessError::NotReady {
            what,
            addr: listen,
            waited: started.elapsed(),
            reason,
            log_tail,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.listen
    }

    /// Its PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What it is (`caddy`, `nginx`, `agentgateway`).
    pub fn what(&self) -> &'static str {
        self.what
    }

    /// Its log file (stdout, and stderr unless it has its own).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        crate::logs::file_tail(&self.log, lines)
    }

    /// Kills it by PID and waits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

fn is_ready(listen: SocketAddr, ready: &Readiness) -> Result<(), String> {
    if let Readiness::Http(url) = ready {
        let status = http_status(url)?;
        if status != 200 {
            return Err(format!("{url} answered {status}"));
        }
    }
    TcpStream::connect_timeout(&listen, Duration::from_millis(200))
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The status of a plain `GET url` (`http://host:port/path` only), with short timeouts:
/// readiness is polled from a blocking thread, without a runtime.
fn http_status(url: &str) -> Result<u16, String> {
    use std::io::{Read as _, Write as _};
    let parsed = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let addr = parsed
        .socket_addrs(|| Some(80))
        .ok()
        .and_then(|a| a.into_iter().next())
        .ok_or_else(|| format!("{url}: no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))
        .map_err(|e| format!("{url}: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\n\r\n",
        parsed.path(),
        parsed.host_str().unwrap_or_default()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("{url}: {e}"))?;
    let mut head = [0u8; 32];
    let n = stream.read(&mut head).map_err(|e| format!("{url}: {e}"))?;
    String::from_utf8_lossy(&head[..n])
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{url}: not an HTTP answer"))
}

#[cfg(test)]
mod tests;
