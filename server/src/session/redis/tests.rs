//! The Redis store over real sockets, one topology or option per test: a unix socket, TLS and
//! mutual TLS, a password and an ACL user, a paused server, `WAIT`, Sentinel failovers and
//! Cluster master kills and slot moves (Debian's `redis-server` via [`crate::testing`]).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::config::compile::redis::read_tls;
use crate::config::{HostPort, RedisAuth};
use crate::metrics::counter_value;
use crate::secret::Secret;
use crate::session::tests::sample;
use crate::testing::{RedisCluster, RedisSentinel, RedisServer, TestCerts, free_port};

const TTL: Duration = Duration::from_secs(600);

fn node(port: u16) -> HostPort {
    HostPort {
        host: "127.0.0.1".into(),
        port,
    }
}

fn config(topology: RedisTopology) -> RedisConfig {
    RedisConfig {
        topology,
        db: 0,
        pool_size: 2,
        key_prefix: "t:".into(),
        tls: None,
        auth: RedisAuth::default(),
        sentinel_auth: RedisAuth::default(),
        command_timeout: Duration::from_secs(1),
        durable: None,
        client_side_cache: false,
    }
}

/// A standalone server on loopback, prefix `t:` (also the client-side cache's tests).
pub(super) fn standalone(port: u16) -> RedisConfig {
    config(RedisTopology::Standalone(RedisAddress::Tcp(node(port))))
}

fn password(text: &str) -> RedisAuth {
    RedisAuth {
        username: None,
        password: Some(Secret::new(text)),
    }
}

fn tls(dir: &Path) -> Option<crate::config::RedisTls> {
    Some(read_tls(dir).expect("the generated certificates read"))
}

fn sentinel_config(topology: &RedisSentinel) -> RedisConfig {
    config(RedisTopology::Sentinel {
        master_name: topology.master_name().to_owned(),
        sentinels: topology
            .sentinels()
            .iter()
            .map(|s| node(s.port()))
            .collect(),
    })
}

fn cluster_config(cluster: &RedisCluster) -> RedisConfig {
    config(RedisTopology::Cluster {
        nodes: cluster.nodes().iter().map(|n| node(n.port())).collect(),
    })
}

/// Held by the test that asserts `durable_write_unacknowledged` did not move and by the tests
/// whose durable saves go unacknowledged on purpose (failovers): the counter is global to the
/// test process, where tests run in parallel.
static UNACKNOWLEDGED_COUNTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn durable(replicas: u32, timeout_ms: u64) -> Option<DurableSessions> {
    Some(DurableSessions {
        replicas,
        timeout: Duration::from_millis(timeout_ms),
    })
}

fn errors(kind: &str) -> u64 {
    counter_value("extauth_errors_total", &[("kind", kind)])
}

async fn round_trip(store: &RedisStore) -> SessionId {
    let id = SessionId::generate();
    store.save(&id, &sample("u"), TTL).await.expect("save");
    assert_eq!(store.load(&id).await.expect("load"), Some(sample("u")));
    id
}

/// A round trip right after a graceful Sentinel failover: the old master takes writes until
/// the store sees the sentinels name the new one, so a save and its read may straddle the
/// switch (the documented loss window). Retries for at most 5 s; each try is a new session.
async fn round_trip_after_the_switch(store: &RedisStore) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let id = SessionId::generate();
        store.save(&id, &sample("u"), TTL).await.expect("save");
        let loaded = store.load(&id).await.expect("load");
        if loaded == Some(sample("u")) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no session saved after the failover reads back within 5 s (last: {loaded:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads `id` until it answers, for at most `limit`: every failure on the way must be a
/// store error (a 503 or a fresh login, as `failOnFetchFailure` says), never "no session".
/// Returns how long the errors lasted.
async fn load_through_the_outage(store: &RedisStore, id: &SessionId, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut last_error = None;
    while started.elapsed() < limit {
        match store.load(id).await {
            Ok(Some(data)) => {
                assert_eq!(data, sample("u"));
                return started.elapsed();
            }
            Ok(None) => panic!(
                "the session was reported missing (after {:?})",
                started.elapsed()
            ),
            Err(e @ StoreError::Corrupt(_)) => panic!("{e}"),
            Err(e @ StoreError::Unavailable(_)) => last_error = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the session never came back within {limit:?}: {last_error:?}");
}

#[tokio::test]
async fn a_unix_socket_host_serves_sessions() {
    let redis = RedisServer::builder()
        .unix_socket()
        .start()
        .expect("redis-server");
    let socket = redis.unix_socket().expect("a socket").to_owned();
    let store = RedisStore::open(&config(RedisTopology::Standalone(RedisAddress::Unix(
        socket,
    ))))
    .unwrap();
    store.ping().await.unwrap();
    round_trip(&store).await;
}

#[tokio::test]
async fn tls_with_the_ca_serves_sessions() {
    let certs = Arc::new(TestCerts::generate().unwrap());
    let redis = RedisServer::builder()
        .tls(Arc::clone(&certs), false)
        .start()
        .expect("redis-server with TLS");
    let store = RedisStore::open(&RedisConfig {
        tls: tls(&certs.ca_only_path()),
        ..standalone(redis.port())
    })
    .unwrap();
    round_trip(&store).await;
}

#[tokio::test]
async fn mutual_tls_is_refused_without_a_client_certificate_and_served_with_one() {
    let certs = Arc::new(TestCerts::generate().unwrap());
    let redis = RedisServer::builder()
        .tls(Arc::clone(&certs), true)
        .start()
        .expect("redis-server with mutual TLS");
    let without = RedisStore::open(&RedisConfig {
        tls: tls(&certs.ca_only_path()),
        ..standalone(redis.port())
    })
    .unwrap();
    let err = without.ping().await.expect_err("no client certificate");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    let with = RedisStore::open(&RedisConfig {
        tls: tls(&certs.mount_path()),
        ..standalone(redis.port())
    })
    .unwrap();
    round_trip(&with).await;
}

#[tokio::test]
async fn plain_tcp_to_a_tls_port_is_a_store_error_within_the_timeout() {
    let certs = Arc::new(TestCerts::generate().unwrap());
    let redis = RedisServer::builder()
        .tls(Arc::clone(&certs), false)
        .start()
        .expect("redis-server with TLS");
    let store = RedisStore::open(&standalone(redis.port())).unwrap();
    let started = Instant::now();
    assert!(matches!(
        store.load(&SessionId::generate()).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_password_from_redis_password_gets_in() {
    let redis = RedisServer::builder()
        .password("s3cret-pw")
        .start()
        .expect("redis-server");
    let store = RedisStore::open(&RedisConfig {
        auth: password("s3cret-pw"),
        ..standalone(redis.port())
    })
    .unwrap();
    round_trip(&store).await;
}

#[tokio::test]
async fn a_wrong_password_is_a_clear_error_that_does_not_print_it() {
    let redis = RedisServer::builder()
        .password("s3cret-pw")
        .start()
        .expect("redis-server");
    let store = RedisStore::open(&RedisConfig {
        auth: password("not-the-password"),
        ..standalone(redis.port())
    })
    .unwrap();
    let err = store.ping().await.expect_err("wrong password").to_string();
    assert!(
        err.contains("Redis refused the credentials (REDIS_USERNAME / REDIS_PASSWORD)"),
        "{err}"
    );
    assert!(!err.contains("not-the-password"), "{err}");
    let none = RedisStore::open(&standalone(redis.port())).unwrap();
    let err = none.ping().await.expect_err("no password").to_string();
    assert!(
        err.contains("Redis wants a password: set REDIS_PASSWORD"),
        "{err}"
    );
}

#[tokio::test]
async fn an_acl_user_gets_in_and_the_default_user_does_not() {
    let redis = RedisServer::builder()
        .acl_user("extauth", "acl-pw")
        .start()
        .expect("redis-server");
    let store = RedisStore::open(&RedisConfig {
        auth: RedisAuth {
            username: Some("extauth".into()),
            password: Some(Secret::new("acl-pw")),
        },
        ..standalone(redis.port())
    })
    .unwrap();
    round_trip(&store).await;
    let default_user = RedisStore::open(&RedisConfig {
        auth: password("acl-pw"),
        ..standalone(redis.port())
    })
    .unwrap();
    assert!(default_user.ping().await.is_err());
}

#[tokio::test]
async fn the_store_debug_output_names_no_credentials() {
    let store = RedisStore::open(&RedisConfig {
        auth: RedisAuth {
            username: Some("extauth".into()),
            password: Some(Secret::new("hunter2-pw")),
        },
        ..standalone(6379)
    })
    .unwrap();
    let printed = format!("{store:?}");
    assert!(printed.contains("127.0.0.1:6379"), "{printed}");
    assert!(!printed.contains("hunter2"), "{printed}");
}

#[tokio::test]
async fn a_paused_server_is_a_timeout_counted_as_a_store_error_and_keeps_the_session() {
    let redis = RedisServer::start().expect("redis-server");
    let store = RedisStore::open(&RedisConfig {
        command_timeout: Duration::from_millis(300),
        ..standalone(redis.port())
    })
    .unwrap();
    let id = round_trip(&store).await;
    let before = errors("redis_timeout");
    redis.pause().unwrap();
    let started = Instant::now();
    let outcome = store.load(&id).await;
    let waited = started.elapsed();
    redis.resume().unwrap();
    let err = outcome.expect_err("a paused server answers nothing");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(
        err.to_string().contains("did not answer within 300ms"),
        "{err}"
    );
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    assert!(errors("redis_timeout") > before);
    // Nothing was deleted: once it answers again, the session is there.
    load_through_the_outage(&store, &id, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_restarted_server_is_reconnected_to_without_a_failed_call() {
    let mut redis = RedisServer::start().expect("redis-server");
    let store = RedisStore::open(&standalone(redis.port())).unwrap();
    round_trip(&store).await;
    redis.start_again().unwrap();
    // The first call meets the dead connection, and is tried once more on a new one.
    store.ping().await.expect("reconnected within the call");
}

/// A master and its replica (`--replicaof`), for `WAIT`.
fn replicated() -> (RedisServer, RedisServer) {
    let master = RedisServer::start().expect("master");
    let replica = RedisServer::builder()
        .args(["--replicaof", "127.0.0.1", &master.port().to_string()])
        .start()
        .expect("replica");
    (master, replica)
}

async fn wait_for_replica_link(master: &RedisServer) {
    let started = Instant::now();
    loop {
        let info: String = master
            .access()
            .query(master.port(), redis::cmd("INFO").arg("replication"))
            .await
            .unwrap();
        if info.contains("state=online") {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no replica: {info}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn durable_sessions_are_acknowledged_by_a_replica_before_the_save_returns() {
    let _counter = UNACKNOWLEDGED_COUNTER.lock().await;
    let (master, replica) = replicated();
    wait_for_replica_link(&master).await;
    // A generous WAIT timeout: on a loaded machine a replica can take longer than 500 ms to
    // acknowledge (a save then returns unacknowledged, which the next test covers).
    let store = RedisStore::open(&RedisConfig {
        durable: durable(1, 5000),
        ..standalone(master.port())
    })
    .unwrap();
    // (Not asserted through `durable_write_unacknowledged`: that counter is global to the test
    // process, and other tests here make unacknowledged writes on purpose in parallel.)
    let id = SessionId::generate();
    store.save(&id, &sample("u"), TTL).await.unwrap();
    // Acknowledged means the replica has it now, not eventually.
    let on_replica: Option<Vec<u8>> = replica
        .access()
        .query(replica.port(), redis::cmd("GET").arg(id.storage_key("t:")))
        .await
        .unwrap();
    assert!(
        on_replica.is_some(),
        "the replica lacks the acknowledged session"
    );
}

#[tokio::test]
async fn durable_sessions_without_an_acknowledgement_in_time_still_save_and_are_counted() {
    let (master, replica) = replicated();
    wait_for_replica_link(&master).await;
    let store = RedisStore::open(&RedisConfig {
        durable: durable(1, 200),
        ..standalone(master.port())
    })
    .unwrap();
    let before = errors("durable_write_unacknowledged");
    replica.pause().unwrap();
    let id = SessionId::generate();
    let started = Instant::now();
    let saved = store.save(&id, &sample("u"), TTL).await;
    let waited = started.elapsed();
    replica.resume().unwrap();
    saved.expect("the save succeeds on the master");
    assert!(
        waited >= Duration::from_millis(200),
        "WAIT returned early: {waited:?}"
    );
    assert!(errors("durable_write_unacknowledged") > before);
    assert_eq!(store.load(&id).await.unwrap(), Some(sample("u")));
}

#[tokio::test]
async fn unreachable_sentinels_fail_the_start_check_naming_each() {
    let (a, b) = (free_port().unwrap(), free_port().unwrap());
    let store = RedisStore::open(&config(RedisTopology::Sentinel {
        master_name: "mymaster".into(),
        sentinels: vec![node(a), node(b)],
    }))
    .unwrap();
    let err = store
        .check_at_start()
        .await
        .expect_err("nobody answers")
        .to_string();
    assert!(
        err.contains("no sentinel named the master \"mymaster\""),
        "{err}"
    );
    assert!(err.contains(&format!("127.0.0.1:{a}")), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{b}")), "{err}");
}

#[tokio::test]
async fn a_sentinel_that_does_not_know_the_master_name_is_named() {
    let topology = RedisSentinel::start().await.expect("sentinel topology");
    let store = RedisStore::open(&RedisConfig {
        topology: RedisTopology::Sentinel {
            master_name: "not-monitored".into(),
            sentinels: vec![node(topology.sentinels()[0].port())],
        },
        ..sentinel_config(&topology)
    })
    .unwrap();
    let err = store
        .check_at_start()
        .await
        .expect_err("unknown name")
        .to_string();
    assert!(
        err.contains("does not monitor a master named \"not-monitored\""),
        "{err}"
    );
}

#[tokio::test]
async fn a_session_written_before_a_sentinel_failover_is_read_and_written_after() {
    let _counter = UNACKNOWLEDGED_COUNTER.lock().await;
    let mut topology = RedisSentinel::start().await.expect("sentinel topology");
    let store = RedisStore::open(&RedisConfig {
        durable: durable(1, 500),
        ..sentinel_config(&topology)
    })
    .unwrap();
    store.check_at_start().await.unwrap();
    let id = round_trip(&store).await;
    let took = topology.failover().await.expect("failover");
    // The same store (no restart) follows the switch: reads, then writes on the new master.
    load_through_the_outage(&store, &id, Duration::from_secs(10) + took).await;
    round_trip_after_the_switch(&store).await;
}

#[tokio::test]
async fn sessions_written_after_a_graceful_sentinel_failover_go_to_the_new_master() {
    let _counter = UNACKNOWLEDGED_COUNTER.lock().await;
    // `SENTINEL FAILOVER` gives no error: the old master stays writable until the sentinels
    // demote it (seconds later), and then drops what it took meanwhile. The store must see
    // the switch by itself and write to the new master.
    let mut topology = RedisSentinel::start().await.expect("sentinel topology");
    for durable_sessions in [None, durable(1, 200)] {
        topology.wait_healthy().await.expect("a settled topology");
        let store = RedisStore::open(&RedisConfig {
            durable: durable_sessions,
            ..sentinel_config(&topology)
        })
        .unwrap();
        round_trip(&store).await;
        let old = topology.master().await.unwrap();
        topology.failover().await.expect("failover");
        let new = topology.master().await.unwrap();
        assert_ne!(old, new);
        // Without durableSessions, after a few of the store's checks of the sentinels (every
        // `WATCH_INTERVAL`); with it, at once (a `WAIT` nobody acknowledges makes the store ask
        // the sentinels). From then on a new session is on the new master, not only on the
        // old one, which still answers as a master until the sentinels demote it. Sessions
        // saved in between may go to the old master (the documented loss): keep saving, for
        // at most 12 intervals (3 s; the old master is demoted only ~10 s after the failover).
        let deadline = Instant::now() + sentinel::WATCH_INTERVAL * 12;
        let mut on_new_master = false;
        while !on_new_master && Instant::now() < deadline {
            let id = SessionId::generate();
            store.save(&id, &sample("u"), TTL).await.expect("save");
            let on_new: Option<Vec<u8>> = topology
                .access()
                .query(new, redis::cmd("GET").arg(id.storage_key("t:")))
                .await
                .unwrap();
            on_new_master = on_new.is_some();
            if !on_new_master {
                tokio::time::sleep(sentinel::WATCH_INTERVAL / 2).await;
            }
        }
        assert!(
            on_new_master,
            "sessions saved after the failover are not on the new master {new} (durable: {durable_sessions:?})"
        );
        round_trip_after_the_switch(&store).await;
    }
}

/// After a graceful failover, a replica that has not noticed the switch yet reads the old
/// master, which lacks the sessions the other replicas already write to the new one: its
/// miss is confirmed with the sentinels and the read made again on the new master.
#[tokio::test]
async fn a_miss_on_the_old_master_after_a_failover_is_read_again_on_the_new_one() {
    let mut topology = RedisSentinel::start().await.expect("sentinel topology");
    topology.wait_healthy().await.expect("a settled topology");
    // Without the watch task: this store learns of the switch only from its misses.
    let behind = RedisStore::open_unwatched(&sentinel_config(&topology)).unwrap();
    round_trip(&behind).await;
    let old = topology.master().await.unwrap();
    topology.failover().await.expect("failover");
    let new = topology.master().await.unwrap();
    assert_ne!(old, new);
    // Another replica, opened now, writes a new session to the new master only.
    let ahead = RedisStore::open(&sentinel_config(&topology)).unwrap();
    let id = SessionId::generate();
    ahead.save(&id, &sample("u"), TTL).await.expect("save");
    let on_old: Option<Vec<u8>> = topology
        .access()
        .query(old, redis::cmd("GET").arg(id.storage_key("t:")))
        .await
        .unwrap();
    assert!(
        on_old.is_none(),
        "the old master has the new session already"
    );
    let found = behind.load(&id).await.expect("load");
    assert_eq!(found, Some(sample("u")));
    // A session that exists nowhere is still a miss (the confirmation finds no switch).
    assert_eq!(behind.load(&SessionId::generate()).await.unwrap(), None);
}

#[tokio::test]
async fn a_session_survives_a_sentinel_master_kill() {
    let _counter = UNACKNOWLEDGED_COUNTER.lock().await;
    let mut topology = RedisSentinel::start().await.expect("sentinel topology");
    let store = RedisStore::open(&RedisConfig {
        durable: durable(1, 500),
        ..sentinel_config(&topology)
    })
    .unwrap();
    let id = round_trip(&store).await;
    let took = topology.kill_master().await.expect("promotion");
    load_through_the_outage(&store, &id, Duration::from_secs(10) + took).await;
    round_trip(&store).await;
}

#[tokio::test]
async fn sentinel_with_passwords_and_tls_everywhere_serves_sessions() {
    let certs = Arc::new(TestCerts::generate().unwrap());
    let topology = RedisSentinel::builder()
        .password("data-pw")
        .sentinel_password("sentinel-pw")
        .tls(Arc::clone(&certs), true)
        .start()
        .await
        .expect("sentinel topology with TLS and passwords");
    let store = RedisStore::open(&RedisConfig {
        auth: password("data-pw"),
        sentinel_auth: password("sentinel-pw"),
        tls: tls(&certs.mount_path()),
        ..sentinel_config(&topology)
    })
    .unwrap();
    store.check_at_start().await.unwrap();
    round_trip(&store).await;
}

#[tokio::test]
async fn the_refresh_lock_is_shared_by_replicas_on_sentinel() {
    let topology = RedisSentinel::start().await.expect("sentinel topology");
    let (one, two) = (
        RedisStore::open(&sentinel_config(&topology)).unwrap(),
        RedisStore::open(&sentinel_config(&topology)).unwrap(),
    );
    let id = SessionId::generate();
    assert!(one.try_lock(&id, Duration::from_secs(5)).await.unwrap());
    assert!(!two.try_lock(&id, Duration::from_secs(5)).await.unwrap());
    one.unlock(&id).await.unwrap();
    assert!(two.try_lock(&id, Duration::from_secs(5)).await.unwrap());
}

#[tokio::test]
async fn sessions_on_several_slots_survive_a_cluster_master_kill() {
    let _counter = UNACKNOWLEDGED_COUNTER.lock().await;
    let mut cluster = RedisCluster::start().await.expect("cluster");
    let store = RedisStore::open(&RedisConfig {
        durable: durable(1, 500),
        ..cluster_config(&cluster)
    })
    .unwrap();
    store.check_at_start().await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..24 {
        ids.push(round_trip(&store).await);
    }
    let mut masters = std::collections::BTreeSet::new();
    for id in &ids {
        let slot = cluster.keyslot(&id.storage_key("t:")).await.unwrap();
        masters.insert(cluster.master_of_slot(slot).await.unwrap());
    }
    assert!(masters.len() > 1, "all sessions on one master: {masters:?}");
    let (_, took) = cluster.kill_master(None).await.expect("promotion");
    for id in &ids {
        load_through_the_outage(&store, id, Duration::from_secs(10) + took).await;
    }
    round_trip(&store).await;
}

#[tokio::test]
async fn a_moved_slot_is_followed() {
    let mut cluster = RedisCluster::start().await.expect("cluster");
    let store = RedisStore::open(&cluster_config(&cluster)).unwrap();
    let id = round_trip(&store).await;
    let slot = cluster.keyslot(&id.storage_key("t:")).await.unwrap();
    let from = cluster.master_of_slot(slot).await.unwrap();
    let to = cluster
        .topology()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.master && n.port != from)
        .unwrap()
        .port;
    cluster.move_slot(slot, to).await.unwrap();
    assert_eq!(cluster.master_of_slot(slot).await.unwrap(), to);
    // The store's slot map still says `from`: the answer is MOVED, followed.
    assert_eq!(store.load(&id).await.unwrap(), Some(sample("u")));
    store.delete(&id).await.unwrap();
    assert_eq!(store.load(&id).await.unwrap(), None);
}

#[tokio::test]
async fn the_refresh_lock_works_on_a_cluster_where_its_key_is_on_another_slot() {
    let mut cluster = RedisCluster::start().await.expect("cluster");
    let (one, two) = (
        RedisStore::open(&cluster_config(&cluster)).unwrap(),
        RedisStore::open(&cluster_config(&cluster)).unwrap(),
    );
    let mut id = SessionId::generate();
    while cluster.keyslot(&id.storage_key("t:")).await.unwrap()
        == cluster.keyslot(&id.lock_key("t:")).await.unwrap()
    {
        id = SessionId::generate();
    }
    one.save(&id, &sample("u"), TTL).await.unwrap();
    assert!(one.try_lock(&id, Duration::from_secs(5)).await.unwrap());
    assert!(!two.try_lock(&id, Duration::from_secs(5)).await.unwrap());
    one.unlock(&id).await.unwrap();
    assert!(two.try_lock(&id, Duration::from_secs(5)).await.unwrap());
    assert_eq!(two.load(&id).await.unwrap(), Some(sample("u")));
}

#[tokio::test]
async fn an_unreachable_cluster_fails_the_start_check() {
    let port = free_port().unwrap();
    let store = RedisStore::open(&config(RedisTopology::Cluster {
        nodes: vec![node(port)],
    }))
    .unwrap();
    let err = store
        .check_at_start()
        .await
        .expect_err("no node")
        .to_string();
    assert!(err.contains("no cluster seed node answered"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[test]
fn connected_replicas_are_read_from_info_replication() {
    let info =
        "# Replication\r\nrole:master\r\nconnected_slaves:2\r\nslave0:ip=127.0.0.1,port=7001\r\n";
    assert_eq!(super::connected_replicas(info), Some(2));
    assert_eq!(super::connected_replicas("role:master\r\n"), None);
    assert_eq!(super::connected_replicas("connected_slaves:x\r\n"), None);
}
