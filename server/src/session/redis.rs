//! Redis sessions: `SET key value EX ttl`, `GET`, `DEL`, with the key `prefix` + the id's
//! lookup half; the value is encrypted under a key derived from the id's secret half
//! ([`crate::crypto`]), so a Redis dump alone leaks no token. `SET NX PX` is the short
//! cross-replica refresh lock.
//!
//! The connection is lazy and short-fused (1 s to connect or answer, one retry): the redis
//! crate's defaults take ~10 s to give up on a dead port, which would hold every request.

use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{SessionData, SessionId, SessionStore, StoreError, decode, encode};

/// Connect and response timeout.
const TIMEOUT: Duration = Duration::from_secs(1);

/// Sessions in one Redis server.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    url: String,
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
    /// A store for `url` (`redis://host:port`). Does not connect yet; must be called inside
    /// a Tokio runtime.
    pub fn new(url: &str, prefix: impl Into<String>) -> Result<Self, StoreError> {
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
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Self {
            conn,
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
        let mut conn = self.conn.clone();
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
        let mut conn = self.conn.clone();
        conn.set_ex::<_, _, ()>(id.storage_key(&self.prefix), bytes, ttl.as_secs().max(1))
            .await
            .map_err(unavailable)
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        let _timer = crate::metrics::redis_timer("delete");
        let mut conn = self.conn.clone();
        conn.del::<_, ()>(id.storage_key(&self.prefix))
            .await
            .map_err(unavailable)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let _timer = crate::metrics::redis_timer("ping");
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn try_lock(&self, id: &SessionId, ttl: Duration) -> Result<bool, StoreError> {
        let _timer = crate::metrics::redis_timer("lock");
        let mut conn = self.conn.clone();
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let set: Option<String> = redis::cmd("SET")
            .arg(id.lock_key(&self.prefix))
            .arg("1")
            .arg("NX")
            .arg("PX")
            .arg(millis)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(set.is_some())
    }

    async fn unlock(&self, id: &SessionId) -> Result<(), StoreError> {
        let _timer = crate::metrics::redis_timer("unlock");
        let mut conn = self.conn.clone();
        conn.del::<_, ()>(id.lock_key(&self.prefix))
            .await
            .map_err(unavailable)
    }
}
