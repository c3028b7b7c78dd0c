//! `harness load --target http|grpc`: extauth's authenticated check, loaded directly (no
//! gateway) over pre-created sessions ([`super::sessions`]), beside baselines measured in
//! the same run:
//! - `redis`: a `GET` of the same session keys through the redis crate, at the same
//!   concurrency, on the same Redis: the one round trip a check cannot avoid;
//! - `noop`: the same server stack with no decision behind it: extauth's own `/healthz`
//!   (axum, for the HTTP mode), or [`crate::noop_authz`] (tonic, for gRPC).
//!
//! Each series gets `connections` connections of its own, opened once. Closed loop (the
//! default): each connection sends its next request when the last one answered. Open loop
//! (`rate`): requests leave at fixed times (the rate split over the connections, each
//! connection's schedule offset from the others), and a request's latency is measured from
//! the time it was *due*, not the time it left: a server that stalls cannot hide the queue it
//! caused (the coordinated-omission correction of wrk2).
//!
//! The series take turns: the run is cut into slices (1 s by default) and every series runs
//! one slice per round, in alternating order, after one unrecorded warm-up slice each. On a
//! shared, noisy machine every series then sees the same noise, so their ratios hold even
//! when the absolute figures move.
//!
//! Each connection cycles through its share of a session set (connection `w` of `C` takes
//! sessions `w`, `w + C`, ...), so a set of a million is walked through, not one hot key.
//! Latencies go into HDR histograms (microseconds, 3 significant digits).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Request as AttrRequest,
};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;

use super::Series;
use super::sessions::{CreationReport, SessionSet};

/// The path every check asks for (the seed's LLM route).
pub const CHECK_PATH: &str = "/openai";
/// The longest run.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// The most connections per series.
pub const MAX_CONNECTIONS: usize = 1024;

/// Which listener of extauth is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckTarget {
    /// The HTTP mode: `GET /openai` with the session cookie; 200 is an allow.
    Http,
    /// `envoy.service.auth.v3.Authorization/Check`; gRPC status OK is an allow.
    Grpc,
    /// `GET /openai` with the cookie through the gateway simulator (ext_authz: extauth's
    /// gRPC listener) to a trivial upstream; beside it the same simulator with the no-op
    /// ext_authz server, and extauth's gRPC check loaded directly.
    Sim,
    /// The same through agentgateway (v1.3.1), beside an agentgateway with the no-op
    /// ext_authz server, same route, same upstream.
    Agentgateway,
}

impl CheckTarget {
    /// `http` or `grpc`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckTarget::Http => "http",
            CheckTarget::Grpc => "grpc",
            CheckTarget::Sim => "sim",
            CheckTarget::Agentgateway => "agentgateway",
        }
    }

    /// Whether the load goes through a gateway pair ([`super::gateways`]).
    pub fn through_gateway(self) -> bool {
        matches!(self, CheckTarget::Sim | CheckTarget::Agentgateway)
    }
}

/// A baseline measured in the same run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Baseline {
    /// `GET` of the session keys through the redis crate.
    Redis,
    /// The same server stack without a decision (`/healthz`, or the no-op gRPC server).
    Noop,
}

/// How hard, how long, and against what.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// HTTP or gRPC.
    pub target: CheckTarget,
    /// One check series per session count (sets created for the run).
    pub sessions: Vec<usize>,
    /// Connections per series.
    pub connections: usize,
    /// Open loop at this many requests per second (per series, all connections together);
    /// `None`: closed loop.
    pub rate: Option<f64>,
    /// Recorded time per series.
    pub duration: Duration,
    /// One slice (a series' turn).
    pub slice: Duration,
    /// The unrecorded first turn of each series.
    pub warmup: Duration,
    /// Baselines to measure beside the checks.
    pub baselines: Vec<Baseline>,
    /// Bound on one request.
    pub request_timeout: Duration,
    /// Print each round on stderr.
    pub progress: bool,
    /// The agentgateway binary (`--target agentgateway`); `None`: PATH, then
    /// `../shared/bin`.
    pub agentgateway: Option<std::path::PathBuf>,
    /// Whether extauth runs with `clientSideCache` (`--client-side-cache`): in the report.
    pub client_side_cache: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            target: CheckTarget::Http,
            sessions: vec![1_000],
            connections: 1,
            rate: None,
            duration: Duration::from_secs(10),
            slice: Duration::from_secs(1),
            warmup: Duration::from_millis(500),
            baselines: vec![Baseline::Redis, Baseline::Noop],
            request_timeout: Duration::from_secs(5),
            progress: false,
            agentgateway: None,
            client_side_cache: false,
        }
    }
}

impl CheckOptions {
    /// Refuses options that cannot run, saying which.
    pub fn validate(&self) -> Result<(), String> {
        if self.sessions.is_empty() || self.sessions.contains(&0) {
            return Err("--sessions: each count must be at least 1".into());
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.connections) {
            return Err(format!(
                "--connections: expected 1 to {MAX_CONNECTIONS}, got {}",
                self.connections
            ));
        }
        if let Some(rate) = self.rate
            && !(rate.is_finite() && rate > 0.0 && rate <= 10_000_000.0)
        {
            return Err(format!(
                "--rate: expected requests per second above 0 (at most 10000000), got {rate}"
            ));
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return Err(format!(
                "--duration: expected more than 0 and at most {} s",
                MAX_DURATION.as_secs()
            ));
        }
        if self.slice.is_zero() {
            return Err("the slice must be longer than 0".into());
        }
        Ok(())
    }
}

/// Where the load goes.
#[derive(Debug, Clone)]
pub struct CheckEndpoints {
    /// extauth's HTTP listener.
    pub http: SocketAddr,
    /// extauth's gRPC listener.
    pub grpc: SocketAddr,
    /// extauth's admin listener (`/healthz`).
    pub admin: SocketAddr,
    /// The no-op ext_authz server (gRPC baseline).
    pub noop_grpc: Option<SocketAddr>,
    /// `--target sim|agentgateway`: the gateway whose ext_authz is extauth.
    pub gateway: Option<SocketAddr>,
    /// `--target sim|agentgateway`: the gateway whose ext_authz is the no-op server.
    pub gateway_noop: Option<SocketAddr>,
    /// The Redis the sessions are in.
    pub redis_url: String,
    /// The original request's authority (`Host`), as the gateway would send it.
    pub host: String,
    /// What the target is, for the report.
    pub description: String,
    /// extauth's process (replica 0), when it runs as one: its CPU time is read around
    /// every slice.
    pub extauth_pid: Option<u32>,
}

/// CPU time one series cost, per successful request (from `/proc/PID/stat` around its
/// slices; 10 ms resolution, so only meaningful over seconds).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CpuFigure {
    /// The series.
    pub series: String,
    /// This harness process (the load generator, and with `--target sim` the simulators,
    /// the trivial upstream), µs per request.
    pub harness_us_per_request: f64,
    /// extauth's process, µs per request (`None`: extauth runs inside the harness).
    pub extauth_us_per_request: Option<f64>,
}

/// User + system CPU time of process `pid` (`None`: this one) so far.
fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_owned(),
        |p| format!("/proc/{p}/stat"),
    );
    let text = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may hold spaces): state is the first; utime and
    // stime (fields 14 and 15 of proc(5)) are the 12th and 13th, in USER_HZ (100/s).
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// One ratio of the report, with the target it is held to (if any).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ratio {
    /// What over what.
    pub name: String,
    /// The ratio (`None`: a side had no samples).
    pub value: Option<f64>,
    /// The target, as text (`<= 1.3x`).
    pub target: Option<String>,
    /// Whether the target is met.
    pub met: Option<bool>,
}

/// The outcome of a check load run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckReport {
    /// `http` or `grpc`.
    pub target: CheckTarget,
    /// The backends.
    pub description: String,
    /// Connections per series.
    pub connections: usize,
    /// Open-loop rate per series, or `None` (closed loop).
    pub rate: Option<f64>,
    /// Recorded seconds per series.
    pub duration_seconds: f64,
    /// Rounds run.
    pub rounds: u32,
    /// The session sets.
    pub sessions: Vec<usize>,
    /// How they were made and what they cost Redis.
    pub creation: CreationReport,
    /// The checks, then the baselines.
    pub series: Vec<Series>,
    /// Failed requests per series and kind.
    pub errors: BTreeMap<String, u64>,
    /// Checks over baselines.
    pub ratios: Vec<Ratio>,
    /// CPU time per request, per series.
    #[serde(default)]
    pub cpu: Vec<CpuFigure>,
    /// extauth ran with `clientSideCache`.
    #[serde(default)]
    pub client_side_cache: bool,
}

/// The series of a run.
#[derive(Debug, Clone)]
enum Kind {
    Check {
        set: usize,
    },
    RedisGet {
        set: usize,
    },
    Healthz,
    NoopGrpc,
    /// The gateway with the no-op ext_authz server (same requests, set 0's cookies).
    GatewayNoop,
    /// extauth's gRPC check, directly (what the simulator is held against).
    DirectGrpc {
        set: usize,
    },
}

#[derive(Debug, Clone)]
struct Spec {
    name: String,
    kind: Kind,
}

/// Runs the check load against `endpoints` with the pre-created `sets` (one per
/// `options.sessions` entry, in that order).
pub async fn run(
    endpoints: &CheckEndpoints,
    sets: &[Arc<SessionSet>],
    creation: CreationReport,
    options: &CheckOptions,
) -> Result<CheckReport, String> {
    options.validate()?;
    if sets.len() != options.sessions.len() || sets.iter().any(|s| s.is_empty()) {
        return Err("one non-empty session set per --sessions count is needed".into());
    }
    let mut specs: Vec<Spec> = options
        .sessions
        .iter()
        .enumerate()
        .map(|(set, n)| Spec {
            name: if options.target.through_gateway() {
                format!("check via {} ({} sessions)", options.target.as_str(), n)
            } else {
                format!("check {} ({} sessions)", options.target.as_str(), n)
            },
            kind: Kind::Check { set },
        })
        .collect();
    for baseline in &options.baselines {
        match (baseline, options.target) {
            (Baseline::Redis, _) => specs.push(Spec {
                name: format!("baseline: redis GET ({} keys)", options.sessions[0]),
                kind: Kind::RedisGet { set: 0 },
            }),
            (Baseline::Noop, CheckTarget::Http) => specs.push(Spec {
                name: "baseline: extauth /healthz".into(),
                kind: Kind::Healthz,
            }),
            (Baseline::Noop, CheckTarget::Grpc) => {
                if endpoints.noop_grpc.is_none() {
                    return Err("--baseline noop with --target grpc needs the no-op server".into());
                }
                specs.push(Spec {
                    name: "baseline: no-op ext_authz gRPC".into(),
                    kind: Kind::NoopGrpc,
                });
            }
            (Baseline::Noop, target) => {
                if endpoints.gateway_noop.is_none() {
                    return Err(format!(
                        "--baseline noop with --target {} needs the gateway with the no-op server",
                        target.as_str()
                    ));
                }
                specs.push(Spec {
                    name: format!("baseline: {} + no-op ext_authz", target.as_str()),
                    kind: Kind::GatewayNoop,
                });
                if target == CheckTarget::Sim {
                    specs.push(Spec {
                        name: format!("extauth gRPC direct ({} sessions)", options.sessions[0]),
                        kind: Kind::DirectGrpc { set: 0 },
                    });
                }
            }
        }
    }

    // Every series' connections, opened before anything is timed.
    let mut drivers: Vec<Vec<Driver>> = Vec::with_capacity(specs.len());
    for spec in &specs {
        let mut conns = Vec::with_capacity(options.connections);
        for _ in 0..options.connections {
            conns.push(Driver::connect(&spec.kind, endpoints, sets, options.target).await?);
        }
        drivers.push(conns);
    }
    let empty = Histogram::<u64>::new(3).map_err(|e| format!("histogram: {e}"))?;
    let mut tallies: Vec<Tally> = specs.iter().map(|_| Tally::new(&empty)).collect();
    let mut cursors: Vec<Vec<usize>> = specs
        .iter()
        .map(|_| (0..options.connections).collect())
        .collect();

    // Warm-up: one unrecorded turn each.
    for (i, spec) in specs.iter().enumerate() {
        let mut scratch = Tally::new(&empty);
        let conns = std::mem::take(&mut drivers[i]);
        drivers[i] = run_slice(
            conns,
            &mut cursors[i],
            set_len(&spec.kind, sets),
            options,
            options.warmup,
            &mut scratch,
        )
        .await;
    }
    let rounds = u32::try_from(
        options
            .duration
            .as_nanos()
            .div_ceil(options.slice.as_nanos()),
    )
    .unwrap_or(u32::MAX)
    .max(1);
    let per_slice = options.duration / rounds;
    for round in 0..rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..specs.len()).collect()
        } else {
            (0..specs.len()).rev().collect()
        };
        for i in order {
            let conns = std::mem::take(&mut drivers[i]);
            let before = (cpu_time(None), cpu_time(endpoints.extauth_pid));
            drivers[i] = run_slice(
                conns,
                &mut cursors[i],
                set_len(&specs[i].kind, sets),
                options,
                per_slice,
                &mut tallies[i],
            )
            .await;
            let after = (cpu_time(None), cpu_time(endpoints.extauth_pid));
            if let (Some(a), Some(b)) = (before.0, after.0) {
                tallies[i].cpu_harness += b.saturating_sub(a);
            }
            if let (Some(a), Some(b)) = (before.1, after.1) {
                tallies[i].cpu_extauth =
                    Some(tallies[i].cpu_extauth.unwrap_or_default() + b.saturating_sub(a));
            }
        }
        if options.progress {
            eprintln!(
                "load: round {}/{rounds}  {}",
                round + 1,
                specs
                    .iter()
                    .zip(&tallies)
                    .map(|(s, t)| format!("{}: {}", short(&s.name), t.histogram.len()))
                    .collect::<Vec<_>>()
                    .join("  ")
            );
        }
    }

    let series: Vec<Series> = specs
        .iter()
        .zip(&tallies)
        .map(|(spec, t)| Series::of(&spec.name, &t.histogram, t.active))
        .collect();
    let mut errors = BTreeMap::new();
    for (spec, t) in specs.iter().zip(&tallies) {
        for (kind, n) in &t.errors {
            errors.insert(format!("{}: {kind}", spec.name), *n);
        }
    }
    let mut ratios = ratios(&specs, &series, options);
    let cpu: Vec<CpuFigure> = specs
        .iter()
        .zip(&tallies)
        .map(|(spec, t)| {
            let n = t.histogram.len().max(1) as f64;
            CpuFigure {
                series: spec.name.clone(),
                harness_us_per_request: t.cpu_harness.as_secs_f64() * 1e6 / n,
                extauth_us_per_request: t.cpu_extauth.map(|c| c.as_secs_f64() * 1e6 / n),
            }
        })
        .collect();
    // What the simulator could serve on the CPU extauth needs for a check: extauth's CPU per
    // direct check over this process's CPU per request through the simulator with the no-op
    // server. This process also runs the load generator and the trivial upstream then, so
    // the figure is a lower bound of the simulator's headroom.
    let cpu_of = |pred: &dyn Fn(&Kind) -> bool| {
        specs
            .iter()
            .zip(&cpu)
            .find(|(s, _)| pred(&s.kind))
            .map(|(_, c)| c.clone())
    };
    if let (Some(sim), Some(direct)) = (
        cpu_of(&|k| matches!(k, Kind::GatewayNoop)),
        cpu_of(&|k| matches!(k, Kind::DirectGrpc { .. })),
    ) && let Some(extauth) = direct.extauth_us_per_request
        && sim.harness_us_per_request > 0.0
    {
        let value = extauth / sim.harness_us_per_request;
        ratios.push(Ratio {
            name: "extauth CPU per check / harness CPU per sim request (no-op)".into(),
            value: Some(value),
            target: Some(">= 3x (CPU capacity, lower bound)".into()),
            met: Some(value >= 3.0),
        });
    }
    Ok(CheckReport {
        target: options.target,
        description: endpoints.description.clone(),
        connections: options.connections,
        rate: options.rate,
        duration_seconds: options.duration.as_secs_f64(),
        rounds,
        sessions: options.sessions.clone(),
        creation,
        series,
        errors,
        ratios,
        cpu,
        client_side_cache: options.client_side_cache,
    })
}

fn short(name: &str) -> &str {
    name.split(" (").next().unwrap_or(name)
}

fn set_len(kind: &Kind, sets: &[Arc<SessionSet>]) -> usize {
    match kind {
        Kind::Check { set } | Kind::RedisGet { set } | Kind::DirectGrpc { set } => sets[*set].len(),
        Kind::GatewayNoop => sets[0].len(),
        Kind::Healthz | Kind::NoopGrpc => 1,
    }
}

/// The figures the issue holds the check to, each beside its target.
fn ratios(specs: &[Spec], series: &[Series], options: &CheckOptions) -> Vec<Ratio> {
    let find = |pred: &dyn Fn(&Kind) -> bool| {
        specs
            .iter()
            .zip(series)
            .find(|(s, _)| pred(&s.kind))
            .map(|(_, s)| s)
    };
    let redis = find(&|k| matches!(k, Kind::RedisGet { .. }));
    let noop = find(&|k| matches!(k, Kind::Healthz | Kind::NoopGrpc | Kind::GatewayNoop));
    let direct = find(&|k| matches!(k, Kind::DirectGrpc { .. }));
    let noop_name = match options.target {
        CheckTarget::Http => "/healthz",
        CheckTarget::Grpc => "no-op gRPC",
        CheckTarget::Sim => "sim + no-op",
        CheckTarget::Agentgateway => "agentgateway + no-op",
    };
    let closed16 = options.connections >= 16 && options.rate.is_none();
    let checks: Vec<(&Series, usize)> = specs
        .iter()
        .zip(series)
        .filter_map(|(s, series)| match s.kind {
            Kind::Check { set } => Some((series, options.sessions[set])),
            _ => None,
        })
        .collect();
    let div = |a: f64, b: f64, ca: u64, cb: u64| (ca > 0 && cb > 0 && b > 0.0).then(|| a / b);
    let mut out = Vec::new();
    let held = |value: Option<f64>, max: Option<f64>, min: Option<f64>| {
        value.map(|v| max.is_none_or(|m| v <= m) && min.is_none_or(|m| v >= m))
    };
    for (check, n) in &checks {
        if let Some(redis) = redis {
            let value = div(check.p50_ms, redis.p50_ms, check.count, redis.count);
            let applies = options.connections == 1 && !options.target.through_gateway();
            out.push(Ratio {
                name: format!("check p50 / redis GET p50 ({n} sessions)"),
                value,
                target: applies.then(|| "<= 1.3x at 1 connection".to_owned()),
                met: if applies {
                    held(value, Some(1.3), None)
                } else {
                    None
                },
            });
            out.push(Ratio {
                name: format!("check p99 / redis GET p99 ({n} sessions)"),
                value: div(check.p99_ms, redis.p99_ms, check.count, redis.count),
                target: None,
                met: None,
            });
        }
        if let Some(noop) = noop {
            // The targets: extauth direct >= 0.5x its no-op stack at 16
            // connections; through agentgateway >= 0.7x agentgateway with the no-op
            // server at 16 and p50 <= 1.3x at 1.
            let (min_throughput, max_p50) = match options.target {
                CheckTarget::Http | CheckTarget::Grpc => (Some(0.5), None),
                CheckTarget::Agentgateway => (Some(0.7), Some(1.3)),
                CheckTarget::Sim => (None, None),
            };
            let value = div(check.per_second, noop.per_second, check.count, noop.count);
            let applies = closed16 && min_throughput.is_some();
            out.push(Ratio {
                name: format!("check throughput / {noop_name} throughput ({n} sessions)"),
                value,
                target: min_throughput
                    .filter(|_| applies)
                    .map(|m| format!(">= {m}x at 16 connections")),
                met: if applies {
                    held(value, None, min_throughput)
                } else {
                    None
                },
            });
            let value = div(check.p50_ms, noop.p50_ms, check.count, noop.count);
            let applies = options.connections == 1 && max_p50.is_some();
            out.push(Ratio {
                name: format!("check p50 / {noop_name} p50 ({n} sessions)"),
                value,
                target: max_p50
                    .filter(|_| applies)
                    .map(|m| format!("<= {m}x at 1 connection")),
                met: if applies {
                    held(value, max_p50, None)
                } else {
                    None
                },
            });
        }
        if let Some(direct) = direct {
            out.push(Ratio {
                name: format!("check via sim throughput / extauth gRPC direct ({n} sessions)"),
                value: div(
                    check.per_second,
                    direct.per_second,
                    check.count,
                    direct.count,
                ),
                target: None,
                met: None,
            });
        }
    }
    if let (Some(noop), Some(direct)) = (noop, direct) {
        // The simulator alone (no-op ext_authz, trivial upstream) against what extauth
        // serves: the load generator must never be what limits a run.
        let value = div(noop.per_second, direct.per_second, noop.count, direct.count);
        out.push(Ratio {
            name: "sim alone (no-op) throughput / extauth gRPC direct throughput".into(),
            value,
            target: closed16.then(|| ">= 3x at 16 connections".to_owned()),
            met: if closed16 {
                held(value, None, Some(3.0))
            } else {
                None
            },
        });
    }
    if let (Some(small), Some(large)) = (
        checks.iter().min_by_key(|(_, n)| *n),
        checks.iter().max_by_key(|(_, n)| *n),
    ) && large.1 > small.1
    {
        let value = div(large.0.p99_ms, small.0.p99_ms, large.0.count, small.0.count);
        out.push(Ratio {
            name: format!(
                "check p99 with {} sessions / with {} sessions",
                large.1, small.1
            ),
            value,
            target: Some("<= 1.2x".into()),
            met: held(value, Some(1.2), None),
        });
    }
    out
}

impl CheckReport {
    /// Failures, all series together.
    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The report as a text table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "harness load --target {}: {} connection(s) per series, {}, {:.0} s per series in {} rounds",
            self.target.as_str(),
            self.connections,
            self.rate.map_or_else(
                || "closed loop".to_owned(),
                |r| format!("open loop at {r:.0}/s (latency from the intended send time)")
            ),
            self.duration_seconds,
            self.rounds
        );
        let _ = writeln!(out, "target: {}", self.description);
        let c = &self.creation;
        let _ = writeln!(
            out,
            "sessions: {} created in {:.1} s ({:.0}/s); value {} B; Redis MEMORY USAGE mean {:.0} B, max {} B ({} keys sampled); used_memory {:.0} B per session",
            c.sessions,
            c.seconds,
            c.per_second,
            c.value_bytes,
            c.memory_usage_mean_bytes,
            c.memory_usage_max_bytes,
            c.memory_sampled,
            c.used_memory_per_session_bytes
        );
        let _ = writeln!(
            out,
            "{:<40} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "series", "count", "per s", "p50 ms", "p90 ms", "p99 ms", "p99.9", "max ms"
        );
        for s in &self.series {
            let p999 = s
                .curve
                .iter()
                .find(|(p, _)| (*p - 99.9).abs() < 1e-9)
                .map_or(0.0, |(_, ms)| *ms);
            let _ = writeln!(
                out,
                "{:<40} {:>8} {:>9.0} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
                s.name, s.count, s.per_second, s.p50_ms, s.p90_ms, s.p99_ms, p999, s.max_ms
            );
        }
        if !self.cpu.is_empty() {
            let _ = writeln!(out, "CPU per request (µs):");
            for c in &self.cpu {
                let _ = writeln!(
                    out,
                    "  {:<40} harness {:>7.1}   extauth {}",
                    c.series,
                    c.harness_us_per_request,
                    c.extauth_us_per_request
                        .map_or("-".to_owned(), |v| format!("{v:>7.1}"))
                );
            }
        }
        write_ratios(&mut out, &self.ratios, 58);
        crate::load::write_errors(&mut out, &self.errors);
        out
    }

    /// The latency distributions as an SVG.
    pub fn svg(&self) -> String {
        let title = format!(
            "harness load --target {}: {} connection(s), {}",
            self.target.as_str(),
            self.connections,
            self.rate.map_or_else(
                || "closed loop".to_owned(),
                |r| format!("{r:.0}/s open loop")
            )
        );
        let series: Vec<&Series> = self.series.iter().collect();
        super::standalone_plot(&title, &series)
    }
}

/// The benchmark table of `benches/README.md` from check reports (`--report` files): one row
/// per figure held to a target, and the memory a session costs Redis.
pub fn bench_table(reports: &[CheckReport]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| run | figure | ours | baseline | ratio | target | met |\n| --- | --- | --- | --- | --- | --- | --- |"
    );
    for r in reports {
        let run = format!(
            "{}{} x{}{}",
            r.target.as_str(),
            if r.client_side_cache {
                " (clientSideCache)"
            } else {
                ""
            },
            r.connections,
            r.rate
                .map_or(String::new(), |rate| format!(" at {rate:.0}/s"))
        );
        let series = |prefix: &str| r.series.iter().find(|s| s.name.starts_with(prefix));
        let check_small = r.series.first();
        let check_large = r.series.get(r.sessions.len().saturating_sub(1));
        let redis = series("baseline: redis");
        let noop = series("baseline: extauth /healthz")
            .or(series("baseline: no-op"))
            .or(series(&format!("baseline: {} + no-op", r.target.as_str())));
        let direct = series("extauth gRPC direct");
        let noop_name = match r.target {
            CheckTarget::Http => "/healthz",
            CheckTarget::Grpc => "no-op ext_authz",
            CheckTarget::Sim => "sim + no-op ext_authz",
            CheckTarget::Agentgateway => "agentgateway + no-op ext_authz",
        };
        let mut row = |figure: String, ours: String, base: String, ratio: Option<&Ratio>| {
            let (value, target, met): (String, String, String) =
                ratio.map_or(("-".into(), "-".into(), "-".into()), |x| {
                    (
                        x.value.map_or("-".into(), |v| format!("{v:.2}x")),
                        x.target.clone().unwrap_or_else(|| "-".into()),
                        x.met
                            .map_or("-", |m| if m { "yes" } else { "**no**" })
                            .to_owned(),
                    )
                });
            let _ = writeln!(
                out,
                "| {run} | {figure} | {ours} | {base} | {value} | {target} | {met} |"
            );
        };
        let find = |needle: &str| r.ratios.iter().find(|x| x.name.starts_with(needle));
        if r.target == CheckTarget::Sim {
            if let (Some(noop), Some(direct)) = (noop, direct) {
                row(
                    "throughput, simulator alone (no-op ext_authz, trivial upstream)".into(),
                    format!("{:.0}/s", noop.per_second),
                    format!("extauth gRPC direct {:.0}/s", direct.per_second),
                    find("sim alone"),
                );
            }
            if let (Some(check), Some(direct)) = (check_small, direct) {
                row(
                    format!("throughput via the simulator, {} sessions", r.sessions[0]),
                    format!("{:.0}/s", check.per_second),
                    format!("extauth gRPC direct {:.0}/s", direct.per_second),
                    find("check via sim throughput"),
                );
            }
            if let Some(x) = find("extauth CPU per check") {
                let cpu = |prefix: &str| r.cpu.iter().find(|c| c.series.starts_with(prefix));
                if let (Some(sim), Some(direct)) = (
                    cpu(&format!("baseline: {}", r.target.as_str())),
                    cpu("extauth gRPC direct"),
                ) {
                    row(
                        "CPU per request: harness with the simulator (no-op) vs extauth per check"
                            .into(),
                        format!("{:.0} µs", sim.harness_us_per_request),
                        format!(
                            "extauth {} µs",
                            direct
                                .extauth_us_per_request
                                .map_or("-".to_owned(), |v| format!("{v:.0}"))
                        ),
                        Some(x),
                    );
                }
            }
            continue;
        }
        if r.target == CheckTarget::Agentgateway {
            if let (Some(check), Some(noop)) = (check_small, noop) {
                row(
                    format!("p50, {} sessions", r.sessions[0]),
                    format!("{:.3} ms", check.p50_ms),
                    format!("{noop_name} {:.3} ms", noop.p50_ms),
                    find("check p50 / agentgateway"),
                );
                row(
                    format!("throughput, {} sessions", r.sessions[0]),
                    format!("{:.0}/s", check.per_second),
                    format!("{noop_name} {:.0}/s", noop.per_second),
                    find("check throughput / agentgateway"),
                );
            }
            continue;
        }
        if let (Some(check), Some(redis)) = (check_small, redis) {
            row(
                format!("p50, {} sessions", r.sessions[0]),
                format!("{:.3} ms", check.p50_ms),
                format!("redis GET {:.3} ms", redis.p50_ms),
                find("check p50 / redis GET p50"),
            );
        }
        if let (Some(check), Some(noop)) = (check_small, noop) {
            row(
                format!("throughput, {} sessions", r.sessions[0]),
                format!("{:.0}/s", check.per_second),
                format!("{noop_name} {:.0}/s", noop.per_second),
                find("check throughput /"),
            );
        }
        if let (Some(small), Some(large)) = (check_small, check_large)
            && r.sessions.len() > 1
        {
            row(
                format!("p99, {} sessions", r.sessions[r.sessions.len() - 1]),
                format!("{:.3} ms", large.p99_ms),
                format!("{} sessions {:.3} ms", r.sessions[0], small.p99_ms),
                find("check p99 with"),
            );
        }
    }
    if let Some(r) = reports.first() {
        let c = &r.creation;
        let _ = writeln!(
            out,
            "| sessions | Redis memory per session (MEMORY USAGE, mean of {}) | {:.0} B | sealed value {} B | - | <= 2.5 KB | {} |",
            c.memory_sampled,
            c.memory_usage_mean_bytes,
            c.value_bytes,
            if c.memory_usage_mean_bytes <= 2560.0 {
                "yes"
            } else {
                "**no**"
            }
        );
        let _ = writeln!(
            out,
            "| sessions | created straight into Redis | {:.0}/s | - | - | - | - |",
            c.per_second
        );
    }
    out
}

/// What one series measured.
struct Tally {
    histogram: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    active: Duration,
    cpu_harness: Duration,
    cpu_extauth: Option<Duration>,
}

impl Tally {
    fn new(empty: &Histogram<u64>) -> Self {
        Self {
            histogram: empty.clone(),
            errors: BTreeMap::new(),
            active: Duration::ZERO,
            cpu_harness: Duration::ZERO,
            cpu_extauth: None,
        }
    }
}

/// One turn of one series: every connection in its own task until `length` is over.
async fn run_slice(
    drivers: Vec<Driver>,
    cursors: &mut [usize],
    set_len: usize,
    options: &CheckOptions,
    length: Duration,
    tally: &mut Tally,
) -> Vec<Driver> {
    let connections = drivers.len();
    let started = Instant::now();
    let until = started + length;
    // Each connection's share of the rate, and its offset in the schedule.
    let interval = options
        .rate
        .map(|r| Duration::from_secs_f64(connections as f64 / r));
    let mut tasks = tokio::task::JoinSet::new();
    for (w, mut driver) in drivers.into_iter().enumerate() {
        let mut cursor = cursors[w];
        let mut histogram = tally.histogram.clone();
        histogram.reset();
        let timeout = options.request_timeout;
        tasks.spawn(async move {
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            let mut sent: u64 = 0;
            loop {
                let due = match interval {
                    Some(step) => {
                        let offset = step.mul_f64(w as f64 / connections as f64);
                        let due = started
                            + offset
                            + step.saturating_mul(u32::try_from(sent).unwrap_or(u32::MAX));
                        if due >= until {
                            break;
                        }
                        tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
                        due
                    }
                    None => {
                        let now = Instant::now();
                        if now >= until {
                            break;
                        }
                        now
                    }
                };
                sent += 1;
                let index = cursor % set_len;
                cursor = cursor.wrapping_add(connections);
                match tokio::time::timeout(timeout, driver.send(index)).await {
                    Ok(Ok(())) => {
                        let us = u64::try_from(due.elapsed().as_micros())
                            .unwrap_or(u64::MAX / 4)
                            .max(1);
                        let _ = histogram.record(us);
                    }
                    Ok(Err(kind)) => *errors.entry(kind).or_default() += 1,
                    Err(_) => {
                        *errors.entry("timeout".into()).or_default() += 1;
                        driver.reset();
                    }
                }
            }
            (w, driver, cursor, histogram, errors)
        });
    }
    let mut back: Vec<Option<Driver>> = (0..connections).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((w, driver, cursor, histogram, errors)) => {
                cursors[w] = cursor;
                let _ = tally.histogram.add(&histogram);
                for (kind, n) in errors {
                    *tally.errors.entry(kind).or_default() += n;
                }
                back[w] = Some(driver);
            }
            Err(e) => *tally.errors.entry(format!("task: {e}")).or_default() += 1,
        }
    }
    tally.active += started.elapsed();
    // A connection whose task died is replaced by a dead one that reports why.
    back.into_iter()
        .map(|d| d.unwrap_or(Driver::Lost))
        .collect()
}

/// One connection of one series.
enum Driver {
    Http {
        conn: HttpConn,
        cookies: Option<Arc<SessionSet>>,
        path: &'static str,
        host: String,
    },
    Grpc {
        client: AuthorizationClient<Channel>,
        template: Box<CheckRequest>,
        cookies: Option<Arc<SessionSet>>,
    },
    Redis {
        conn: redis::aio::MultiplexedConnection,
        keys: Arc<SessionSet>,
    },
    /// A connection whose task failed; every send fails.
    Lost,
}

impl Driver {
    async fn connect(
        kind: &Kind,
        endpoints: &CheckEndpoints,
        sets: &[Arc<SessionSet>],
        target: CheckTarget,
    ) -> Result<Self, String> {
        Ok(match (kind, target) {
            (Kind::Check { set }, CheckTarget::Http) => Driver::Http {
                conn: HttpConn::open(endpoints.http).await?,
                cookies: Some(Arc::clone(&sets[*set])),
                path: CHECK_PATH,
                host: endpoints.host.clone(),
            },
            (Kind::Check { set }, CheckTarget::Grpc) | (Kind::DirectGrpc { set }, _) => {
                Driver::Grpc {
                    client: grpc_client(endpoints.grpc).await?,
                    template: Box::new(check_request(&endpoints.host)),
                    cookies: Some(Arc::clone(&sets[*set])),
                }
            }
            (Kind::Check { set }, CheckTarget::Sim | CheckTarget::Agentgateway) => {
                let gateway = endpoints.gateway.ok_or("no gateway to load")?;
                Driver::Http {
                    conn: HttpConn::open(gateway).await?,
                    cookies: Some(Arc::clone(&sets[*set])),
                    path: CHECK_PATH,
                    host: gateway.to_string(),
                }
            }
            (Kind::GatewayNoop, _) => {
                let gateway = endpoints
                    .gateway_noop
                    .ok_or("no gateway with the no-op server to load")?;
                Driver::Http {
                    conn: HttpConn::open(gateway).await?,
                    cookies: Some(Arc::clone(&sets[0])),
                    path: CHECK_PATH,
                    host: gateway.to_string(),
                }
            }
            (Kind::Healthz, _) => Driver::Http {
                conn: HttpConn::open(endpoints.admin).await?,
                cookies: None,
                path: "/healthz",
                host: endpoints.admin.to_string(),
            },
            (Kind::NoopGrpc, _) => Driver::Grpc {
                client: grpc_client(
                    endpoints
                        .noop_grpc
                        .ok_or("no no-op ext_authz server to load")?,
                )
                .await?,
                template: Box::new(check_request(&endpoints.host)),
                cookies: None,
            },
            (Kind::RedisGet { set }, _) => {
                let client = redis::Client::open(endpoints.redis_url.as_str())
                    .map_err(|e| format!("redis {}: {e}", endpoints.redis_url))?;
                Driver::Redis {
                    conn: client
                        .get_multiplexed_async_connection()
                        .await
                        .map_err(|e| format!("redis {}: {e}", endpoints.redis_url))?,
                    keys: Arc::clone(&sets[*set]),
                }
            }
        })
    }

    /// One request for session `index`; `Err` names the failure's kind.
    async fn send(&mut self, index: usize) -> Result<(), String> {
        match self {
            Driver::Http {
                conn,
                cookies,
                path,
                host,
            } => {
                let mut request = http::Request::get(*path)
                    .header(http::header::HOST, host.as_str())
                    .header(http::header::ACCEPT, "*/*")
                    .header(http::header::USER_AGENT, "harness-load");
                if let Some(set) = cookies {
                    request = request.header(http::header::COOKIE, set.cookies[index].as_str());
                }
                let request = request
                    .body(Empty::<Bytes>::new())
                    .map_err(|e| format!("request: {e}"))?;
                let status = conn.send(request).await?;
                if status == 200 {
                    Ok(())
                } else {
                    Err(format!("status {status}"))
                }
            }
            Driver::Grpc {
                client,
                template,
                cookies,
            } => {
                let mut request = CheckRequest::clone(template);
                if let Some(set) = cookies
                    && let Some(http) = request
                        .attributes
                        .as_mut()
                        .and_then(|a| a.request.as_mut())
                        .and_then(|r| r.http.as_mut())
                {
                    http.headers
                        .insert("cookie".into(), set.cookies[index].clone());
                }
                match client.check(request).await {
                    Ok(response) => {
                        let code = response.into_inner().status.map_or(0, |s| s.code);
                        if code == 0 {
                            Ok(())
                        } else {
                            Err(format!("denied (gRPC code {code})"))
                        }
                    }
                    Err(status) => Err(format!("rpc {:?}", status.code())),
                }
            }
            Driver::Redis { conn, keys } => {
                let value: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(keys.keys[index].as_str())
                    .query_async(conn)
                    .await
                    .map_err(|e| format!("redis: {}", e.kind_name()))?;
                value.map(|_| ()).ok_or_else(|| "redis: key missing".into())
            }
            Driver::Lost => Err("connection lost".into()),
        }
    }

    /// After a timeout, the HTTP connection is in an unknown state: open a new one.
    fn reset(&mut self) {
        if let Driver::Http { conn, .. } = self {
            conn.sender = None;
        }
    }
}

trait KindName {
    fn kind_name(&self) -> String;
}

impl KindName for redis::RedisError {
    fn kind_name(&self) -> String {
        if self.is_timeout() {
            "timeout".into()
        } else if self.is_connection_dropped() || self.is_io_error() {
            "connection error".into()
        } else {
            format!("{:?}", self.kind())
        }
    }
}

/// One HTTP/1.1 keep-alive connection (hyper's own client, nothing pooled or shared),
/// opened again after an error.
struct HttpConn {
    addr: SocketAddr,
    sender: Option<SendRequest<Empty<Bytes>>>,
}

impl HttpConn {
    async fn open(addr: SocketAddr) -> Result<Self, String> {
        let mut conn = Self { addr, sender: None };
        conn.connect().await?;
        Ok(conn)
    }

    async fn connect(&mut self) -> Result<(), String> {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect {}: {e}", self.addr))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake {}: {e}", self.addr))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    async fn send(&mut self, request: http::Request<Empty<Bytes>>) -> Result<u16, String> {
        if self.sender.as_ref().is_none_or(SendRequest::is_closed) {
            self.connect().await?;
        }
        let Some(sender) = self.sender.as_mut() else {
            return Err("connection error".into());
        };
        let outcome = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status().as_u16();
            response.into_body().collect().await?;
            Ok::<_, hyper::Error>(status)
        }
        .await;
        outcome.map_err(|e| {
            self.sender = None;
            if e.is_closed() || e.is_incomplete_message() {
                "connection closed".to_owned()
            } else {
                "connection error".to_owned()
            }
        })
    }
}

async fn grpc_client(addr: SocketAddr) -> Result<AuthorizationClient<Channel>, String> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("gRPC endpoint {addr}: {e}"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .map_err(|e| format!("gRPC connect {addr}: {e}"))?;
    Ok(AuthorizationClient::new(channel))
}

/// The `CheckRequest` a gateway sends for `GET /openai` (the cookie is added per request).
fn check_request(host: &str) -> CheckRequest {
    let headers = [
        (":authority", host),
        (":method", "GET"),
        (":path", CHECK_PATH),
        (":scheme", "http"),
        ("accept", "*/*"),
        ("user-agent", "harness-load"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(AttrRequest {
                time: None,
                http: Some(HttpRequest {
                    method: "GET".into(),
                    headers,
                    path: CHECK_PATH.into(),
                    host: host.to_owned(),
                    scheme: "http".into(),
                    protocol: "HTTP/1.1".into(),
                    ..HttpRequest::default()
                }),
            }),
            ..AttributeContext::default()
        }),
    }
}

/// The `ratios:` lines of a report's table, the names padded to `width`.
pub(super) fn write_ratios(out: &mut String, ratios: &[Ratio], width: usize) {
    let _ = writeln!(out, "ratios:");
    for r in ratios {
        let _ = writeln!(
            out,
            "  {:<width$} {:>8}{}",
            r.name,
            r.value.map_or("-".to_owned(), |v| format!("{v:.2}x")),
            match (&r.target, r.met) {
                (Some(t), Some(true)) => format!("   target {t}: met"),
                (Some(t), Some(false)) => format!("   target {t}: MISSED"),
                (Some(t), None) => format!("   target {t}"),
                (None, _) => String::new(),
            }
        );
    }
}

#[cfg(test)]
mod tests;
