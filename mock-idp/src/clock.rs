//! The clock: the only source of the current time inside the IdP.
//!
//! Every issued-at, expiry and `auth_time`, and every lifetime check (codes, pending logins,
//! SSO sessions, refresh tokens) reads [`Clock::now`], so tests can substitute a clock they
//! control. Nothing else in the crate may call `SystemTime::now`.
//!
//! A running IdP always reads time through a [`MockClock`]: the configured clock (the system's
//! by default) shifted by an offset that tests, the admin API (`/admin/mock/clock`) and
//! scenarios move, so expiry can be tested without sleeping.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;

    /// The current time in whole seconds since the Unix epoch (JWT `NumericDate`).
    ///
    /// A clock set before 1970 reads as 0 rather than failing.
    fn unix_seconds(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// The system's real-time clock (the default).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A controllable clock: a base clock plus an offset in seconds. It keeps ticking with the
/// base clock; [`set`](Self::set) and [`advance`](Self::advance) move it.
#[derive(Debug)]
pub struct MockClock {
    base: Arc<dyn Clock>,
    offset: AtomicI64,
}

impl MockClock {
    /// A clock that reads as `base` until moved.
    pub fn new(base: Arc<dyn Clock>) -> Self {
        Self {
            base,
            offset: AtomicI64::new(0),
        }
    }

    /// Moves the clock so that it now reads `unix_seconds` (and keeps ticking from there).
    pub fn set(&self, unix_seconds: u64) {
        let base = i64::try_from(self.base.unix_seconds()).unwrap_or(i64::MAX);
        let want = i64::try_from(unix_seconds).unwrap_or(i64::MAX);
        self.offset
            .store(want.saturating_sub(base), Ordering::SeqCst);
    }

    /// Moves the clock by `seconds` (negative moves it back).
    pub fn advance(&self, seconds: i64) {
        let _ = self
            .offset
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |o| {
                Some(o.saturating_add(seconds))
            });
    }

    /// Back to the base clock.
    pub fn reset(&self) {
        self.offset.store(0, Ordering::SeqCst);
    }

    /// How far (seconds) this clock is ahead of its base (negative: behind).
    pub fn offset_seconds(&self) -> i64 {
        self.offset.load(Ordering::SeqCst)
    }
}

impl Clock for MockClock {
    fn now(&self) -> SystemTime {
        let base = self.base.now();
        let offset = self.offset_seconds();
        let shift = Duration::from_secs(offset.unsigned_abs());
        if offset >= 0 {
            base.checked_add(shift).unwrap_or(base)
        } else {
            base.checked_sub(shift).unwrap_or(UNIX_EPOCH)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed(SystemTime);
    impl Clock for Fixed {
        fn now(&self) -> SystemTime {
            self.0
        }
    }

    #[test]
    fn unix_seconds_counts_whole_seconds_since_the_epoch() {
        let clock = Fixed(UNIX_EPOCH + Duration::from_millis(1_700_000_000_999));
        assert_eq!(clock.unix_seconds(), 1_700_000_000);
    }

    #[test]
    fn a_clock_before_the_epoch_reads_as_zero() {
        let clock = Fixed(UNIX_EPOCH - Duration::from_secs(5));
        assert_eq!(clock.unix_seconds(), 0);
    }

    #[test]
    fn a_mock_clock_can_be_set_and_advanced_both_ways() {
        let base = Arc::new(Fixed(UNIX_EPOCH + Duration::from_secs(1_000)));
        let clock = MockClock::new(base);
        assert_eq!(clock.unix_seconds(), 1_000);
        clock.set(5_000);
        assert_eq!(clock.unix_seconds(), 5_000);
        clock.advance(30);
        assert_eq!(clock.unix_seconds(), 5_030);
        clock.advance(-5_030);
        assert_eq!(clock.unix_seconds(), 0);
        clock.advance(-10);
        assert_eq!(clock.unix_seconds(), 0, "before the epoch reads as zero");
        clock.reset();
        assert_eq!(clock.offset_seconds(), 0);
    }
}
