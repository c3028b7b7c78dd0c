//! `harness load --fault KIND@SECONDS`: faults fired at offsets into a run, and how the run
//! went around each one.
//!
//! Kinds: `extauth-kill:I` (`SIGKILL` of replica I), `extauth-restart:I` (replica I stopped
//! with `SIGTERM` and started again on the same ports, ready on `/readyz`),
//! `redis-failover` (a Sentinel- or Cluster-driven failover) and `redis-kill-master`
//! (`SIGKILL` of the current master). What a fault does is the stack's business
//! ([`FaultInjector`]); this module parses, checks, schedules and judges.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// A Sentinel- or Cluster-driven Redis failover.
    RedisFailover,
    /// `SIGKILL` of the current Redis master.
    RedisKillMaster,
    /// `SIGKILL` of extauth replica `i`.
    ExtauthKill(usize),
    /// extauth replica `i` stopped (`SIGTERM`) and started again, ready.
    ExtauthRestart(usize),
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RedisFailover => f.write_str("redis-failover"),
            Self::RedisKillMaster => f.write_str("redis-kill-master"),
            Self::ExtauthKill(i) => write!(f, "extauth-kill:{i}"),
            Self::ExtauthRestart(i) => write!(f, "extauth-restart:{i}"),
        }
    }
}

/// One `--fault KIND@SECONDS`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fault {
    /// What.
    pub kind: FaultKind,
    /// When, from the start of the run.
    pub at: Duration,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.kind, self.at.as_secs_f64())
    }
}

/// The kinds, as the error for a bad one lists them.
const KINDS: &str = "redis-failover, redis-kill-master, extauth-kill:I, extauth-restart:I";

impl FromStr for Fault {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (kind, at) = text.rsplit_once('@').ok_or_else(|| {
            format!("--fault {text:?}: expected KIND@SECONDS, e.g. extauth-kill:0@5")
        })?;
        let kind = match kind.split_once(':') {
            None => match kind {
                "redis-failover" => FaultKind::RedisFailover,
                "redis-kill-master" => FaultKind::RedisKillMaster,
                "extauth-kill" | "extauth-restart" => {
                    return Err(format!(
                        "--fault {text:?}: {kind} needs a replica index, e.g. {kind}:0"
                    ));
                }
                _ => {
                    return Err(format!(
                        "--fault {text:?}: unknown kind {kind:?}; expected one of {KINDS}"
                    ));
                }
            },
            Some((name, index)) => {
                let index: usize = index.parse().map_err(|_| {
                    format!("--fault {text:?}: replica index {index:?} is not a number")
                })?;
                match name {
                    "extauth-kill" => FaultKind::ExtauthKill(index),
                    "extauth-restart" => FaultKind::ExtauthRestart(index),
                    _ => {
                        return Err(format!(
                            "--fault {text:?}: unknown kind {name:?}; expected one of {KINDS}"
                        ));
                    }
                }
            }
        };
        let seconds: f64 = at
            .parse()
            .map_err(|_| format!("--fault {text:?}: {at:?} is not a number of seconds"))?;
        let at = Duration::try_from_secs_f64(seconds).map_err(|_| {
            format!(
                "--fault {text:?}: {at:?} is not a number of seconds from the start (0 or more)"
            )
        })?;
        Ok(Self { kind, at })
    }
}

/// Checks faults against the stack before the run: `replicas` extauth processes (`None`
/// when extauth runs in process or the target is not ours), and the run's `duration`.
pub fn check(
    faults: &[Fault],
    replicas: Option<usize>,
    duration: Option<Duration>,
) -> Result<(), String> {
    for fault in faults {
        if let FaultKind::ExtauthKill(index) | FaultKind::ExtauthRestart(index) = fault.kind {
            match replicas {
                None => {
                    return Err(format!(
                        "--fault {fault}: needs --replicas N (without it extauth runs inside the harness and cannot be killed)"
                    ));
                }
                Some(n) if index >= n => {
                    return Err(format!(
                        "--fault {fault}: replica {index} does not exist: the stack runs {n} replica{} (0 to {})",
                        if n == 1 { "" } else { "s" },
                        n.saturating_sub(1)
                    ));
                }
                Some(_) => {}
            }
        }
        if let Some(duration) = duration
            && fault.at >= duration
        {
            return Err(format!(
                "--fault {fault}: fires after the run ends (--duration {})",
                duration.as_secs_f64()
            ));
        }
    }
    Ok(())
}

/// A future a fault injection returns: for a Redis failover or master kill, how long Redis
/// itself took to report the new master (what the error window is compared with).
pub type Injection<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Duration>, String>> + Send + 'a>>;

/// What carries a fault out: the running stack.
pub trait FaultInjector: Send {
    /// Does `kind`; `Err` says why it could not.
    fn inject(&mut self, kind: FaultKind) -> Injection<'_>;
}

impl FaultInjector for crate::stack::RunningStack {
    fn inject(&mut self, kind: FaultKind) -> Injection<'_> {
        Box::pin(async move {
            match kind {
                FaultKind::RedisFailover => self.redis_failover().await.map(Some),
                FaultKind::RedisKillMaster => self.redis_kill_master().await.map(Some),
                FaultKind::ExtauthKill(i) => self.extauth_kill(i).map(|()| None),
                FaultKind::ExtauthRestart(i) => self.extauth_restart(i).await.map(|()| None),
            }
        })
    }
}

/// How long after a fault is "during" it, for the figures (after the fault's own time).
pub const DURING: Duration = Duration::from_secs(5);

/// A fault in the report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FaultReport {
    /// `extauth-kill:0` etc.
    pub fault: String,
    /// When it was asked for, seconds.
    pub at_s: f64,
    /// When it started, seconds (none: the run ended first).
    pub fired_s: Option<f64>,
    /// How long it took, ms (a restart includes waiting for readiness).
    pub took_ms: Option<f64>,
    /// Redis faults: how long Redis took to report the new master, ms (the longest window of
    /// errors should not exceed it).
    pub redis_reported_ms: Option<f64>,
    /// `ok`, `not fired: ...` or `failed: ...`.
    pub outcome: String,
    /// p99 of authenticated calls before the first fault (the undisturbed run), ms.
    pub call_p99_before_ms: f64,
    /// How many calls that p99 is of.
    pub calls_before: u64,
    /// p99 of authenticated calls during it (from its start to [`DURING`] after its end, or
    /// to the next fault).
    pub call_p99_during_ms: f64,
    /// How many calls that p99 is of.
    pub calls_during: u64,
    /// Requests that failed during it.
    pub failed_during: u64,
}

impl FaultReport {
    /// Whether it was carried out.
    pub fn fired_ok(&self) -> bool {
        self.outcome == "ok"
    }
}

/// When a fault ran, as recorded by the scheduler.
#[derive(Debug, Clone)]
pub struct Fired {
    /// The fault.
    pub fault: Fault,
    /// Start and length, or `None` when the run ended first.
    pub ran: Option<(Duration, Duration)>,
    /// The injector's result (for a Redis fault, the time Redis reported).
    pub result: Result<Option<Duration>, String>,
}

/// The figures around each fault, from the run's events (`fired` in time order). "Before"
/// is the run before the first fault (the undisturbed baseline, the same for every fault);
/// "during" runs from the fault's start to [`DURING`] after its end, or to the next fault's
/// start when that comes sooner.
pub fn judge(fired: &[Fired], events: &[super::timeline::Event]) -> Vec<FaultReport> {
    let start_of = |f: &Fired| f.ran.map_or(f.fault.at, |(start, _)| start);
    let baseline_end = fired.iter().map(start_of).min().unwrap_or_default();
    let (before, calls_before) =
        super::timeline::call_p99_between(events, Duration::ZERO, baseline_end);
    fired
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let start = start_of(f);
            let next = fired.get(i + 1).map(start_of);
            let (fired_s, took_ms, outcome, end) = match (&f.ran, &f.result) {
                (Some((_, took)), result) => (
                    Some(start.as_secs_f64()),
                    Some(took.as_secs_f64() * 1000.0),
                    match result {
                        Ok(_) => "ok".to_owned(),
                        Err(e) => format!("failed: {e}"),
                    },
                    start + *took + DURING,
                ),
                (None, _) => (
                    None,
                    None,
                    "not fired: the run ended first".to_owned(),
                    start,
                ),
            };
            let end = next.map_or(end, |next| end.min(next.max(start)));
            let (during, calls_during) = super::timeline::call_p99_between(events, start, end);
            FaultReport {
                fault: f.fault.kind.to_string(),
                at_s: f.fault.at.as_secs_f64(),
                fired_s,
                took_ms,
                redis_reported_ms: f
                    .result
                    .as_ref()
                    .ok()
                    .copied()
                    .flatten()
                    .map(|d| d.as_secs_f64() * 1000.0),
                outcome,
                call_p99_before_ms: before,
                calls_before,
                call_p99_during_ms: during,
                calls_during,
                failed_during: super::timeline::failed_between(events, start, end),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
