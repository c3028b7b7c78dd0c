//! The `harness` command line: `up` (the stack for a person to use), `run` (scenarios),
//! `load` (virtual users logging in and calling, see [`crate::load`]; or extauth's check
//! loaded directly, see [`crate::load::check`]) and `noop-authz` (the gRPC baseline).
//! `main.rs` only parses and calls [`main`].

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::extauth::ExtauthMode;
use crate::idp::IdpMode;
use crate::load::check::{Baseline, CheckOptions, CheckReport, CheckTarget};
use crate::load::{Fault, FaultInjector, LoadOptions, LoadReport, LoadTarget};
use crate::login::Credentials;
use crate::scenario::{RunOptions, ScenarioReport, run_paths};
use crate::stack::{
    DEFAULT_CLIENT, DEFAULT_USER, ExternalTarget, GatewayMode, RedisMode, Stack, StackOptions,
    default_scenarios_dir,
};

/// Brings up the OIDC authorization-code testbed and runs scenario files.
#[derive(Debug, Parser)]
#[command(name = "harness", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
// Parsed once at start: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bring up Redis, the IdP, extauth, the LLM upstream and the gateway; print how to use
    /// them (the seed guide's Step 3) and wait for Ctrl-C (or SIGTERM).
    Up {
        /// Also write GATEWAY_URL, IDP_URL, EXTAUTH_GRPC, EXTAUTH_HTTP, EXTAUTH_HTTP_NGINX,
        /// REDIS_URL, UPSTREAM_URL, EXTAUTH_PIDS and EXTAUTH_ADMINS (comma-separated, one per
        /// replica; no PIDs when extauth runs in process) as KEY=value lines to this file, and
        /// REDIS_TOPOLOGY with, for Sentinel, REDIS_SENTINELS and REDIS_MASTER_NAME, for
        /// Cluster, REDIS_CLUSTER_NODES.
        #[arg(long, value_name = "PATH")]
        env_file: Option<PathBuf>,
        /// Do Step 3.1 now and print the Keycloak login URL to open in a browser.
        #[arg(long)]
        login_hint: bool,
        /// Which backends to start.
        #[command(flatten)]
        backends: BackendArgs,
    },
    /// Run scenario files (or folders of *.yaml), each on a fresh stack.
    Run {
        /// Files or folders; default: the workspace's scenarios/ folder.
        paths: Vec<PathBuf>,
        /// Where the snapshots are (default: scenarios/snapshots).
        #[arg(long, value_name = "DIR")]
        snapshots_dir: Option<PathBuf>,
        /// Run every backend combination each scenario declares (`stack:` lists), then print
        /// a results table.
        #[arg(long)]
        matrix: bool,
        /// Also write the results as JUnit XML to this file.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Run against a deployment we did not start (e.g. one from `harness up`): its
        /// gateway, `http://${INGRESS_GW_ADDRESS}`. Needs `--idp-url`.
        #[arg(long, value_name = "URL", requires = "idp_url")]
        gateway_url: Option<String>,
        /// With `--gateway-url`: the IdP's base URL (`KEYCLOAK_URL`).
        #[arg(long, value_name = "URL", requires = "gateway_url")]
        idp_url: Option<String>,
        /// With `--gateway-url`: the deployment's `appUrl` (default: the gateway URL, `:80`
        /// added for plain http without a port, as in the seed).
        #[arg(long, value_name = "URL")]
        app_url: Option<String>,
        /// With `--gateway-url`: the OIDC client id.
        #[arg(long, default_value = DEFAULT_CLIENT)]
        client: String,
        /// Log in as this user in every login step (instead of the scenario's).
        #[arg(long, requires = "password")]
        user: Option<String>,
        /// The password for `--user`.
        #[arg(long, requires = "user")]
        password: Option<String>,
        /// Rows (scenario × backends) run at once, each on its own stack; default: the
        /// number of CPUs, at most 4. With more than 1, each row prints as one block.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: Option<u16>,
        /// The extauth binary for scenarios with `stack.replicas` (default: `EXTAUTH_BIN`,
        /// else `extauth` next to this executable).
        #[arg(long, value_name = "PATH")]
        extauth_bin: Option<PathBuf>,
        /// The agentgateway binary for `gateway: agentgateway` rows; default: `agentgateway`
        /// on PATH, then ../shared/bin/agentgateway beside the workspace. Rows skip (one line
        /// saying where it looked) when there is none.
        #[arg(long, value_name = "PATH")]
        agentgateway: Option<PathBuf>,
    },
    /// Virtual users doing full logins (plain HTTP: 302, IdP form, callback, cookie) and
    /// then authenticated calls, against a stack it starts (the same backend flags as `up`)
    /// or a loopback `--gateway-url`; prints latency percentiles and throughput beside a
    /// baseline measured in the same run (the upstream hit directly, the gateway's 302).
    /// `--fault KIND@SECONDS` fires faults during the run; the report then shows errors and
    /// latency over time, sessions lost, requests failed by kind, the longest window of
    /// errors, and p99 before and during each fault. Exits 1 when any request failed or a
    /// fault could not be carried out.
    Load {
        /// Concurrent virtual users.
        #[arg(long, default_value_t = 8)]
        users: usize,
        /// Logins per user, each followed by `--calls-per-login` calls (default 5 unless
        /// `--duration` is given).
        #[arg(long, alias = "requests", value_name = "N")]
        logins: Option<u64>,
        /// Stop starting new logins and calls after this many seconds.
        #[arg(long, value_name = "SECS")]
        duration: Option<f64>,
        /// Authenticated calls after each login.
        #[arg(long, default_value_t = 5, value_name = "K")]
        calls_per_login: usize,
        /// Write the report as JSON to this file.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Write the latency distributions as an SVG to this file (default: the report's
        /// path with `.svg` when `--report` is given).
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
        /// No progress line on stderr.
        #[arg(long)]
        quiet: bool,
        /// The user to log in as.
        #[arg(long, default_value = DEFAULT_USER.0)]
        user: String,
        /// Its password.
        #[arg(long, default_value = DEFAULT_USER.1)]
        password: String,
        /// Which backends to start (unless `--gateway-url` names a deployment).
        #[command(flatten)]
        backends: BackendArgs,
        /// Start nothing: load this (loopback) gateway, `http://${INGRESS_GW_ADDRESS}`.
        #[arg(long, value_name = "URL", requires = "idp_url")]
        gateway_url: Option<String>,
        /// With `--gateway-url`: the LLM upstream to hit directly for the baseline
        /// (without it, only the gateway's 302 is the baseline).
        #[arg(long, value_name = "URL", requires = "gateway_url")]
        upstream_url: Option<String>,
        /// A fault at SECONDS from the start (repeatable): `extauth-kill:I` (SIGKILL of
        /// replica I), `extauth-restart:I` (SIGTERM, then the same replica again, ready),
        /// `redis-failover`, `redis-kill-master` (need --redis sentinel or cluster). E.g.
        /// `--replicas 2 --duration 20 --fault extauth-kill:0@5 --fault extauth-restart:0@10`.
        #[arg(
            long = "fault",
            value_name = "KIND@SECONDS",
            conflicts_with = "gateway_url"
        )]
        faults: Vec<Fault>,
        /// What to load: `login` (virtual users logging in through the gateway, then
        /// calling), or extauth's check directly, without the gateway: `http` (its HTTP
        /// mode) or `grpc` (ext_authz), over `--sessions` pre-created sessions, beside the
        /// `--baseline`s in the same run; or the same sessions through a gateway to a
        /// trivial upstream, beside the same gateway with a no-op ext_authz server: `sim`
        /// (the simulator, plus extauth's gRPC check directly) or `agentgateway`.
        #[arg(long, value_enum, default_value_t = TargetArg::Login)]
        target: TargetArg,
        /// With `--target http|grpc|sim|agentgateway`: session counts, comma-separated, one check series
        /// each (e.g. `1000,1000000`); the sessions are written straight into Redis.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "1000",
            value_name = "N,..."
        )]
        sessions: Vec<usize>,
        /// With `--target http|grpc|sim|agentgateway`: connections per series.
        #[arg(long, default_value_t = 1, value_name = "C")]
        connections: usize,
        /// With `--target http|grpc|sim|agentgateway`: open loop at R requests per second per series
        /// (latency from the intended send time, as wrk2); default: closed loop.
        #[arg(long, value_name = "R")]
        rate: Option<f64>,
        /// With `--target http|grpc|sim|agentgateway`: a baseline in the same run (repeatable; default both):
        /// `redis` (GET of the same keys through the redis crate), `noop` (extauth's
        /// `/healthz` for http, a no-op ext_authz gRPC server for grpc, the same gateway
        /// with the no-op server for sim and agentgateway).
        #[arg(long = "baseline", value_enum, value_name = "KIND")]
        baselines: Vec<BaselineArg>,
    },
    /// The benchmark table (markdown) of `benches/README.md` from `harness load --target
    /// http|grpc --report` files: each figure, its baseline, the ratio and the target.
    BenchTable {
        /// The JSON reports, in the order of the table's rows.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
    },
    /// A deterministic simulation of the whole flow in one process (no sockets): the real
    /// extauth and mock-idp code over a simulated network, Redis and clock, virtual users
    /// and faults drawn from the seed; invariants checked after every step. Prints the trace
    /// hash (the same seed gives the same hash) and a table; a broken invariant prints the
    /// steps that led to it and the command that replays it, and exits 1.
    Sim {
        /// The seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Sweep the seeds A..B (B excluded) instead of one.
        #[arg(long, value_name = "A..B", conflicts_with = "seed")]
        seeds: Option<String>,
        /// Virtual users.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        users: u64,
        /// Steps (a fault event, time passing, or 1-3 users acting at once).
        #[arg(long, default_value_t = 300)]
        steps: usize,
        /// extauth replicas behind the gateway.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=16))]
        replicas: u64,
        /// No faults (users only).
        #[arg(long)]
        no_faults: bool,
        /// When a seed fails, look for a smaller failing run (fewer users, no faults, one
        /// replica, fewer steps) and print it too.
        #[arg(long)]
        shrink: bool,
    },
    /// An ext_authz gRPC server that allows every check (the baseline of `harness load
    /// --target grpc`); runs until Ctrl-C or SIGTERM.
    NoopAuthz {
        /// Where to listen (loopback only).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
}

/// `load --target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetArg {
    /// Logins through the gateway, then authenticated calls.
    Login,
    /// extauth's HTTP mode, directly.
    Http,
    /// extauth's ext_authz gRPC listener, directly.
    Grpc,
    /// Through two gateway simulators (one with extauth, one with the no-op ext_authz
    /// server) to a trivial upstream, beside extauth's gRPC check loaded directly.
    Sim,
    /// Through two agentgateway processes (one with extauth, one with the no-op ext_authz
    /// server) to a trivial upstream.
    Agentgateway,
    /// Complete logins (authorize, form, code exchange) at mock-idp and at oidc-provider,
    /// in turns, `--users` at a time, without gateway or extauth.
    Idp,
}

/// `load --baseline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BaselineArg {
    /// A Redis GET loop.
    Redis,
    /// The same server stack without a decision.
    Noop,
}

/// `--redis`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RedisArg {
    /// A `redis:7` container when a Docker engine holds the image, else redis-server when
    /// installed, else memory (each fallback said in one line).
    Auto,
    /// redis-server (error when missing).
    Process,
    /// A `redis:7` container (testcontainers; needs a Docker engine and the image).
    Container,
    /// extauth's in-memory store.
    Memory,
    /// A Redis we did not start (`--redis-url`).
    Url,
    /// redis-server serving TLS only (client certificates required), certificates generated
    /// at start; extauth uses `socketType: TLS` and `tlsCertMountPath`.
    Tls,
    /// Redis Sentinel: a master, one replica, three sentinels.
    Sentinel,
    /// Redis Cluster: three masters with a replica each.
    Cluster,
}

/// `--idp`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum IdpArg {
    /// The in-process mock IdP.
    Mock,
    /// The mock IdP's `mock-idp:latest` container (`just images`).
    MockContainer,
    /// panva's oidc-provider (npm) under node.
    OidcProvider,
    /// A Keycloak container (when the image is present).
    Keycloak,
    /// An IdP we did not start (`--idp-url`).
    Url,
}

/// `--gateway`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GatewayArg {
    /// The ext_authz gRPC simulator.
    Sim,
    /// Caddy `forward_auth` over extauth's HTTP mode.
    Caddy,
    /// nginx `auth_request` over extauth's nginx profile, with the sign-in recipe.
    Nginx,
    /// agentgateway itself (v1.3.1, `extAuthz` over gRPC): see `--agentgateway`.
    Agentgateway,
}

/// `harness up`'s choices.
#[derive(Debug, Clone)]
struct UpArgs {
    env_file: Option<PathBuf>,
    login_hint: bool,
    backends: BackendArgs,
}

/// `harness run`'s default `--jobs`: the CPUs, at most 4 (each row runs a whole stack).
fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// The seed guide's request body.
const SEED_BODY: &str = r#"{
 "model": "gpt-3.5-turbo",
 "messages": [
   {
     "role": "system",
     "content": "You are a poetic assistant, skilled in explaining complex programming concepts with creative flair."
   },
   {
     "role": "user",
     "content": "In the style of Shakespeare, write a series of sonnets that explain the concept of recursion in programming."
   }
 ]
}"#;

/// Parses `--seeds A..B`.
pub fn parse_seed_range(text: &str) -> Result<std::ops::Range<u64>, String> {
    let (a, b) = text
        .split_once("..")
        .ok_or_else(|| format!("--seeds {text:?}: expected A..B (e.g. 0..200)"))?;
    let a: u64 = a
        .trim()
        .parse()
        .map_err(|_| format!("--seeds {text:?}: A must be a whole number"))?;
    let b: u64 = b
        .trim()
        .parse()
        .map_err(|_| format!("--seeds {text:?}: B must be a whole number"))?;
    if b <= a {
        return Err(format!("--seeds {text:?}: B must be greater than A"));
    }
    Ok(a..b)
}

/// `harness sim`: one seed (the table) or a sweep (a line per seed, then totals).
fn sim_command(base: crate::sim::Options, seeds: Option<&str>, shrink: bool) -> ExitCode {
    let range = match seeds.map(parse_seed_range).transpose() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("harness sim: {e}");
            return ExitCode::from(2);
        }
    };
    let single = range.is_none();
    let range = range.unwrap_or(base.seed..base.seed + 1);
    let (mut failed, mut requests, mut wall) = (Vec::new(), 0u64, 0f64);
    for seed in range {
        let options = crate::sim::Options {
            seed,
            ..base.clone()
        };
        let outcome = if shrink {
            crate::sim::run_and_shrink(&options)
        } else {
            crate::sim::run(&options).map(|r| (r, None))
        };
        let (report, smaller) = match outcome {
            Ok(r) => r,
            Err(e) => {
                eprintln!("harness sim: seed {seed}: the simulation could not start: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        requests += report.requests;
        wall += report.wall.as_secs_f64();
        if single {
            print!("{}", report.table());
        } else {
            println!(
                "seed {seed:>6}  hash {:016x}  requests {:>7}  logins {:>5}  {}",
                report.trace_hash,
                report.requests,
                report.logins,
                report
                    .violation
                    .as_ref()
                    .map_or("ok".to_owned(), |v| format!("FAILED: {}", v.invariant))
            );
            if let Some(v) = &report.violation {
                print!("{}", v.render(&report.options));
            }
        }
        if let Some(smaller) = smaller {
            println!("a smaller run that fails the same way:");
            print!("{}", smaller.table());
        }
        if report.violation.is_some() {
            failed.push(seed);
        }
    }
    if !single {
        println!(
            "{} seed(s) failed{}; {requests} simulated requests in {wall:.1} s of wall time ({:.0} / s)",
            failed.len(),
            if failed.is_empty() {
                String::new()
            } else {
                format!(" ({failed:?})")
            },
            requests as f64 / wall.max(1e-9)
        );
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs the command line; the exit code says how it went.
pub async fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Up {
            env_file,
            login_hint,
            backends,
        } => match up(UpArgs {
            env_file,
            login_hint,
            backends,
        })
        .await
        {
            Ok(()) => ExitCode::SUCCESS,
            // Our errors carry their causes in their messages: no `{:#}` chain.
            Err(e) => {
                eprintln!("harness up: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run {
            paths,
            snapshots_dir,
            matrix,
            junit,
            gateway_url,
            idp_url,
            app_url,
            client,
            user,
            password,
            jobs,
            extauth_bin,
            agentgateway,
        } => {
            let jobs = jobs.map_or_else(default_jobs, usize::from);
            let mut options = RunOptions {
                matrix,
                credentials: user.zip(password),
                jobs,
                extauth_bin,
                agentgateway,
                ..RunOptions::default()
            };
            if let Some(dir) = snapshots_dir {
                options.snapshots_dir = std::path::absolute(&dir).unwrap_or(dir);
            }
            if let (Some(gateway_url), Some(idp_url)) = (gateway_url, idp_url) {
                options.target = Some(ExternalTarget {
                    gateway_url,
                    idp_url,
                    realm: crate::stack::REALM.to_owned(),
                    client_id: client,
                    app_url,
                });
            }
            run(paths, options, junit).await
        }
        Command::Load {
            users,
            logins,
            duration,
            calls_per_login,
            report,
            svg,
            quiet,
            user,
            password,
            backends,
            gateway_url,
            upstream_url,
            faults,
            target,
            sessions,
            connections,
            rate,
            baselines,
        } => {
            let duration = match duration.map(Duration::try_from_secs_f64).transpose() {
                Ok(duration) => duration,
                Err(e) => {
                    eprintln!("harness load: --duration: {e}");
                    return ExitCode::FAILURE;
                }
            };
            if target == TargetArg::Idp {
                let options = crate::load::idp::IdpLoadOptions {
                    users,
                    duration: duration.unwrap_or(Duration::from_secs(10)),
                    slice: Duration::from_secs(1),
                    warmup: Duration::from_millis(500),
                    timeout: Duration::from_secs(10),
                    credentials: Credentials::new(user, password),
                    progress: !quiet,
                };
                return match load_idp(backends, &options, report, svg).await {
                    Ok(report) if report.error_total() == 0 => ExitCode::SUCCESS,
                    Ok(_) => ExitCode::FAILURE,
                    Err(e) => {
                        eprintln!("harness load: {e}");
                        ExitCode::FAILURE
                    }
                };
            }
            let check_target = match target {
                TargetArg::Login | TargetArg::Idp => None,
                TargetArg::Http => Some(CheckTarget::Http),
                TargetArg::Grpc => Some(CheckTarget::Grpc),
                TargetArg::Sim => Some(CheckTarget::Sim),
                TargetArg::Agentgateway => Some(CheckTarget::Agentgateway),
            };
            if let Some(check_target) = check_target {
                let baselines = if baselines.is_empty() {
                    vec![Baseline::Redis, Baseline::Noop]
                } else {
                    baselines
                        .iter()
                        .map(|b| match b {
                            BaselineArg::Redis => Baseline::Redis,
                            BaselineArg::Noop => Baseline::Noop,
                        })
                        .collect()
                };
                let options = CheckOptions {
                    target: check_target,
                    sessions,
                    connections,
                    rate,
                    duration: duration.unwrap_or(CheckOptions::default().duration),
                    baselines,
                    progress: !quiet,
                    ..CheckOptions::default()
                };
                let args = CheckArgs {
                    options,
                    credentials: Credentials::new(user, password),
                    report,
                    svg,
                    stack: backends,
                    gateway_url,
                };
                return match load_check(args).await {
                    Ok(report) if report.error_total() == 0 => ExitCode::SUCCESS,
                    Ok(_) => ExitCode::FAILURE,
                    Err(e) => {
                        eprintln!("harness load: {e}");
                        ExitCode::FAILURE
                    }
                };
            }
            let args = LoadArgs {
                options: LoadOptions {
                    users,
                    logins_per_user: logins.or(duration.is_none().then_some(5)),
                    duration,
                    calls_per_login,
                    credentials: Credentials::new(user, password),
                    progress: !quiet,
                    ..LoadOptions::default()
                },
                report,
                svg,
                stack: backends,
                gateway_url,
                upstream_url,
                faults,
            };
            match load(args).await {
                Ok(report) if report.error_total() == 0 && report.faults_ok() => ExitCode::SUCCESS,
                Ok(_) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("harness load: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::BenchTable { reports } => {
            let mut loaded = Vec::new();
            for path in &reports {
                let parsed = std::fs::read_to_string(path)
                    .map_err(|e| e.to_string())
                    .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()));
                match parsed {
                    Ok(report) => loaded.push(report),
                    Err(e) => {
                        eprintln!("harness bench-table: {}: {e}", path.display());
                        return ExitCode::FAILURE;
                    }
                }
            }
            print!("{}", crate::load::check::bench_table(&loaded));
            ExitCode::SUCCESS
        }
        Command::Sim {
            seed,
            seeds,
            users,
            steps,
            replicas,
            no_faults,
            shrink,
        } => {
            let base = crate::sim::Options {
                seed,
                users: usize::try_from(users).unwrap_or(1),
                steps,
                replicas: usize::try_from(replicas).unwrap_or(1),
                faults: !no_faults,
            };
            // The simulation runs its own single-threaded runtime: on a thread of its own.
            match std::thread::spawn(move || sim_command(base, seeds.as_deref(), shrink)).join() {
                Ok(code) => code,
                Err(_) => {
                    eprintln!("harness sim: the simulation thread panicked");
                    ExitCode::FAILURE
                }
            }
        }
        Command::NoopAuthz { listen } => match noop_authz(listen).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("harness noop-authz: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// `harness load --target http|grpc`'s choices.
#[derive(Debug, Clone)]
struct CheckArgs {
    options: CheckOptions,
    credentials: Credentials,
    report: Option<PathBuf>,
    svg: Option<PathBuf>,
    stack: BackendArgs,
    gateway_url: Option<String>,
}

async fn load_check(args: CheckArgs) -> anyhow::Result<CheckReport> {
    let CheckArgs {
        options,
        credentials,
        report: report_file,
        svg,
        stack,
        gateway_url,
    } = args;
    if gateway_url.is_some() {
        anyhow::bail!(
            "--target http|grpc loads extauth directly: it needs a stack the harness starts, not --gateway-url"
        );
    }
    options.validate().map_err(|e| anyhow::anyhow!(e))?;
    let mut stack_options = stack.stack_options()?;
    if matches!(stack_options.redis, RedisMode::Memory) {
        anyhow::bail!(
            "--target http|grpc pre-creates sessions in Redis: use --redis process (or auto, container, url), not memory"
        );
    }
    stack_options.announce = options.progress;
    let mut options = options;
    options.agentgateway = stack_options.agentgateway.clone();
    options.client_side_cache = stack_options.redis_client_cache;
    let running = Stack::up(stack_options).await?;
    let result = tokio::select! {
        result = crate::load::direct::run(&running, &options, &credentials) => {
            result.map_err(|e| anyhow::anyhow!(e))
        }
        () = shutdown_signal() => Err(anyhow::anyhow!("interrupted")),
    };
    running.stop().await;
    let report = result?;
    publish(&report, &report.table(), || report.svg(), report_file, svg)?;
    Ok(report)
}

/// `harness load --target idp`: both IdPs from the stack's realm, loaded in turns.
async fn load_idp(
    backends: BackendArgs,
    options: &crate::load::idp::IdpLoadOptions,
    report_file: Option<PathBuf>,
    svg: Option<PathBuf>,
) -> anyhow::Result<crate::load::idp::IdpLoadReport> {
    let stack_options = backends.stack_options()?;
    let dir = tempfile::tempdir()?;
    let report = tokio::select! {
        result = crate::load::idp::run(
            &stack_options.realm_file,
            &stack_options.client_id,
            dir.path(),
            options,
        ) => result.map_err(|e| anyhow::anyhow!(e))?,
        () = shutdown_signal() => anyhow::bail!("interrupted"),
    };
    publish(&report, &report.table(), || report.svg(), report_file, svg)?;
    Ok(report)
}

/// `harness noop-authz`: serves until Ctrl-C or SIGTERM.
async fn noop_authz(listen: SocketAddr) -> anyhow::Result<()> {
    if !listen.ip().is_loopback() {
        anyhow::bail!("--listen {listen}: expected a loopback address");
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    println!("noop-authz listening on {}", listener.local_addr()?);
    crate::noop_authz::serve(listener, shutdown_signal()).await?;
    Ok(())
}

/// The backend choices `up` and `load` share.
#[derive(Debug, Clone, clap::Args)]
pub struct BackendArgs {
    /// Session store.
    #[arg(long, value_enum, default_value_t = RedisArg::Auto)]
    redis: RedisArg,
    /// With `--redis url`: the Redis to use, `redis://HOST:PORT`.
    #[arg(long, value_name = "URL")]
    redis_url: Option<String>,
    /// A password on every Redis the stack starts (`requirepass`; extauth gets it as
    /// `REDIS_PASSWORD`); with `--redis url`, the password of that Redis.
    #[arg(long, value_name = "PW")]
    redis_password: Option<String>,
    /// extauth's `durableSessions` (`WAIT` for one replica, 500 ms, after writing a new or
    /// refreshed session); needs `--redis sentinel` or `cluster`.
    #[arg(long)]
    durable_sessions: bool,
    /// extauth's `clientSideCache` (sessions kept in memory between checks, invalidated by
    /// Redis); needs a standalone Redis (`--redis process`, `container`, `tls` or `url`).
    #[arg(long)]
    client_side_cache: bool,
    /// The IdP.
    #[arg(long, value_enum, default_value_t = IdpArg::Mock)]
    idp: IdpArg,
    /// With `--idp url` (or `load --gateway-url`): the IdP's base URL (`KEYCLOAK_URL`).
    #[arg(long, value_name = "URL")]
    idp_url: Option<String>,
    /// The gateway.
    #[arg(long, value_enum, default_value_t = GatewayArg::Sim)]
    gateway: GatewayArg,
    /// Folder with realms/ and manifests/.
    #[arg(long, value_name = "DIR")]
    scenarios_dir: Option<PathBuf>,
    /// The gateway's address (loopback only), e.g. `127.0.0.1:8080` for the guide's
    /// "Port-forward for local testing" tab (`curl localhost:8080/openai`); default: port
    /// 80 of the first free 127.0.0.N, as the guide's `${INGRESS_GW_ADDRESS}:80`.
    #[arg(long, value_name = "ADDR")]
    gateway_listen: Option<SocketAddr>,
    /// Run N `extauth serve` processes of the real binary behind the gateway (one signing
    /// key, each on its own loopback address; the gateway balances across them); without
    /// it, one extauth runs inside the harness.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=i64::from(crate::extauth::MAX_REPLICAS)))]
    replicas: Option<u16>,
    /// The extauth binary for `--replicas` (default: `EXTAUTH_BIN`, else `extauth` next to
    /// this executable, where `cargo build -p extauth` puts it).
    #[arg(long, value_name = "PATH", requires = "replicas")]
    extauth_bin: Option<PathBuf>,
    /// With `--gateway agentgateway`: its binary; default: `agentgateway` on PATH, then
    /// ../shared/bin/agentgateway beside the workspace.
    #[arg(long, value_name = "PATH")]
    agentgateway: Option<PathBuf>,
}

impl BackendArgs {
    /// The stack options these flags ask for.
    fn stack_options(self) -> anyhow::Result<StackOptions> {
        let mut options = StackOptions::from_scenarios_dir(
            &self.scenarios_dir.unwrap_or_else(default_scenarios_dir),
        );
        options.redis = match self.redis {
            RedisArg::Auto => RedisMode::Auto,
            RedisArg::Process => RedisMode::Process,
            RedisArg::Container => RedisMode::Container,
            RedisArg::Memory => RedisMode::Memory,
            RedisArg::Url => RedisMode::Url(
                self.redis_url
                    .ok_or_else(|| anyhow::anyhow!("--redis url needs --redis-url"))?,
            ),
            RedisArg::Tls => RedisMode::Tls,
            RedisArg::Sentinel => RedisMode::Sentinel,
            RedisArg::Cluster => RedisMode::Cluster,
        };
        if self.redis_password.is_some() && matches!(options.redis, RedisMode::Memory) {
            anyhow::bail!("--redis-password: the memory store has no password (choose a Redis)");
        }
        options.redis_password = self.redis_password;
        if self.durable_sessions
            && !matches!(options.redis, RedisMode::Sentinel | RedisMode::Cluster)
        {
            anyhow::bail!(
                "--durable-sessions waits for a Redis replica: it needs --redis sentinel or cluster"
            );
        }
        options.redis_durable = self.durable_sessions;
        if self.client_side_cache && matches!(options.redis, RedisMode::Memory) {
            anyhow::bail!(
                "--client-side-cache keeps Redis sessions in memory: it needs a Redis (--redis process, container, tls or url)"
            );
        }
        options.redis_client_cache = self.client_side_cache;
        options.idp = match self.idp {
            IdpArg::Mock => IdpMode::Mock,
            IdpArg::MockContainer => IdpMode::MockContainer,
            IdpArg::OidcProvider => IdpMode::OidcProvider,
            IdpArg::Keycloak => IdpMode::Keycloak,
            IdpArg::Url => IdpMode::Url(
                self.idp_url
                    .ok_or_else(|| anyhow::anyhow!("--idp url needs --idp-url"))?,
            ),
        };
        options.gateway = match self.gateway {
            GatewayArg::Sim => GatewayMode::Simulator,
            GatewayArg::Caddy => GatewayMode::Caddy,
            GatewayArg::Nginx => GatewayMode::Nginx,
            GatewayArg::Agentgateway => GatewayMode::Agentgateway,
        };
        options.agentgateway = self.agentgateway;
        if let Some(addr) = self.gateway_listen {
            if !addr.ip().is_loopback() {
                anyhow::bail!(
                    "--gateway-listen {addr}: expected a loopback address (127.0.0.0/8 or ::1); the testbed listens on nothing else"
                );
            }
            options.gateway_listen = Some(addr);
        }
        options.extauth = ExtauthMode::from_replicas(self.replicas)?;
        options.extauth_bin = self.extauth_bin;
        Ok(options)
    }
}

/// `harness load`'s choices.
#[derive(Debug, Clone)]
struct LoadArgs {
    options: LoadOptions,
    report: Option<PathBuf>,
    svg: Option<PathBuf>,
    stack: BackendArgs,
    gateway_url: Option<String>,
    upstream_url: Option<String>,
    faults: Vec<Fault>,
}

async fn load(args: LoadArgs) -> anyhow::Result<LoadReport> {
    let LoadArgs {
        options,
        report: report_file,
        svg,
        stack,
        gateway_url,
        upstream_url,
        faults,
    } = args;
    let (target, running) = match gateway_url {
        Some(gateway_url) => {
            if let Some(idp_url) = &stack.idp_url
                && !crate::load::is_loopback(idp_url)
            {
                anyhow::bail!(
                    "the IdP {idp_url:?} is not a loopback URL: load runs only on this machine"
                );
            }
            let target = LoadTarget {
                gateway_url: gateway_url.trim_end_matches('/').to_owned(),
                upstream_url: upstream_url.map(|u| u.trim_end_matches('/').to_owned()),
                description: "external target".to_owned(),
            };
            (target, None)
        }
        None => {
            let mut stack_options = stack.stack_options()?;
            stack_options.announce = options.progress;
            // Faults that cannot fire on this stack fail before anything starts.
            let replicas = match stack_options.extauth {
                ExtauthMode::Processes { replicas } => Some(usize::from(replicas)),
                ExtauthMode::InProcess => None,
            };
            crate::load::faults::check(&faults, replicas, options.duration)
                .map_err(|e| anyhow::anyhow!(e))?;
            let running = Stack::up(stack_options).await?;
            (LoadTarget::of_stack(&running), Some(running))
        }
    };
    let mut running = running;
    let result = tokio::select! {
        result = crate::load::run_with_faults(
            &target,
            &options,
            &faults,
            running.as_mut().map(|s| s as &mut dyn FaultInjector),
        ) => result,
        () = shutdown_signal() => Err(crate::load::LoadError::Interrupted),
    };
    if let Some(running) = running {
        running.stop().await;
    }
    let report = result?;
    publish(&report, &report.table(), || report.svg(), report_file, svg)?;
    Ok(report)
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    let UpArgs {
        env_file,
        login_hint,
        backends,
    } = args;
    let options = backends.stack_options()?;
    let stack = Stack::up(options).await?;
    let vars = stack.vars();
    let var = |k: &str| vars.get(k).cloned().unwrap_or_default();
    if let Some(path) = &env_file {
        let mut text = String::new();
        for key in [
            "GATEWAY_URL",
            "IDP_URL",
            "EXTAUTH_GRPC",
            "EXTAUTH_HTTP",
            "EXTAUTH_HTTP_NGINX",
            "REDIS_URL",
            "UPSTREAM_URL",
        ] {
            let _ = writeln!(text, "{key}={}", var(key));
        }
        let pids = stack.extauth_pids();
        let _ = writeln!(
            text,
            "EXTAUTH_PIDS={}",
            pids.iter()
                .flatten()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        );
        let _ = writeln!(text, "EXTAUTH_ADMINS={}", var("EXTAUTH_ADMINS"));
        // The topology's own, so people can break it by hand (only those it has).
        for key in [
            "REDIS_TOPOLOGY",
            "REDIS_SENTINELS",
            "REDIS_MASTER_NAME",
            "REDIS_CLUSTER_NODES",
        ] {
            if let Some(value) = vars.get(key) {
                let _ = writeln!(text, "{key}={value}");
            }
        }
        std::fs::write(path, text)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    let ingress = var("INGRESS_GW_ADDRESS");
    let target = if var("APP_URL").ends_with(":80") {
        "${INGRESS_GW_ADDRESS}:80/openai"
    } else {
        "${INGRESS_GW_ADDRESS}/openai"
    };
    println!("The testbed is up.");
    println!(
        "  gateway   {}   (INGRESS_GW_ADDRESS={ingress})",
        stack.gateway_url()
    );
    println!(
        "  IdP       {}   (KEYCLOAK_URL; realm master, client {})",
        stack.idp_url(),
        stack.client_id()
    );
    println!("  login     {} / {}", DEFAULT_USER.0, DEFAULT_USER.1);
    print!("{}", extauth_lines(&stack));
    println!("  redis     {}", stack.redis_url());
    if let (Some(sentinels), Some(name)) =
        (vars.get("REDIS_SENTINELS"), vars.get("REDIS_MASTER_NAME"))
    {
        let first = sentinels.split(',').next().unwrap_or_default();
        let port = first.rsplit(':').next().unwrap_or_default();
        println!("            a failover by hand: redis-cli -p {port} SENTINEL FAILOVER {name}");
    }
    if let Some(nodes) = vars.get("REDIS_CLUSTER_NODES") {
        let first = nodes.split(',').next().unwrap_or_default();
        let port = first.rsplit(':').next().unwrap_or_default();
        println!("            the cluster by hand: redis-cli -c -p {port} CLUSTER NODES");
    }
    println!(
        "  backends  {}",
        stack
            .backends()
            .iter()
            .map(|(part, name)| format!("{part}={name}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("  upstream  {}", stack.upstream_url());
    println!("  manifest  {}", stack.manifest_path().display());
    if let Some(path) = &env_file {
        println!("  env file  {}", path.display());
    }
    println!();
    println!("Step 3.1 (expect a 302 to the Keycloak login page):");
    println!("  export INGRESS_GW_ADDRESS={ingress}");
    println!("  curl -v \"{target}\" -H content-type:application/json -d '{SEED_BODY}'");
    println!();
    println!("Step 3.5 (after logging in, with the keycloak-session cookie from the browser):");
    println!("  export COOKIE=\"keycloak-session=<value>\"");
    println!(
        "  curl -v \"{target}\" -H content-type:application/json -H \"Cookie: $COOKIE\" -d '{{\"model\": \"gpt-3.5-turbo\", \"messages\": []}}'"
    );
    if login_hint {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let response = client
            .post(format!("{}/openai", stack.gateway_url()))
            .header("content-type", "application/json")
            .body(SEED_BODY)
            .send()
            .await?;
        match response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
        {
            Some(location) => {
                println!();
                println!("Open this in a browser and log in as {}:", DEFAULT_USER.0);
                println!("  {location}");
            }
            None => println!(
                "\n(login hint: the gateway answered {} without a location)",
                response.status()
            ),
        }
    }
    println!();
    println!("Ctrl-C stops everything.");
    shutdown_signal().await;
    println!("stopping…");
    stack.stop().await;
    if let Some(path) = &env_file {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// `harness up`'s extauth lines: the in-process server's listeners, or one line per replica
/// with its PID (for `kill` by hand) and its listeners.
fn extauth_lines(stack: &crate::stack::RunningStack) -> String {
    let pids = stack.extauth_pids();
    if pids.is_empty() {
        return format!(
            "  extauth   gRPC {}  HTTP {}  HTTP (nginx profile) {}  admin {}\n",
            stack.extauth_grpc(),
            stack.extauth_http(),
            stack
                .vars()
                .get("EXTAUTH_HTTP_NGINX")
                .map_or("", String::as_str),
            stack.extauth_admin()
        );
    }
    let mut out = format!(
        "  extauth   {} replicas (extauth serve processes; the gateway balances across them)\n",
        pids.len()
    );
    for (index, (pid, (grpc, http, admin))) in
        pids.iter().zip(stack.extauth_listeners()).enumerate()
    {
        let pid = pid.map_or_else(|| "down".to_owned(), |p| p.to_string());
        let _ = writeln!(
            out,
            "    replica {index}  pid {pid}  gRPC {grpc}  HTTP {http}  admin {admin}"
        );
    }
    out
}

/// Prints a load report's `table`, writes the report as JSON to `report_file` and its
/// `plot` as SVG to `svg` (by default beside the JSON), saying where.
fn publish<R: serde::Serialize>(
    report: &R,
    table: &str,
    plot: impl FnOnce() -> String,
    report_file: Option<PathBuf>,
    svg: Option<PathBuf>,
) -> anyhow::Result<()> {
    print!("{table}");
    if let Some(path) = &report_file {
        create_parent(path)?;
        let json = serde_json::to_string_pretty(report)?;
        std::fs::write(path, json + "\n")
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        println!("report: {}", path.display());
    }
    if let Some(path) = svg.or_else(|| report_file.map(|p| p.with_extension("svg"))) {
        create_parent(&path)?;
        std::fs::write(&path, plot())
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        println!("plot: {}", path.display());
    }
    Ok(())
}

/// Creates the folder `path` goes in, when it has one.
fn create_parent(path: &std::path::Path) -> anyhow::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display())),
        _ => Ok(()),
    }
}

async fn run(paths: Vec<PathBuf>, options: RunOptions, junit: Option<PathBuf>) -> ExitCode {
    // insta reports a snapshot mismatch by panicking (caught by the runner, which prints it
    // as a failed step); keep the default panic report for everything else.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if !message.starts_with("snapshot assertion") {
            default_hook(info);
        }
    }));
    let paths = if paths.is_empty() {
        vec![default_scenarios_dir()]
    } else {
        paths
    };
    // Ctrl-C drops the running scenario: its stack's parts stop on drop (children killed by
    // PID, containers removed).
    let reports = tokio::select! {
        result = run_paths(&paths, &options) => match result {
            Ok(reports) => reports,
            Err(e) => {
                eprintln!("harness run: {e}");
                return ExitCode::FAILURE;
            }
        },
        () = shutdown_signal() => {
            // The running scenario's stack was dropped with the future (children killed by
            // PID, containers removed); whatever a blocking login thread still holds goes too.
            let stopped = crate::cleanup::stop_leftovers();
            eprintln!(
                "harness run: interrupted; stopped {}",
                if stopped.is_empty() { "everything it started".to_owned() } else { stopped.join(", ") }
            );
            return ExitCode::from(130);
        }
    };
    if reports.is_empty() {
        eprintln!("harness run: no scenario files found");
        return ExitCode::FAILURE;
    }
    let failed = reports.iter().filter(|r| !r.passed()).count();
    println!();
    print!("{}", results_table(&reports));
    if let Some(path) = &junit {
        match std::fs::write(path, junit_xml(&reports)) {
            Ok(()) => println!("JUnit report: {}", path.display()),
            Err(e) => {
                eprintln!("harness run: cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Ctrl-C (SIGINT) or SIGTERM, whichever comes first.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// The results, one row per scenario and backend combination, then the totals.
pub fn results_table(reports: &[ScenarioReport]) -> String {
    let name_width = reports
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let backends_width = reports
        .iter()
        .map(|r| r.backends.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<6} {:<name_width$}  {:<backends_width$}  {:>7}  detail",
        "result", "scenario", "backends", "time"
    );
    // One line per skip reason, under the table; rows point at it.
    let mut reasons: Vec<(&str, usize)> = Vec::new();
    for reason in reports.iter().filter_map(|r| r.skipped.as_deref()) {
        match reasons.iter_mut().find(|(known, _)| *known == reason) {
            Some((_, rows)) => *rows += 1,
            None => reasons.push((reason, 1)),
        }
    }
    for r in reports {
        let (result, detail) = match (&r.skipped, &r.failure) {
            (Some(reason), _) => {
                let n = reasons
                    .iter()
                    .position(|(known, _)| known == reason)
                    .map_or(0, |i| i + 1);
                ("SKIP", format!("skip reason {n}"))
            }
            (None, Some((step, problems))) => (
                "FAIL",
                format!(
                    "step {step:?}: {}",
                    problems
                        .first()
                        .map_or("", |p| p.lines().next().unwrap_or(""))
                ),
            ),
            (None, None) => ("PASS", String::new()),
        };
        let _ = writeln!(
            out,
            "{result:<6} {:<name_width$}  {:<backends_width$}  {:>6.1}s  {detail}",
            r.name,
            r.backends,
            r.duration.as_secs_f64()
        );
    }
    let skipped = reports.iter().filter(|r| r.skipped.is_some()).count();
    let failed = reports.iter().filter(|r| !r.passed()).count();
    let _ = writeln!(
        out,
        "scenarios: {} passed, {failed} failed, {skipped} skipped",
        reports.len() - failed - skipped
    );
    for (i, (reason, rows)) in reasons.iter().enumerate() {
        let plural = if *rows == 1 { "" } else { "s" };
        let _ = writeln!(out, "skip reason {} ({rows} row{plural}): {reason}", i + 1);
    }
    out
}

/// The results as JUnit XML: one test suite, one test case per scenario and combination.
pub fn junit_xml(reports: &[ScenarioReport]) -> String {
    let failed = reports.iter().filter(|r| !r.passed()).count();
    let skipped = reports.iter().filter(|r| r.skipped.is_some()).count();
    let total: f64 = reports.iter().map(|r| r.duration.as_secs_f64()).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuite name=\"harness\" tests=\"{}\" failures=\"{failed}\" skipped=\"{skipped}\" time=\"{total:.3}\">",
        reports.len()
    );
    for r in reports {
        let _ = write!(
            out,
            "  <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            xml_escape(&r.name),
            xml_escape(&r.backends),
            r.duration.as_secs_f64()
        );
        match (&r.skipped, &r.failure) {
            (Some(reason), _) => {
                let _ = writeln!(
                    out,
                    ">\n    <skipped message=\"{}\"/>\n  </testcase>",
                    xml_escape(reason)
                );
            }
            (None, Some((step, problems))) => {
                let _ = writeln!(
                    out,
                    ">\n    <failure message=\"step {}\">{}</failure>\n  </testcase>",
                    xml_escape(step),
                    xml_escape(&problems.join("\n"))
                );
            }
            (None, None) => {
                let _ = writeln!(out, "/>");
            }
        }
    }
    out.push_str("</testsuite>\n");
    out
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests;
