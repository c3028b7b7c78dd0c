//! Redis Cluster: six nodes, three masters with a replica each, created with `redis-cli
//! --cluster create` (extauth's shared spawner, [`extauth::testing::RedisCluster`]). extauth
//! gets `topology: cluster` with every node as a seed.
//!
//! [`ClusterRedis::failover`] (`CLUSTER FAILOVER` on a replica) and
//! [`ClusterRedis::kill_master`] (SIGKILL by PID) act on the master holding the most keys
//! (the sessions written so far), and return how long the cluster took to be ok again with
//! the replica promoted; after a kill the dead node is started again and rejoins as a
//! replica.

use std::time::Duration;

use extauth::testing::RedisCluster;

use super::{RedisError, record_children};

/// A running Redis Cluster.
#[derive(Debug)]
pub struct ClusterRedis {
    cluster: RedisCluster,
}

impl ClusterRedis {
    /// Starts it (with `requirepass` on every node when given) and waits until every node
    /// reports all 16384 slots ok.
    pub async fn start(password: Option<&str>) -> Result<Self, RedisError> {
        record_children();
        let mut builder = RedisCluster::builder();
        if let Some(password) = password {
            builder = builder.password(password);
        }
        Ok(Self {
            cluster: builder.start().await?,
        })
    }

    /// `cluster://127.0.0.1:P1,...` (for people).
    pub fn url(&self) -> String {
        format!("cluster://{}", self.cluster.seed_nodes().join(","))
    }

    /// The `session.redis.options` lines for extauth.
    pub fn manifest_options(&self) -> Vec<String> {
        vec![
            "topology: cluster".to_owned(),
            format!(
                "cluster: {{nodes: [{}]}}",
                self.cluster.seed_nodes().join(", ")
            ),
        ]
    }

    /// `REDIS_TOPOLOGY`, `REDIS_CLUSTER_NODES` for the env file.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("REDIS_TOPOLOGY", "cluster".to_owned()),
            ("REDIS_CLUSTER_NODES", self.cluster.seed_nodes().join(",")),
        ]
    }

    /// `CLUSTER FAILOVER` on the busiest master's replica; how long until it took over.
    pub async fn failover(&mut self) -> Result<Duration, RedisError> {
        Ok(self.cluster.failover(None).await?)
    }

    /// SIGKILL of the busiest master; how long until its replica took over. The killed node
    /// is then started again (it rejoins as a replica).
    pub async fn kill_master(&mut self) -> Result<Duration, RedisError> {
        let (port, took) = self.cluster.kill_master(None).await?;
        self.cluster.restart_node(port).await?;
        Ok(took)
    }

    /// Every running child: (what, PID).
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.cluster.pids()
    }

    /// The last lines of every node's log.
    pub fn log_tails(&self, lines: usize) -> Vec<(String, String)> {
        self.cluster.log_tails(lines)
    }
}
