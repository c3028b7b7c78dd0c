//! `options.clientSideCache`: sessions kept in extauth's memory between checks, with Redis
//! telling extauth when one changes ([server-assisted client-side caching][csc], RESP3
//! `CLIENT TRACKING ON BCAST PREFIX <keyPrefix>`), so that a check of a session already seen
//! makes no round trip to Redis.
//!
//! What keeps it right:
//! - One dedicated tracking connection per store receives an `invalidate` message for every
//!   write, delete or expiry of a key under the prefix, by any client (other replicas
//!   included); the entry goes. A flush (`FLUSHALL`) empties the cache.
//! - An entry is only made from a read that started while the tracking connection was
//!   subscribed and during which no invalidation arrived (a *ticket*, checked at insert):
//!   a value read just before a write cannot stay behind the write's invalidation.
//! - The tracking connection lost (reset, Redis restarted, no answer to the periodic
//!   `PING`): every entry goes and nothing is cached until it has subscribed again; reads
//!   go to Redis meanwhile. A reset or a Redis restart is seen at once; a silent network
//!   cut (no reset) only by the next `PING` failing, up to [`PING_EVERY`] + `commandTimeout`
//!   later, and writes by others in that window are not seen here until then.
//! - Any invalidation refuses every ticket taken before it (not only the key's): under many
//!   writes fewer reads fill the cache, never a stale one.
//! - An entry lives at most until the key's TTL (`PTTL`, read with the value) and at most
//!   [`MAX_AGE`]; this process's own writes and deletes drop the entry at once.
//! - Reads that decide what to send to the IdP (the refresh paths:
//!   [`super::SessionStore::load_fresh`]) always go to Redis.
//!
//! What it costs: a write on another replica is seen here when its invalidation arrives
//! (one push over loopback or the LAN, normally well under a millisecond), not at the next
//! read; the plaintext of up to [`CAPACITY`] sessions stays in memory, as with
//! [`crate::session::opened`]. Standalone Redis only.
//!
//! [csc]: https://redis.io/docs/latest/develop/reference/client-side-caching/

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use redis::{AsyncConnectionConfig, PushInfo, PushKind, Value};
use subtle::ConstantTimeEq as _;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::session::{SessionData, SessionId};

#[cfg(test)]
mod tests;

/// Entries kept (an arbitrary one is dropped beyond): a Keycloak-sized session is about
/// 3.5 KB in memory, so about 56 MB when full.
pub const CAPACITY: usize = 16_384;
/// The longest an entry lives, whatever the key's TTL.
pub const MAX_AGE: Duration = Duration::from_secs(300);
/// How often the tracking connection is pinged (a dead one is replaced).
const PING_EVERY: Duration = Duration::from_secs(1);
/// Wait before connecting again after a failure (doubles up to [`RETRY_MAX`]).
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);

struct Entry {
    secret: Box<[u8]>,
    data: SessionData,
    until: Instant,
}

/// What a read must show at insert time for its value to be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ticket(u64);

/// Counts, for tests and the benchmark report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Reads answered from memory.
    pub hits: u64,
    /// Entries made from a Redis read.
    pub fills: u64,
    /// Invalidation messages received (a flush counts once).
    pub invalidations: u64,
    /// Times the tracking connection subscribed (1 after the first connect).
    pub subscriptions: u64,
    /// Whether the tracking connection is subscribed now.
    pub live: bool,
}

/// The cache and its tracking connection; dropping the last store stops the connection.
pub(super) struct Tracking {
    entries: Mutex<HashMap<String, Entry>>,
    /// Bumped by every invalidation, flush, own write and (re)subscription.
    epoch: AtomicU64,
    live: AtomicBool,
    hits: AtomicU64,
    fills: AtomicU64,
    invalidations: AtomicU64,
    subscriptions: AtomicU64,
}

impl std::fmt::Debug for Tracking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracking")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Tracking {
    /// Starts the tracking connection on `client` (RESP3) for keys under `prefix`; must be
    /// called inside a Tokio runtime.
    pub(super) fn start(client: redis::Client, prefix: String, timeout: Duration) -> Arc<Self> {
        let tracking = Arc::new(Self {
            entries: Mutex::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            live: AtomicBool::new(false),
            hits: AtomicU64::new(0),
            fills: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            subscriptions: AtomicU64::new(0),
        });
        tokio::spawn(run(Arc::downgrade(&tracking), client, prefix, timeout));
        tracking
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // A poisoned lock only means a panic mid-update of a plain map.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The session kept for `key` under `id`'s secret half, if any and still fresh.
    pub(super) fn get(&self, key: &str, id: &SessionId) -> Option<SessionData> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        let map = self.lock();
        let entry = map.get(key)?;
        let same_secret: bool = entry.secret.ct_eq(id.secret_part()).into();
        if !same_secret || entry.until <= Instant::now() {
            return None;
        }
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(entry.data.clone())
    }

    /// Taken before a read whose value may be kept: `None` while not subscribed.
    pub(super) fn ticket(&self) -> Option<Ticket> {
        // Epoch first: a resubscription between the two loads bumps it, and the insert
        // then refuses the ticket.
        let epoch = self.epoch.load(Ordering::Acquire);
        self.live.load(Ordering::Acquire).then_some(Ticket(epoch))
    }

    /// Keeps `data` (read for `key` with `ticket`, the key living `ttl` more) unless
    /// anything was invalidated since the ticket.
    pub(super) fn put(
        &self,
        key: &str,
        id: &SessionId,
        data: &SessionData,
        ttl: Duration,
        ticket: Ticket,
    ) {
        let until = Instant::now() + ttl.min(MAX_AGE);
        let mut map = self.lock();
        // Checked under the lock that invalidations also take: none can slip in between.
        if self.epoch.load(Ordering::Acquire) != ticket.0 || !self.live.load(Ordering::Acquire) {
            return;
        }
        if map.len() >= CAPACITY
            && !map.contains_key(key)
            && let Some(victim) = map.keys().next().cloned()
        {
            map.remove(&victim);
        }
        map.insert(
            key.to_owned(),
            Entry {
                secret: id.secret_part().into(),
                data: data.clone(),
                until,
            },
        );
        self.fills.fetch_add(1, Ordering::Relaxed);
    }

    /// Drops `key` (this process wrote or deleted it) and refuses older tickets.
    pub(super) fn forget(&self, key: &str) {
        let mut map = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        map.remove(key);
    }

    /// [`Tracking::forget`] when the guard drops: around a write of `key`, whichever way
    /// the write ends (answered, failed, timed out: it may still have been applied).
    pub(super) fn forget_on_drop<'a>(&'a self, key: &'a str) -> ForgetOnDrop<'a> {
        ForgetOnDrop {
            tracking: self,
            key,
        }
    }

    fn invalidate(&self, keys: Option<Vec<String>>) {
        let mut map = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.invalidations.fetch_add(1, Ordering::Relaxed);
        match keys {
            Some(keys) => {
                for key in keys {
                    map.remove(&key);
                }
            }
            None => map.clear(),
        }
    }

    /// Subscribed (`true`) or lost (`false`): either way nothing read before is trusted.
    fn set_live(&self, live: bool) {
        let mut map = self.lock();
        map.clear();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.live.store(live, Ordering::Release);
        if live {
            self.subscriptions.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            fills: self.fills.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
            subscriptions: self.subscriptions.load(Ordering::Relaxed),
            live: self.live.load(Ordering::Acquire),
        }
    }
}

/// See [`Tracking::forget_on_drop`].
pub(super) struct ForgetOnDrop<'a> {
    tracking: &'a Tracking,
    key: &'a str,
}

impl Drop for ForgetOnDrop<'_> {
    fn drop(&mut self) {
        self.tracking.forget(self.key);
    }
}

/// The keys of an `invalidate` push: `None` for a flush (a nil instead of the array).
fn invalidated_keys(push: &PushInfo) -> Option<Vec<String>> {
    match push.data.first() {
        Some(Value::Array(keys)) => Some(
            keys.iter()
                .filter_map(|k| match k {
                    Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
                    Value::SimpleString(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
        ),
        _ => None,
    }
}

/// The tracking connection, for as long as the cache lives: subscribe, apply pushes, ping;
/// on any failure drop everything kept and subscribe again.
async fn run(tracking: Weak<Tracking>, client: redis::Client, prefix: String, timeout: Duration) {
    let mut backoff = RETRY_MIN;
    loop {
        let outcome = session(&tracking, &client, &prefix, timeout).await;
        match tracking.upgrade() {
            Some(t) => t.set_live(false),
            None => return,
        }
        let Ended::Lost(why) = outcome else {
            return;
        };
        crate::metrics::record_error_kind("redis_tracking_lost");
        tracing::warn!(error = %why, "Redis client-side cache: tracking connection lost; reading from Redis until it is back");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RETRY_MAX);
        if tracking.strong_count() == 0 {
            return;
        }
    }
}

enum Ended {
    /// The store is gone.
    Dropped,
    Lost(String),
}

async fn session(
    tracking: &Weak<Tracking>,
    client: &redis::Client,
    prefix: &str,
    timeout: Duration,
) -> Ended {
    let (tx, mut rx) = mpsc::unbounded_channel::<PushInfo>();
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_push_sender(tx);
    let mut conn = match client
        .get_multiplexed_async_connection_with_config(&config)
        .await
    {
        Ok(conn) => conn,
        Err(e) => return Ended::Lost(e.to_string()),
    };
    let mut on = redis::cmd("CLIENT");
    on.arg("TRACKING").arg("ON").arg("BCAST");
    if !prefix.is_empty() {
        on.arg("PREFIX").arg(prefix);
    }
    if let Err(e) = on.query_async::<()>(&mut conn).await {
        return Ended::Lost(format!("CLIENT TRACKING ON BCAST: {e}"));
    }
    match tracking.upgrade() {
        Some(t) => t.set_live(true),
        None => return Ended::Dropped,
    }
    tracing::info!("Redis client-side cache: tracking on");
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        tokio::select! {
            push = rx.recv() => {
                let Some(push) = push else {
                    return Ended::Lost("push channel closed".into());
                };
                let Some(t) = tracking.upgrade() else {
                    return Ended::Dropped;
                };
                match push.kind {
                    PushKind::Invalidate => t.invalidate(invalidated_keys(&push)),
                    PushKind::Disconnection => return Ended::Lost("disconnected".into()),
                    _ => {}
                }
            }
            _ = ping.tick() => {
                if tracking.strong_count() == 0 {
                    return Ended::Dropped;
                }
                if let Err(e) = redis::cmd("PING").query_async::<String>(&mut conn).await {
                    return Ended::Lost(format!("PING: {e}"));
                }
            }
        }
    }
}
