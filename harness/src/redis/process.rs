//! A throwaway `redis-server` process on a free loopback port.
//!
//! Owns one child process and its temporary working directory: started with
//! `--port N --bind 127.0.0.1 --save "" --appendonly no`, waited for with `PING` (bounded),
//! and killed by its PID on [`RedisServer::stop`] or on drop. [`RedisServer::start_again`]
//! restarts it on the same port, so tests can show a session-store outage mid-run.
//! It does not speak Redis beyond `PING`: callers use their own client.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use extauth::testing::free_port;

use super::RedisError;

/// How long a fresh `redis-server` may take to answer `PING`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How many ports to try when a freshly picked free port is taken before Redis binds it.
const PORT_ATTEMPTS: usize = 3;

/// A running (or stopped, restartable) `redis-server` child process.
#[derive(Debug)]
pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Finds `redis-server` on `PATH` (or `/usr/bin`, `/usr/local/bin`).
    pub fn find_binary() -> Option<PathBuf> {
        let from_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default();
        from_path
            .into_iter()
            .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
            .map(|dir| dir.join("redis-server"))
            .find(|candidate| candidate.is_file())
    }

    /// Starts `redis-server` on a free loopback port and waits until it answers `PING`.
    pub fn start() -> Result<Self, RedisError> {
        let binary = Self::find_binary().ok_or(RedisError::NotFound)?;
        Self::start_with_binary(&binary)
    }

    /// [`RedisServer::start`] with an explicit binary.
    pub fn start_with_binary(binary: &Path) -> Result<Self, RedisError> {
        if !binary.is_file() {
            return Err(RedisError::NotFound);
        }
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port().map_err(RedisError::Prepare)?;
            let mut server = Self {
                binary: binary.to_owned(),
                port,
                dir: tempfile::Builder::new()
                    .prefix("harness-redis-")
                    .tempdir()
                    .map_err(RedisError::Prepare)?,
                child: None,
            };
            match server.spawn_and_wait() {
                Ok(()) => return Ok(server),
                // Another process may have taken the port between our probe and Redis' bind.
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or(RedisError::NotReady {
            port: 0,
            waited: Duration::ZERO,
            reason: "no attempt made".into(),
            log_tail: String::new(),
        }))
    }

    /// `redis://127.0.0.1:N`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The port it listens on (kept across [`RedisServer::stop`] / [`RedisServer::start_again`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The child's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is running (not stopped, not exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_)) | Err(_)) | None => false,
        }
    }

    /// Kills the process (by its PID) and waits for it; the port and directory are kept.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // `Child::kill` sends SIGKILL to exactly this PID.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again on the same port (after [`RedisServer::stop`]); the data is
    /// gone (no persistence), as after a real Redis restart without `save`.
    pub fn start_again(&mut self) -> Result<(), RedisError> {
        self.stop();
        self.spawn_and_wait()
    }

    fn spawn_and_wait(&mut self) -> Result<(), RedisError> {
        let log = self.dir.path().join("redis.log");
        let child = Command::new(&self.binary)
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--protected-mode", "yes"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| RedisError::Spawn {
                binary: self.binary.clone(),
                source,
            })?;
        crate::cleanup::record_pid("redis-server", child.id());
        self.child = Some(child);
        let started = Instant::now();
        let mut reason = String::from("no answer yet");
        while started.elapsed() < READY_TIMEOUT {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(self.not_ready(started, format!("process exited with {status}")));
            }
            match ping(self.port) {
                Ok(()) => return Ok(()),
                Err(e) => reason = e,
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        self.stop();
        Err(self.not_ready(started, reason))
    }

    /// The last `lines` lines of its log file.
    pub fn log_tail(&self, lines: usize) -> String {
        crate::logs::file_tail(&self.dir.path().join("redis.log"), lines)
    }

    fn not_ready(&self, started: Instant, reason: String) -> RedisError {
        RedisError::NotReady {
            port: self.port,
            waited: started.elapsed(),
            reason,
            log_tail: self.log_tail(3).replace('\n', " | "),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One `PING` over a fresh connection, bounded by short timeouts.
pub fn ping(port: u16) -> Result<(), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))
        .map_err(|e| format!("connect: {e}"))?;
    let timeout = Some(Duration::from_millis(500));
    stream
        .set_read_timeout(timeout)
        .and_then(|()| stream.set_write_timeout(timeout))
        .map_err(|e| format!("socket: {e}"))?;
    stream
        .write_all(b"PING\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).map_err(|e| format!("read: {e}"))?;
    let reply = String::from_utf8_lossy(&buf[..n]);
    if reply.starts_with("+PONG") {
        Ok(())
    } else {
        Err(format!("unexpected reply {:?}", reply.trim_end()))
    }
}
