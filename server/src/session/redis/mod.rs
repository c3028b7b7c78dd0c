//! Redis sessions: `SET key value EX ttl`, `GET`, `DEL`, with the key `prefix` + the id's
//! lookup half; the value is encrypted under a key derived from the id's secret half
//! ([`crate::crypto`]), so a Redis dump alone leaks no token. `SET NX PX` is the short
//! cross-replica refresh lock.
//!
//! Topologies (`options.topology`), one file each:
//! - standalone: a [`pool`] of the redis crate's `ConnectionManager`s to one server over TCP,
//!   TLS or a unix socket;
//! - [`sentinel`]: the master named by Redis Sentinel, followed across failovers;
//! - [`cluster`]: Redis Cluster through the crate's `cluster-async` client.
//!
//! Every call is bounded by `commandTimeout` (connecting included): a call that does not
//! finish in time is [`StoreError::Unavailable`], never "no session" and never a delete. A
//! call that fails in a way a restart or a master switch explains (reset or refused
//! connection, `READONLY`, `LOADING`, `MASTERDOWN`) is tried once more within the same
//! bound; on Sentinel the master is resolved again first.
//!
//! `durableSessions`: a save is `SET` then `WAIT replicas timeout` in one pipeline, so on
//! the same connection (and, on a cluster, the same node). Fewer acknowledgements than asked
//! do not fail the save: the session is on the master, the login or refresh completes, and
//! a warning and `extauth_errors_total{kind="durable_write_unacknowledged"}` count it. On
//! Sentinel, the sentinels are first asked (for up to the `WAIT` timeout again) whether the
//! master moved, as after a graceful failover, where the old master takes writes without an
//! error and later drops them: the save is then made again on the new master.

mod cluster;
mod connect;
mod index;
mod pool;
mod sentinel;
mod tracking;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, RedisFuture, ServerErrorKind, Value,
};
use tokio::time::Instant;

pub use connect::ensure_tls_provider;
pub use tracking::CacheStats;

use self::cluster::Cluster;
use self::pool::Pool;
use self::sentinel::Sentinel;
use self::tracking::Tracking;
use super::{SessionData, SessionId, SessionStore, StoreError, decode, encode};
use crate::config::{DurableSessions, RedisAddress, RedisConfig, RedisTopology};

/// How often a durable save that too few replicas acknowledged asks the sentinels whether
/// the master moved.
const SENTINEL_POLL: Duration = Duration::from_millis(100);

/// How long the sentinels may take to name a promoted replica (their `INFO` period during a
/// failover is one second): an unacknowledged durable save on a master that lost its
/// replicas asks them at least this long.
const FAILOVER_ANNOUNCE: Duration = Duration::from_secs(2);

/// After an unacknowledged durable save asked the sentinels for [`FAILOVER_ANNOUNCE`] and
/// found no switch (a replica down, not promoted), how long later saves only ask for the
/// `WAIT` timeout.
const REPLICA_DOWN_QUIET: Duration = Duration::from_secs(30);

/// `connected_slaves:N` of an `INFO replication` answer.
fn connected_replicas(info: &str) -> Option<u32> {
    info.lines()
        .find_map(|l| l.trim().strip_prefix("connected_slaves:"))
        .and_then(|n| n.trim().parse().ok())
}

/// The default bound of every call (`options.commandTimeout`).
pub const DEFAULT_TIMEOUT: Duration = crate::config::compile::redis::DEFAULT_COMMAND_TIMEOUT;

/// Sessions in Redis (standalone, Sentinel or Cluster).
#[derive(Clone)]
pub struct RedisStore {
    backend: Arc<Backend>,
    prefix: String,
    timeout: Duration,
    durable: Option<DurableSessions>,
    /// `options.clientSideCache` (standalone only): sessions kept between checks.
    tracking: Option<Arc<Tracking>>,
    /// Where it points, for `Debug` and messages (no credentials).
    describe: String,
}

enum Backend {
    Standalone(
        Pool<ConnectionManager>,
        redis::Client,
        ConnectionManagerConfig,
    ),
    Sentinel(Sentinel),
    Cluster(Cluster),
    /// Connections from a function (`harness sim`: in-memory streams to a simulated Redis).
    Injected(Injected),
}

/// Opens a connection: [`RedisStore::with_connector`].
pub type Connector = Arc<
    dyn Fn() -> std::pin::Pin<
            Box<dyn std::future::Future<Output = redis::RedisResult<MultiplexedConnection>> + Send>,
        > + Send
        + Sync,
>;

/// One connection from a [`Connector`], opened on first use and dropped after a failure a
/// restart explains (as the Sentinel backend forgets a master), so the next call reconnects.
struct Injected {
    connect: Connector,
    current: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

impl Injected {
    async fn connection(&self) -> Result<MultiplexedConnection, RedisError> {
        let mut current = self.current.lock().await;
        if let Some(conn) = current.as_ref() {
            return Ok(conn.clone());
        }
        let conn = (self.connect)().await?;
        *current = Some(conn.clone());
        Ok(conn)
    }

    async fn forget(&self) {
        *self.current.lock().await = None;
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("redis", &self.describe)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("durable", &self.durable)
            .field("client_side_cache", &self.tracking.is_some())
            .finish()
    }
}

/// One connection for one call, whichever the topology.
enum Conn {
    Manager(ConnectionManager),
    Multiplexed(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Manager(c) => c.req_packed_command(cmd),
            Conn::Multiplexed(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Manager(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Multiplexed(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Manager(c) => c.get_db(),
            Conn::Multiplexed(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// A command or a pipeline.
enum Request<'a> {
    Cmd(&'a Cmd),
    Pipe(&'a Pipeline),
}

impl Request<'_> {
    async fn run<T: FromRedisValue>(&self, conn: &mut Conn) -> Result<T, RedisError> {
        match self {
            Request::Cmd(cmd) => cmd.query_async(conn).await,
            Request::Pipe(pipe) => pipe.query_async(conn).await,
        }
    }
}

/// Whether `e` is what a restart or a master switch looks like from a client, so that the
/// same call on a fresh connection (or a newly resolved master) may succeed.
fn recoverable(e: &RedisError) -> bool {
    // A timeout is not: the time is spent.
    !e.is_timeout() && e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::ReadOnly
                    | ServerErrorKind::BusyLoading
                    | ServerErrorKind::MasterDown
            )
        )
}

impl RedisStore {
    /// A standalone store for `url` (`redis://host:port[/db]`) over one connection, with the
    /// default timeout. Does not connect yet; must be called inside a Tokio runtime.
    pub fn new(url: &str, prefix: impl Into<String>) -> Result<Self, StoreError> {
        Self::with_pool(url, prefix, 1)
    }

    /// [`RedisStore::new`] over at most `pool_size` connections (see [`pool`]).
    pub fn with_pool(
        url: &str,
        prefix: impl Into<String>,
        pool_size: usize,
    ) -> Result<Self, StoreError> {
        let client =
            redis::Client::open(url).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Self::standalone(client, pool_size, DEFAULT_TIMEOUT, prefix.into(), None, url)
    }

    /// The store `config` describes. Does not connect yet (see
    /// [`SessionStore::check_at_start`]); must be called inside a Tokio runtime.
    pub fn open(config: &RedisConfig) -> Result<Self, StoreError> {
        Self::open_with(config, true)
    }

    fn open_with(config: &RedisConfig, watch: bool) -> Result<Self, StoreError> {
        let (tls, auth, db) = (config.tls.as_ref(), &config.auth, config.db);
        let pool_size = config.pool_size as usize;
        let prefix = config.key_prefix.clone();
        let mut store = match &config.topology {
            RedisTopology::Standalone(address) => {
                let (addr, describe) = match address {
                    RedisAddress::Tcp(node) => {
                        (connect::tcp_addr(node, tls.is_some()), node.to_string())
                    }
                    RedisAddress::Unix(path) => (
                        redis::ConnectionAddr::Unix(path.clone()),
                        format!("unix://{}", path.display()),
                    ),
                };
                let client = connect::client(addr.clone(), tls, auth, db)
                    .map_err(|e| StoreError::Unavailable(format!("{describe}: {e}")))?;
                let mut store = Self::standalone(
                    client,
                    pool_size,
                    config.command_timeout,
                    prefix.clone(),
                    None,
                    &describe,
                )?;
                if config.client_side_cache {
                    // RESP3: invalidation pushes need it.
                    let tracking =
                        connect::client_with(addr, tls, auth, db, redis::ProtocolVersion::RESP3)
                            .map_err(|e| StoreError::Unavailable(format!("{describe}: {e}")))?;
                    store.tracking =
                        Some(Tracking::start(tracking, prefix, config.command_timeout));
                }
                store
            }
            RedisTopology::Sentinel {
                master_name,
                sentinels,
            } => {
                let sentinel = Sentinel::new(master_name, sentinels, config)?;
                Self {
                    backend: Arc::new(Backend::Sentinel(sentinel)),
                    prefix,
                    timeout: config.command_timeout,
                    durable: None,
                    tracking: None,
                    describe: format!(
                        "sentinel master {master_name:?} via {}",
                        sentinels
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                }
            }
            RedisTopology::Cluster { nodes } => Self {
                backend: Arc::new(Backend::Cluster(Cluster::new(
                    nodes,
                    tls,
                    auth,
                    config.command_timeout,
                )?)),
                prefix,
                timeout: config.command_timeout,
                durable: None,
                tracking: None,
                describe: format!(
                    "cluster via {}",
                    nodes
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            },
        };
        store.durable = config.durable;
        if watch {
            store.watch_sentinels();
        }
        Ok(store)
    }

    /// [`RedisStore::open`] without the Sentinel watch task: a store that learns of a switch
    /// only from errors and from the sentinels it asks itself (tests of those paths).
    #[cfg(test)]
    pub(super) fn open_unwatched(config: &RedisConfig) -> Result<Self, StoreError> {
        Self::open_with(config, false)
    }

    /// On Sentinel, a task that asks the sentinels every [`sentinel::WATCH_INTERVAL`]
    /// whether the master moved (see [`sentinel`]); it ends with the store. Outside a Tokio
    /// runtime (nothing serves then) there is none.
    fn watch_sentinels(&self) {
        if !matches!(&*self.backend, Backend::Sentinel(_)) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let backend = Arc::downgrade(&self.backend);
        let timeout = self.timeout;
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(sentinel::WATCH_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(backend) = backend.upgrade() else {
                    break;
                };
                if let Backend::Sentinel(sentinel) = &*backend {
                    sentinel.check_master(Instant::now() + timeout).await;
                }
            }
        });
    }

    /// On Sentinel, where a call starts (see [`RedisStore::miss_explained_by_a_switch`]);
    /// elsewhere nothing.
    fn sentinel_mark(&self) -> Option<sentinel::Mark> {
        match &*self.backend {
            Backend::Sentinel(sentinel) => Some(sentinel.mark()),
            _ => None,
        }
    }

    /// On Sentinel, whether a read that started at `mark` and found nothing may have read a
    /// master the others already left ([`sentinel`]): then it is read again. Elsewhere: no.
    async fn miss_explained_by_a_switch(&self, mark: Option<sentinel::Mark>) -> bool {
        match (&*self.backend, mark) {
            (Backend::Sentinel(sentinel), Some(mark)) => {
                sentinel
                    .moved_since(mark, Instant::now() + self.timeout)
                    .await
            }
            _ => false,
        }
    }

    /// On Sentinel, after a durable save that too few replicas acknowledged (`mark`:
    /// [`RedisStore::sentinel_mark`] before it): whether the master moved, so that the
    /// save must be made again. The sentinels are asked for the `WAIT` timeout; when the
    /// master has fewer connected replicas than asked (its replica may just have been
    /// promoted: the sentinels announce that up to a second or two later), for at least
    /// [`FAILOVER_ANNOUNCE`], unless such a long wait found no switch in the last
    /// [`REPLICA_DOWN_QUIET`] (a replica that is simply down costs each save no more than
    /// twice the timeout). Elsewhere: no.
    async fn master_moved_after_unacknowledged(
        &self,
        durable: &DurableSessions,
        mark: Option<sentinel::Mark>,
    ) -> bool {
        let (Backend::Sentinel(sentinel), Some(mark)) = (&*self.backend, mark) else {
            return false;
        };
        if sentinel.switched_since(mark) {
            return true;
        }
        let mut wait = durable.timeout;
        let long = wait < FAILOVER_ANNOUNCE && !sentinel.replica_down_recently() && {
            let mut info = redis::cmd("INFO");
            info.arg("replication");
            let text: Result<String, _> = self.call("save", Request::Cmd(&info)).await;
            text.ok()
                .and_then(|t| connected_replicas(&t))
                .is_some_and(|n| n < durable.replicas)
        };
        if long {
            wait = FAILOVER_ANNOUNCE;
        }
        let moved = self.master_moved_within(wait).await || sentinel.switched_since(mark);
        if long && !moved {
            sentinel.mark_replica_down();
        }
        moved
    }

    /// On Sentinel, whether the sentinels name another master than the one in use within
    /// `wait` (asked every 100 ms; a moved master is dropped: the next call goes to the new
    /// one). Elsewhere: no.
    async fn master_moved_within(&self, wait: Duration) -> bool {
        let Backend::Sentinel(sentinel) = &*self.backend else {
            return false;
        };
        let until = Instant::now() + wait;
        loop {
            if sentinel.check_master(Instant::now() + self.timeout).await {
                return true;
            }
            if Instant::now() + SENTINEL_POLL > until {
                return false;
            }
            tokio::time::sleep(SENTINEL_POLL).await;
        }
    }

    /// A store whose connections come from `connect` (an in-memory stream to a simulated
    /// server in `harness sim`); everything above the connection (commands, the timeout,
    /// the one retry) is the standalone store's.
    pub fn with_connector(
        connect: Connector,
        prefix: impl Into<String>,
        timeout: Duration,
    ) -> Self {
        Self {
            backend: Arc::new(Backend::Injected(Injected {
                connect,
                current: tokio::sync::Mutex::new(None),
            })),
            prefix: prefix.into(),
            timeout,
            durable: None,
            tracking: None,
            describe: "injected connection".to_owned(),
        }
    }

    fn standalone(
        client: redis::Client,
        pool_size: usize,
        timeout: Duration,
        prefix: String,
        durable: Option<DurableSessions>,
        describe: &str,
    ) -> Result<Self, StoreError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StoreError::Unavailable(
                "the Redis store must be created inside a Tokio runtime".into(),
            ));
        }
        // Short-fused: the crate's defaults take ~10 s to give up on a dead port.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        Ok(Self {
            backend: Arc::new(Backend::Standalone(Pool::new(pool_size), client, config)),
            prefix,
            timeout,
            durable,
            tracking: None,
            describe: describe.to_owned(),
        })
    }

    /// A read through the client-side cache: from memory when this process holds the
    /// session and Redis has not invalidated it; else `GET` and `PTTL` in one round trip,
    /// and the session kept for the key's remaining life (see [`tracking`]).
    async fn load_tracked(
        &self,
        tracking: &Tracking,
        id: &SessionId,
    ) -> Result<Option<SessionData>, StoreError> {
        let key = id.storage_key(&self.prefix);
        if let Some(data) = tracking.get(&key, id) {
            return Ok(Some(data));
        }
        let ticket = tracking.ticket();
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&key).cmd("PTTL").arg(&key);
        let (bytes, pttl): (Option<Vec<u8>>, i64) = self.call("load", Request::Pipe(&pipe)).await?;
        let data = bytes.map(|b| decode(id, &b)).transpose()?;
        if let (Some(ticket), Some(data), Ok(ms @ 1..)) = (ticket, &data, u64::try_from(pttl)) {
            tracking.put(&key, id, data, Duration::from_millis(ms), ticket);
        }
        Ok(data)
    }

    /// The client-side cache's counts (`None` without `clientSideCache`).
    pub fn client_cache_stats(&self) -> Option<CacheStats> {
        self.tracking.as_deref().map(Tracking::stats)
    }

    /// Runs `request` on a connection of the topology, once more after a recoverable
    /// failure, all within the command timeout.
    async fn call<T: FromRedisValue>(
        &self,
        op: &'static str,
        request: Request<'_>,
    ) -> Result<T, StoreError> {
        let _timer = crate::metrics::redis_timer(op);
        let deadline = Instant::now() + self.timeout;
        let work = async {
            match self.attempt(&request, deadline).await {
                Err(e) if recoverable(&e) && Instant::now() < deadline => {
                    tracing::debug!(op, error = %e, "Redis call failed; trying once more");
                    self.attempt(&request, deadline).await
                }
                other => other,
            }
        };
        match tokio::time::timeout_at(deadline, work).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) if e.is_timeout() => Err(self.timed_out(op)),
            Ok(Err(e)) => Err(self.failed(e)),
            Err(_) => Err(self.timed_out(op)),
        }
    }

    /// No answer within the command timeout (ours, or the connection's own).
    fn timed_out(&self, op: &str) -> StoreError {
        if let Backend::Cluster(cluster) = &*self.backend {
            cluster.reset();
        }
        crate::metrics::record_error_kind("redis_timeout");
        StoreError::Unavailable(format!(
            "Redis ({}) did not answer within {}ms ({op})",
            self.describe,
            self.timeout.as_millis()
        ))
    }

    /// A failed call, said in terms the operator can act on.
    fn failed(&self, e: RedisError) -> StoreError {
        crate::metrics::record_error_kind("redis");
        let hint = match (e.kind(), e.code()) {
            (ErrorKind::AuthenticationFailed, _) | (_, Some("WRONGPASS")) => {
                ": Redis refused the credentials (REDIS_USERNAME / REDIS_PASSWORD)"
            }
            (_, Some("NOAUTH")) => ": Redis wants a password: set REDIS_PASSWORD",
            (_, Some("NOPERM")) => ": the ACL user (REDIS_USERNAME) may not run this command",
            _ => "",
        };
        StoreError::Unavailable(format!("Redis ({}): {e}{hint}", self.describe))
    }

    async fn attempt<T: FromRedisValue>(
        &self,
        request: &Request<'_>,
        deadline: Instant,
    ) -> Result<T, RedisError> {
        match &*self.backend {
            Backend::Standalone(pool, client, config) => {
                let lease = pool
                    .take(|| async {
                        ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                    })
                    .await?;
                request.run(&mut Conn::Manager(lease.conn.clone())).await
            }
            Backend::Sentinel(sentinel) => {
                let master = sentinel
                    .master(deadline)
                    .await
                    .map_err(|e| RedisError::from(std::io::Error::other(e.to_string())))?;
                let outcome = match sentinel.lease(&master, deadline).await {
                    Ok(lease) => {
                        request
                            .run(&mut Conn::Multiplexed(lease.conn.clone()))
                            .await
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = &outcome
                    && recoverable(e)
                {
                    tracing::info!(master = %master.addr, error = %e, "Redis master unusable; asking the sentinels again");
                    crate::metrics::record_error_kind("redis_master_lost");
                    sentinel.forget(&master);
                }
                outcome
            }
            Backend::Cluster(cluster) => {
                let conn = cluster.connection().await?;
                request.run(&mut Conn::Cluster(conn)).await
            }
            Backend::Injected(injected) => {
                let conn = injected.connection().await?;
                let outcome = request.run(&mut Conn::Multiplexed(conn)).await;
                if let Err(e) = &outcome
                    && recoverable(e)
                {
                    injected.forget().await;
                }
                outcome
            }
        }
    }

    /// Checks that the topology can be found at all: for Sentinel, that a sentinel names
    /// the master; for Cluster, that a seed node gives the slot map. A standalone server is
    /// not checked (it may come up after extauth; `/readyz` tells).
    pub async fn check_reachable(&self) -> Result<(), StoreError> {
        let deadline = Instant::now() + self.timeout;
        match &*self.backend {
            Backend::Standalone(..) | Backend::Injected(..) => Ok(()),
            Backend::Sentinel(sentinel) => sentinel.ask(deadline).await.map(|_| ()),
            Backend::Cluster(cluster) => {
                match tokio::time::timeout_at(deadline, cluster.connection()).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(StoreError::Unavailable(format!(
                        "no cluster seed node answered ({}): {e}",
                        self.describe
                    ))),
                    Err(_) => Err(StoreError::Unavailable(format!(
                        "no cluster seed node answered within {}ms ({})",
                        self.timeout.as_millis(),
                        self.describe
                    ))),
                }
            }
        }
    }

    /// `WAIT`'s answer below what was asked: logged and counted, not an error.
    fn check_durable(&self, durable: &DurableSessions, acknowledged: i64) {
        if acknowledged < i64::from(durable.replicas) {
            crate::metrics::record_error_kind("durable_write_unacknowledged");
            tracing::warn!(
                acknowledged,
                asked = durable.replicas,
                timeout_ms = durable.timeout.as_millis() as u64,
                "session written to the master but fewer replicas acknowledged it in time: a failover now could lose it"
            );
        }
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn load(&self, id: &SessionId) -> Result<Option<SessionData>, StoreError> {
        match &self.tracking {
            Some(tracking) => self.load_tracked(tracking, id).await,
            None => self.load_fresh(id).await,
        }
    }

    async fn load_fresh(&self, id: &SessionId) -> Result<Option<SessionData>, StoreError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(id.storage_key(&self.prefix));
        let mark = self.sentinel_mark();
        let mut bytes: Option<Vec<u8>> = self.call("load", Request::Cmd(&cmd)).await?;
        if bytes.is_none() && self.miss_explained_by_a_switch(mark).await {
            crate::metrics::record_error_kind("redis_miss_after_switch_retried");
            bytes = self.call("load", Request::Cmd(&cmd)).await?;
        }
        bytes.map(|b| decode(id, &b)).transpose()
    }

    async fn save(
        &self,
        id: &SessionId,
        data: &SessionData,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let bytes = encode(id, data)?;
        let key = id.storage_key(&self.prefix);
        let _forget = self.tracking.as_deref().map(|t| t.forget_on_drop(&key));
        let mut set = redis::cmd("SET");
        set.arg(&key).arg(bytes).arg("EX").arg(ttl.as_secs().max(1));
        match &self.durable {
            None => self.call::<()>("save", Request::Cmd(&set)).await,
            Some(durable) => {
                let mut pipe = redis::pipe();
                pipe.add_command(set)
                    .ignore()
                    .cmd("WAIT")
                    .arg(durable.replicas)
                    .arg(
                        u64::try_from(durable.timeout.as_millis())
                            .unwrap_or(u64::MAX)
                            .max(1),
                    );
                let mark = self.sentinel_mark();
                let (mut acknowledged,): (i64,) = self.call("save", Request::Pipe(&pipe)).await?;
                // Too few acknowledgements: perhaps the node written to is no longer the
                // master (its replica was just promoted, and the sentinels announce that up
                // to a second or two later): then write again to the new one.
                if acknowledged < i64::from(durable.replicas)
                    && self.master_moved_after_unacknowledged(durable, mark).await
                {
                    (acknowledged,) = self.call("save", Request::Pipe(&pipe)).await?;
                }
                self.check_durable(durable, acknowledged);
                Ok(())
            }
        }
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        super::forget(id);
        let key = id.storage_key(&self.prefix);
        let _forget = self.tracking.as_deref().map(|t| t.forget_on_drop(&key));
        let mut cmd = redis::cmd("DEL");
        cmd.arg(&key);
        self.call::<()>("delete", Request::Cmd(&cmd)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.call::<String>("ping", Request::Cmd(&redis::cmd("PING")))
            .await
            .map(|_| ())
    }

    async fn check_at_start(&self) -> Result<(), StoreError> {
        self.check_reachable().await
    }

    async fn try_lock(&self, id: &SessionId, ttl: Duration) -> Result<bool, StoreError> {
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut cmd = redis::cmd("SET");
        cmd.arg(id.lock_key(&self.prefix))
            .arg("1")
            .arg("NX")
            .arg("PX")
            .arg(millis);
        let set: Option<String> = self.call("lock", Request::Cmd(&cmd)).await?;
        Ok(set.is_some())
    }

    async fn unlock(&self, id: &SessionId) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(id.lock_key(&self.prefix));
        self.call::<()>("unlock", Request::Cmd(&cmd)).await
    }

    fn index(&self) -> Option<&dyn crate::session::index::SessionIndex> {
        Some(self)
    }
}

#[cfg(test)]
mod tests;
