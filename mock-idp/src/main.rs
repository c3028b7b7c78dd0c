//! `mock-idp`: serve Keycloak realm-export files as a Keycloak-compatible OIDC provider.
//!
//! ```text
//! mock-idp --realm scenarios/realms/master.json [--realm other.json | --realm dir/] \
//!          --listen 127.0.0.1:8080 [--public-url URL] [--alg RS256|PS256|ES256] \
//!          [--key-overlap-seconds 3600] [--rotate-keys-every-seconds N] \
//!          [--backchannel-logout-timeout-ms 5000]
//! ```
//! A folder given to `--realm` serves every `*.json` file in it. The admin API
//! (`/admin/mock/...`) answers loopback peers only. Prints `listening on http://...` and one
//! `issuer http://.../realms/<realm>` line per realm on stdout, logs
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
    /// Keycloak realm-export JSON file, or a folder of them; repeat for several realms.
    #[arg(long, env = "MOCK_IDP_REALM", required = true, value_delimiter = ',')]
    realm: Vec<PathBuf>,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "MOCK_IDP_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Public base URL (default: http://<listen address>); issuers are <URL>/realms/<realm>.
    #[arg(long, env = "MOCK_IDP_PUBLIC_URL", conflicts_with = "public_host")]
    public_url: Option<Url>,
    /// Public host name; the public URL becomes http://<host>:<bound port>.
    #[arg(long, env = "MOCK_IDP_PUBLIC_HOST")]
    public_host: Option<String>,
    /// Signing algorithm of the generated key: RS256, PS256 or ES256.
    #[arg(long, env = "MOCK_IDP_ALG", default_value = "RS256")]
    alg: mock_idp::SigningAlg,
    /// How long a rotated-out signing key stays in the JWKS.
    #[arg(long, env = "MOCK_IDP_KEY_OVERLAP_SECONDS", default_value_t = 3600)]
    key_overlap_seconds: u64,
    /// Rotate the signing key on this period (seconds); the old key stays for the overlap.
    #[arg(long, env = "MOCK_IDP_ROTATE_KEYS_EVERY_SECONDS")]
    rotate_keys_every_seconds: Option<u64>,
    /// How long one back-channel logout call to a client may take (milliseconds).
    #[arg(
        long,
        env = "MOCK_IDP_BACKCHANNEL_LOGOUT_TIMEOUT_MS",
        default_value_t = 5000
    )]
    backchannel_logout_timeout_ms: u64,
}

/// The realm files named by `--realm`: files as given, folders expanded to their `*.json`.
fn realm_files(args: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in args {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading {}", path.display()))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            found.sort();
            anyhow::ensure!(
                !found.is_empty(),
                "no *.json realm file in {}",
                path.display()
            );
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
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

    let mut builder = mock_idp::MockIdp::builder()
        .listen(args.listen)
        .key_overlap(std::time::Duration::from_secs(args.key_overlap_seconds))
        .backchannel_logout_timeout(std::time::Duration::from_millis(
            args.backchannel_logout_timeout_ms,
        ))
        .signing_alg(args.alg);
    if let Some(every) = args.rotate_keys_every_seconds {
        builder = builder.rotate_keys_every(std::time::Duration::from_secs(every));
    }
    let mut names = Vec::new();
    for file in realm_files(&args.realm)? {
        let realm = mock_idp::Realm::from_file(&file)?;
        names.push(realm.name().to_owned());
        builder = builder.realm(realm);
    }
    if let Some(url) = args.public_url {
        builder = builder.public_url(url);
    }
    if let Some(host) = args.public_host {
        builder = builder.public_host(host);
    }
    let idp = builder.start().await.context("starting mock-idp")?;

    println!("listening on http://{}", idp.addr());
    for name in &names {
        println!("issuer {}", idp.issuer(name));
    }

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
