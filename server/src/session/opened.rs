//! Sessions already opened, so that a check does not derive the key, decrypt and decode the
//! same stored bytes again on every request of a session.
//!
//! The store is still read on every check (a session deleted or refreshed by another replica
//! is seen at once): what is skipped is only the work of opening bytes identical to bytes this
//! process has already opened with the same id. An entry is used only when both the stored
//! value (compared in full) and the secret half of the id (compared in constant time) are
//! those it was opened with; AES-GCM authenticated that pair when the entry was made, and the
//! same pair always opens to the same data. So a changed or forged value, or a cookie with
//! the right lookup half and a wrong secret half, misses and goes through the full open (and
//! fails it).
//!
//! What this costs: the plaintext of up to [`CAPACITY`] recently used sessions (with their
//! sealed values and secret halves) stays in extauth's memory, where it is during any check
//! anyway; a Redis dump still decrypts nothing. Entries go when their session is deleted
//! through this process, or when their shard is full (an arbitrary one is dropped).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};

use subtle::ConstantTimeEq as _;

use super::{SessionData, SessionId};

/// Shards (independent locks), chosen by the id's first byte.
const SHARDS: usize = 16;
/// Sessions kept per shard.
const PER_SHARD: usize = 256;
/// Sessions kept in all.
pub const CAPACITY: usize = SHARDS * PER_SHARD;

struct Entry {
    secret: Box<[u8]>,
    sealed: Box<[u8]>,
    data: Arc<SessionData>,
}

type Shard = Mutex<HashMap<[u8; 32], Entry>>;

static CACHE: LazyLock<Vec<Shard>> =
    LazyLock::new(|| (0..SHARDS).map(|_| Mutex::default()).collect());
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns the cache on or off for the whole process (on by default). Off, every read opens
/// the stored value in full: for benchmarks that measure that path.
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
    if !enabled {
        for shard in CACHE.iter() {
            lock(shard).clear();
        }
    }
}

fn lock(shard: &Shard) -> MutexGuard<'_, HashMap<[u8; 32], Entry>> {
    // A poisoned lock only means a panic mid-update of a plain map.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

fn shard(lookup: &[u8; 32]) -> &'static Shard {
    &CACHE[usize::from(lookup[0]) % SHARDS]
}

/// The data `sealed` opened to under `id` before, if it did.
pub(super) fn get(id: &SessionId, sealed: &[u8]) -> Option<SessionData> {
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    let lookup = id.lookup_part();
    let data = {
        let map = lock(shard(lookup));
        let entry = map.get(lookup)?;
        let same_secret: bool = entry.secret.ct_eq(id.secret_part()).into();
        if !same_secret || *entry.sealed != *sealed {
            return None;
        }
        Arc::clone(&entry.data)
    };
    Some((*data).clone())
}

/// Remembers that `sealed` opens to `data` under `id` (only call it with a pair that did, or
/// that was just sealed).
pub(super) fn put(id: &SessionId, sealed: &[u8], data: &SessionData) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let lookup = id.lookup_part();
    let entry = Entry {
        secret: id.secret_part().into(),
        sealed: sealed.into(),
        data: Arc::new(data.clone()),
    };
    let mut map = lock(shard(lookup));
    if map.len() >= PER_SHARD
        && !map.contains_key(lookup)
        && let Some(victim) = map.keys().next().copied()
    {
        map.remove(&victim);
    }
    map.insert(*lookup, entry);
}

/// Forgets the session of `id` (deleted).
pub(super) fn forget(id: &SessionId) {
    let lookup = id.lookup_part();
    lock(shard(lookup)).remove(lookup);
}

#[cfg(test)]
pub(super) fn contains(id: &SessionId) -> bool {
    lock(shard(id.lookup_part())).contains_key(id.lookup_part())
}
