//! Redis Sentinel for tests: a master, one replica and three sentinels (quorum 2,
//! `down-after-milliseconds 1000`, `failover-timeout 3000`), all on free loopback ports.
//!
//! [`RedisSentinel::failover`] asks for a `SENTINEL FAILOVER`; [`RedisSentinel::kill_master`]
//! SIGKILLs the current master by its PID. Both wait (bounded) until every sentinel names
//! the new master and that node answers `ROLE` as a master, and return how long Redis took:
//! the failover time extauth's error window is compared with.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::certs::TestCerts;
use super::server::RedisServer;
use super::{Access, RedisSpawnError, wait_until};

/// The default master name (Redis's own example).
pub const MASTER_NAME: &str = "mymaster";
/// How long the sentinels may take to see the replica and each other after start.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a failover may take (down-after 1 s, failover-timeout 3 s, elections).
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);
/// How many times [`RedisSentinel::failover`] asks, and how long it waits for all but the
/// last attempt.
const FAILOVER_ATTEMPTS: u32 = 3;
const FAILOVER_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// What to start; see [`RedisSentinel::builder`].
#[derive(Debug, Clone, Default)]
pub struct RedisSentinelBuilder {
    password: Option<String>,
    sentinel_password: Option<String>,
    tls: Option<(Arc<TestCerts>, bool)>,
    master_name: Option<String>,
}

impl RedisSentinelBuilder {
    /// `requirepass` on the data nodes (the sentinels get it as `auth-pass`).
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// `requirepass` on the sentinels themselves.
    pub fn sentinel_password(mut self, password: impl Into<String>) -> Self {
        self.sentinel_password = Some(password.into());
        self
    }

    /// TLS everywhere (data nodes, replication, sentinels); `auth_clients`: client
    /// certificates required.
    pub fn tls(mut self, certs: Arc<TestCerts>, auth_clients: bool) -> Self {
        self.tls = Some((certs, auth_clients));
        self
    }

    /// The master's name (default `mymaster`).
    pub fn master_name(mut self, name: impl Into<String>) -> Self {
        self.master_name = Some(name.into());
        self
    }

    /// Starts everything and waits until the sentinels see the replica and each other.
    pub async fn start(self) -> Result<RedisSentinel, RedisSpawnError> {
        let master_name = self
            .master_name
            .clone()
            .unwrap_or_else(|| MASTER_NAME.to_owned());
        let node = |name: &str| {
            let mut b = RedisServer::builder().name(name);
            if let Some(password) = &self.password {
                b = b.password(password);
            }
            if let Some((certs, auth)) = &self.tls {
                b = b.tls(Arc::clone(certs), *auth);
            }
            b
        };
        let master = node("redis-server (sentinel master)").start()?;
        let replica = node("redis-server (sentinel replica)")
            .args(["--replicaof", "127.0.0.1", &master.port().to_string()])
            .start()?;
        let mut sentinels = Vec::with_capacity(3);
        for i in 0..3 {
            let mut lines = vec![
                "sentinel resolve-hostnames no".to_owned(),
                format!(
                    "sentinel monitor {master_name} 127.0.0.1 {} 2",
                    master.port()
                ),
                format!("sentinel down-after-milliseconds {master_name} 1000"),
                format!("sentinel failover-timeout {master_name} 3000"),
                format!("sentinel parallel-syncs {master_name} 1"),
            ];
            if let Some(password) = &self.password {
                lines.push(format!("sentinel auth-pass {master_name} {password}"));
            }
            let mut b = RedisServer::builder()
                .name(format!("redis-sentinel {i}"))
                .sentinel(lines.clone());
            if let Some(password) = &self.sentinel_password {
                // Sentinels talk to each other with it too.
                lines.push(format!("sentinel sentinel-pass {password}"));
                b = b.sentinel(lines).password(password);
            }
            if let Some((certs, auth)) = &self.tls {
                b = b.tls(Arc::clone(certs), *auth);
            }
            sentinels.push(b.start()?);
        }
        let this = RedisSentinel {
            master_name,
            nodes: vec![master, replica],
            sentinels,
        };
        this.wait_healthy().await?;
        Ok(this)
    }
}

/// A running Sentinel topology.
#[derive(Debug)]
pub struct RedisSentinel {
    master_name: String,
    /// Data nodes: the first master, then its replica.
    nodes: Vec<RedisServer>,
    sentinels: Vec<RedisServer>,
}

impl RedisSentinel {
    /// What to start: no password, no TLS, master `mymaster`.
    pub fn builder() -> RedisSentinelBuilder {
        RedisSentinelBuilder::default()
    }

    /// The plain topology.
    pub async fn start() -> Result<Self, RedisSpawnError> {
        Self::builder().start().await
    }

    /// The master's name.
    pub fn master_name(&self) -> &str {
        &self.master_name
    }

    /// The sentinels' `127.0.0.1:port` addresses.
    pub fn sentinel_addresses(&self) -> Vec<String> {
        self.sentinels.iter().map(RedisServer::address).collect()
    }

    /// The data nodes (first master, first replica), whatever their role now.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The sentinel processes.
    pub fn sentinels(&self) -> &[RedisServer] {
        &self.sentinels
    }

    /// How clients get into the data nodes.
    pub fn access(&self) -> &Access {
        self.nodes[0].access()
    }

    /// How clients get into the sentinels.
    pub fn sentinel_access(&self) -> &Access {
        self.sentinels[0].access()
    }

    /// Every running child: (what, PID).
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.nodes
            .iter()
            .map(|n| ("redis-server", n))
            .chain(self.sentinels.iter().map(|s| ("redis-sentinel", s)))
            .filter_map(|(what, p)| p.pid().map(|pid| (what.to_owned(), pid)))
            .collect()
    }

    /// The last lines of every process's log.
    pub fn log_tails(&self, lines: usize) -> Vec<(String, String)> {
        self.nodes
            .iter()
            .chain(&self.sentinels)
            .map(|p| (format!("redis {}", p.address()), p.log_tail(lines)))
            .collect()
    }

    /// The master's port as the first sentinel that answers names it.
    pub async fn master(&self) -> Result<u16, RedisSpawnError> {
        let mut reasons = Vec::new();
        for sentinel in &self.sentinels {
            match self.ask(sentinel).await {
                Ok(port) => return Ok(port),
                Err(e) => reasons.push(e),
            }
        }
        Err(RedisSpawnError::Command {
            what: format!("SENTINEL get-master-addr-by-name {}", self.master_name),
            reason: reasons.join("; "),
        })
    }

    async fn ask(&self, sentinel: &RedisServer) -> Result<u16, String> {
        let mut cmd = redis::cmd("SENTINEL");
        cmd.arg("get-master-addr-by-name").arg(&self.master_name);
        let (_, port): (String, u16) = sentinel.access().query(sentinel.port(), &cmd).await?;
        Ok(port)
    }

    /// The data node listening on `port`.
    pub fn node(&self, port: u16) -> Option<&RedisServer> {
        self.nodes.iter().find(|n| n.port() == port)
    }

    /// `SENTINEL FAILOVER`: the replica is promoted without waiting for the master to fail.
    /// Waits until Redis reports the new master; returns how long that took (from the
    /// attempt that succeeded).
    ///
    /// A sentinel accepts the command when the replica looks good, and may still abort a
    /// moment later (`-failover-abort-no-good-slave`: on a loaded machine, a replica that has
    /// just synced can be flagged down for a moment; seen in CI). So when no new master is
    /// named within [`FAILOVER_ATTEMPT_TIMEOUT`], the topology is waited for to settle and the
    /// failover asked again (an attempt still running answers `INPROG` and is waited for),
    /// up to [`FAILOVER_ATTEMPTS`] times, the last with the full [`FAILOVER_TIMEOUT`].
    pub async fn failover(&mut self) -> Result<Duration, RedisSpawnError> {
        self.wait_healthy().await?;
        let old = self.master().await?;
        // As for a kill: a write made before the call is on the replica before it is
        // promoted; what is written after may be lost, as in production.
        super::wait_replica_caught_up(self.access(), old, || self.joined_tails(), "failing over")
            .await;
        let mut attempt = 1;
        loop {
            let started = Instant::now();
            let mut cmd = redis::cmd("SENTINEL");
            cmd.arg("FAILOVER").arg(&self.master_name);
            let sentinel = &self.sentinels[0];
            match sentinel
                .access()
                .query::<String>(sentinel.port(), &cmd)
                .await
            {
                Ok(_) => {}
                // A retry while the previous attempt still runs: wait for that one.
                Err(reason) if attempt > 1 && reason.contains("INPROG") => {}
                Err(reason) => {
                    return Err(RedisSpawnError::Command {
                        what: format!("SENTINEL FAILOVER {}", self.master_name),
                        reason,
                    });
                }
            }
            let timeout = if attempt < FAILOVER_ATTEMPTS {
                FAILOVER_ATTEMPT_TIMEOUT
            } else {
                FAILOVER_TIMEOUT
            };
            match self.wait_new_master_within(old, timeout).await {
                Ok(_) => return Ok(started.elapsed()),
                Err(e) if attempt < FAILOVER_ATTEMPTS => {
                    tracing::warn!(attempt, error = %e, "the sentinels aborted the failover; asking again once the topology settles");
                    self.wait_healthy().await?;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// SIGKILL to the current master's PID, once its replica has what the master held at the
    /// call ([`super::wait_replica_caught_up`]); waits until the sentinels promoted the replica
    /// and returns how long that took. The killed node stays down (see
    /// [`RedisSentinel::restart_node`]).
    pub async fn kill_master(&mut self) -> Result<Duration, RedisSpawnError> {
        let old = self.master().await?;
        super::wait_replica_caught_up(
            self.access(),
            old,
            || self.joined_tails(),
            "killing the master",
        )
        .await;
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port() == old)
            .ok_or_else(|| RedisSpawnError::Command {
                what: "kill the master".into(),
                reason: format!("the sentinels name port {old}, which is none of ours"),
            })?;
        let started = Instant::now();
        node.stop();
        self.wait_new_master(old).await?;
        Ok(started.elapsed())
    }

    /// Starts a stopped data node again (it comes back as a master of nothing; the
    /// sentinels turn it into a replica of the current master).
    pub fn restart_node(&mut self, port: u16) -> Result<(), RedisSpawnError> {
        match self.nodes.iter_mut().find(|n| n.port() == port) {
            Some(node) => node.start_again(),
            None => Err(RedisSpawnError::Command {
                what: format!("restart the node on port {port}"),
                reason: "no such data node".into(),
            }),
        }
    }

    /// Until every running sentinel names a master other than `old` and that node says
    /// `ROLE` master.
    async fn wait_new_master(&self, old: u16) -> Result<u16, RedisSpawnError> {
        self.wait_new_master_within(old, FAILOVER_TIMEOUT).await
    }

    async fn wait_new_master_within(
        &self,
        old: u16,
        timeout: Duration,
    ) -> Result<u16, RedisSpawnError> {
        wait_until(
            &format!("a new master for {} (was port {old})", self.master_name),
            timeout,
            || self.joined_tails(),
            || async {
                let mut named = None;
                for sentinel in &self.sentinels {
                    let port = self.ask(sentinel).await?;
                    if port == old {
                        return Err(format!("{} still names {old}", sentinel.address()));
                    }
                    match named {
                        Some(p) if p != port => {
                            return Err(format!("sentinels disagree: {p} and {port}"));
                        }
                        _ => named = Some(port),
                    }
                }
                let port = named.ok_or("no sentinel")?;
                let role = self.role(port).await?;
                if role == "master" {
                    Ok(port)
                } else {
                    Err(format!("{port} is named but says ROLE {role}"))
                }
            },
        )
        .await
    }

    async fn role(&self, port: u16) -> Result<String, String> {
        let role: Vec<redis::Value> = self.access().query(port, &redis::cmd("ROLE")).await?;
        match role.first() {
            Some(redis::Value::BulkString(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
            Some(redis::Value::SimpleString(s)) => Ok(s.clone()),
            other => Err(format!("unexpected ROLE answer {other:?}")),
        }
    }

    /// Until the master has an online replica and every sentinel knows it, and the two
    /// other sentinels (what a failover needs). Called at start; call it after a failover
    /// before the next one.
    pub async fn wait_healthy(&self) -> Result<(), RedisSpawnError> {
        wait_until(
            "a settled Sentinel topology (replica online, sentinels know each other)",
            SETTLE_TIMEOUT,
            || self.joined_tails(),
            || async {
                let master = self.master().await.map_err(|e| e.to_string())?;
                let info: String = self
                    .access()
                    .query(master, redis::cmd("INFO").arg("replication"))
                    .await?;
                if !info.contains("state=online") {
                    return Err(format!("master {master} has no online replica yet"));
                }
                for sentinel in &self.sentinels {
                    let mut replicas = redis::cmd("SENTINEL");
                    replicas.arg("REPLICAS").arg(&self.master_name);
                    let replicas: Vec<redis::Value> =
                        sentinel.access().query(sentinel.port(), &replicas).await?;
                    let healthy = replicas.iter().any(|r| {
                        let text = format!("{r:?}");
                        !text.contains("s_down") && !text.contains("disconnected")
                    });
                    if !healthy {
                        return Err(format!("{} sees no healthy replica", sentinel.address()));
                    }
                    let mut others = redis::cmd("SENTINEL");
                    others.arg("SENTINELS").arg(&self.master_name);
                    let others: Vec<redis::Value> =
                        sentinel.access().query(sentinel.port(), &others).await?;
                    if others.len() < self.sentinels.len() - 1 {
                        return Err(format!(
                            "{} knows {} other sentinels",
                            sentinel.address(),
                            others.len()
                        ));
                    }
                }
                Ok(())
            },
        )
        .await
    }

    fn joined_tails(&self) -> String {
        self.log_tails(2)
            .into_iter()
            .map(|(what, tail)| format!("{what}: {tail}"))
            .collect::<Vec<_>>()
            .join(" || ")
    }
}
