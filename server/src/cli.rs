//! The command line: `extauth serve` and `extauth validate`. `main.rs` only calls [`run`].

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{self, Report};
use crate::env::{EnvSource, ProcessEnv};
use crate::server::{self, ServeOptions, StoreChoice};

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
    /// Check manifests: prints ACCEPTED or REJECTED: <reason> per AuthConfig; exit 1 if any
    /// is rejected.
    Validate {
        /// Multi-document Kubernetes YAML (Secret + AuthConfig, as in the guide); repeatable.
        #[arg(long = "config", required = true, value_name = "FILE")]
        configs: Vec<PathBuf>,
    },
}

/// `extauth serve` flags.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Multi-document Kubernetes YAML (Secret + AuthConfig); repeatable. `${VAR}` is taken from
    /// the environment.
    #[arg(long = "config", required = true, value_name = "FILE")]
    pub configs: Vec<PathBuf>,
    /// gRPC ext_authz listener (`envoy.service.auth.v3.Authorization`); the guide's backendRef
    /// port is 8083.
    #[arg(long, default_value = "127.0.0.1:8083")]
    pub grpc: SocketAddr,
    /// HTTP ext_authz / forward-auth listener.
    #[arg(long, default_value = "127.0.0.1:8084")]
    pub http: SocketAddr,
    /// Admin listener (`/healthz`).
    #[arg(long, default_value = "127.0.0.1:9091")]
    pub admin: SocketAddr,
    /// Keep sessions in process memory instead of Redis (single replica, tests).
    #[arg(long)]
    pub memory_sessions: bool,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
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

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
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
        let server = match server::start(loaded, opts).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}
