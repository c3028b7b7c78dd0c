//! The last bound on a run: what is in flight, and a watchdog that ends a hung process.
//!
//! Every wait in the harness has its own timeout, and the runner bounds each stack start,
//! step and stop. A hang those cannot see (a thread blocked on a lock, say) would still hold
//! a CI job until its own limit, with nothing printed. [`arm`] starts a thread that, when its
//! guard is not dropped in time, prints what is in flight (scenario, backends, step, as
//! recorded by [`activity`]), stops every recorded child process and container
//! ([`crate::cleanup::stop_leftovers`]) and exits the process with status 3.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

static IN_FLIGHT: Mutex<BTreeMap<u64, (String, Instant)>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// One piece of work in flight (a scenario row); removed from the record when dropped.
#[derive(Debug)]
pub struct Activity {
    id: u64,
    label: String,
}

/// Records `label` as in flight until the returned guard is dropped.
pub fn activity(label: impl Into<String>) -> Activity {
    let activity = Activity {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        label: label.into(),
    };
    activity.at("starting");
    activity
}

impl Activity {
    /// Records where the work is now (a step's name).
    pub fn at(&self, step: &str) {
        let line = format!("{}: {step}", self.label);
        IN_FLIGHT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(self.id, (line, Instant::now()));
    }
}

impl Drop for Activity {
    fn drop(&mut self) {
        IN_FLIGHT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

/// What is in flight now, one line each, with how long it has been at that point.
pub fn in_flight() -> Vec<String> {
    // `try_lock`: the watchdog must report even when the hang is a thread holding this lock.
    match IN_FLIGHT.try_lock() {
        Ok(map) => map
            .values()
            .map(|(line, since)| format!("{line} (for {:.0} s)", since.elapsed().as_secs_f64()))
            .collect(),
        Err(_) => vec!["(the in-flight record is locked)".to_owned()],
    }
}

/// Disarms the watchdog when dropped.
#[derive(Debug)]
pub struct Watchdog {
    _disarm: Sender<()>,
}

/// Starts a watchdog for `what`: unless the guard is dropped within `limit`, it reports the
/// hang on stderr, stops what the harness started and exits the process with status 3.
pub fn arm(limit: Duration, what: &str) -> Watchdog {
    let (disarm, armed) = std::sync::mpsc::channel::<()>();
    let what = what.to_owned();
    std::thread::spawn(move || {
        if let Err(RecvTimeoutError::Timeout) = armed.recv_timeout(limit) {
            let mut report = format!(
                "harness watchdog: {what} is still running after {} s: a hang. In flight:\n",
                limit.as_secs()
            );
            for line in in_flight() {
                report.push_str(&format!("  {line}\n"));
            }
            let stopped = crate::cleanup::stop_leftovers();
            if !stopped.is_empty() {
                report.push_str(&format!("stopped: {}\n", stopped.join(", ")));
            }
            // Straight to the file descriptor: a test's captured output would be lost.
            let _ = std::io::stderr().write_all(report.as_bytes());
            std::process::exit(3);
        }
    });
    Watchdog { _disarm: disarm }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activities_are_listed_with_their_step_until_dropped() {
        let first = activity("seed [idp=mock]");
        first.at("login");
        let label = "seed [idp=mock]: login";
        assert!(in_flight().iter().any(|l| l.starts_with(label)));
        drop(first);
        assert!(!in_flight().iter().any(|l| l.starts_with(label)));
    }

    /// Runs itself as a child that never disarms: the child must exit with 3 and name the
    /// hang and what was in flight.
    #[test]
    fn an_expired_watchdog_reports_what_is_in_flight_and_exits() {
        const CHILD: &str = "HARNESS_WATCHDOG_TEST_CHILD";
        const NAME: &str =
            "watchdog::tests::an_expired_watchdog_reports_what_is_in_flight_and_exits";
        if std::env::var_os(CHILD).is_some() {
            let _row = activity("stuck [idp=mock]");
            let _dog = arm(Duration::from_millis(100), "the child test");
            std::thread::sleep(Duration::from_secs(20));
            return;
        }
        let exe = std::env::current_exe().expect("the test binary");
        let output = std::process::Command::new(exe)
            .args(["--exact", NAME, "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .expect("the child runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "stderr: {stderr}");
        assert!(
            stderr.contains("the child test is still running after 0 s: a hang"),
            "{stderr}"
        );
        assert!(stderr.contains("stuck [idp=mock]: starting"), "{stderr}");
    }

    #[test]
    fn a_disarmed_watchdog_lets_the_process_go_on() {
        let dog = arm(Duration::from_millis(50), "a quick unit");
        drop(dog);
        std::thread::sleep(Duration::from_millis(150));
        // Still here: the watchdog saw its guard dropped and ended without exiting.
    }
}
