//! Redis sessions: `SET key value EX ttl`, `GET`, `DEL`, with the key `prefix` + the id's
//! lookup half; the value is encrypted under a key derived from the id's secret half
//! ([`crate::crypto`]), so a Redis dump alone leaks no token. `SET NX PX` is the short
//! cross-replica refresh lock.
//!
//! Connections are lazy and short-fused (1 s to connect or answer, one retry): the redis
//! crate's defaults take ~10 s to give up on a dead port, which would hold every request.
//! `options.poolSize` bounds them: each is multiplexed, a command takes an idle one, a new
//! one opens only while every open one is busy and fewer than `poolSize` are open, and past
//! that the least busy carries it (so the pool grows with concurrency, as go-redis's does).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{SessionData, SessionId, SessionStore, StoreError, decode, encode};

mod index;

/// Connect and response timeout.
const TIMEOUT: Duration = Duration::from_secs(1);

/// Sessions in one Redis server.
#[derive(Clone)]
pub struct RedisStore {
    pool: Arc<Pool>,
    prefix: String,
    url: String,
}

/// Up to `slots.len()` multiplexed connections, opened on demand.
struct Pool {
    client: redis::Client,
    config: ConnectionManagerConfig,
    slots: Vec<Slot>,
    /// How many slots are in use (a prefix of `slots`).
    opened: AtomicUsize,
}

struct Slot {
    conn: OnceLock<ConnectionManager>,
    busy: AtomicUsize,
}

/// A connection taken from the pool; its slot counts as busy until this is dropped.
struct Lease<'a> {
    conn: ConnectionManager,
    busy: &'a AtomicUsize,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Pool {
    fn take(&self) -> Result<Lease<'_>, StoreError> {
        // `opened` only grows, and never past `slots.len()` (the `fetch_update` below).
        let opened = &self.slots[..self.opened.load(Ordering::Acquire)];
        let busy = |slot: &&Slot| slot.busy.load(Ordering::Acquire);
        let slot = match opened.iter().find(|slot| busy(slot) == 0) {
            Some(idle) => idle,
            None => match self
                .opened
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < self.slots.len()).then_some(n + 1)
                }) {
                Ok(n) => &self.slots[n],
                // Full: the least busy connection carries it (`slots` is never empty).
                Err(_) => self.slots.iter().min_by_key(busy).unwrap_or(&self.slots[0]),
            },
        };
        let conn = match slot.conn.get() {
            Some(conn) => conn.clone(),
            None => {
                let conn = ConnectionManager::new_lazy_with_config(
                    self.client.clone(),
                    self.config.clone(),
                )
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                slot.conn.get_or_init(|| conn).clone()
            }
        };
        slot.busy.fetch_add(1, Ordering::AcqRel);
        Ok(Lease {
            conn,
            busy: &slot.busy,
        })
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl RedisStore {
    /// A store for `url` (`redis://host:port`) over one connection. Does not connect yet;
    /// must be called inside a Tokio runtime.
    pub fn new(url: &str, prefix: impl Into<String>) -> Result<Self, StoreError> {
        Self::with_pool(url, prefix, 1)
    }

    /// A store over at most `pool_size` connections (`options.poolSize`, at least 1), opened
    /// as concurrency needs them (see the module docs). Must be called inside a Tokio runtime.
    pub fn with_pool(
        url: &str,
        prefix: impl Into<String>,
        pool_size: usize,
    ) -> Result<Self, StoreError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StoreError::Unavailable(
                "the Redis store must be created inside a Tokio runtime".into(),
            ));
        }
        let client =
            redis::Client::open(url).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let pool = Pool {
            client,
            config,
            slots: (0..pool_size.max(1))
                .map(|_| Slot {
                    conn: OnceLock::new(),
                    busy: AtomicUsize::new(0),
                })
                .collect(),
            opened: AtomicUsize::new(0),
        };
        // The first connection is made now (still lazy: nothing is sent until a command),
        // so that an unusable URL is an error at start, not at the first request.
        pool.take()?;
        Ok(Self {
            pool: Arc::new(pool),
            prefix: prefix.into(),
            url: url.to_owned(),
        })
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    crate::metrics::record_error_kind("redis");
    StoreError::Unavailable(e.to_string())
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn load(&self, id: &SessionId) -> Result<Option<SessionData>, StoreError> {
        let _timer = crate::metrics::redis_timer("load");
        let mut lease = self.pool.take()?;
        let conn = &mut lease.conn;
        let bytes: Option<Vec<u8>> = conn
            .get(id.storage_key(&self.prefix))
            .await
            .map_err(unavailable)?;
        bytes.map(|b| decode(id, &b)).transpose()
    }

    async fn save(
        &self,
        id: &SessionId,
        data: &SessionData,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let _timer = crate::metrics::redis_timer("save");
        let bytes = encode(id, data)?;
        let mut lease = self.pool.take()?;
        let conn = &mut lease.conn;
        conn.set_ex::<_, _, ()>(id.storage_key(&self.prefix), bytes, ttl.as_secs().max(1))
            .await
            .map_err(unavailable)
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        let _timer = crate::metrics::redis_timer("delete");
        let mut lease = self.pool.take()?;
        let conn = &mut lease.conn;
        conn.del::<_, ()>(id.storage_key(&self.prefix))
            .await
            .map_err(unavailable)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let _timer = crate::metrics::redis_timer("ping");
        let mut lease = self.pool.take()?;
        let conn = &mut lease.conn;
        redis::cmd("PING")
            .query_async::<String>(conn)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn try_lock(&self, id: &SessionId, ttl: Duration) -> Result<bool, StoreError> {
        let _timer = crate::metrics::redis_timer("lock");
        let mut lease = self.pool.take()?;
        let conn = &mut lease.conn;
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let set: Option<String> = redis::cmd("SET")
            .arg(id.lock_key(&self.prefix))
            .arg("1")
            .arg("NX")
            .arg("PX")
            .arg(millis)
            .query_async(conn)
            .await
            .map_err(unavailable)?;
        Ok(set.is_some())
    }

    async fn unlock(&self, id: &SessionId) -> Result<(), StoreError> {
        let _timer = crate::metrics::redis_timer("unlock");
        let mut lease = self.pool.take()?;
        let conn = &mut lease.conn;
        conn.del::<_, ()>(id.lock_key(&self.prefix))
            .await
            .map_err(unavailable)
    }

    fn index(&self) -> Option<&dyn crate::session::index::SessionIndex> {
        Some(self)
    }
}
