//! Redis Sentinel: a master, one replica and three sentinels (`down-after-milliseconds
//! 1000`, `failover-timeout 3000`), from extauth's shared spawner
//! ([`extauth::testing::RedisSentinel`]). extauth gets `topology: sentinel` with the master's
//! name and the sentinels' addresses.
//!
//! [`SentinelRedis::failover`] (`SENTINEL FAILOVER`) and [`SentinelRedis::kill_master`]
//! (SIGKILL of the current master by its PID) return how long Redis took to report the new
//! master; after a kill the dead node is started again, as Kubernetes would restart its pod,
//! and comes back as a replica, so the next failover has one.

use std::time::Duration;

use extauth::testing::RedisSentinel;

use super::{RedisError, record_children};

/// A running Sentinel topology.
#[derive(Debug)]
pub struct SentinelRedis {
    topology: RedisSentinel,
}

impl SentinelRedis {
    /// Starts it (with `requirepass` on the data nodes when given) and waits until the
    /// sentinels know the replica and each other.
    pub async fn start(password: Option<&str>) -> Result<Self, RedisError> {
        record_children();
        let mut builder = RedisSentinel::builder();
        if let Some(password) = password {
            builder = builder.password(password);
        }
        Ok(Self {
            topology: builder.start().await?,
        })
    }

    /// `sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/mymaster` (for people).
    pub fn url(&self) -> String {
        format!(
            "sentinel://{}/{}",
            self.topology.sentinel_addresses().join(","),
            self.topology.master_name()
        )
    }

    /// The `session.redis.options` lines for extauth.
    pub fn manifest_options(&self) -> Vec<String> {
        vec![
            "topology: sentinel".to_owned(),
            "sentinel:".to_owned(),
            format!("  masterName: {}", self.topology.master_name()),
            format!(
                "  addresses: [{}]",
                self.topology.sentinel_addresses().join(", ")
            ),
        ]
    }

    /// `REDIS_TOPOLOGY`, `REDIS_SENTINELS`, `REDIS_MASTER_NAME` for the env file.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("REDIS_TOPOLOGY", "sentinel".to_owned()),
            (
                "REDIS_SENTINELS",
                self.topology.sentinel_addresses().join(","),
            ),
            ("REDIS_MASTER_NAME", self.topology.master_name().to_owned()),
        ]
    }

    /// `SENTINEL FAILOVER`; how long until every sentinel named the new master.
    pub async fn failover(&mut self) -> Result<Duration, RedisError> {
        Ok(self.topology.failover().await?)
    }

    /// SIGKILL of the master; how long until the replica was promoted. The killed node is
    /// then started again (it rejoins as a replica).
    pub async fn kill_master(&mut self) -> Result<Duration, RedisError> {
        let old = self.topology.master().await?;
        let took = self.topology.kill_master().await?;
        self.topology.restart_node(old)?;
        Ok(took)
    }

    /// Every running child: (what, PID).
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.topology.pids()
    }

    /// The last lines of every process's log.
    pub fn log_tails(&self, lines: usize) -> Vec<(String, String)> {
        self.topology.log_tails(lines)
    }
}
