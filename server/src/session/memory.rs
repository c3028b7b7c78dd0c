//! In-process sessions, for tests and single-replica runs without Redis. Expiry follows the
//! injected clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::{SessionData, SessionId, SessionStore, StoreError, decode, encode, forget};
use crate::clock::SharedClock;

/// Sweep expired entries every this many writes, so the map cannot grow without bound.
const SWEEP_EVERY: usize = 1024;

/// A `HashMap` behind a std `Mutex` (never held across `.await`).
#[derive(Debug)]
pub struct MemoryStore {
    clock: SharedClock,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, (Arc<[u8]>, i64)>,
    writes: usize,
    /// [`index`]: session lookup keys by index key, with the set's expiry.
    sets: HashMap<String, (std::collections::HashSet<String>, i64)>,
    /// [`index`]: used keys (logout-token `jti`s) with their expiry.
    used: HashMap<String, i64>,
}

mod index;

impl MemoryStore {
    /// An empty store.
    pub fn new(clock: SharedClock) -> Self {
        Self {
            clock,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another request panicked mid-update of a plain map.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Number of live entries (for tests).
    pub fn len(&self) -> usize {
        let now = self.clock.now();
        self.lock()
            .entries
            .values()
            .filter(|(_, exp)| *exp > now)
            .count()
    }

    /// Whether there is no live entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn load(&self, id: &SessionId) -> Result<Option<SessionData>, StoreError> {
        let now = self.clock.now();
        let bytes = {
            let inner = self.lock();
            match inner.entries.get(&id.storage_key("")) {
                Some((bytes, exp)) if *exp > now => Arc::clone(bytes),
                _ => return Ok(None),
            }
        };
        decode(id, &bytes).map(Some)
    }

    async fn save(
        &self,
        id: &SessionId,
        data: &SessionData,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let bytes = encode(id, data)?;
        let now = self.clock.now();
        let exp = now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
        let mut inner = self.lock();
        inner.writes += 1;
        if inner.writes.is_multiple_of(SWEEP_EVERY) {
            inner.entries.retain(|_, (_, e)| *e > now);
        }
        inner
            .entries
            .insert(id.storage_key(""), (bytes.into(), exp));
        Ok(())
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.lock().entries.remove(&id.storage_key(""));
        forget(id);
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn index(&self) -> Option<&dyn crate::session::index::SessionIndex> {
        Some(self)
    }
}
