//! Redis Cluster through the redis crate's `cluster-async` client: it follows `MOVED` and
//! `ASK`, refreshes the slot map after a redirect or a failed node, and retries a command a
//! few times (kept short so that its retries fit in the call's timeout).
//!
//! Its recovery can hang (redis-rs#1953), so every call is bounded by the store's own
//! timeout, and a call that timed out drops the connection: the next call builds a fresh one
//! from the seed nodes (a new slot map) instead of waiting on a stuck one.

use std::sync::Mutex;
use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{IntoConnectionInfo as _, RedisError};

use super::connect;
use crate::config::{HostPort, RedisAuth, RedisTls};
use crate::session::StoreError;

/// How many times the crate retries a command (redirects, a node being replaced).
const RETRIES: u32 = 3;
/// Its backoff between retries, in milliseconds.
const MIN_RETRY_WAIT_MS: u64 = 20;
const MAX_RETRY_WAIT_MS: u64 = 200;

/// The cluster of one store.
pub(super) struct Cluster {
    client: ClusterClient,
    conn: Mutex<Option<ClusterConnection>>,
    /// One connection attempt at a time.
    connecting: tokio::sync::Mutex<()>,
}

impl Cluster {
    pub(super) fn new(
        nodes: &[HostPort],
        tls: Option<&RedisTls>,
        auth: &RedisAuth,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let infos = nodes
            .iter()
            .map(|n| {
                connect::tcp_addr(n, tls.is_some())
                    .into_connection_info()
                    .map(|i| i.set_redis_settings(connect::settings(auth, 0)))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let mut builder = ClusterClientBuilder::new(infos)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(RETRIES)
            .min_retry_wait(MIN_RETRY_WAIT_MS)
            .max_retry_wait(MAX_RETRY_WAIT_MS);
        if let Some(tls) = tls {
            connect::ensure_tls_provider();
            builder = builder.certs(connect::certificates(tls));
        }
        let client = builder
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cluster client: {e}")))?;
        Ok(Self {
            client,
            conn: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        })
    }

    fn cached(&self) -> Option<ClusterConnection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The connection, made from the seed nodes when there is none.
    pub(super) async fn connection(&self) -> Result<ClusterConnection, RedisError> {
        if let Some(conn) = self.cached() {
            return Ok(conn);
        }
        let _one = self.connecting.lock().await;
        if let Some(conn) = self.cached() {
            return Ok(conn);
        }
        let conn = self.client.get_async_connection().await?;
        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
        Ok(conn)
    }

    /// Drops the connection (after a timeout): the next call starts over from the seeds.
    pub(super) fn reset(&self) {
        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
