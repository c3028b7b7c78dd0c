//! Several ext_authz endpoints behind one simulator: round robin, one retry on another
//! endpoint when the connection fails, and passive health with a bounded backoff.
//!
//! This is what Envoy does with an ext_authz cluster of several hosts, `retry_on:
//! connect-failure,reset` with one retry and the `previous_hosts` predicate (the retry goes to
//! another host), and outlier detection ejecting a host for a growing, capped time:
//! - each check starts at the next endpoint in turn (round robin), skipping endpoints that
//!   are down;
//! - a check whose connection failed before any answer (connect refused or timed out, the
//!   connection reset or closed before a response, a stream refused) marks that endpoint
//!   down and is sent once more, to another endpoint;
//! - a check that got an answer (any `CheckResponse`, or a gRPC status the server sent) is
//!   never retried, nor is one that timed out waiting for its answer (the endpoint may have
//!   acted on it);
//! - a down endpoint is skipped for [`BACKOFF_BASE`], doubling with each consecutive failure
//!   up to [`BACKOFF_MAX`]; then one check tries it again, and an answer brings it back.
//!   When every endpoint is down they are all tried anyway, soonest-back first (Envoy's
//!   panic mode), so a recovery is seen at once.

use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use tonic::transport::{Channel, Endpoint};

use super::GatewayError;

/// How long an endpoint is skipped after its first connection failure.
pub const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// The longest an endpoint is skipped, however often it failed.
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Why a `Check` call ended without a `CheckResponse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The server answered with a gRPC status: an answer, never retried.
    Answered,
    /// No answer within the call's timeout: not retried (the server may have acted on it).
    Timeout,
    /// The connection failed before any answer: retried once on another endpoint.
    Connection,
}

/// Reads a failed call: a status the server sent carries no source error; one made by the
/// client from a transport error does.
pub fn classify(status: &tonic::Status) -> Failure {
    let Some(source) = status.source() else {
        return Failure::Answered;
    };
    let mut chain = Some(source);
    let mut timed_out = false;
    while let Some(error) = chain {
        // A connect timeout is a connection failure, whatever wraps it.
        if error.is::<tonic::ConnectError>() {
            return Failure::Connection;
        }
        timed_out |= error.is::<tonic::TimeoutExpired>();
        chain = error.source();
    }
    if timed_out {
        Failure::Timeout
    } else {
        Failure::Connection
    }
}

/// The backoff after `failures` consecutive connection failures (at least 1).
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    BACKOFF_BASE
        .saturating_mul(1u32 << doublings)
        .min(BACKOFF_MAX)
}

#[derive(Debug, Default, Clone, Copy)]
struct Health {
    failures: u32,
    down_until: Option<Instant>,
}

#[derive(Debug)]
struct Member {
    addr: SocketAddr,
    client: AuthorizationClient<Channel>,
    health: Mutex<Health>,
}

/// The ext_authz endpoints of one simulator.
#[derive(Debug)]
pub struct Pool {
    members: Vec<Member>,
    next: AtomicUsize,
}

impl Pool {
    /// One lazily connected channel per endpoint, each call bounded by `call_timeout`.
    pub fn new(
        addrs: &[SocketAddr],
        connect_timeout: Duration,
        call_timeout: Duration,
    ) -> Result<Self, GatewayError> {
        let members = addrs
            .iter()
            .map(|&addr| {
                let channel = Endpoint::from_shared(format!("http://{addr}"))
                    .map_err(|source| GatewayError::Endpoint { addr, source })?
                    .connect_timeout(connect_timeout)
                    .timeout(call_timeout)
                    .connect_lazy();
                Ok(Member {
                    addr,
                    client: AuthorizationClient::new(channel),
                    health: Mutex::new(Health::default()),
                })
            })
            .collect::<Result<Vec<_>, GatewayError>>()?;
        if members.is_empty() {
            return Err(GatewayError::NoEndpoints);
        }
        Ok(Self {
            members,
            next: AtomicUsize::new(0),
        })
    }

    /// The endpoints, in configuration order.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.members.iter().map(|m| m.addr).collect()
    }

    /// Whether endpoint `index` is being skipped at `now`.
    pub fn is_down(&self, index: usize, now: Instant) -> bool {
        self.members
            .get(index)
            .is_some_and(|m| lock(&m.health).down_until.is_some_and(|t| t > now))
    }

    /// One check: round robin, one retry on another endpoint after a connection failure.
    pub async fn check(&self, request: CheckRequest) -> Result<CheckResponse, tonic::Status> {
        let order = self.order(Instant::now());
        let mut last = None;
        // At most two attempts, each on a different endpoint.
        for &index in order.iter().take(2) {
            let mut client = self.members[index].client.clone();
            match client.check(request.clone()).await {
                Ok(response) => {
                    self.answered(index);
                    return Ok(response.into_inner());
                }
                Err(status) => match classify(&status) {
                    Failure::Connection => {
                        self.failed(index);
                        // Expected when a replica dies; the answer that counts comes next.
                        tracing::info!(
                            endpoint = %self.members[index].addr,
                            message = %status.message(),
                            "ext_authz connection failed before an answer; trying another endpoint"
                        );
                        last = Some(status);
                    }
                    Failure::Answered => {
                        self.answered(index);
                        return Err(status);
                    }
                    Failure::Timeout => return Err(status),
                },
            }
        }
        Err(last.unwrap_or_else(|| tonic::Status::unavailable("no ext_authz endpoint")))
    }

    /// Endpoints to try, best first: the up ones from the next in turn, then the down ones,
    /// soonest back first.
    fn order(&self, now: Instant) -> Vec<usize> {
        let n = self.members.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let (mut up, mut down): (Vec<usize>, Vec<(Instant, usize)>) = (Vec::new(), Vec::new());
        for index in (0..n).map(|i| (start + i) % n) {
            match lock(&self.members[index].health).down_until {
                Some(until) if until > now => down.push((until, index)),
                _ => up.push(index),
            }
        }
        down.sort_by_key(|(until, _)| *until);
        up.extend(down.into_iter().map(|(_, index)| index));
        up
    }

    fn answered(&self, index: usize) {
        *lock(&self.members[index].health) = Health::default();
    }

    fn failed(&self, index: usize) {
        let mut health = lock(&self.members[index].health);
        health.failures = health.failures.saturating_add(1);
        health.down_until = Some(Instant::now() + backoff(health.failures));
    }
}

/// A std mutex never held across an await; a poisoned one still holds valid health data.
fn lock(health: &Mutex<Health>) -> std::sync::MutexGuard<'_, Health> {
    health
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
