//! [`SessionIndex`] on Redis: `SADD`/`EXPIRE` in one pipeline per set, `SMEMBERS` then one
//! `DEL` per session (single-key commands, so a Redis Cluster routes each), `SET NX EX` for
//! used logout tokens. Layout: [`crate::session::index`]. Every call goes through the store's
//! [`RedisStore::call`]: the same timeout, retry and topology handling as sessions.

use std::time::Duration;

use async_trait::async_trait;

use super::{RedisStore, Request};
use crate::session::index::{MAX_INDEXED, SessionIndex};
use crate::session::{SessionId, StoreError};

fn secs(ttl: Duration) -> u64 {
    ttl.as_secs().max(1)
}

#[async_trait]
impl SessionIndex for RedisStore {
    async fn add(&self, id: &SessionId, keys: &[String], ttl: Duration) -> Result<(), StoreError> {
        let member = id.storage_key("");
        for key in keys {
            let key = format!("{}{key}", self.prefix);
            let mut pipe = redis::pipe();
            pipe.cmd("SADD")
                .arg(&key)
                .arg(&member)
                .ignore()
                .cmd("EXPIRE")
                .arg(&key)
                .arg(secs(ttl))
                .ignore();
            self.call::<()>("index", Request::Pipe(&pipe)).await?;
        }
        Ok(())
    }

    async fn remove(&self, id: &SessionId, keys: &[String]) -> Result<(), StoreError> {
        let member = id.storage_key("");
        for key in keys {
            let mut cmd = redis::cmd("SREM");
            cmd.arg(format!("{}{key}", self.prefix)).arg(&member);
            self.call::<()>("index", Request::Cmd(&cmd)).await?;
        }
        Ok(())
    }

    async fn end_all(&self, key: &str) -> Result<usize, StoreError> {
        let key = format!("{}{key}", self.prefix);
        let mut members = redis::cmd("SMEMBERS");
        members.arg(&key);
        let members: Vec<String> = self.call("end_all", Request::Cmd(&members)).await?;
        for member in members.iter().take(MAX_INDEXED) {
            let mut del = redis::cmd("DEL");
            del.arg(format!("{}{member}", self.prefix));
            self.call::<()>("end_all", Request::Cmd(&del)).await?;
        }
        let mut del = redis::cmd("DEL");
        del.arg(&key);
        self.call::<()>("end_all", Request::Cmd(&del)).await?;
        Ok(members.len())
    }

    async fn first_use(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(format!("{}{key}", self.prefix))
            .arg("1")
            .arg("NX")
            .arg("EX")
            .arg(secs(ttl));
        let set: Option<String> = self.call("first_use", Request::Cmd(&cmd)).await?;
        Ok(set.is_some())
    }

    async fn forget_use(&self, key: &str) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(format!("{}{key}", self.prefix));
        self.call::<()>("forget_use", Request::Cmd(&cmd)).await
    }
}
