//! `mock-idp`: serve one Keycloak realm-export file as a Keycloak-compatible OIDC provider.
//!
//! ```text
//! mock-idp --realm scenarios/realms/master.json --listen 127.0.0.1:8080 [--public-url URL]
//! ```
//! Prints `listening on http://...` and `issuer http://.../realms/<realm>` on stdout, logs
//! with `tracing` on stderr (`RUST_LOG`), and stops cleanly on Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use tracing_subscriber::EnvFilter;
use url::Url;

/// A Keycloak-compatible OpenID Connect provider for tests.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Keycloak realm-export JSON file to serve.
    #[arg(long, env = "MOCK_IDP_REALM")]
    realm: PathBuf,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "MOCK_IDP_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Public base URL (default: http://<listen address>); issuers are <URL>/realms/<realm>.
    #[arg(long, env = "MOCK_IDP_PUBLIC_URL", conflicts_with = "public_host")]
    public_url: Option<Url>,
    /// Public host name; the public URL becomes http://<host>:<bound port>.
    #[arg(long, env = "MOCK_IDP_PUBLIC_HOST")]
    public_host: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();

    let realm = mock_idp::Realm::from_file(&args.realm)?;
    let name = realm.name().to_owned();
    let mut builder = mock_idp::MockIdp::builder()
        .realm(realm)
        .listen(args.listen);
    if let Some(url) = args.public_url {
        builder = builder.public_url(url);
    }
    if let Some(host) = args.public_host {
        builder = builder.public_host(host);
    }
    let idp = builder.start().await.context("starting mock-idp")?;

    println!("listening on http://{}", idp.addr());
    println!("issuer {}", idp.issuer(&name));

    shutdown_signal().await;
    tracing::info!("shutting down");
    idp.shutdown().await;
    Ok(())
}

/// Ctrl-C, or SIGTERM (what `kill <pid>` sends).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
