//! Simulated time: a counter of milliseconds that only the simulation moves. Waiting
//! ([`SimTime::pause`]) moves it forward and yields to the other tasks, so a run covers
//! simulated hours in wall seconds, and concurrent tasks interleave by how many times each
//! yields (drawn from the seed), not by the machine's speed. extauth, mock-idp and the
//! simulated Redis all read this one time (mock-idp's `MockClock` adds the skew fault).
//!
//! Tokio's own clock is the second clock: [`super::run`] starts the runtime paused
//! (`start_paused`, tokio's `test-util` feature), so the timers inside extauth (its
//! cross-replica refresh wait, the Redis command timeout, any `tokio::time::timeout`) run
//! on virtual time. That clock stands still while any task can run and, when every task
//! waits, jumps to the next timer's deadline: no wall time is slept, and on one thread
//! with no real I/O the jumps come at the same points for the same seed.
//!
//! [`SimTime`] does not move Tokio's clock (no `tokio::time::advance`), on purpose: the
//! simulation adds concurrent waits up (a user's two-minute think time moves the shared
//! counter while another user's request is in flight), so advancing Tokio by the same
//! amount would fire extauth's one-second Redis timeout, or end its refresh wait, on calls
//! whose own path took milliseconds: failures of the model, not of extauth. A Redis or IdP
//! slower than extauth's timeouts is modelled where it happens ([`super::redis`],
//! [`super::net`]: the call fails at the timeout, on `SimTime`). What this leaves out:
//! Tokio's jumps are not added to `SimTime` (a refresh wait takes no simulated time), and
//! extauth's timers fire only when nothing else can run, so a replica waiting for another
//! one's refresh always sees it finish first unless that one is stuck on a timer too. The
//! time Tokio jumped in a run is in [`super::Report::timer_waits`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The simulated Unix time at the start of every run (2027-01-15T08:00:00Z).
pub const EPOCH_SECS: u64 = 1_800_000_000;

/// Now, as the simulation sees it; clones share it.
#[derive(Debug, Clone, Default)]
pub struct SimTime {
    elapsed_ms: Arc<AtomicU64>,
}

impl SimTime {
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        Duration::from_millis(self.elapsed_ms.load(Ordering::SeqCst))
    }

    /// Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        EPOCH_SECS * 1000 + self.elapsed_ms.load(Ordering::SeqCst)
    }

    /// Unix seconds.
    pub fn now_secs(&self) -> i64 {
        i64::try_from(self.now_ms() / 1000).unwrap_or(i64::MAX)
    }

    /// Moves time forward by `d`.
    pub fn advance(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4);
        self.elapsed_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Waits `d` of simulated time, letting other tasks run `yields` times meanwhile.
    pub async fn pause(&self, d: Duration, yields: u32) {
        self.advance(d);
        for _ in 0..yields {
            tokio::task::yield_now().await;
        }
    }
}

impl extauth::clock::Clock for SimTime {
    fn now(&self) -> i64 {
        self.now_secs()
    }
}

impl mock_idp::Clock for SimTime {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.now_ms())
    }
}
