//! `harness`: see [`harness::cli`].

use clap::Parser as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = harness::cli::Cli::parse();
    // The simulation provokes extauth's warnings on purpose, thousands of times a second.
    let quiet = matches!(cli.command, harness::cli::Command::Sim { .. });
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // headless_chrome warns about every CDP event that arrives after a tab
                // closed ("Couldn't send browser an event"): harmless, and noise here. The
                // redis crate's cluster client warns at every slot refresh, which failover
                // scenarios cause on purpose.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new(if quiet {
                        "off"
                    } else {
                        "warn,headless_chrome=error,redis=error"
                    })
                }),
        )
        .with_writer(std::io::stderr)
        .init();
    harness::cli::main(cli).await
}
