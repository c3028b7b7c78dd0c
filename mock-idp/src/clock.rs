//! The clock: the only source of the current time inside the IdP.
//!
//! Every issued-at, expiry and `auth_time`, and every lifetime check (codes, pending logins,
//! SSO sessions, refresh tokens) reads [`Clock::now`], so tests can substitute a clock they
//! control. Nothing else in the crate may call `SystemTime::now`.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
}
