//! The client-side cache against a real `redis-server`: two stores on one server play two
//! extauth replicas; `a` has `clientSideCache`, `b` writes and deletes as the other replica.

use std::time::{Duration, Instant};

use data_encoding::BASE32;

use crate::config::RedisConfig;
use crate::session::redis::tests::standalone;
use crate::session::redis::{CacheStats, RedisStore};
use crate::session::tests::sample;
use crate::session::{SessionId, SessionStore as _};
use crate::testing::RedisServer;

const TTL: Duration = Duration::from_secs(600);

fn config(port: u16, client_side_cache: bool) -> RedisConfig {
    RedisConfig {
        client_side_cache,
        ..standalone(port)
    }
}

fn stats(store: &RedisStore) -> CacheStats {
    store.client_cache_stats().expect("the cache is on")
}

/// Polls `what` every 10 ms for at most 5 s.
async fn eventually(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ok().await {
        assert!(Instant::now() < deadline, "not within 5 s: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Two replicas on one server, `a` subscribed.
async fn replicas(redis: &RedisServer) -> (RedisStore, RedisStore) {
    let a = RedisStore::open(&config(redis.port(), true)).expect("store a");
    let b = RedisStore::open(&config(redis.port(), false)).expect("store b");
    eventually("the tracking connection subscribes", async || {
        stats(&a).live
    })
    .await;
    (a, b)
}

#[tokio::test]
async fn a_session_seen_before_is_answered_from_memory_until_another_replica_deletes_it() {
    let redis = RedisServer::start().expect("redis-server");
    let (a, b) = replicas(&redis).await;
    assert_eq!(b.client_cache_stats(), None);
    let id = SessionId::generate();
    b.save(&id, &sample("u"), TTL).await.expect("save on b");

    assert_eq!(a.load(&id).await.unwrap(), Some(sample("u")));
    assert_eq!((stats(&a).fills, stats(&a).hits), (1, 0));
    assert_eq!(a.load(&id).await.unwrap(), Some(sample("u")));
    assert_eq!((stats(&a).fills, stats(&a).hits), (1, 1));

    // A logout on the other replica: Redis tells `a`, which stops answering from memory.
    b.delete(&id).await.expect("delete on b");
    eventually("the delete's invalidation reaches a", async || {
        a.load(&id).await.unwrap().is_none()
    })
    .await;
    assert!(stats(&a).invalidations >= 1, "{:?}", stats(&a));
}

#[tokio::test]
async fn a_session_rewritten_by_another_replica_is_read_again() {
    let redis = RedisServer::start().expect("redis-server");
    let (a, b) = replicas(&redis).await;
    let id = SessionId::generate();
    b.save(&id, &sample("old"), TTL).await.unwrap();
    assert_eq!(a.load(&id).await.unwrap(), Some(sample("old")));
    b.save(&id, &sample("new"), TTL).await.unwrap();
    eventually("the rewrite is seen on a", async || {
        a.load(&id).await.unwrap() == Some(sample("new"))
    })
    .await;
}

#[tokio::test]
async fn own_writes_and_deletes_drop_the_entry_at_once() {
    let redis = RedisServer::start().expect("redis-server");
    let (a, _b) = replicas(&redis).await;
    let id = SessionId::generate();
    a.save(&id, &sample("old"), TTL).await.unwrap();
    assert_eq!(a.load(&id).await.unwrap(), Some(sample("old")));
    a.save(&id, &sample("new"), TTL).await.unwrap();
    assert_eq!(a.load(&id).await.unwrap(), Some(sample("new")));
    a.delete(&id).await.unwrap();
    assert_eq!(a.load(&id).await.unwrap(), None);
}

#[tokio::test]
async fn load_fresh_reads_redis_even_when_the_cache_holds_the_session() {
    let redis = RedisServer::start().expect("redis-server");
    let (a, b) = replicas(&redis).await;
    let id = SessionId::generate();
    b.save(&id, &sample("spent"), TTL).await.unwrap();
    assert_eq!(a.load(&id).await.unwrap(), Some(sample("spent")));
    b.save(&id, &sample("rotated"), TTL).await.unwrap();
    // As if the invalidation of the rewrite had not arrived yet: `a` still holds the old
    // session (a refresh token another replica spent); a refresh must not read it.
    let key = id.storage_key("t:");
    let tracking = a.tracking.as_deref().unwrap();
    let ticket = tracking.ticket().unwrap();
    tracking.put(&key, &id, &sample("spent"), TTL, ticket);
    assert_eq!(a.load(&id).await.unwrap(), Some(sample("spent")));
    assert_eq!(a.load_fresh(&id).await.unwrap(), Some(sample("rotated")));
}

#[tokio::test]
async fn a_wrong_secret_half_is_not_answered_from_memory() {
    let redis = RedisServer::start().expect("redis-server");
    let (a, b) = replicas(&redis).await;
    let id = SessionId::generate();
    b.save(&id, &sample("u"), TTL).await.unwrap();
    assert_eq!(a.load(&id).await.unwrap(), Some(sample("u")));
    // Same lookup half (same key), another secret half: the cache does not answer, and
    // the stored value does not open under it.
    let mut bytes = BASE32.decode(id.expose().as_bytes()).unwrap();
    bytes[32..].fill(7);
    let forged = SessionId::parse(&BASE32.encode(&bytes)).unwrap();
    assert_eq!(forged.storage_key("t:"), id.storage_key("t:"));
    let hits = stats(&a).hits;
    assert!(a.load(&forged).await.is_err(), "a forged id opens nothing");
    assert_eq!(stats(&a).hits, hits);
}

#[tokio::test]
async fn a_lost_tracking_connection_empties_the_cache_and_subscribes_again() {
    let redis = RedisServer::start().expect("redis-server");
    let (a, b) = replicas(&redis).await;
    let id = SessionId::generate();
    b.save(&id, &sample("u"), TTL).await.unwrap();
    a.load(&id).await.unwrap();
    assert_eq!(stats(&a).fills, 1);

    // Kill the tracking connection (flags `t`) from outside, as a Redis restart or a
    // network cut would.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut admin)
        .await
        .unwrap();
    let tracking_id = list
        .lines()
        .find(|l| {
            l.split(' ')
                .any(|f| f.starts_with("flags=") && f.contains('t'))
        })
        .and_then(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .expect("a tracking client in CLIENT LIST")
        .to_owned();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&tracking_id)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(killed, 1);
    eventually("a subscribes again", async || stats(&a).subscriptions == 2).await;
    // What was kept before is gone: the next read is a fill, not a hit.
    let hits = stats(&a).hits;
    assert_eq!(a.load(&id).await.unwrap(), Some(sample("u")));
    assert_eq!((stats(&a).fills, stats(&a).hits), (2, hits));
}
