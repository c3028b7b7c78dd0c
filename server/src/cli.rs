//! The command line: `extauth serve` and `extauth validate`. `main.rs` only calls [`run`].

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{self, Report};
use crate::env::{EnvSource, ProcessEnv};
use crate::server::{self, OpsOptions, ServeOptions, StoreChoice};
use crate::transport::profile::HttpListener;
use crate::transport::proxy::{Cidr, DEFAULT_TRUSTED_PROXIES, TrustedProxies};

/// Reference ext-auth server for the OIDC authorization-code flow.
#[derive(Debug, Parser)]
#[command(name = "extauth", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve ext_authz over gRPC and HTTP.
    Serve(ServeArgs),
    /// Check manifests: prints `ACCEPTED` or `REJECTED: <reason>` per AuthConfig; exit 1 if any
    /// is rejected.
    Validate {
        /// Multi-document Kubernetes YAML (Secret + AuthConfig, as in the guide); repeatable.
        #[arg(long = "config", required = true, value_name = "FILE")]
        configs: Vec<PathBuf>,
    },
}

/// `extauth serve` flags.
#[derive(Debug, clap::Args)]
#[command(after_long_help = SERVE_AFTER_HELP)]
pub struct ServeArgs {
    /// Multi-document Kubernetes YAML (Secret + AuthConfig); repeatable. `${VAR}` is taken from
    /// the environment; `SIGNING_KEY` (or an `extauth-signing-key` Secret) signs `state`.
    #[arg(long = "config", required = true, value_name = "FILE")]
    pub configs: Vec<PathBuf>,
    /// gRPC ext_authz listener (`envoy.service.auth.v3.Authorization`); the guide's backendRef
    /// port is 8083.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8083")]
    pub grpc: SocketAddr,
    /// HTTP forward-auth listener (Caddy `forward_auth`, Traefik `forwardAuth`): 200 = allow,
    /// with the upstream headers in the response; anything else is the answer for the client.
    /// For Envoy's HTTP ext_authz and nginx `auth_request` add a `--http-listener`.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8084")]
    pub http: SocketAddr,
    /// One more HTTP listener answering as one gateway expects; repeatable. PROFILE is
    /// `envoy` (Envoy HTTP ext_authz: allow is exactly 200, our 5xx answers go out as 403
    /// with their body and `x-extauth-status`), `nginx` (`auth_request`: 200 or 401 only,
    /// cookies in `x-extauth-set-cookie-N`, and the sign-in endpoint `/extauth/sign_in`) or
    /// `forward-auth` (as `--http`). E.g. `--http-listener nginx=127.0.0.1:8085`.
    #[arg(long = "http-listener", value_name = "PROFILE=ADDR")]
    pub http_listeners: Vec<HttpListener>,
    /// Admin listener: `/healthz` (liveness), `/readyz` (every AuthConfig's Redis answers and
    /// its discovery is fetched; JSON body), `/metrics` (Prometheus text format).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9091")]
    pub admin: SocketAddr,
    /// A proxy network whose `X-Forwarded-Method`, `-Proto`, `-Host` and `-Uri` describe the
    /// original request on the HTTP listener; from other peers they are ignored. Repeatable;
    /// CIDR or a single address. Giving any replaces the default.
    #[arg(
        long = "trusted-proxy",
        value_name = "CIDR",
        default_values_t = default_trusted_proxies()
    )]
    pub trusted_proxies: Vec<Cidr>,
    /// When several AuthConfigs are loaded, the gRPC `context_extensions` key (and, on the
    /// HTTP listener, the request header) whose value `namespace/name` picks one. With a single
    /// AuthConfig it is optional.
    #[arg(long, value_name = "KEY", default_value = crate::flow::CONFIG_SELECTOR)]
    pub config_selector: String,
    /// Keep sessions in process memory instead of Redis (single replica, tests).
    #[arg(long)]
    pub memory_sessions: bool,
    /// Log format: `text` for people, `json` for one JSON object per line (one line per
    /// decision: method, host, path without query, outcome, status, config, latency_ms).
    /// Filter with `RUST_LOG` (default `info`).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

const SERVE_AFTER_HELP: &str = "\
Logs never contain cookie values, authorization codes, `state`, tokens, Authorization headers or
session ids. Stop with SIGTERM or Ctrl-C (SIGINT): in-flight checks finish first.

Example (Caddy forward_auth on the same host):
  extauth serve --config seed.yaml --http 127.0.0.1:8084 --log-format json
Example (nginx auth_request and Envoy's HTTP ext_authz as well):
  extauth serve --config seed.yaml --http-listener nginx=127.0.0.1:8085 \
      --http-listener envoy=127.0.0.1:8086
The gateway configuration that goes with each profile is in docs/config-reference.md.";

fn default_trusted_proxies() -> Vec<Cidr> {
    DEFAULT_TRUSTED_PROXIES
        .iter()
        .filter_map(|c| c.parse().ok())
        .collect()
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Runs the command line; returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Validate { configs } => {
            let mut out = std::io::stdout().lock();
            validate(&configs, &ProcessEnv, &mut out)
        }
        Command::Serve(args) => serve(args),
    }
}

/// `extauth validate`, writing to `out`.
pub fn validate(paths: &[PathBuf], env: &dyn EnvSource, out: &mut dyn Write) -> ExitCode {
    let report = match config::validate_files(paths, env) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(out, "REJECTED: {e}");
            return ExitCode::FAILURE;
        }
    };
    if print_report(&report, out) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Prints one line per AuthConfig (and per skipped document); `true` when all are accepted.
fn print_report(report: &Report, out: &mut dyn Write) -> bool {
    let mut ok = true;
    for v in &report.verdicts {
        let id = v.label.id.as_deref().unwrap_or("(unnamed)");
        let _ = match &v.result {
            Ok(_) => writeln!(out, "AuthConfig {id}: ACCEPTED"),
            Err(e) => {
                ok = false;
                writeln!(out, "AuthConfig {id}: REJECTED: {e}")
            }
        };
    }
    if let Err(e) = &report.signing_key {
        ok = false;
        let _ = writeln!(out, "REJECTED: {e}");
    }
    for s in &report.skipped {
        let _ = writeln!(out, "skipped {s}: not an extauth resource");
    }
    ok
}

/// The subscriber `extauth serve` logs with, writing to `writer` (stderr in the binary, a
/// buffer in tests). JSON lines carry the event's fields at the top level, so the decision
/// line reads `{"timestamp":..,"level":"INFO","message":"decision","method":"GET",..}`.
pub fn log_subscriber<W>(
    format: LogFormat,
    filter: tracing_subscriber::EnvFilter,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    // Colours only for a person at a terminal: in a log file or a collector the escapes are
    // noise, and writing them cost about as much as the rest of the decision line.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .finish(),
        ),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ =
        tracing::subscriber::set_global_default(log_subscriber(format, filter, std::io::stdout));
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM (what Kubernetes sends before it kills a pod) and
/// names it.
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            return tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    "SIGINT"
}

fn serve(args: ServeArgs) -> ExitCode {
    init_logging(args.log_format);
    let loaded = match config::load_files(&args.configs, &ProcessEnv) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("REJECTED: {e}");
            return ExitCode::FAILURE;
        }
    };
    for s in &loaded.skipped {
        tracing::info!(document = %s, "skipped: not an extauth resource");
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let opts = ServeOptions {
            grpc: args.grpc,
            http: args.http,
            admin: args.admin,
            session_store: if args.memory_sessions {
                StoreChoice::Memory
            } else {
                StoreChoice::FromConfig
            },
        };
        let ops = OpsOptions {
            trusted_proxies: TrustedProxies::new(args.trusted_proxies),
            config_selector: Some(args.config_selector),
            http_listeners: args.http_listeners,
        };
        let clock = std::sync::Arc::new(crate::clock::SystemClock);
        let server = match server::start_with_options(loaded, opts, ops, clock).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let signal = stop_signal().await;
        tracing::info!(signal, "shutting down");
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}
