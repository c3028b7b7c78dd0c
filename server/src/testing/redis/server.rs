//! One `redis-server` child process on a free loopback port, without persistence, in its own
//! temporary folder (log file `redis.log` there).
//!
//! [`RedisServer::start`] is the plain server; [`RedisServer::builder`] adds a unix socket,
//! TLS (`--port 0 --tls-port P`, optionally requiring client certificates), a password
//! (`requirepass`), an ACL user, or any other arguments (replication, cluster mode). The
//! process is killed by its PID on [`RedisServer::stop`] and on drop;
//! [`RedisServer::start_again`] restarts it on the same port with the same arguments;
//! [`RedisServer::pause`] / [`RedisServer::resume`] (SIGSTOP / SIGCONT) make it hang.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::certs::TestCerts;
use super::{Access, RedisSpawnError, find_binary, kill, log_tail, signal};
use crate::testing::{free_port, report_spawn};

/// How long a fresh `redis-server` may take to answer `PING`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How many ports to try when a freshly picked free port is taken before Redis binds it.
const PORT_ATTEMPTS: usize = 3;
/// The log file's name in the server's folder.
const LOG: &str = "redis.log";

/// What to start; see [`RedisServer::builder`].
#[derive(Debug, Clone, Default)]
pub struct RedisServerBuilder {
    binary: Option<PathBuf>,
    unix_socket: bool,
    password: Option<String>,
    acl_user: Option<(String, String)>,
    tls: Option<(Arc<TestCerts>, bool)>,
    args: Vec<String>,
    port: Option<u16>,
    name: Option<String>,
    sentinel: Option<Vec<String>>,
}

impl RedisServerBuilder {
    /// Use this binary instead of the one on `PATH`.
    pub fn binary(mut self, binary: impl Into<PathBuf>) -> Self {
        self.binary = Some(binary.into());
        self
    }

    /// Also listen on a unix socket (`redis.sock` in the server's folder, mode 700).
    pub fn unix_socket(mut self) -> Self {
        self.unix_socket = true;
        self
    }

    /// `requirepass` (the default user's password; also `masterauth`, for replication).
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// An ACL user with every command and key; with it, the default user is turned off, so
    /// only this user gets in.
    pub fn acl_user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.acl_user = Some((user.into(), password.into()));
        self
    }

    /// Serve TLS only (`--port 0 --tls-port P`); `auth_clients`: require a client
    /// certificate signed by the CA (`--tls-auth-clients yes`).
    pub fn tls(mut self, certs: Arc<TestCerts>, auth_clients: bool) -> Self {
        self.tls = Some((certs, auth_clients));
        self
    }

    /// More `redis-server` arguments, e.g. `["--replicaof", "127.0.0.1", "6379"]`.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Listen on this port instead of a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Run as a Sentinel (`redis-server sentinel.conf --sentinel`) with these `sentinel ...`
    /// lines; the port, TLS, log and password settings go in the same file, which Sentinel
    /// rewrites as it learns the topology. [`RedisServerBuilder::password`] is the
    /// sentinel's own `requirepass`.
    pub fn sentinel(mut self, lines: Vec<String>) -> Self {
        self.sentinel = Some(lines);
        self
    }

    /// How it is named in PIDs and errors (default `redis-server`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Starts it and waits (bounded) until it answers `PING` with these credentials.
    pub fn start(self) -> Result<RedisServer, RedisSpawnError> {
        let binary = match &self.binary {
            Some(binary) if binary.is_file() => binary.clone(),
            Some(_) => {
                return Err(RedisSpawnError::NotInstalled {
                    binary: "redis-server",
                });
            }
            None => find_binary("redis-server").ok_or(RedisSpawnError::NotInstalled {
                binary: "redis-server",
            })?,
        };
        let attempts = if self.port.is_some() {
            1
        } else {
            PORT_ATTEMPTS
        };
        let mut last_error = None;
        for _ in 0..attempts {
            let port = match self.port {
                Some(port) => port,
                None => free_port().map_err(RedisSpawnError::io("find a free port"))?,
            };
            let dir = tempfile::Builder::new()
                .prefix("extauth-redis-")
                .tempdir()
                .map_err(RedisSpawnError::io("create the server's folder"))?;
            let mut server = RedisServer {
                name: self
                    .name
                    .clone()
                    .unwrap_or_else(|| "redis-server".to_owned()),
                binary: binary.clone(),
                port,
                socket: self.unix_socket.then(|| dir.path().join("redis.sock")),
                args: Vec::new(),
                access: Access {
                    username: self.acl_user.as_ref().map(|(user, _)| user.clone()),
                    password: match &self.acl_user {
                        Some((_, password)) => Some(password.clone()),
                        None => self.password.clone(),
                    },
                    tls: self.tls.as_ref().map(|(certs, _)| Arc::clone(certs)),
                },
                dir,
                child: None,
            };
            server.args = self.arguments(&server)?;
            match server.spawn_and_wait() {
                Ok(()) => return Ok(server),
                // Another process may have taken the port between our probe and Redis' bind.
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or(RedisSpawnError::NotReady {
            what: "redis-server start".into(),
            waited: Duration::ZERO,
            reason: "no attempt made".into(),
            log_tail: String::new(),
        }))
    }

    fn arguments(&self, server: &RedisServer) -> Result<Vec<String>, RedisSpawnError> {
        let args = self.server_arguments(server);
        let Some(lines) = &self.sentinel else {
            return Ok(args);
        };
        // The same settings as config lines (`--name value...` → `name value...`), then the
        // sentinel's own.
        let mut conf = String::new();
        for arg in &args {
            match arg.strip_prefix("--") {
                Some(name) if !conf.is_empty() => conf.push_str(&format!("\n{name}")),
                Some(name) => conf.push_str(name),
                None if arg.is_empty() => conf.push_str(" \"\""),
                None => conf.push_str(&format!(" {arg}")),
            }
        }
        conf.push('\n');
        for line in lines {
            conf.push_str(line);
            conf.push('\n');
        }
        let path = server.dir.path().join("sentinel.conf");
        std::fs::write(&path, conf)
            .map_err(RedisSpawnError::io(format!("write {}", path.display())))?;
        Ok(vec![path.display().to_string(), "--sentinel".into()])
    }

    fn server_arguments(&self, server: &RedisServer) -> Vec<String> {
        let dir = server.dir.path().display().to_string();
        let mut args: Vec<String> = match &self.tls {
            Some((certs, auth_clients)) => certs.server_args(server.port, *auth_clients),
            None => vec!["--port".into(), server.port.to_string()],
        };
        if self.sentinel.is_none() {
            args.extend(["--save", "", "--appendonly", "no"].map(String::from));
        }
        args.extend(
            [
                "--bind",
                "127.0.0.1",
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
                "--dir",
                &dir,
                "--logfile",
                &server.dir.path().join(LOG).display().to_string(),
            ]
            .map(String::from),
        );
        if let Some(socket) = &server.socket {
            args.extend([
                "--unixsocket".into(),
                socket.display().to_string(),
                "--unixsocketperm".into(),
                "700".into(),
            ]);
        }
        if let Some(password) = &self.password {
            args.extend(["--requirepass".into(), password.clone()]);
            if self.sentinel.is_none() {
                args.extend(["--masterauth".into(), password.clone()]);
            }
        }
        if let Some((user, password)) = &self.acl_user {
            // `user NAME on >PASSWORD ~* &* +@all`, and the default user off.
            // One word per argument: redis-server joins them into the config line.
            args.extend([
                "--user".into(),
                user.clone(),
                "on".into(),
                format!(">{password}"),
                "~*".into(),
                "&*".into(),
                "+@all".into(),
                "--user".into(),
                "default".into(),
                "off".into(),
            ]);
        }
        args.extend(self.args.iter().cloned());
        args
    }
}

/// A running (or stopped, restartable) `redis-server` child process.
#[derive(Debug)]
pub struct RedisServer {
    name: String,
    binary: PathBuf,
    port: u16,
    socket: Option<PathBuf>,
    args: Vec<String>,
    access: Access,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// What to start: plain TCP unless told otherwise.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    /// A plain server on a free port, waited for (bounded) until it answers `PING`.
    pub fn start() -> Result<Self, RedisSpawnError> {
        Self::builder().start()
    }

    /// [`RedisServer::start`] with an explicit binary.
    pub fn start_with_binary(binary: &Path) -> Result<Self, RedisSpawnError> {
        Self::builder().binary(binary).start()
    }

    /// Finds `redis-server`.
    pub fn binary() -> Option<PathBuf> {
        find_binary("redis-server")
    }

    /// `redis://127.0.0.1:N` (`rediss://` with TLS; credentials are not in it).
    pub fn url(&self) -> String {
        let scheme = if self.access.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The TCP (or TLS) port, kept across [`RedisServer::stop`] / [`RedisServer::start_again`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:N`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The unix socket, when asked for.
    pub fn unix_socket(&self) -> Option<&Path> {
        self.socket.as_deref()
    }

    /// How clients get in (password, ACL user, certificates).
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// The server's folder (log, socket, cluster `nodes.conf`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
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

    /// Kills the process (SIGKILL to its PID) and waits for it; port and folder are kept.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(&mut child);
        }
    }

    /// Starts the process again on the same port with the same arguments (after
    /// [`RedisServer::stop`]); the data is gone (no persistence), as after a real restart
    /// without `save`. A cluster node keeps its identity (`nodes.conf` is in its folder).
    pub fn start_again(&mut self) -> Result<(), RedisSpawnError> {
        self.stop();
        self.spawn_and_wait()
    }

    /// [`RedisServer::start_again`] under its former name.
    pub fn restart(&mut self) -> Result<(), RedisSpawnError> {
        self.start_again()
    }

    /// SIGSTOP: the process hangs (connections stay open, nothing answers).
    pub fn pause(&self) -> Result<(), RedisSpawnError> {
        self.signal("STOP")
    }

    /// SIGCONT after [`RedisServer::pause`].
    pub fn resume(&self) -> Result<(), RedisSpawnError> {
        self.signal("CONT")
    }

    fn signal(&self, name: &str) -> Result<(), RedisSpawnError> {
        match self.pid() {
            Some(pid) => signal(pid, name),
            None => Err(RedisSpawnError::Command {
                what: format!("SIG{name} {}", self.name),
                reason: "the process is not running".into(),
            }),
        }
    }

    /// The last `lines` lines of its log, joined with ` | `.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.dir.path().join(LOG), lines)
    }

    fn spawn_and_wait(&mut self) -> Result<(), RedisSpawnError> {
        let child = Command::new(&self.binary)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(RedisSpawnError::io(format!(
                "spawn {}",
                self.binary.display()
            )))?;
        report_spawn(&self.name, child.id());
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
            match self
                .access
                .query_sync::<String>(self.port, &redis::cmd("PING"))
            {
                Ok(_) => return Ok(()),
                Err(e) => reason = e,
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        self.stop();
        Err(self.not_ready(started, reason))
    }

    fn not_ready(&self, started: Instant, reason: String) -> RedisSpawnError {
        RedisSpawnError::NotReady {
            what: format!("{} on port {} answering PING", self.name, self.port),
            waited: started.elapsed(),
            reason,
            log_tail: self.log_tail(3),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
