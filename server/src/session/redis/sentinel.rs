//! The master behind Redis Sentinel, followed across failovers.
//!
//! The master's address comes from `SENTINEL get-master-addr-by-name` (the sentinels in
//! order, the first that answers; each bounded by what is left of the call's timeout), and
//! the node is checked with `ROLE` before use (a sentinel may name the old master for a
//! moment after a switch). Connections are plain multiplexed ones that never reconnect by
//! themselves: when one fails in a way a master switch explains (reset or refused
//! connection, `READONLY`, `LOADING`, `MASTERDOWN`), [`Sentinel::forget`] drops the whole
//! set, and the next call resolves the master again. The redis crate's own Sentinel client
//! is not used: it does not move open connections after a switch (redis-rs#1438).
//!
//! A graceful failover (`SENTINEL FAILOVER`) gives no error at all: the old master stays a
//! writable master until the sentinels turn it into a replica, about ten seconds later, and
//! then drops what was written to it meanwhile (its full sync from the new master). So the
//! sentinels are also asked every [`WATCH_INTERVAL`] ([`Sentinel::check_master`]): when they
//! name another master than the one in use, it is dropped and the next call resolves again.
//!
//! Between a switch and this process's next check, another replica may already write new
//! sessions to the new master while this one still reads the old: a session that exists
//! would be missed (a 302 to log in). So a read that finds nothing is confirmed first
//! ([`Sentinel::moved_since`]): by a check of the sentinels that started after the read
//! (shared by the misses that wait for it, at most one per [`MISS_CHECK_SPACING`]); when the
//! master moved, the read is made again on the new one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError};
use tokio::time::Instant;

use super::connect;
use super::pool::{Lease, Pool};
use crate::config::{HostPort, RedisAuth, RedisConfig, RedisTls};
use crate::session::StoreError;

/// How often the sentinels are asked whether the master moved (besides after an error).
pub(super) const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// The least time between two checks of the sentinels made to confirm a read that found
/// nothing (so that a flood of unknown cookies asks the sentinels at most 100 times a
/// second; a miss waits at most this long, plus one sentinel round trip).
pub(super) const MISS_CHECK_SPACING: Duration = Duration::from_millis(10);

/// Where a call started, to tell afterwards whether the master may have moved under it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mark {
    at: Instant,
    switches: u64,
}

/// A resolved master and its connections.
pub(super) struct Master {
    pub(super) addr: HostPort,
    client: redis::Client,
    pool: Pool<MultiplexedConnection>,
}

/// The Sentinel topology of one store.
pub(super) struct Sentinel {
    master_name: String,
    sentinels: Vec<(HostPort, redis::Client)>,
    tls: Option<RedisTls>,
    auth: RedisAuth,
    db: u32,
    pool_size: usize,
    /// `commandTimeout`: the response bound of every connection.
    timeout: std::time::Duration,
    current: Mutex<Option<Arc<Master>>>,
    /// One resolution at a time: the others wait for its outcome.
    resolving: tokio::sync::Mutex<()>,
    /// How many times a master in use was dropped (a switch, or a failure).
    switches: AtomicU64,
    /// When the last check confirming a miss started; one such check at a time.
    miss_check: tokio::sync::Mutex<Option<Instant>>,
    /// Until when a durable save's long wait for a switch is skipped (see
    /// `RedisStore::master_moved_after_unacknowledged`).
    replica_down_until: Mutex<Option<Instant>>,
}

/// Why no master could be had: every sentinel's and the named node's reason.
fn unavailable(text: String) -> StoreError {
    StoreError::Unavailable(text)
}

impl Sentinel {
    pub(super) fn new(
        master_name: &str,
        sentinels: &[HostPort],
        config: &RedisConfig,
    ) -> Result<Self, StoreError> {
        let tls = config.tls.as_ref();
        let sentinels = sentinels
            .iter()
            .map(|s| {
                // Sentinels have no databases.
                connect::client(
                    connect::tcp_addr(s, tls.is_some()),
                    tls,
                    &config.sentinel_auth,
                    0,
                )
                .map(|c| (s.clone(), c))
                .map_err(|e| unavailable(format!("sentinel {s}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            master_name: master_name.to_owned(),
            sentinels,
            tls: tls.cloned(),
            auth: config.auth.clone(),
            db: config.db,
            pool_size: config.pool_size as usize,
            timeout: config.command_timeout,
            current: Mutex::new(None),
            resolving: tokio::sync::Mutex::new(()),
            switches: AtomicU64::new(0),
            miss_check: tokio::sync::Mutex::new(None),
            replica_down_until: Mutex::new(None),
        })
    }

    /// Connecting is bounded by what is left of this call; answers, on a connection that
    /// outlives the call, by the command timeout.
    fn config(&self, deadline: Instant) -> AsyncConnectionConfig {
        let left = deadline.saturating_duration_since(Instant::now());
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(left))
            .set_response_timeout(Some(self.timeout))
    }

    fn cached(&self) -> Option<Arc<Master>> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The current master, resolving it when there is none.
    pub(super) async fn master(&self, deadline: Instant) -> Result<Arc<Master>, StoreError> {
        if let Some(master) = self.cached() {
            return Ok(master);
        }
        let _one = self.resolving.lock().await;
        // Another call may have resolved it while this one waited.
        if let Some(master) = self.cached() {
            return Ok(master);
        }
        let master = Arc::new(self.resolve(deadline).await?);
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&master));
        Ok(master)
    }

    /// A connection to `master`.
    pub(super) async fn lease<'a>(
        &self,
        master: &'a Master,
        deadline: Instant,
    ) -> Result<Lease<'a, MultiplexedConnection>, RedisError> {
        master
            .pool
            .take(|| async {
                master
                    .client
                    .get_multiplexed_async_connection_with_config(&self.config(deadline))
                    .await
            })
            .await
    }

    /// Drops `master` (when it is still the current one): the next call resolves again.
    pub(super) fn forget(&self, master: &Arc<Master>) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, master)) {
            *current = None;
            self.switches.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Whether a long wait for a switch found none recently: a replica is down.
    pub(super) fn replica_down_recently(&self) -> bool {
        self.replica_down_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|until| Instant::now() < until)
    }

    /// Remembers, for `REPLICA_DOWN_QUIET`, that a long wait found no switch.
    pub(super) fn mark_replica_down(&self) {
        *self
            .replica_down_until
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + super::REPLICA_DOWN_QUIET);
    }

    /// Where a call starts: now, and how many times a master in use was dropped so far.
    pub(super) fn mark(&self) -> Mark {
        Mark {
            at: Instant::now(),
            switches: self.switches.load(Ordering::SeqCst),
        }
    }

    /// Whether a master in use was dropped since `mark`.
    pub(super) fn switched_since(&self, mark: Mark) -> bool {
        self.switches.load(Ordering::SeqCst) != mark.switches
    }

    /// Whether the master in use may have changed since a read that started at `mark` and
    /// found nothing: yes when it was dropped since; otherwise the sentinels are asked, by a
    /// check that starts after the read (one at a time, [`MISS_CHECK_SPACING`] apart; a
    /// check already started after the read answers for it). No sentinel answering: no (the
    /// miss stands).
    pub(super) async fn moved_since(&self, mark: Mark, deadline: Instant) -> bool {
        if self.switched_since(mark) {
            return true;
        }
        let mut last = self.miss_check.lock().await;
        if self.switched_since(mark) {
            return true;
        }
        if let Some(at) = *last {
            if at >= mark.at {
                // That check began after this read and saw no switch (or the count moved).
                return false;
            }
            let next = at + MISS_CHECK_SPACING;
            if next > Instant::now() {
                tokio::time::sleep_until(next.min(deadline)).await;
            }
        }
        *last = Some(Instant::now());
        self.check_master(deadline).await || self.switched_since(mark)
    }

    /// Asks the sentinels which node is the master; when they name another one than the
    /// master in use, drops it (the next call resolves again) and says so. No master in use,
    /// or no sentinel answering: nothing changes (a failing call finds out by itself).
    pub(super) async fn check_master(&self, deadline: Instant) -> bool {
        let Some(current) = self.cached() else {
            return false;
        };
        match self.ask(deadline).await {
            Ok(named) if named != current.addr => {
                tracing::info!(old = %current.addr, new = %named, name = %self.master_name, "the sentinels name another Redis master; switching to it");
                crate::metrics::record_error_kind("redis_master_switched");
                self.forget(&current);
                true
            }
            _ => false,
        }
    }

    /// What the sentinels name, in order: the first address any of them gives.
    pub(super) async fn ask(&self, deadline: Instant) -> Result<HostPort, StoreError> {
        let mut reasons = Vec::with_capacity(self.sentinels.len());
        for (addr, client) in &self.sentinels {
            match self.ask_one(client, deadline).await {
                Ok(Some(master)) => return Ok(master),
                Ok(None) => reasons.push(format!(
                    "{addr}: does not monitor a master named {:?}",
                    self.master_name
                )),
                Err(e) => reasons.push(format!("{addr}: {e}")),
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        Err(unavailable(format!(
            "no sentinel named the master {:?}: {}",
            self.master_name,
            reasons.join("; ")
        )))
    }

    async fn ask_one(
        &self,
        client: &redis::Client,
        deadline: Instant,
    ) -> Result<Option<HostPort>, RedisError> {
        let work = async {
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&self.config(deadline))
                .await?;
            let answer: Option<(String, u16)> = redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&self.master_name)
                .query_async(&mut conn)
                .await?;
            Ok(answer.map(|(host, port)| HostPort { host, port }))
        };
        match tokio::time::timeout_at(deadline, work).await {
            Ok(result) => result,
            Err(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer in time",
            ))),
        }
    }

    async fn resolve(&self, deadline: Instant) -> Result<Master, StoreError> {
        let addr = self.ask(deadline).await?;
        let client = connect::client(
            connect::tcp_addr(&addr, self.tls.is_some()),
            self.tls.as_ref(),
            &self.auth,
            self.db,
        )
        .map_err(|e| unavailable(format!("master {addr}: {e}")))?;
        let work = async {
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&self.config(deadline))
                .await?;
            let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut conn).await?;
            Ok::<_, RedisError>((conn, role))
        };
        let (conn, role) = match tokio::time::timeout_at(deadline, work).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => return Err(unavailable(format!("master {addr}: {e}"))),
            Err(_) => {
                return Err(unavailable(format!(
                    "master {addr}: no answer within the command timeout"
                )));
            }
        };
        let is_master = matches!(
            role.first(),
            Some(redis::Value::BulkString(b)) if b.as_slice() == b"master"
        ) || matches!(role.first(), Some(redis::Value::SimpleString(s)) if s == "master");
        if !is_master {
            return Err(unavailable(format!(
                "the sentinels name {addr} as master {:?}, but it is not a master (yet)",
                self.master_name
            )));
        }
        tracing::info!(master = %addr, name = %self.master_name, "Redis master resolved through Sentinel");
        Ok(Master {
            addr,
            client,
            pool: Pool::with_first(self.pool_size, conn),
        })
    }
}
