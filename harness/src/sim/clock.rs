//! Simulated time: a counter of milliseconds that only the simulation moves. Waiting
//! ([`SimTime::pause`]) moves it forward and yields to the other tasks, so a run covers
//! simulated hours in wall seconds, and concurrent tasks interleave by how many times each
//! yields (drawn from the seed), not by the machine's speed. extauth, mock-idp and the
//! simulated Redis all read this one time (mock-idp's `MockClock` adds the skew fault).
//!
//! Tokio's own timers are not simulated (that needs its `test-util` feature): the few real
//! timers inside extauth run on the wall clock. Its timeouts (Redis `commandTimeout`) never
//! fire, since every simulated answer comes in microseconds, except where the simulation
//! makes a call hang on purpose; its cross-replica refresh wait does sleep 100 ms steps of
//! wall time when a run reaches it, which costs wall time (not CPU) and lets the other
//! tasks run meanwhile.

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
