//! `harness load`: virtual users doing full logins and then authenticated calls, with a
//! baseline measured in the same run.
//!
//! Each virtual user loops a bounded number of times (`logins_per_user`, and/or until a
//! `duration` is over, never more than [`MAX_ITERATIONS`]):
//! 1. `POST /openai` at the gateway without a cookie: a 302 to the IdP (timed on its own as
//!    the *gateway without auth* baseline, and as the start of the login);
//! 2. the plain-HTTP login driver ([`crate::login::http`]): the IdP's form, the callback at
//!    the gateway, the cookie; a *login* is timed from step 1 to the driver's last hop;
//! 3. `calls_per_login` times: `POST /openai` with the session cookie (an *authenticated
//!    call*, 200 expected), each followed by the same `POST /openai` sent to the upstream
//!    directly (the *upstream direct* baseline), so both see the same load on a shared,
//!    noisy machine.
//!
//! Latencies go into HDR histograms (microseconds, 3 significant digits), one set per user,
//! merged at the end. Failures are counted by kind, never retried. Only loopback targets are
//! accepted ([`LoadError::NotLoopback`]). [`LoadReport`] serialises to JSON and renders as a
//! text table ([`LoadReport::table`]) and as an SVG of the latency distributions
//! ([`LoadReport::svg`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION};
use serde::Serialize;
use url::Url;

use crate::login::{self, Credentials, LoginError};
use crate::stack::RunningStack;

pub mod check;
pub mod direct;
pub mod faults;
pub mod gateways;
pub mod idp;
pub mod sessions;
pub mod timeline;

use faults::Fired;
pub use faults::{Fault, FaultInjector, FaultKind, FaultReport};
use timeline::{ErrorWindow, Event, FailKind, Op, Timeline};

/// The most loop iterations one virtual user makes, whatever the options say.
pub const MAX_ITERATIONS: u64 = 100_000;

/// The body of every call (a small chat completion request).
const BODY: &str =
    r#"{"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hello"}]}"#;

/// Percentiles kept for the report's distribution curves.
const CURVE: &[f64] = &[
    0.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 85.0, 90.0, 95.0, 97.0, 98.0,
    99.0, 99.5, 99.9, 99.99, 100.0,
];

/// How hard to push.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Concurrent virtual users.
    pub users: usize,
    /// Logins per user; `None` with a `duration` runs until the duration is over.
    pub logins_per_user: Option<u64>,
    /// Stop starting new work after this long.
    pub duration: Option<Duration>,
    /// Authenticated calls after each login.
    pub calls_per_login: usize,
    /// The login.
    pub credentials: Credentials,
    /// Bound on one login.
    pub login_timeout: Duration,
    /// Bound on one call.
    pub request_timeout: Duration,
    /// Show a progress line on stderr.
    pub progress: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        let (user, password) = crate::stack::DEFAULT_USER;
        Self {
            users: 8,
            logins_per_user: Some(5),
            duration: None,
            calls_per_login: 5,
            credentials: Credentials::new(user, password),
            login_timeout: login::DEFAULT_TIMEOUT,
            request_timeout: Duration::from_secs(10),
            progress: false,
        }
    }
}

/// Where the load goes.
#[derive(Debug, Clone)]
pub struct LoadTarget {
    /// The gateway, no trailing slash.
    pub gateway_url: String,
    /// The LLM upstream for the direct baseline (none: no upstream baseline).
    pub upstream_url: Option<String>,
    /// What the target is (backends), for the report.
    pub description: String,
}

impl LoadTarget {
    /// The gateway and upstream of a stack (for an external one, no upstream unless given).
    pub fn of_stack(stack: &RunningStack) -> Self {
        let upstream = stack.upstream_url();
        Self {
            gateway_url: stack.gateway_url().trim_end_matches('/').to_owned(),
            upstream_url: (!upstream.is_empty()).then(|| upstream.trim_end_matches('/').to_owned()),
            description: stack
                .backends()
                .iter()
                .map(|(part, name)| format!("{part}={name}"))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// Why a load run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A target outside the machine.
    #[error(
        "{what} {url:?} is not a loopback URL: load runs only against 127.0.0.0/8, ::1 or localhost"
    )]
    NotLoopback {
        /// Which URL.
        what: &'static str,
        /// The URL as given.
        url: String,
    },
    /// Options that cannot run.
    #[error("load options: {0}")]
    Options(String),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// Ctrl-C or SIGTERM stopped the run.
    #[error("interrupted")]
    Interrupted,
}

/// Whether `url` points at this machine (127.0.0.0/8, ::1, `localhost`).
pub fn is_loopback(url: &str) -> bool {
    let Ok(url) = Url::parse(url) else {
        return false;
    };
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// One latency series in the report (milliseconds).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Series {
    /// What was timed.
    pub name: String,
    /// Successful samples.
    pub count: u64,
    /// Samples per second of the run's wall time.
    pub per_second: f64,
    /// Fastest.
    pub min_ms: f64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// `(percentile, ms)` points of the distribution, for plotting.
    pub curve: Vec<(f64, f64)>,
}

impl Series {
    fn of(name: &str, histogram: &Histogram<u64>, wall: Duration) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        let count = histogram.len();
        let empty = count == 0;
        let at = |q: f64| {
            if empty {
                0.0
            } else {
                ms(histogram.value_at_quantile(q))
            }
        };
        Self {
            name: name.to_owned(),
            count,
            per_second: if wall.is_zero() {
                0.0
            } else {
                count as f64 / wall.as_secs_f64()
            },
            min_ms: if empty { 0.0 } else { ms(histogram.min()) },
            mean_ms: if empty {
                0.0
            } else {
                histogram.mean() / 1000.0
            },
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            max_ms: if empty { 0.0 } else { ms(histogram.max()) },
            curve: if empty {
                Vec::new()
            } else {
                CURVE.iter().map(|p| (*p, at(p / 100.0))).collect()
            },
        }
    }
}

/// Ratios of the gateway's figures to the upstream hit directly (the baseline); `None` when
/// a side has no samples.
#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    /// Authenticated call p50 / upstream direct p50.
    pub call_over_upstream_p50: Option<f64>,
    /// Authenticated call p99 / upstream direct p99.
    pub call_over_upstream_p99: Option<f64>,
    /// Gateway without auth (the 302) p50 / upstream direct p50.
    pub unauthenticated_over_upstream_p50: Option<f64>,
    /// Authenticated call p50 / gateway without auth p50 (the session lookup's share).
    pub call_over_unauthenticated_p50: Option<f64>,
    /// Login p50 / authenticated call p50.
    pub login_over_call_p50: Option<f64>,
}

/// The outcome of a load run.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The gateway.
    pub gateway_url: String,
    /// The upstream hit directly, if any.
    pub upstream_url: Option<String>,
    /// The target's backends.
    pub target: String,
    /// Virtual users.
    pub users: usize,
    /// Logins per user asked for.
    pub logins_per_user: Option<u64>,
    /// Duration asked for, seconds.
    pub duration_seconds: Option<f64>,
    /// Calls after each login.
    pub calls_per_login: usize,
    /// Wall time of the run, seconds.
    pub wall_seconds: f64,
    /// Logins started.
    pub logins_attempted: u64,
    /// Authenticated calls sent.
    pub calls_attempted: u64,
    /// Full logins (302, IdP form, callback, cookie).
    pub logins: Series,
    /// Authenticated calls through the gateway (200s).
    pub calls: Series,
    /// The upstream hit directly, without the gateway.
    pub upstream_direct: Option<Series>,
    /// The gateway's 302 for a request without a session.
    pub gateway_unauthenticated: Series,
    /// Gateway over baseline.
    pub ratios: Ratios,
    /// Failures by what failed where (`call: status 503`, `redirect: timeout`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Requests that failed: the 302, logins, calls and the upstream baseline.
    pub requests_failed: u64,
    /// Those by kind: `status N`, `connect error`, `timeout`, `other`.
    pub failed_by_kind: BTreeMap<String, u64>,
    /// Sessions lost: cookies that worked and were later sent to log in again.
    pub sessions_lost: u64,
    /// The longest stretch of buckets in a row that each hold a failed request.
    pub longest_error_window: Option<ErrorWindow>,
    /// The faults asked for, and the run around each.
    pub faults: Vec<FaultReport>,
    /// Errors and latency over time.
    pub timeline: Timeline,
}

impl LoadReport {
    /// All failures.
    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }

    fn series(&self) -> Vec<&Series> {
        let mut all = vec![&self.logins, &self.calls];
        if let Some(upstream) = &self.upstream_direct {
            all.push(upstream);
        }
        all.push(&self.gateway_unauthenticated);
        all
    }

    /// The report as a text table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "harness load: {} users, {}, {} calls per login, {:.1} s wall",
            self.users,
            match (self.logins_per_user, self.duration_seconds) {
                (Some(n), Some(d)) => format!("{n} logins each (at most {d} s)"),
                (Some(n), None) => format!("{n} logins each"),
                (None, Some(d)) => format!("{d} s"),
                (None, None) => "unbounded".to_owned(),
            },
            self.calls_per_login,
            self.wall_seconds
        );
        let _ = writeln!(out, "target: {} ({})", self.gateway_url, self.target);
        let _ = writeln!(
            out,
            "{:<26} {:>7} {:>8} {:>9} {:>9} {:>9} {:>9}",
            "series", "count", "per s", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        for s in self.series() {
            let _ = writeln!(
                out,
                "{:<26} {:>7} {:>8.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                s.name, s.count, s.per_second, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms
            );
        }
        let ratio = |r: Option<f64>| r.map_or("-".to_owned(), |r| format!("{r:.2}x"));
        let _ = writeln!(
            out,
            "ratios: call/upstream p50 {}, p99 {}; no-auth/upstream p50 {}; call/no-auth p50 {}; login/call p50 {}",
            ratio(self.ratios.call_over_upstream_p50),
            ratio(self.ratios.call_over_upstream_p99),
            ratio(self.ratios.unauthenticated_over_upstream_p50),
            ratio(self.ratios.call_over_unauthenticated_p50),
            ratio(self.ratios.login_over_call_p50),
        );
        let _ = writeln!(
            out,
            "attempted: {} logins, {} calls",
            self.logins_attempted, self.calls_attempted
        );
        write_errors(&mut out, &self.errors);
        let _ = writeln!(
            out,
            "requests failed: {}{}",
            self.requests_failed,
            if self.failed_by_kind.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    self.failed_by_kind
                        .iter()
                        .map(|(kind, n)| format!("{kind}: {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
        let _ = writeln!(out, "sessions lost: {}", self.sessions_lost);
        let _ = writeln!(
            out,
            "longest window of errors: {}",
            self.longest_error_window.map_or_else(
                || "none".to_owned(),
                |w| format!(
                    "{:.0} ms from {:.1} s ({} failed)",
                    w.length_ms, w.start_s, w.failed
                )
            )
        );
        if !self.faults.is_empty() {
            let _ = writeln!(out, "faults:");
            for f in &self.faults {
                let _ = writeln!(
                    out,
                    "  {}@{} s: {}{}",
                    f.fault,
                    f.at_s,
                    f.fired_s
                        .zip(f.took_ms)
                        .map_or(String::new(), |(at, took)| format!(
                            "fired at {at:.2} s, took {took:.0} ms, "
                        ))
                        + &f.redis_reported_ms.map_or(String::new(), |ms| format!(
                            "Redis reported the new master after {ms:.0} ms, "
                        )),
                    f.outcome
                );
                let _ = writeln!(
                    out,
                    "      call p99 before any fault {:.2} ms (n={}), during {:.2} ms (n={}, to {} s after it or the next fault); failed during: {}",
                    f.call_p99_before_ms,
                    f.calls_before,
                    f.call_p99_during_ms,
                    f.calls_during,
                    faults::DURING.as_secs(),
                    f.failed_during
                );
            }
        }
        if !self.faults.is_empty() || self.requests_failed > 0 {
            out.push_str(&self.timeline.text());
        }
        out
    }

    /// Whether every fault asked for fired and was carried out.
    pub fn faults_ok(&self) -> bool {
        self.faults.iter().all(FaultReport::fired_ok)
    }

    /// The latency distributions as an SVG: one curve per series, latency (log scale) across,
    /// percentile up; the timeline panel under them.
    pub fn svg(&self) -> String {
        let series = self.series();
        let mut out = String::new();
        let total_h = PLOT_H + timeline::PANEL_H;
        svg_open(&mut out, total_h);
        plot_distributions(
            &mut out,
            &format!(
                "harness load: latency distribution ({} users, {:.1} s)",
                self.users, self.wall_seconds
            ),
            &series,
        );
        let marks: Vec<(f64, String)> = self
            .faults
            .iter()
            .filter_map(|f| f.fired_s.map(|at| (at, f.fault.clone())))
            .collect();
        out.push_str(&self.timeline.svg_panel(&marks, PLOT_H, PLOT_W));
        out.push_str("</svg>\n");
        out
    }
}

/// Width of the latency plot.
const PLOT_W: f64 = 760.0;
/// Height of the latency plot.
const PLOT_H: f64 = 420.0;

fn svg_open(out: &mut String, height: f64) {
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{PLOT_W}" height="{height}" viewBox="0 0 {PLOT_W} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="{PLOT_W}" height="{height}" fill="white"/>"#
    );
}

/// An SVG of nothing but the latency distributions of `series`.
pub(crate) fn standalone_plot(title: &str, series: &[&Series]) -> String {
    let mut out = String::new();
    svg_open(&mut out, PLOT_H);
    plot_distributions(&mut out, title, series);
    out.push_str("</svg>\n");
    out
}

/// The title, grid, one curve per series and the legend, in the top [`PLOT_H`] of an SVG.
fn plot_distributions(out: &mut String, title: &str, series: &[&Series]) {
    const W: f64 = PLOT_W;
    const H: f64 = PLOT_H;
    const LEFT: f64 = 60.0;
    const RIGHT: f64 = 200.0;
    const TOP: f64 = 40.0;
    const BOTTOM: f64 = 50.0;
    const COLOURS: &[&str] = &[
        "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
    ];
    let values = series
        .iter()
        .flat_map(|s| s.curve.iter().map(|(_, ms)| *ms))
        .filter(|ms| *ms > 0.0);
    let (lo, hi) = values.fold((f64::MAX, 0.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if hi <= 0.0 {
        (0.1, 10.0)
    } else {
        (
            10f64.powf(lo.log10().floor()),
            10f64.powf(hi.log10().ceil()).max(lo * 10.0),
        )
    };
    let lo = lo.max(0.001);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let x = |ms: f64| LEFT + (ms.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10()) * plot_w;
    // Percentile up on a "nines" scale (p90, p99, p99.9 evenly spaced; max at the top),
    // so the tail gets as much room as the body.
    let nines = |p: f64| -(1.0 - p.min(99.99) / 100.0).log10() / 4.0;
    let y = |p: f64| TOP + plot_h - nines(p) * plot_h;
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="22" font-size="14">{}</text>"#,
        xml_escape(title)
    );
    // Grid: decades across, quartiles up.
    let mut decade = lo;
    while decade <= hi * 1.0001 {
        let gx = x(decade);
        let _ = writeln!(
            out,
            r##"<line x1="{gx:.1}" y1="{TOP}" x2="{gx:.1}" y2="{:.1}" stroke="#ddd"/><text x="{gx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 16.0,
            trim_number(decade)
        );
        decade *= 10.0;
    }
    for (p, label) in [
        (0.0, "p0"),
        (50.0, "p50"),
        (75.0, "p75"),
        (90.0, "p90"),
        (99.0, "p99"),
        (99.9, "p99.9"),
        (100.0, "max"),
    ] {
        let gy = y(p);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{gy:.1}" x2="{:.1}" y2="{gy:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            gy + 4.0
        );
    }
    let _ = writeln!(
        out,
        r#"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="black"/>"#
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">latency, ms (log scale)</text>"#,
        LEFT + plot_w / 2.0,
        H - 12.0
    );
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        if s.curve.len() > 1 {
            let points = s
                .curve
                .iter()
                .map(|(p, ms)| format!("{:.1},{:.1}", x(*ms), y(*p)))
                .collect::<Vec<_>>()
                .join(" ");
            let _ = writeln!(
                out,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>"#
            );
        }
        let ly = TOP + 10.0 + i as f64 * 36.0;
        let lx = LEFT + plot_w + 12.0;
        let _ = writeln!(
            out,
            r##"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text><text x="{:.1}" y="{:.1}" fill="#555">n={} p50={} p99={} ms</text>"##,
            lx + 18.0,
            lx + 24.0,
            ly + 4.0,
            xml_escape(&s.name),
            lx + 24.0,
            ly + 18.0,
            s.count,
            short_ms(s.p50_ms),
            short_ms(s.p99_ms)
        );
    }
}

/// Milliseconds with enough digits for sub-millisecond figures.
fn short_ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{ms:.3}")
    } else {
        format!("{ms:.1}")
    }
}

fn trim_number(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// What one virtual user measured.
struct UserTally {
    logins: Histogram<u64>,
    calls: Histogram<u64>,
    upstream: Histogram<u64>,
    unauthenticated: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    /// Every request's end, for the timeline.
    events: Vec<Event>,
    sessions_lost: u64,
    /// The start of the run, for the events' times.
    run_started: Instant,
}

impl UserTally {
    fn new(empty: &Histogram<u64>, run_started: Instant) -> Self {
        Self {
            logins: empty.clone(),
            calls: empty.clone(),
            upstream: empty.clone(),
            unauthenticated: empty.clone(),
            errors: BTreeMap::new(),
            events: Vec::new(),
            sessions_lost: 0,
            run_started,
        }
    }

    fn error(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }

    fn event(&mut self, op: Op, began: Instant, failed: Option<FailKind>) {
        let now = Instant::now();
        self.events.push(Event {
            at: now.saturating_duration_since(self.run_started),
            latency: now.saturating_duration_since(began),
            op,
            failed,
            session_lost: false,
        });
    }

    /// A request that went as expected, into its latency series and the timeline.
    fn ok(&mut self, op: Op, began: Instant) {
        let histogram = match op {
            Op::Redirect => &mut self.unauthenticated,
            Op::Login => &mut self.logins,
            Op::Call => &mut self.calls,
            Op::Upstream => &mut self.upstream,
        };
        record(histogram, began.elapsed());
        self.event(op, began, None);
    }

    /// A request that failed: counted by `detail` (no URLs, codes or cookies) and by kind.
    fn failed(
        &mut self,
        progress: &Progress,
        op: Op,
        began: Instant,
        kind: FailKind,
        detail: String,
    ) {
        progress.errors.fetch_add(1, Ordering::Relaxed);
        self.error(detail);
        self.event(op, began, Some(kind));
    }

    /// The last failed request was a session lost.
    fn lose_session(&mut self) {
        self.sessions_lost += 1;
        if let Some(last) = self.events.last_mut() {
            last.session_lost = true;
        }
    }
}

fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    let us = u64::try_from(elapsed.as_micros())
        .unwrap_or(u64::MAX / 4)
        .max(1);
    // Auto-resizing histograms accept any value; an error would only mean "too big".
    let _ = histogram.record(us);
}

/// Progress counters shared by the users and the progress line.
#[derive(Default)]
struct Progress {
    attempts: AtomicU64,
    logins: AtomicU64,
    calls: AtomicU64,
    errors: AtomicU64,
}

/// Runs the load (see the module docs).
pub async fn run(target: &LoadTarget, options: &LoadOptions) -> Result<LoadReport, LoadError> {
    run_with_faults(target, options, &[], None).await
}

/// Runs the load and fires `faults` at their offsets through `injector` (the stack), while
/// the virtual users keep going. A fault due after the users are done is reported as not
/// fired.
pub async fn run_with_faults(
    target: &LoadTarget,
    options: &LoadOptions,
    faults: &[Fault],
    mut injector: Option<&mut dyn FaultInjector>,
) -> Result<LoadReport, LoadError> {
    if !faults.is_empty() && injector.is_none() {
        return Err(LoadError::Options(
            "--fault needs a stack the harness started (not --gateway-url)".into(),
        ));
    }
    if !is_loopback(&target.gateway_url) {
        return Err(LoadError::NotLoopback {
            what: "gateway",
            url: target.gateway_url.clone(),
        });
    }
    if let Some(upstream) = &target.upstream_url
        && !is_loopback(upstream)
    {
        return Err(LoadError::NotLoopback {
            what: "upstream",
            url: upstream.clone(),
        });
    }
    if options.users == 0 {
        return Err(LoadError::Options("--users must be at least 1".into()));
    }
    if options.logins_per_user.is_none() && options.duration.is_none() {
        return Err(LoadError::Options(
            "give --logins or --duration (bounded runs only)".into(),
        ));
    }
    // Microseconds, 3 significant digits, growing as needed.
    let empty =
        Histogram::<u64>::new(3).map_err(|e| LoadError::Options(format!("histogram: {e}")))?;
    let started = Instant::now();
    let deadline = options.duration.map(|d| started + d);
    let iterations = options
        .logins_per_user
        .unwrap_or(MAX_ITERATIONS)
        .min(MAX_ITERATIONS);
    let progress = Arc::new(Progress::default());
    let expected_logins = options
        .logins_per_user
        .map(|n| n.min(MAX_ITERATIONS) * options.users as u64);
    let ticker = options.progress.then(|| {
        let progress = Arc::clone(&progress);
        tokio::spawn(show_progress(progress, started, expected_logins))
    });

    let mut users = tokio::task::JoinSet::new();
    for _ in 0..options.users {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(options.request_timeout)
            .build()
            .map_err(LoadError::Client)?;
        let target = target.clone();
        let options = options.clone();
        let progress = Arc::clone(&progress);
        let tally = UserTally::new(&empty, started);
        users.spawn(async move {
            virtual_user(
                client, tally, &target, &options, iterations, deadline, &progress,
            )
            .await
        });
    }
    let join_users = async {
        let mut tally = UserTally::new(&empty, started);
        while let Some(joined) = users.join_next().await {
            match joined {
                Ok(user) => {
                    let _ = tally.logins.add(&user.logins);
                    let _ = tally.calls.add(&user.calls);
                    let _ = tally.upstream.add(&user.upstream);
                    let _ = tally.unauthenticated.add(&user.unauthenticated);
                    for (kind, count) in user.errors {
                        *tally.errors.entry(kind).or_default() += count;
                    }
                    tally.events.extend(user.events);
                    tally.sessions_lost += user.sessions_lost;
                }
                Err(e) => tally.error(format!("virtual user task failed: {e}")),
            }
        }
        tally
    };
    tokio::pin!(join_users);
    // The faults fire from here, in time order, while the users run in their own tasks.
    let mut schedule = faults.to_vec();
    schedule.sort_by_key(|f| f.at);
    let mut fired: Vec<Fired> = Vec::with_capacity(schedule.len());
    let mut tally = None;
    for fault in &schedule {
        if tally.is_some() {
            fired.push(Fired {
                fault: *fault,
                ran: None,
                result: Ok(None),
            });
            continue;
        }
        let due = tokio::time::Instant::from_std(started + fault.at);
        tokio::select! {
            done = &mut join_users => {
                tally = Some(done);
                fired.push(Fired { fault: *fault, ran: None, result: Ok(None) });
            }
            () = tokio::time::sleep_until(due) => {
                let began = Instant::now();
                let result = match injector.as_deref_mut() {
                    Some(injector) => injector.inject(fault.kind).await,
                    None => Err("no stack to act on".to_owned()),
                };
                fired.push(Fired {
                    fault: *fault,
                    ran: Some((began.saturating_duration_since(started), began.elapsed())),
                    result,
                });
            }
        }
    }
    let tally = match tally {
        Some(tally) => tally,
        None => join_users.await,
    };
    let wall = started.elapsed();
    if let Some(ticker) = ticker {
        ticker.abort();
        let _ = ticker.await;
        print_progress(&progress, started, expected_logins, true);
    }

    let timeline = Timeline::of(&tally.events, wall, timeline::bucket_width(wall));
    let logins = Series::of("login (302+IdP+callback)", &tally.logins, wall);
    let calls = Series::of("authenticated call", &tally.calls, wall);
    let upstream_direct = target
        .upstream_url
        .as_ref()
        .map(|_| Series::of("baseline: upstream direct", &tally.upstream, wall));
    let gateway_unauthenticated =
        Series::of("baseline: gateway no auth", &tally.unauthenticated, wall);
    let ratio = |a: &Series, b: Option<&Series>, pick: fn(&Series) -> f64| {
        b.filter(|b| a.count > 0 && b.count > 0 && pick(b) > 0.0)
            .map(|b| pick(a) / pick(b))
    };
    let ratios = Ratios {
        call_over_upstream_p50: ratio(&calls, upstream_direct.as_ref(), |s| s.p50_ms),
        call_over_upstream_p99: ratio(&calls, upstream_direct.as_ref(), |s| s.p99_ms),
        unauthenticated_over_upstream_p50: ratio(
            &gateway_unauthenticated,
            upstream_direct.as_ref(),
            |s| s.p50_ms,
        ),
        call_over_unauthenticated_p50: ratio(&calls, Some(&gateway_unauthenticated), |s| s.p50_ms),
        login_over_call_p50: ratio(&logins, Some(&calls), |s| s.p50_ms),
    };
    Ok(LoadReport {
        gateway_url: target.gateway_url.clone(),
        upstream_url: target.upstream_url.clone(),
        target: target.description.clone(),
        users: options.users,
        logins_per_user: options.logins_per_user,
        duration_seconds: options.duration.map(|d| d.as_secs_f64()),
        calls_per_login: options.calls_per_login,
        wall_seconds: wall.as_secs_f64(),
        logins_attempted: progress.attempts.load(Ordering::Relaxed),
        calls_attempted: progress.calls.load(Ordering::Relaxed),
        logins,
        calls,
        upstream_direct,
        gateway_unauthenticated,
        ratios,
        requests_failed: tally.events.iter().filter(|e| e.failed.is_some()).count() as u64,
        failed_by_kind: timeline::failed_by_kind(&tally.events),
        sessions_lost: tally.sessions_lost,
        longest_error_window: timeline.longest_error_window(),
        faults: faults::judge(&fired, &tally.events),
        timeline,
        errors: tally.errors,
    })
}

/// One virtual user's bounded loop (see the module docs).
async fn virtual_user(
    client: reqwest::Client,
    mut tally: UserTally,
    target: &LoadTarget,
    options: &LoadOptions,
    iterations: u64,
    deadline: Option<Instant>,
    progress: &Progress,
) -> UserTally {
    let gateway = format!("{}/openai", target.gateway_url);
    let upstream = target.upstream_url.as_ref().map(|u| format!("{u}/openai"));
    let over = || deadline.is_some_and(|d| Instant::now() >= d);
    for _ in 0..iterations {
        if over() {
            break;
        }
        progress.attempts.fetch_add(1, Ordering::Relaxed);
        // 1. The 302 to the IdP.
        let login_started = Instant::now();
        let answer = client
            .post(&gateway)
            .header(CONTENT_TYPE, "application/json")
            .body(BODY)
            .send()
            .await;
        let location = match answer {
            Ok(response) if response.status().as_u16() == 302 => {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| Url::parse(&gateway).ok()?.join(l).ok());
                let _ = response.bytes().await;
                tally.ok(Op::Redirect, login_started);
                location
            }
            Ok(response) => {
                let status = response.status().as_u16();
                let _ = response.bytes().await;
                tally.failed(
                    progress,
                    Op::Redirect,
                    login_started,
                    FailKind::Status(status),
                    format!("redirect: status {status} (expected 302)"),
                );
                continue;
            }
            Err(e) => {
                tally.failed(
                    progress,
                    Op::Redirect,
                    login_started,
                    FailKind::of(&e),
                    format!("redirect: {}", transport_kind(&e)),
                );
                continue;
            }
        };
        let Some(location) = location else {
            tally.failed(
                progress,
                Op::Redirect,
                login_started,
                FailKind::Other,
                "redirect: 302 without a usable location".into(),
            );
            continue;
        };
        if !is_loopback(location.as_str()) {
            tally.failed(
                progress,
                Op::Redirect,
                login_started,
                FailKind::Other,
                "redirect: the IdP is not on loopback".into(),
            );
            continue;
        }
        // 2. The login (timed from step 1).
        let outcome =
            login::http::login(&location, &options.credentials, options.login_timeout).await;
        let cookie = match outcome {
            Ok(outcome) => match outcome.cookie_header() {
                Some(cookie) => {
                    tally.ok(Op::Login, login_started);
                    progress.logins.fetch_add(1, Ordering::Relaxed);
                    cookie
                }
                None => {
                    tally.failed(
                        progress,
                        Op::Login,
                        login_started,
                        FailKind::Other,
                        "login: no cookie after the callback".into(),
                    );
                    continue;
                }
            },
            Err(e) => {
                tally.failed(
                    progress,
                    Op::Login,
                    login_started,
                    login_fail_kind(&e),
                    login_error_kind(&e),
                );
                continue;
            }
        };
        // 3. Authenticated calls, each with an upstream-direct call beside it.
        let mut worked = false;
        for _ in 0..options.calls_per_login {
            if over() {
                break;
            }
            progress.calls.fetch_add(1, Ordering::Relaxed);
            let call_started = Instant::now();
            let answer = client
                .post(&gateway)
                .header(CONTENT_TYPE, "application/json")
                .header(COOKIE, &cookie)
                .body(BODY)
                .send()
                .await;
            let mut lost = false;
            match answer {
                Ok(response) if response.status().is_success() => match response.bytes().await {
                    Ok(_) => {
                        tally.ok(Op::Call, call_started);
                        worked = true;
                    }
                    Err(e) => tally.failed(
                        progress,
                        Op::Call,
                        call_started,
                        FailKind::of(&e),
                        format!("call: body {}", transport_kind(&e)),
                    ),
                },
                Ok(response) => {
                    let status = response.status().as_u16();
                    let _ = response.bytes().await;
                    // A cookie that worked and is now sent to log in: its session is gone.
                    lost = worked && matches!(status, 302 | 401);
                    let detail = if lost {
                        format!("call: status {status} (session lost: sent to log in again)")
                    } else {
                        format!("call: status {status}")
                    };
                    tally.failed(
                        progress,
                        Op::Call,
                        call_started,
                        FailKind::Status(status),
                        detail,
                    );
                    if lost {
                        tally.lose_session();
                    }
                }
                Err(e) => tally.failed(
                    progress,
                    Op::Call,
                    call_started,
                    FailKind::of(&e),
                    format!("call: {}", transport_kind(&e)),
                ),
            }
            if let Some(upstream) = &upstream {
                let direct_started = Instant::now();
                let answer = client
                    .post(upstream)
                    .header(CONTENT_TYPE, "application/json")
                    .body(BODY)
                    .send()
                    .await;
                match answer {
                    Ok(response) if response.status().is_success() => {
                        let _ = response.bytes().await;
                        tally.ok(Op::Upstream, direct_started);
                    }
                    Ok(response) => {
                        let status = response.status().as_u16();
                        tally.failed(
                            progress,
                            Op::Upstream,
                            direct_started,
                            FailKind::Status(status),
                            format!("upstream direct: status {status}"),
                        );
                    }
                    Err(e) => tally.failed(
                        progress,
                        Op::Upstream,
                        direct_started,
                        FailKind::of(&e),
                        format!("upstream direct: {}", transport_kind(&e)),
                    ),
                }
            }
            if lost {
                // Log in again, as a browser sent to the IdP would.
                break;
            }
        }
    }
    tally
}

/// A login failure as a request failure kind.
fn login_fail_kind(error: &LoginError) -> FailKind {
    match error {
        LoginError::Timeout { .. } => FailKind::Timeout,
        LoginError::CallbackRejected { status, .. } => FailKind::Status(*status),
        LoginError::Http { source, .. } => FailKind::of(source),
        LoginError::InvalidCredentials
        | LoginError::IdpError { .. }
        | LoginError::Unexpected { .. }
        | LoginError::Browser { .. } => FailKind::Other,
    }
}

/// A login failure's kind, for counting (no URLs, codes or cookie values).
fn login_error_kind(error: &LoginError) -> String {
    match error {
        LoginError::InvalidCredentials => "login: invalid credentials".into(),
        LoginError::IdpError { step, .. } => format!("login: IdP error page at {step:?}"),
        LoginError::Timeout { step, .. } => format!("login: timeout at {step:?}"),
        LoginError::Unexpected { step, .. } => format!("login: unexpected response at {step:?}"),
        LoginError::CallbackRejected { status, .. } => {
            format!("login: callback rejected with status {status}")
        }
        LoginError::Browser { step, .. } => format!("login: browser failed at {step:?}"),
        LoginError::Http { step, source } => {
            format!("login: {} at {step:?}", transport_kind(source))
        }
    }
}

/// A transport error's kind.
fn transport_kind(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connection refused or failed"
    } else if error.is_body() || error.is_decode() {
        "body error"
    } else {
        "request error"
    }
}

async fn show_progress(progress: Arc<Progress>, started: Instant, expected: Option<u64>) {
    let tty = std::io::stderr().is_terminal();
    let every = if tty {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(2)
    };
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    // Bounded by the run: the caller aborts this task when the users are done.
    loop {
        tick.tick().await;
        print_progress(&progress, started, expected, false);
    }
}

fn print_progress(progress: &Progress, started: Instant, expected: Option<u64>, last: bool) {
    let tty = std::io::stderr().is_terminal();
    let logins = progress.logins.load(Ordering::Relaxed);
    let line = format!(
        "load: {:>6.1} s  logins {}{}  calls {}  errors {}",
        started.elapsed().as_secs_f64(),
        logins,
        expected.map_or(String::new(), |n| format!("/{n}")),
        progress.calls.load(Ordering::Relaxed),
        progress.errors.load(Ordering::Relaxed),
    );
    let mut err = std::io::stderr().lock();
    let _ = if tty {
        write!(err, "\r{line}\x1b[K{}", if last { "\n" } else { "" })
    } else {
        writeln!(err, "{line}")
    };
    let _ = err.flush();
}

/// The `errors:` lines of a report's table: `none`, or the total and a count per kind.
pub(crate) fn write_errors(out: &mut String, errors: &BTreeMap<String, u64>) {
    if errors.is_empty() {
        let _ = writeln!(out, "errors: none");
    } else {
        let _ = writeln!(out, "errors: {}", errors.values().sum::<u64>());
        for (kind, count) in errors {
            let _ = writeln!(out, "  {count:>7}  {kind}");
        }
    }
}

#[cfg(test)]
mod tests;
