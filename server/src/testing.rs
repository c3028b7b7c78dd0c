//! Real parts for tests: a `redis-server` process on a free loopback port.
//!
//! Public so that integration tests, benches and the harness share one implementation. The
//! process is killed by PID on drop; nothing here is used by the server itself.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a starting `redis-server` may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a Redis process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RedisProcessError {
    /// No `redis-server` binary.
    #[error(
        "redis-server not found on PATH or in /usr/bin: install it (apt-get install redis-server)"
    )]
    NotInstalled,
    /// Spawning or preparing failed.
    #[error("could not start redis-server: {0}")]
    Spawn(#[from] std::io::Error),
    /// It started but did not accept connections in time, or exited.
    #[error("redis-server on port {port} did not become ready: {reason}")]
    NotReady {
        /// The port it was given.
        port: u16,
        /// What was seen.
        reason: String,
    },
}

/// A `redis-server` child process on 127.0.0.1, without persistence, in its own temp dir.
#[derive(Debug)]
pub struct RedisProcess {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    binary: PathBuf,
}

impl RedisProcess {
    /// Finds `redis-server`.
    pub fn binary() -> Option<PathBuf> {
        let from_path = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("redis-server"))
                .find(|p| p.is_file())
        });
        from_path.or_else(|| {
            let p = Path::new("/usr/bin/redis-server");
            p.is_file().then(|| p.to_owned())
        })
    }

    /// Starts one on a free port and waits until it accepts connections.
    pub fn start() -> Result<Self, RedisProcessError> {
        let binary = Self::binary().ok_or(RedisProcessError::NotInstalled)?;
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("extauth-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut this = Self {
            child: None,
            port,
            dir,
            binary,
        };
        this.spawn()?;
        Ok(this)
    }

    fn spawn(&mut self) -> Result<(), RedisProcessError> {
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--dir", &self.dir.display().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), RedisProcessError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(RedisProcessError::NotReady {
                    port: self.port,
                    reason: format!("exited with {status}"),
                });
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(RedisProcessError::NotReady {
            port: self.port,
            reason: format!("no connection within {START_TIMEOUT:?}"),
        })
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The PID of the running process, if any.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process (by its PID) and waits for it: the port then refuses connections.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (data is gone: no persistence).
    pub fn restart(&mut self) -> Result<(), RedisProcessError> {
        self.stop();
        self.spawn()
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}
