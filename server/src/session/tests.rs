//! One behaviour suite, run against every store.

use std::sync::Arc;
use std::time::Duration;

use super::memory::MemoryStore;
use super::redis::RedisStore;
use super::*;
use crate::clock::ManualClock;
use crate::testing::RedisProcess;

pub(crate) fn sample(subject: &str) -> SessionData {
    SessionData {
        id_token: "header.payload.signature".into(),
        access_token: "at".into(),
        refresh_token: Some("rt".into()),
        expires_at: 2_000_000_000,
        subject: subject.into(),
        created_at: 1_700_000_000,
    }
}

async fn save_then_load_round_trips(store: &dyn SessionStore) {
    let id = SessionId::generate();
    store
        .save(&id, &sample("u1"), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(store.load(&id).await.unwrap(), Some(sample("u1")));
}

async fn unknown_id_is_no_session(store: &dyn SessionStore) {
    assert_eq!(store.load(&SessionId::generate()).await.unwrap(), None);
}

async fn delete_removes_only_that_session(store: &dyn SessionStore) {
    let (a, b) = (SessionId::generate(), SessionId::generate());
    store
        .save(&a, &sample("a"), Duration::from_secs(60))
        .await
        .unwrap();
    store
        .save(&b, &sample("b"), Duration::from_secs(60))
        .await
        .unwrap();
    store.delete(&a).await.unwrap();
    assert_eq!(store.load(&a).await.unwrap(), None);
    assert_eq!(store.load(&b).await.unwrap(), Some(sample("b")));
}

async fn run_suite(store: &dyn SessionStore) {
    store.ping().await.unwrap();
    save_then_load_round_trips(store).await;
    unknown_id_is_no_session(store).await;
    delete_removes_only_that_session(store).await;
}

#[tokio::test]
async fn memory_store_passes_the_suite() {
    run_suite(&MemoryStore::new(Arc::new(ManualClock::at_system_time()))).await;
}

#[tokio::test]
async fn redis_store_passes_the_suite() {
    let redis = RedisProcess::start().expect("this test needs redis-server");
    run_suite(&RedisStore::new(&redis.url(), "test:").unwrap()).await;
}

#[tokio::test]
async fn memory_sessions_expire_with_the_clock() {
    let clock = ManualClock::new(1_000);
    let store = MemoryStore::new(Arc::new(clock.clone()));
    let id = SessionId::generate();
    store
        .save(&id, &sample("u"), Duration::from_secs(30))
        .await
        .unwrap();
    clock.advance(29);
    assert!(store.load(&id).await.unwrap().is_some());
    clock.advance(1);
    assert!(store.load(&id).await.unwrap().is_none());
}

#[tokio::test]
async fn redis_sessions_get_the_ttl_and_prefix() {
    let redis = RedisProcess::start().expect("this test needs redis-server");
    let store = RedisStore::new(&redis.url(), "pre:").unwrap();
    let id = SessionId::generate();
    store
        .save(&id, &sample("u"), Duration::from_secs(2_592_000))
        .await
        .unwrap();
    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = ::redis::cmd("TTL")
        .arg(id.storage_key("pre:"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((2_591_990..=2_592_000).contains(&ttl), "ttl {ttl}");
    assert!(id.storage_key("pre:").starts_with("pre:"));
}

#[tokio::test]
async fn a_redis_dump_alone_reveals_neither_tokens_nor_the_session_id() {
    let redis = RedisProcess::start().expect("this test needs redis-server");
    let store = RedisStore::new(&redis.url(), "").unwrap();
    let id = SessionId::generate();
    let data = SessionData {
        id_token: "eyJ-very-recognizable-id-token".into(),
        access_token: "recognizable-access-token".into(),
        refresh_token: Some("recognizable-refresh-token".into()),
        ..sample("alice@example.com")
    };
    store
        .save(&id, &data, Duration::from_secs(60))
        .await
        .unwrap();
    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1);
    assert!(
        !keys[0].contains(id.expose()),
        "the key is not the cookie value"
    );
    let raw: Vec<u8> = ::redis::cmd("GET")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&raw);
    for needle in ["recognizable", "alice", "eyJ", "id_token"] {
        assert!(!text.contains(needle), "{needle} leaked");
    }
    // With the cookie, it decrypts.
    assert_eq!(store.load(&id).await.unwrap(), Some(data));
    // A session id with the same lookup half but another secret half decrypts nothing.
    let forged = forged_twin(&id);
    assert_eq!(forged.storage_key(""), id.storage_key(""));
    assert!(matches!(
        store.load(&forged).await,
        Err(StoreError::Corrupt(_))
    ));
}

/// An id whose lookup half equals `id`'s, with a different secret half.
fn forged_twin(id: &SessionId) -> SessionId {
    let mut bytes = data_encoding::BASE32
        .decode(id.expose().as_bytes())
        .unwrap();
    bytes[63] ^= 0xff;
    SessionId::parse(&data_encoding::BASE32.encode(&bytes)).unwrap()
}

#[tokio::test]
async fn redis_outage_is_an_error_not_a_missing_session_and_keeps_data() {
    let mut redis = RedisProcess::start().expect("this test needs redis-server");
    let store = RedisStore::new(&redis.url(), "").unwrap();
    let id = SessionId::generate();
    store
        .save(&id, &sample("u"), Duration::from_secs(60))
        .await
        .unwrap();
    redis.stop();
    let started = std::time::Instant::now();
    let err = store.load(&id).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    // Fails fast rather than holding the request for the crate's ~10 s default.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// Connections to `redis` other than the one asking (`CLIENT LIST` names itself).
async fn other_clients(redis: &RedisProcess) -> usize {
    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let list: String = ::redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    list.lines()
        .filter(|l| !l.contains("cmd=client|list"))
        .count()
}

#[tokio::test]
async fn the_pool_grows_with_concurrency_up_to_pool_size_and_no_further() {
    let redis = RedisProcess::start().expect("this test needs redis-server");
    let store = RedisStore::with_pool(&redis.url(), "pool:", 3).unwrap();
    let id = SessionId::generate();
    // One at a time: the first connection is always idle again, no second one opens.
    for _ in 0..5 {
        assert_eq!(store.load(&id).await.unwrap(), None);
    }
    assert_eq!(other_clients(&redis).await, 1);
    // Twenty at once: every open connection is busy when the next command comes, so the
    // pool opens up to its size, then shares them.
    let loads = (0..20).map(|_| store.load(&id));
    for outcome in futures::future::join_all(loads).await {
        assert_eq!(outcome.unwrap(), None);
    }
    assert_eq!(other_clients(&redis).await, 3);
}

#[tokio::test]
async fn a_value_sealed_outside_a_store_is_loaded_by_the_store() {
    let redis = RedisProcess::start().expect("this test needs redis-server");
    let store = RedisStore::new(&redis.url(), "bulk:").unwrap();
    let id = SessionId::generate();
    let data = sample("bulk-user");
    let value = super::sealed_value(&id, &data).unwrap();
    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    ::redis::cmd("SET")
        .arg(id.storage_key("bulk:"))
        .arg(&value)
        .arg("EX")
        .arg(60)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    assert_eq!(store.load(&id).await.unwrap(), Some(data.clone()));
    assert_eq!(super::open_value(&id, &value).unwrap(), data);
    assert!(matches!(
        super::open_value(&SessionId::generate(), &value),
        Err(StoreError::Corrupt(_))
    ));
}

async fn redis_set(redis: &RedisProcess, key: &str, value: &[u8]) {
    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    ::redis::cmd("SET")
        .arg(key)
        .arg(value)
        .arg("EX")
        .arg(60)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_session_written_by_an_older_extauth_is_still_read() {
    let redis = RedisProcess::start().expect("this test needs redis-server");
    let store = RedisStore::new(&redis.url(), "old:").unwrap();
    let id = SessionId::generate();
    let data = sample("from-v1");
    redis_set(
        &redis,
        &id.storage_key("old:"),
        &super::seal_v1(&id, &data).unwrap(),
    )
    .await;
    assert_eq!(store.load(&id).await.unwrap(), Some(data));
}

#[tokio::test]
async fn a_value_changed_in_the_store_is_opened_anew_not_served_from_memory() {
    let redis = RedisProcess::start().expect("this test needs redis-server");
    let store = RedisStore::new(&redis.url(), "chg:").unwrap();
    let id = SessionId::generate();
    store
        .save(&id, &sample("before"), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(store.load(&id).await.unwrap(), Some(sample("before")));
    assert!(super::opened::contains(&id));
    // Another replica refreshed the session: the new value is read.
    let key = id.storage_key("chg:");
    redis_set(
        &redis,
        &key,
        &super::sealed_value(&id, &sample("after")).unwrap(),
    )
    .await;
    assert_eq!(store.load(&id).await.unwrap(), Some(sample("after")));
    // The value was tampered with: it fails authentication, whatever was opened before.
    let mut tampered = super::sealed_value(&id, &sample("after")).unwrap();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    redis_set(&redis, &key, &tampered).await;
    assert!(matches!(store.load(&id).await, Err(StoreError::Corrupt(_))));
    // Deleted elsewhere: gone.
    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    ::redis::cmd("DEL")
        .arg(&key)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    assert_eq!(store.load(&id).await.unwrap(), None);
}

#[tokio::test]
async fn a_deleted_session_is_not_kept_opened() {
    let store = MemoryStore::new(Arc::new(ManualClock::new(1_700_000_000)));
    let id = SessionId::generate();
    store
        .save(&id, &sample("gone"), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(store.load(&id).await.unwrap(), Some(sample("gone")));
    assert!(super::opened::contains(&id));
    store.delete(&id).await.unwrap();
    assert!(!super::opened::contains(&id));
    assert_eq!(store.load(&id).await.unwrap(), None);
}
