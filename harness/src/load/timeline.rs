//! What happened when during a load run: every request's end, its latency and how it went,
//! grouped into buckets (errors and latency over time), with the figures a fault is judged
//! by: requests failed by kind, the longest window of errors, and p99 before and during.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// What a request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// The unauthenticated request answered with the 302 to the IdP.
    Redirect,
    /// The login at the IdP through to the callback's cookie.
    Login,
    /// An authenticated call through the gateway.
    Call,
    /// The upstream hit directly (the baseline).
    Upstream,
}

/// Why a request failed, by kind (the report counts these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailKind {
    /// An answer with an unexpected status.
    Status(u16),
    /// The connection could not be made or broke.
    Connect,
    /// No answer in time.
    Timeout,
    /// Anything else (a body that broke, an IdP page we did not expect).
    Other,
}

impl std::fmt::Display for FailKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status(code) => write!(f, "status {code}"),
            Self::Connect => f.write_str("connect error"),
            Self::Timeout => f.write_str("timeout"),
            Self::Other => f.write_str("other"),
        }
    }
}

impl FailKind {
    /// A transport error's kind.
    pub fn of(error: &reqwest::Error) -> Self {
        if error.is_timeout() {
            Self::Timeout
        } else if error.is_connect() {
            Self::Connect
        } else {
            Self::Other
        }
    }
}

/// One finished request.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    /// When it ended, from the start of the run.
    pub at: Duration,
    /// How long it took.
    pub latency: Duration,
    /// What it was.
    pub op: Op,
    /// `None` when it succeeded.
    pub failed: Option<FailKind>,
    /// A cookie that had worked was sent to log in again.
    pub session_lost: bool,
}

/// One slice of the run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bucket {
    /// Its start, seconds from the start of the run.
    pub start_s: f64,
    /// Requests that succeeded (every kind).
    pub ok: u64,
    /// Requests that failed (every kind).
    pub failed: u64,
    /// Sessions lost in it.
    pub sessions_lost: u64,
    /// Authenticated calls that succeeded.
    pub calls: u64,
    /// Their median latency, ms (0 without calls).
    pub call_p50_ms: f64,
    /// Their 99th percentile, ms (0 without calls).
    pub call_p99_ms: f64,
}

/// The longest stretch of consecutive buckets that each hold a failed request.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct ErrorWindow {
    /// Its start, seconds from the start of the run.
    pub start_s: f64,
    /// Its length, ms (a whole number of buckets).
    pub length_ms: f64,
    /// The requests that failed in it.
    pub failed: u64,
}

/// The run as buckets.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Timeline {
    /// The width of a bucket, ms.
    pub bucket_ms: u64,
    /// The buckets, in time order, the last one possibly partial.
    pub buckets: Vec<Bucket>,
}

/// 100 ms buckets up to a minute of run, then 1 s (the plot and the JSON stay small).
pub fn bucket_width(wall: Duration) -> Duration {
    if wall <= Duration::from_secs(60) {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(1)
    }
}

impl Timeline {
    /// Groups `events` into buckets of `width` covering `wall`.
    pub fn of(events: &[Event], wall: Duration, width: Duration) -> Self {
        let width_us = width.as_micros().max(1);
        let count = usize::try_from(wall.as_micros().div_ceil(width_us))
            .unwrap_or(0)
            .max(1);
        let mut latencies: Vec<Vec<Duration>> = vec![Vec::new(); count];
        let mut buckets: Vec<Bucket> = (0..count)
            .map(|i| Bucket {
                start_s: (width * u32::try_from(i).unwrap_or(u32::MAX)).as_secs_f64(),
                ok: 0,
                failed: 0,
                sessions_lost: 0,
                calls: 0,
                call_p50_ms: 0.0,
                call_p99_ms: 0.0,
            })
            .collect();
        for event in events {
            let i = usize::try_from(event.at.as_micros() / width_us)
                .unwrap_or(usize::MAX)
                .min(count - 1);
            let bucket = &mut buckets[i];
            match event.failed {
                None => bucket.ok += 1,
                Some(_) => bucket.failed += 1,
            }
            if event.session_lost {
                bucket.sessions_lost += 1;
            }
            if event.op == Op::Call && event.failed.is_none() {
                bucket.calls += 1;
                latencies[i].push(event.latency);
            }
        }
        for (bucket, mut lat) in buckets.iter_mut().zip(latencies) {
            lat.sort_unstable();
            bucket.call_p50_ms = percentile_ms(&lat, 0.50);
            bucket.call_p99_ms = percentile_ms(&lat, 0.99);
        }
        Self {
            bucket_ms: u64::try_from(width.as_millis()).unwrap_or(u64::MAX),
            buckets,
        }
    }

    /// The longest stretch of buckets in a row that each hold a failure; `None` when
    /// nothing failed. The earliest wins a tie.
    pub fn longest_error_window(&self) -> Option<ErrorWindow> {
        let mut best: Option<(usize, usize, u64)> = None;
        let mut run: Option<(usize, usize, u64)> = None;
        for (i, bucket) in self.buckets.iter().enumerate() {
            if bucket.failed > 0 {
                let (start, len, failed) = run.unwrap_or((i, 0, 0));
                run = Some((start, len + 1, failed + bucket.failed));
            } else {
                run = None;
            }
            if let Some(r) = run
                && best.is_none_or(|b| r.1 > b.1)
            {
                best = Some(r);
            }
        }
        best.map(|(start, len, failed)| ErrorWindow {
            start_s: self.buckets[start].start_s,
            length_ms: (len as f64) * (self.bucket_ms as f64),
            failed,
        })
    }
}

/// Failed requests by kind (`status 503`, `connect error`, `timeout`, `other`).
pub fn failed_by_kind(events: &[Event]) -> BTreeMap<String, u64> {
    let mut kinds = BTreeMap::new();
    for kind in events.iter().filter_map(|e| e.failed) {
        *kinds.entry(kind.to_string()).or_insert(0) += 1;
    }
    kinds
}

/// The 99th percentile of the authenticated calls that succeeded and ended in
/// `[from, to)`, ms, and how many there were.
pub fn call_p99_between(events: &[Event], from: Duration, to: Duration) -> (f64, u64) {
    let mut lat: Vec<Duration> = events
        .iter()
        .filter(|e| e.op == Op::Call && e.failed.is_none() && e.at >= from && e.at < to)
        .map(|e| e.latency)
        .collect();
    lat.sort_unstable();
    (percentile_ms(&lat, 0.99), lat.len() as u64)
}

/// Requests of any kind that failed in `[from, to)`.
pub fn failed_between(events: &[Event], from: Duration, to: Duration) -> u64 {
    events
        .iter()
        .filter(|e| e.failed.is_some() && e.at >= from && e.at < to)
        .count() as u64
}

/// The `q` quantile of sorted latencies (nearest rank), ms; 0 when there are none.
fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

/// Height of the timeline panel under the latency distributions in the report's SVG.
pub const PANEL_H: f64 = 300.0;

/// The most timeline rows the text report prints (the JSON has every bucket).
const TEXT_ROWS: usize = 120;

impl Timeline {
    /// Per-second rows for the text report: requests that succeeded, failed, sessions lost,
    /// and the worst bucket's call p99 in that second.
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let per_second = (1000 / self.bucket_ms.max(1)).max(1) as usize;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "timeline (per second; worst {} ms bucket's call p99):",
            self.bucket_ms
        );
        let _ = writeln!(
            out,
            "  {:>6} {:>8} {:>7} {:>5} {:>10}",
            "t s", "ok", "failed", "lost", "p99 ms"
        );
        let seconds: Vec<&[Bucket]> = self.buckets.chunks(per_second).collect();
        for (second, chunk) in seconds.iter().enumerate().take(TEXT_ROWS) {
            let ok: u64 = chunk.iter().map(|b| b.ok).sum();
            let failed: u64 = chunk.iter().map(|b| b.failed).sum();
            let lost: u64 = chunk.iter().map(|b| b.sessions_lost).sum();
            let p99 = chunk.iter().map(|b| b.call_p99_ms).fold(0.0, f64::max);
            let _ = writeln!(
                out,
                "  {second:>6} {ok:>8} {failed:>7} {lost:>5} {p99:>10.2}"
            );
        }
        if seconds.len() > TEXT_ROWS {
            let _ = writeln!(
                out,
                "  ... {} more seconds in the JSON report",
                seconds.len() - TEXT_ROWS
            );
        }
        out
    }

    /// The timeline panel of the report's SVG at `top`, `width` wide: call p99 per bucket
    /// (a line, left axis), failed requests per bucket (red bars, right axis), sessions lost
    /// (black bars) and a dashed mark where each fault fired.
    pub fn svg_panel(&self, marks: &[(f64, String)], top: f64, width: f64) -> String {
        use std::fmt::Write as _;
        const LEFT: f64 = 60.0;
        const RIGHT: f64 = 200.0;
        const HEAD: f64 = 34.0;
        const FOOT: f64 = 44.0;
        let plot_w = width - LEFT - RIGHT;
        let plot_h = PANEL_H - HEAD - FOOT;
        let y0 = top + HEAD;
        let span_s = (self.buckets.len() as f64 * self.bucket_ms as f64 / 1000.0).max(0.001);
        let x = |s: f64| LEFT + (s / span_s).clamp(0.0, 1.0) * plot_w;
        let p99_max = self
            .buckets
            .iter()
            .map(|b| b.call_p99_ms)
            .fold(0.0, f64::max)
            .max(1.0)
            * 1.1;
        let failed_max = self
            .buckets
            .iter()
            .map(|b| b.failed)
            .max()
            .unwrap_or(0)
            .max(1) as f64;
        let y_ms = |ms: f64| y0 + plot_h - (ms / p99_max).clamp(0.0, 1.0) * plot_h;
        let bar_w = (plot_w / self.buckets.len().max(1) as f64).max(1.0);
        let mut out = String::new();
        let _ = writeln!(
            out,
            r#"<text x="{LEFT}" y="{:.1}" font-size="14">over time: call p99 per {} ms, failed requests, sessions lost, faults</text>"#,
            top + 22.0,
            self.bucket_ms
        );
        let _ = writeln!(
            out,
            r#"<rect x="{LEFT}" y="{y0:.1}" width="{plot_w:.1}" height="{plot_h:.1}" fill="none" stroke="black"/>"#
        );
        // Time ticks: about ten.
        let step = nice_step(span_s / 10.0);
        let mut t = 0.0;
        while t <= span_s + 1e-9 {
            let gx = x(t);
            let _ = writeln!(
                out,
                r##"<line x1="{gx:.1}" y1="{y0:.1}" x2="{gx:.1}" y2="{:.1}" stroke="#eee"/><text x="{gx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                y0 + plot_h,
                y0 + plot_h + 16.0,
                trim(t)
            );
            t += step;
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">seconds from the start</text>"#,
            LEFT + plot_w / 2.0,
            top + PANEL_H - 8.0
        );
        for frac in [0.0, 0.5, 1.0] {
            let ms = p99_max * frac;
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{ms:.1}</text>"#,
                LEFT - 6.0,
                y_ms(ms) + 4.0
            );
        }
        for (i, b) in self.buckets.iter().enumerate() {
            let bx = LEFT + i as f64 * bar_w;
            if b.failed > 0 {
                let h = b.failed as f64 / failed_max * plot_h;
                let _ = writeln!(
                    out,
                    r##"<rect x="{bx:.1}" y="{:.1}" width="{bar_w:.1}" height="{h:.1}" fill="#d62728" opacity="0.6"><title>{} failed at {:.1} s</title></rect>"##,
                    y0 + plot_h - h,
                    b.failed,
                    b.start_s
                );
            }
            if b.sessions_lost > 0 {
                let h = (b.sessions_lost as f64 / failed_max * plot_h).max(2.0);
                let _ = writeln!(
                    out,
                    r##"<rect x="{bx:.1}" y="{:.1}" width="{bar_w:.1}" height="{h:.1}" fill="black"><title>{} sessions lost at {:.1} s</title></rect>"##,
                    y0 + plot_h - h,
                    b.sessions_lost,
                    b.start_s
                );
            }
        }
        let points: Vec<String> = self
            .buckets
            .iter()
            .filter(|b| b.calls > 0)
            .map(|b| {
                format!(
                    "{:.1},{:.1}",
                    x(b.start_s + self.bucket_ms as f64 / 2000.0),
                    y_ms(b.call_p99_ms)
                )
            })
            .collect();
        if points.len() > 1 {
            let _ = writeln!(
                out,
                r##"<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{}"/>"##,
                points.join(" ")
            );
        }
        for (at_s, label) in marks {
            let mx = x(*at_s);
            let _ = writeln!(
                out,
                r##"<line x1="{mx:.1}" y1="{y0:.1}" x2="{mx:.1}" y2="{:.1}" stroke="#9467bd" stroke-width="2" stroke-dasharray="6,3"/><text x="{:.1}" y="{:.1}" fill="#9467bd">{}</text>"##,
                y0 + plot_h,
                mx + 3.0,
                y0 + 12.0,
                label.replace('&', "&amp;").replace('<', "&lt;")
            );
        }
        let lx = LEFT + plot_w + 12.0;
        for (i, (colour, text)) in [
            ("#1f77b4", "call p99 (ms, left)"),
            (
                "#d62728",
                format!("failed per bucket (bar max {failed_max:.0})").as_str(),
            ),
            ("black", "sessions lost"),
            ("#9467bd", "fault fired"),
        ]
        .iter()
        .enumerate()
        {
            let ly = y0 + 10.0 + i as f64 * 22.0;
            let _ = writeln!(
                out,
                r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{text}</text>"#,
                lx + 18.0,
                lx + 24.0,
                ly + 4.0
            );
        }
        out
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 {
        return 1.0;
    }
    let base = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * base)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * base)
}

fn trim(v: f64) -> String {
    let text = format!("{v:.1}");
    text.strip_suffix(".0").map_or(text.clone(), str::to_owned)
}

#[cfg(test)]
mod tests;
