//! [`SessionIndex`] in process, with the same semantics as Redis's (sets that expire with
//! their newest session, used keys that expire), on the injected clock.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;

use super::MemoryStore;
use crate::session::index::SessionIndex;
use crate::session::{SessionId, StoreError};

fn until(now: i64, ttl: Duration) -> i64 {
    now.saturating_add(i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX))
}

#[async_trait]
impl SessionIndex for MemoryStore {
    async fn add(&self, id: &SessionId, keys: &[String], ttl: Duration) -> Result<(), StoreError> {
        let now = self.clock.now();
        let member = id.storage_key("");
        let mut inner = self.lock();
        inner.sets.retain(|_, (_, exp)| *exp > now);
        for key in keys {
            let entry = inner
                .sets
                .entry(key.clone())
                .or_insert_with(|| (HashSet::new(), 0));
            entry.0.insert(member.clone());
            entry.1 = until(now, ttl);
        }
        Ok(())
    }

    async fn remove(&self, id: &SessionId, keys: &[String]) -> Result<(), StoreError> {
        let member = id.storage_key("");
        let mut inner = self.lock();
        for key in keys {
            if let Some((set, _)) = inner.sets.get_mut(key) {
                set.remove(&member);
            }
        }
        Ok(())
    }

    async fn end_all(&self, key: &str) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let Some((members, exp)) = inner.sets.remove(key) else {
            return Ok(0);
        };
        if exp <= now {
            return Ok(0);
        }
        for member in &members {
            inner.entries.remove(member);
        }
        Ok(members.len())
    }

    async fn first_use(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        inner.used.retain(|_, exp| *exp > now);
        if inner.used.contains_key(key) {
            return Ok(false);
        }
        inner.used.insert(key.to_owned(), until(now, ttl));
        Ok(true)
    }

    async fn forget_use(&self, key: &str) -> Result<(), StoreError> {
        self.lock().used.remove(key);
        Ok(())
    }
}
