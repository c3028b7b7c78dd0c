//! [`SessionIndex`] on Redis: `SADD`/`EXPIRE` in one pipeline per set, `SMEMBERS` then one
//! `DEL` per session (single-key commands, so a Redis Cluster routes each), `SET NX EX` for
//! used logout tokens. Layout: [`crate::session::index`].

use std::time::Duration;

use async_trait::async_trait;

use super::{RedisStore, unavailable};
use crate::session::index::{MAX_INDEXED, SessionIndex};
use crate::session::{SessionId, StoreError};

fn secs(ttl: Duration) -> u64 {
    ttl.as_secs().max(1)
}

#[async_trait]
impl SessionIndex for RedisStore {
    async fn add(&self, id: &SessionId, keys: &[String], ttl: Duration) -> Result<(), StoreError> {
        let _timer = crate::metrics::redis_timer("index");
        let member = id.storage_key("");
        let mut lease = self.pool.take()?;
        for key in keys {
            let key = format!("{}{key}", self.prefix);
            redis::pipe()
                .cmd("SADD")
                .arg(&key)
                .arg(&member)
                .ignore()
                .cmd("EXPIRE")
                .arg(&key)
                .arg(secs(ttl))
                .ignore()
                .query_async::<()>(&mut lease.conn)
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    async fn remove(&self, id: &SessionId, keys: &[String]) -> Result<(), StoreError> {
        let _timer = crate::metrics::redis_timer("index");
        let member = id.storage_key("");
        let mut lease = self.pool.take()?;
        for key in keys {
            redis::cmd("SREM")
                .arg(format!("{}{key}", self.prefix))
                .arg(&member)
                .query_async::<()>(&mut lease.conn)
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    async fn end_all(&self, key: &str) -> Result<usize, StoreError> {
        let _timer = crate::metrics::redis_timer("end_all");
        let key = format!("{}{key}", self.prefix);
        let mut lease = self.pool.take()?;
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(&key)
            .query_async(&mut lease.conn)
            .await
            .map_err(unavailable)?;
        for member in members.iter().take(MAX_INDEXED) {
            redis::cmd("DEL")
                .arg(format!("{}{member}", self.prefix))
                .query_async::<()>(&mut lease.conn)
                .await
                .map_err(unavailable)?;
        }
        redis::cmd("DEL")
            .arg(&key)
            .query_async::<()>(&mut lease.conn)
            .await
            .map_err(unavailable)?;
        Ok(members.len())
    }

    async fn first_use(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let _timer = crate::metrics::redis_timer("first_use");
        let mut lease = self.pool.take()?;
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("{}{key}", self.prefix))
            .arg("1")
            .arg("NX")
            .arg("EX")
            .arg(secs(ttl))
            .query_async(&mut lease.conn)
            .await
            .map_err(unavailable)?;
        Ok(set.is_some())
    }

    async fn forget_use(&self, key: &str) -> Result<(), StoreError> {
        let mut lease = self.pool.take()?;
        redis::cmd("DEL")
            .arg(format!("{}{key}", self.prefix))
            .query_async::<()>(&mut lease.conn)
            .await
            .map_err(unavailable)
    }
}
