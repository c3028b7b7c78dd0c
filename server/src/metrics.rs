//! Process-wide metrics in the Prometheus text format (served at `/metrics` on the admin
//! listener by [`crate::transport::admin`]).
//!
//! A small hand-written registry: a handful of counters and histograms behind one std
//! `Mutex` (never held across an `.await`). It is global so that any module can record with
//! one call (`metrics::record_refresh(..)`) without threading a handle through the flow; the
//! price is that several servers in one process (tests) share it, so tests compare deltas.
//!
//! Metric names (all prefixed `extauth_`):
//! - `extauth_decisions_total{transport,outcome,config}`: one per check;
//! - `extauth_check_duration_seconds{transport}`: latency of a whole check;
//! - `extauth_idp_request_duration_seconds{call}`: discovery, jwks, token, refresh...;
//! - `extauth_redis_command_duration_seconds{op}`: load, save, delete, ping...;
//! - `extauth_session_refreshes_total{config,result}`: token refreshes (`ok`, `rejected`);
//! - `extauth_errors_total{kind}`: flow errors by variant (`state`, `idp_token_endpoint`,
//!   `session_store_unavailable`...), `redis` (a failed Redis command), `redis_timeout` (no
//!   answer within `commandTimeout`), `redis_master_lost` (a Sentinel master dropped after a
//!   switch-like error), `durable_write_unacknowledged` (fewer replicas than
//!   `durableSessions.replicas` acknowledged a session in time), `discovery_startup`.
//!
//! Label values never carry request data except a *loaded* AuthConfig id: an id a request
//! names but that is not loaded is counted as `unknown`, so clients cannot grow the registry.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http::StatusCode;

use crate::flow::Decision;

/// Upper bounds (seconds) of the latency histograms: 0.5 ms to 10 s (the IdP timeout).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const DECISIONS: &str = "extauth_decisions_total";
const CHECK_DURATION: &str = "extauth_check_duration_seconds";
const IDP_DURATION: &str = "extauth_idp_request_duration_seconds";
const REDIS_DURATION: &str = "extauth_redis_command_duration_seconds";
const REFRESHES: &str = "extauth_session_refreshes_total";
const ERRORS: &str = "extauth_errors_total";

/// Name, type and help of every family, in output order. Families are listed even before
/// their first sample so that dashboards and alerts see them from the start.
const FAMILIES: [(&str, Kind, &str); 6] = [
    (
        DECISIONS,
        Kind::Counter,
        "Checks decided, by transport (grpc, http), outcome and AuthConfig (namespace/name).",
    ),
    (
        CHECK_DURATION,
        Kind::Histogram,
        "Time to decide one check, by transport.",
    ),
    (
        IDP_DURATION,
        Kind::Histogram,
        "Calls to the identity provider, by call (discovery, jwks, token, refresh...).",
    ),
    (
        REDIS_DURATION,
        Kind::Histogram,
        "Session store commands on Redis, by op (load, save, delete, ping...).",
    ),
    (
        REFRESHES,
        Kind::Counter,
        "Token refreshes, by AuthConfig and result (ok, rejected: the IdP refused the refresh token).",
    ),
    (
        ERRORS,
        Kind::Counter,
        "Errors by kind: flow errors by variant, failed Redis commands (redis), discovery failed at startup (discovery_startup).",
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Histogram,
}

/// Label pairs, sorted by name (the `BTreeMap` key order).
type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Clone, Default)]
struct Histogram {
    /// Cumulative counts are computed at render time; these are per bucket.
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }
}

#[derive(Debug, Default)]
struct Registry {
    counters: BTreeMap<(&'static str, Labels), u64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| Mutex::new(Registry::default()));

fn registry() -> MutexGuard<'static, Registry> {
    // A panic while holding the lock cannot leave a counter half-written; keep serving.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    let mut v: Labels = pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    v.sort();
    v
}

fn inc(name: &'static str, pairs: &[(&'static str, &str)]) {
    *registry()
        .counters
        .entry((name, labels(pairs)))
        .or_default() += 1;
}

fn observe(name: &'static str, pairs: &[(&'static str, &str)], elapsed: Duration) {
    registry()
        .histograms
        .entry((name, labels(pairs)))
        .or_default()
        .observe(elapsed.as_secs_f64());
}

/// Which transport decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Envoy ext_authz over gRPC.
    Grpc,
    /// The HTTP mode (Envoy HTTP ext_authz, forward-auth).
    Http,
}

impl Transport {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::Http => "http",
        }
    }
}

/// The `outcome` label of a decision: `allow`, `redirect` (3xx), `deny_bad_request` (400),
/// `deny_unauthorized` (401), `deny_forbidden` (403), `deny_client` (other 4xx),
/// `deny_error` (5xx), `respond` (any other status the flow answers itself, e.g. a logout
/// page).
pub fn outcome(decision: &Decision) -> &'static str {
    match decision {
        Decision::Allow(_) => "allow",
        Decision::Deny(deny) => outcome_of_status(deny.status),
    }
}

fn outcome_of_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        300..=399 => "redirect",
        400 => "deny_bad_request",
        401 => "deny_unauthorized",
        403 => "deny_forbidden",
        402..=499 => "deny_client",
        500..=599 => "deny_error",
        _ => "respond",
    }
}

/// Records one decided check: the outcome counter and the latency histogram.
pub fn record_decision(transport: Transport, config: &str, outcome: &str, elapsed: Duration) {
    inc(
        DECISIONS,
        &[
            ("transport", transport.as_str()),
            ("outcome", outcome),
            ("config", config),
        ],
    );
    observe(
        CHECK_DURATION,
        &[("transport", transport.as_str())],
        elapsed,
    );
}

/// Records one IdP call (`call`: `discovery`, `jwks`, `token`, `refresh`...) that took
/// `elapsed`.
pub fn record_idp_call(call: &'static str, elapsed: Duration) {
    observe(IDP_DURATION, &[("call", call)], elapsed);
}

/// Records one Redis command (`op`: `load`, `save`, `delete`, `ping`, `lock`...).
pub fn record_redis_command(op: &'static str, elapsed: Duration) {
    observe(REDIS_DURATION, &[("op", op)], elapsed);
}

/// Times one backend call from now until it is dropped, also when a `?` returns early:
/// `let timer = metrics::idp_timer("token"); ...; drop(timer);`.
#[derive(Debug)]
#[must_use = "the call is recorded when the timer is dropped: bind it with `let`"]
pub struct CallTimer {
    family: &'static str,
    label: (&'static str, &'static str),
    started: Instant,
}

impl Drop for CallTimer {
    fn drop(&mut self) {
        observe(self.family, &[self.label], self.started.elapsed());
    }
}

/// A timer for one IdP call (`discovery`, `jwks`, `token`, `refresh`, `revoke`...).
pub fn idp_timer(call: &'static str) -> CallTimer {
    CallTimer {
        family: IDP_DURATION,
        label: ("call", call),
        started: Instant::now(),
    }
}

/// A timer for one Redis command (`load`, `save`, `delete`, `ping`, `lock`, `unlock`).
pub fn redis_timer(op: &'static str) -> CallTimer {
    CallTimer {
        family: REDIS_DURATION,
        label: ("op", op),
        started: Instant::now(),
    }
}

/// Counts one token refresh for `config` (a loaded AuthConfig id): `refreshed` when the IdP
/// issued new tokens, `false` when it refused the refresh token (`result="rejected"`).
/// Transient failures are counted by the flow error they become.
pub fn record_refresh(config: &str, refreshed: bool) {
    let result = if refreshed { "ok" } else { "rejected" };
    inc(REFRESHES, &[("config", config), ("result", result)]);
}

/// Counts one error of `kind` (a fixed, lowercase word chosen by the caller; never request
/// data).
pub fn record_error_kind(kind: &str) {
    inc(ERRORS, &[("kind", kind)]);
}

/// Counts an error by its variant: `FlowError::Idp(OidcError::Discovery { .. })` counts as
/// `idp_discovery`, `FlowError::NoConfigSelected` as `no_config_selected`. Taken from the
/// `Debug` text's leading identifiers only (never the data in it), so new variants need no
/// change here.
pub fn record_error<E: std::fmt::Debug>(error: &E) {
    record_error_kind(&error_kind(&format!("{error:?}")));
}

/// `Idp(Discovery { url: .. })` → `idp_discovery`; `UnknownConfig("x")` → `unknown_config`.
fn error_kind(debug: &str) -> String {
    let mut kind = String::new();
    let mut rest = debug;
    for depth in 0..2 {
        let ident: &str = {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        };
        if ident.is_empty() || !ident.starts_with(|c: char| c.is_ascii_uppercase()) {
            break;
        }
        if depth > 0 {
            kind.push('_');
        }
        kind.push_str(&snake_case(ident));
        match rest[ident.len()..].strip_prefix('(') {
            Some(inner) => rest = inner,
            None => break,
        }
    }
    if kind.is_empty() {
        kind.push_str("other");
    }
    kind
}

fn snake_case(ident: &str) -> String {
    let mut out = String::with_capacity(ident.len() + 4);
    for (i, c) in ident.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The current value of counter `name` with exactly these labels (0 if never incremented).
/// For tests and the harness.
pub fn counter_value(name: &str, pairs: &[(&'static str, &str)]) -> u64 {
    let key = labels(pairs);
    registry()
        .counters
        .iter()
        .find(|((n, l), _)| *n == name && *l == key)
        .map_or(0, |(_, v)| *v)
}

/// Every metric in the Prometheus text exposition format (version 0.0.4).
pub fn render() -> String {
    let registry = registry();
    let mut out = String::new();
    for (name, kind, help) in FAMILIES {
        let _ = writeln!(out, "# HELP {name} {help}");
        match kind {
            Kind::Counter => {
                let _ = writeln!(out, "# TYPE {name} counter");
                for ((_, labels), value) in
                    registry.counters.iter().filter(|((n, _), _)| *n == name)
                {
                    let _ = writeln!(out, "{name}{} {value}", render_labels(labels, None));
                }
            }
            Kind::Histogram => {
                let _ = writeln!(out, "# TYPE {name} histogram");
                for ((_, labels), h) in registry.histograms.iter().filter(|((n, _), _)| *n == name)
                {
                    let mut cumulative = 0;
                    for (bound, n) in LATENCY_BUCKETS.iter().zip(h.buckets) {
                        cumulative += n;
                        let le = bound.to_string();
                        let _ = writeln!(
                            out,
                            "{name}_bucket{} {cumulative}",
                            render_labels(labels, Some(&le))
                        );
                    }
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {}",
                        render_labels(labels, Some("+Inf")),
                        h.count
                    );
                    let _ = writeln!(out, "{name}_sum{} {}", render_labels(labels, None), h.sum);
                    let _ = writeln!(
                        out,
                        "{name}_count{} {}",
                        render_labels(labels, None),
                        h.count
                    );
                }
            }
        }
    }
    out
}

fn render_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// Label value escaping of the text format: backslash, double quote, newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests;
