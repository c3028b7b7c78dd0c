//! The spawners themselves: what they start answers, and nothing survives a drop.

use std::path::Path;

use super::*;
use crate::testing::{RedisCluster, RedisSentinel, RedisServer};

fn alive(pid: u32) -> bool {
    // A zombie (reaped by nobody yet) counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_owned))
        })
        .is_some_and(|state| state != "Z" && state != "X")
}

#[test]
fn a_missing_binary_is_reported_with_the_install_hint() {
    let err = RedisServer::start_with_binary(Path::new("/nonexistent/redis-server"))
        .expect_err("no binary");
    assert!(matches!(err, RedisSpawnError::NotInstalled { .. }));
    assert_eq!(
        err.to_string(),
        "redis-server not found on PATH or in /usr/bin: install it (apt-get install redis-server)"
    );
}

#[tokio::test]
async fn a_paused_server_answers_nothing_until_resumed() {
    let redis = RedisServer::start().expect("redis-server");
    redis.pause().unwrap();
    let ping = redis
        .access()
        .query::<String>(redis.port(), &redis::cmd("PING"))
        .await;
    assert!(ping.is_err(), "a stopped process answered");
    redis.resume().unwrap();
    let pong: String = redis
        .access()
        .query(redis.port(), &redis::cmd("PING"))
        .await
        .unwrap();
    assert_eq!(pong, "PONG");
}

#[tokio::test]
async fn every_process_of_a_sentinel_topology_is_gone_after_drop() {
    let topology = RedisSentinel::start().await.expect("sentinel topology");
    let pids = topology.pids();
    assert_eq!(pids.len(), 5, "{pids:?}");
    assert!(pids.iter().all(|(_, pid)| alive(*pid)));
    assert_eq!(topology.master().await.unwrap(), topology.nodes()[0].port());
    drop(topology);
    for (what, pid) in pids {
        assert!(!alive(pid), "{what} {pid} survived the drop");
    }
}

#[tokio::test]
async fn every_node_of_a_cluster_is_gone_after_drop() {
    let mut cluster = RedisCluster::start().await.expect("cluster");
    let pids = cluster.pids();
    assert_eq!(pids.len(), 6, "{pids:?}");
    let topology = cluster.topology().await.unwrap();
    assert_eq!(topology.iter().filter(|n| n.master).count(), 3);
    let slots: u32 = topology
        .iter()
        .flat_map(|n| n.slots.iter().map(|(a, b)| u32::from(b - a) + 1))
        .sum();
    assert_eq!(slots, u32::from(cluster::SLOTS));
    drop(cluster);
    for (what, pid) in pids {
        assert!(!alive(pid), "{what} {pid} survived the drop");
    }
}

#[test]
fn replication_offsets_are_read_from_info_replication() {
    let info = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
        slave0:ip=127.0.0.1,port=7001,state=online,offset=4242,lag=0\r\n\
        slave1:ip=127.0.0.1,port=7002,state=wait_bgsave,offset=0,lag=1\r\n\
        master_failover_state:no-failover\r\nmaster_repl_offset:4300\r\n";
    assert_eq!(
        super::replication_offsets(info),
        (Some(4300), vec![4242, 0])
    );
    assert_eq!(
        super::replication_offsets("role:master\r\nconnected_slaves:0\r\n"),
        (None, vec![])
    );
}
