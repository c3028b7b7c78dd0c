//! Redis Cluster for tests: six `redis-server --cluster-enabled yes` nodes on free loopback
//! ports, joined by `redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes`
//! (three masters, a replica each), waited for until every node reports all 16384 slots ok.
//!
//! `cluster-node-timeout` is 1000 ms, so a killed master is replaced by its replica within
//! a few seconds. [`RedisCluster::kill_master`] (SIGKILL by PID) and
//! [`RedisCluster::failover`] (`CLUSTER FAILOVER` on a replica) wait (bounded) until the
//! cluster reports the new master and is ok again, and return how long that took;
//! [`RedisCluster::move_slot`] migrates a slot to another master (clients then get `MOVED`).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::certs::TestCerts;
use super::server::RedisServer;
use super::{Access, RedisSpawnError, find_binary, kill, wait_until};

/// Slots in a Redis Cluster.
pub const SLOTS: u16 = 16384;
/// How long `--cluster create` and the first all-slots-ok may take.
const CREATE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a failover may take.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    /// The node id.
    pub id: String,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// A master (else a replica).
    pub master: bool,
    /// The master's id, for a replica.
    pub master_id: Option<String>,
    /// Flagged `fail` (or `fail?`).
    pub failed: bool,
    /// The slot ranges it serves (masters).
    pub slots: Vec<(u16, u16)>,
}

fn parse_nodes(text: &str) -> Vec<ClusterNode> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (id, addr, flags, master) = (
                fields.first()?,
                fields.get(1)?,
                fields.get(2)?,
                fields.get(3)?,
            );
            // `127.0.0.1:7000@17000`.
            let port = addr.split('@').next()?.rsplit(':').next()?.parse().ok()?;
            let slots = fields
                .iter()
                .skip(8)
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|one| (one, one)),
                })
                .collect();
            Some(ClusterNode {
                id: (*id).to_owned(),
                port,
                master: flags.contains("master"),
                master_id: (*master != "-").then(|| (*master).to_owned()),
                failed: flags.contains("fail"),
                slots,
            })
        })
        .collect()
}

/// What to start; see [`RedisCluster::builder`].
#[derive(Debug, Clone, Default)]
pub struct RedisClusterBuilder {
    password: Option<String>,
    tls: Option<(Arc<TestCerts>, bool)>,
}

impl RedisClusterBuilder {
    /// `requirepass` (and `masterauth`) on every node.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// TLS for clients, replication and the cluster bus.
    pub fn tls(mut self, certs: Arc<TestCerts>, auth_clients: bool) -> Self {
        self.tls = Some((certs, auth_clients));
        self
    }

    /// Starts six nodes, creates the cluster and waits until it is ok everywhere.
    pub async fn start(self) -> Result<RedisCluster, RedisSpawnError> {
        let cli = find_binary("redis-cli").ok_or(RedisSpawnError::NotInstalled {
            binary: "redis-cli",
        })?;
        let mut nodes = Vec::with_capacity(6);
        for i in 0..6 {
            let mut b = RedisServer::builder()
                .name(format!("redis-server (cluster node {i})"))
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "1000",
                    // A replica may always take over, however long its link was down.
                    "--cluster-replica-validity-factor",
                    "0",
                ]);
            if let Some(password) = &self.password {
                b = b.password(password);
            }
            if let Some((certs, auth)) = &self.tls {
                b = b
                    .tls(Arc::clone(certs), *auth)
                    .args(["--tls-cluster", "yes"]);
            }
            nodes.push(b.start()?);
        }
        let cluster = RedisCluster { nodes };
        let mut create = Command::new(&cli);
        create
            .arg("--cluster")
            .arg("create")
            .args(cluster.seed_nodes())
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .args(cluster.access().cli_args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let output = run_bounded(create, CREATE_TIMEOUT, "redis-cli --cluster create")?;
        if !output.status.success() {
            return Err(RedisSpawnError::Command {
                what: "redis-cli --cluster create".into(),
                reason: format!(
                    "exited with {}: {}",
                    output.status,
                    String::from_utf8_lossy(&output.stdout)
                        .lines()
                        .chain(String::from_utf8_lossy(&output.stderr).lines())
                        .rev()
                        .take(5)
                        .collect::<Vec<_>>()
                        .join(" | ")
                ),
            });
        }
        cluster.wait_ok(CREATE_TIMEOUT, None).await?;
        cluster.wait_replicas_synced(CREATE_TIMEOUT).await?;
        Ok(cluster)
    }
}

/// Runs `cmd` to completion, killing it after `limit`.
fn run_bounded(
    mut cmd: Command,
    limit: Duration,
    what: &str,
) -> Result<std::process::Output, RedisSpawnError> {
    let mut child = cmd
        .spawn()
        .map_err(RedisSpawnError::io(format!("run {what}")))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => {
                return child
                    .wait_with_output()
                    .map_err(RedisSpawnError::io(format!("read {what}'s output")));
            }
            Ok(None) if started.elapsed() < limit => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(None) => {
                kill(&mut child);
                return Err(RedisSpawnError::NotReady {
                    what: what.to_owned(),
                    waited: started.elapsed(),
                    reason: "still running: killed".into(),
                    log_tail: String::new(),
                });
            }
            Err(e) => return Err(RedisSpawnError::io(format!("wait for {what}"))(e)),
        }
    }
}

/// A running Redis Cluster.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// What to start: no password, no TLS.
    pub fn builder() -> RedisClusterBuilder {
        RedisClusterBuilder::default()
    }

    /// The plain cluster.
    pub async fn start() -> Result<Self, RedisSpawnError> {
        Self::builder().start().await
    }

    /// Every node's `127.0.0.1:port` (the seed nodes a client is given).
    pub fn seed_nodes(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::address).collect()
    }

    /// How clients get in.
    pub fn access(&self) -> &Access {
        self.nodes[0].access()
    }

    /// The node processes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Every running child: (what, PID).
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.nodes
            .iter()
            .filter_map(|n| {
                n.pid()
                    .map(|pid| ("redis-server (cluster)".to_owned(), pid))
            })
            .collect()
    }

    /// The last lines of every node's log.
    pub fn log_tails(&self, lines: usize) -> Vec<(String, String)> {
        self.nodes
            .iter()
            .map(|n| (format!("redis {}", n.address()), n.log_tail(lines)))
            .collect()
    }

    fn joined_tails(&self) -> String {
        self.log_tails(2)
            .into_iter()
            .map(|(what, tail)| format!("{what}: {tail}"))
            .collect::<Vec<_>>()
            .join(" || ")
    }

    fn live_ports(&mut self) -> Vec<u16> {
        self.nodes
            .iter_mut()
            .filter_map(|n| n.is_running().then(|| n.port()))
            .collect()
    }

    /// `CLUSTER NODES` as the first live node that answers sees it.
    pub async fn topology(&mut self) -> Result<Vec<ClusterNode>, RedisSpawnError> {
        let mut reasons = Vec::new();
        for port in self.live_ports() {
            match self
                .access()
                .query::<String>(port, redis::cmd("CLUSTER").arg("NODES"))
                .await
            {
                Ok(text) => return Ok(parse_nodes(&text)),
                Err(e) => reasons.push(e),
            }
        }
        Err(RedisSpawnError::Command {
            what: "CLUSTER NODES".into(),
            reason: reasons.join("; "),
        })
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`).
    pub async fn keyslot(&mut self, key: &str) -> Result<u16, RedisSpawnError> {
        let port = self.live_ports().first().copied().unwrap_or_default();
        self.access()
            .query(port, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
            .await
            .map_err(|reason| RedisSpawnError::Command {
                what: "CLUSTER KEYSLOT".into(),
                reason,
            })
    }

    /// The port of the master serving `slot`.
    pub async fn master_of_slot(&mut self, slot: u16) -> Result<u16, RedisSpawnError> {
        self.topology()
            .await?
            .into_iter()
            .find(|n| {
                n.master && !n.failed && n.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
            })
            .map(|n| n.port)
            .ok_or_else(|| RedisSpawnError::Command {
                what: format!("find the master of slot {slot}"),
                reason: "no live master serves it".into(),
            })
    }

    /// The live master that holds the most keys (lowest port on a tie): the one whose loss
    /// matters to the sessions written so far.
    pub async fn busiest_master(&mut self) -> Result<u16, RedisSpawnError> {
        let mut best: Option<(u64, u16)> = None;
        let mut masters: Vec<u16> = self
            .topology()
            .await?
            .into_iter()
            .filter(|n| n.master && !n.failed && !n.slots.is_empty())
            .map(|n| n.port)
            .collect();
        masters.sort_unstable();
        for port in masters {
            let keys: u64 = self
                .access()
                .query(port, &redis::cmd("DBSIZE"))
                .await
                .map_err(|reason| RedisSpawnError::Command {
                    what: "DBSIZE".into(),
                    reason,
                })?;
            if best.is_none_or(|(most, _)| keys > most) {
                best = Some((keys, port));
            }
        }
        best.map(|(_, port)| port)
            .ok_or_else(|| RedisSpawnError::Command {
                what: "find a master".into(),
                reason: "no live master".into(),
            })
    }

    /// SIGKILL to the master on `port` (default: [`RedisCluster::busiest_master`]), once its
    /// replica has what the master held at the call ([`super::wait_replica_caught_up`]); waits
    /// until its replica is the master of its slots and the cluster is ok, and returns the
    /// killed port and how long Redis took.
    pub async fn kill_master(
        &mut self,
        port: Option<u16>,
    ) -> Result<(u16, Duration), RedisSpawnError> {
        let port = match port {
            Some(port) => port,
            None => self.busiest_master().await?,
        };
        let topology = self.topology().await?;
        let victim = topology
            .iter()
            .find(|n| n.port == port && n.master)
            .ok_or_else(|| RedisSpawnError::Command {
                what: format!("kill the master on port {port}"),
                reason: "no such master".into(),
            })?
            .clone();
        let replica = topology
            .iter()
            .find(|n| n.master_id.as_deref() == Some(victim.id.as_str()) && !n.failed)
            .ok_or_else(|| RedisSpawnError::Command {
                what: format!("kill the master on port {port}"),
                reason: "it has no live replica to take over".into(),
            })?
            .port;
        super::wait_replica_caught_up(
            self.access(),
            port,
            || self.joined_tails(),
            "killing the master",
        )
        .await;
        let started = Instant::now();
        if let Some(node) = self.nodes.iter_mut().find(|n| n.port() == port) {
            node.stop();
        }
        self.wait_ok(FAILOVER_TIMEOUT, Some(replica)).await?;
        Ok((port, started.elapsed()))
    }

    /// `CLUSTER FAILOVER` on the replica of the master on `port` (default: the busiest);
    /// waits until it is the master and the cluster is ok; returns how long that took.
    pub async fn failover(&mut self, port: Option<u16>) -> Result<Duration, RedisSpawnError> {
        let port = match port {
            Some(port) => port,
            None => self.busiest_master().await?,
        };
        let topology = self.topology().await?;
        let master_id = topology
            .iter()
            .find(|n| n.port == port && n.master)
            .map(|n| n.id.clone())
            .ok_or_else(|| RedisSpawnError::Command {
                what: format!("fail over the master on port {port}"),
                reason: "no such master".into(),
            })?;
        let replica = topology
            .iter()
            .find(|n| n.master_id.as_deref() == Some(master_id.as_str()) && !n.failed)
            .map(|n| n.port)
            .ok_or_else(|| RedisSpawnError::Command {
                what: format!("fail over the master on port {port}"),
                reason: "it has no live replica".into(),
            })?;
        let started = Instant::now();
        self.access()
            .query::<String>(replica, redis::cmd("CLUSTER").arg("FAILOVER"))
            .await
            .map_err(|reason| RedisSpawnError::Command {
                what: format!("CLUSTER FAILOVER on {replica}"),
                reason,
            })?;
        self.wait_ok(FAILOVER_TIMEOUT, Some(replica)).await?;
        Ok(started.elapsed())
    }

    /// Starts a killed node again and waits until it is a replica of its former replica
    /// with its data synced. (Without persistence it comes back empty, still believing it
    /// is the master of its old slots until the cluster tells it otherwise: until then a
    /// client with an old slot map would read nothing from it.)
    pub async fn restart_node(&mut self, port: u16) -> Result<(), RedisSpawnError> {
        match self.nodes.iter_mut().find(|n| n.port() == port) {
            Some(node) => node.start_again()?,
            None => {
                return Err(RedisSpawnError::Command {
                    what: format!("restart the node on port {port}"),
                    reason: "no such node".into(),
                });
            }
        }
        self.wait_ok(FAILOVER_TIMEOUT, None).await?;
        self.wait_replicas_synced(FAILOVER_TIMEOUT).await
    }

    /// Until every live replica has its link to its master up (its initial sync done), so
    /// that what a master holds is also on its replica.
    pub async fn wait_replicas_synced(&self, limit: Duration) -> Result<(), RedisSpawnError> {
        let live: Vec<u16> = self
            .nodes
            .iter()
            .filter(|n| n.pid().is_some())
            .map(RedisServer::port)
            .collect();
        let access = self.access().clone();
        wait_until(
            "every replica synced with its master",
            limit,
            || self.joined_tails(),
            || {
                let (live, access) = (live.clone(), access.clone());
                async move {
                    let mut replicas = 0;
                    for port in live {
                        let info: String = access
                            .query(port, redis::cmd("INFO").arg("replication"))
                            .await?;
                        if info.contains("role:slave") {
                            replicas += 1;
                            if !info.contains("master_link_status:up")
                                || info.contains("master_sync_in_progress:1")
                            {
                                return Err(format!("127.0.0.1:{port}: replica not synced yet"));
                            }
                        }
                    }
                    if replicas >= 3 {
                        Ok(())
                    } else {
                        Err(format!("{replicas} replicas, expected 3"))
                    }
                }
            },
        )
        .await
    }

    /// Moves `slot` (and its keys) to the master on `to`: `SETSLOT IMPORTING/MIGRATING`,
    /// `MIGRATE`, then `SETSLOT NODE` everywhere. A client with the old slot map gets `MOVED`.
    pub async fn move_slot(&mut self, slot: u16, to: u16) -> Result<(), RedisSpawnError> {
        let from = self.master_of_slot(slot).await?;
        if from == to {
            return Ok(());
        }
        let topology = self.topology().await?;
        let id = |port: u16| {
            topology
                .iter()
                .find(|n| n.port == port && n.master)
                .map(|n| n.id.clone())
                .ok_or_else(|| RedisSpawnError::Command {
                    what: format!("move slot {slot}"),
                    reason: format!("port {port} is not a master"),
                })
        };
        let (from_id, to_id) = (id(from)?, id(to)?);
        let access = self.access().clone();
        let run = |port: u16, cmd: redis::Cmd| {
            let access = access.clone();
            async move {
                access
                    .query::<redis::Value>(port, &cmd)
                    .await
                    .map_err(|reason| RedisSpawnError::Command {
                        what: format!("move slot {slot}"),
                        reason,
                    })
            }
        };
        let setslot = |state: &str, node: &str| {
            let mut cmd = redis::cmd("CLUSTER");
            cmd.arg("SETSLOT").arg(slot).arg(state).arg(node);
            cmd
        };
        run(to, setslot("IMPORTING", &from_id)).await?;
        run(from, setslot("MIGRATING", &to_id)).await?;
        loop {
            let keys: Vec<String> = access
                .query(
                    from,
                    redis::cmd("CLUSTER")
                        .arg("GETKEYSINSLOT")
                        .arg(slot)
                        .arg(100),
                )
                .await
                .map_err(|reason| RedisSpawnError::Command {
                    what: format!("move slot {slot}"),
                    reason,
                })?;
            if keys.is_empty() {
                break;
            }
            let mut migrate = redis::cmd("MIGRATE");
            migrate.arg("127.0.0.1").arg(to).arg("").arg(0).arg(5000);
            if let Some(password) = &access.password {
                migrate.arg("AUTH").arg(password);
            }
            migrate.arg("KEYS").arg(&keys);
            run(from, migrate).await?;
        }
        for node in topology.iter().filter(|n| n.master && !n.failed) {
            run(node.port, setslot("NODE", &to_id)).await?;
        }
        Ok(())
    }

    /// Until every live node reports `cluster_state:ok` with all slots ok, and (when given)
    /// `new_master` is a master serving slots in every live node's view.
    async fn wait_ok(
        &self,
        limit: Duration,
        new_master: Option<u16>,
    ) -> Result<(), RedisSpawnError> {
        let live: Vec<u16> = self
            .nodes
            .iter()
            .filter(|n| n.pid().is_some())
            .map(RedisServer::port)
            .collect();
        let access = self.access().clone();
        wait_until(
            "a cluster with every slot ok",
            limit,
            || self.joined_tails(),
            || {
                let (live, access) = (live.clone(), access.clone());
                async move {
                    for port in live {
                        let info: String = access
                            .query(port, redis::cmd("CLUSTER").arg("INFO"))
                            .await?;
                        if !info.contains("cluster_state:ok")
                            || !info.contains(&format!("cluster_slots_ok:{SLOTS}"))
                        {
                            let state = info
                                .lines()
                                .filter(|l| {
                                    l.starts_with("cluster_state") || l.starts_with("cluster_slots")
                                })
                                .collect::<Vec<_>>()
                                .join(" ");
                            return Err(format!("127.0.0.1:{port}: {state}"));
                        }
                        if let Some(master) = new_master {
                            let nodes: String = access
                                .query(port, redis::cmd("CLUSTER").arg("NODES"))
                                .await?;
                            let promoted = parse_nodes(&nodes)
                                .iter()
                                .any(|n| n.port == master && n.master && !n.slots.is_empty());
                            if !promoted {
                                return Err(format!(
                                    "127.0.0.1:{port} does not see {master} as a master yet"
                                ));
                            }
                        }
                    }
                    Ok(())
                }
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_lines_are_parsed_with_slots_and_roles() {
        let text = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 16000 [5461->-67ed2db8]
6ec23923021cf3ffec47632106199cb7f496ce01 127.0.0.1:30005@31005 master,fail - 1426238316232 1426238316232 5 disconnected
";
        let nodes = parse_nodes(text);
        assert_eq!(nodes.len(), 4);
        assert_eq!(nodes[0].port, 30004);
        assert!(!nodes[0].master);
        assert_eq!(
            nodes[0].master_id.as_deref(),
            Some("e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca")
        );
        assert_eq!(nodes[1].slots, vec![(5461, 10922)]);
        assert_eq!(nodes[2].slots, vec![(0, 5460), (16000, 16000)]);
        assert!(nodes[2].master && !nodes[2].failed);
        assert!(nodes[3].failed && nodes[3].slots.is_empty());
    }
}
