//! The `harness` command line: `up` (the stack for a person to use) and `run` (scenarios).
//! `main.rs` only parses and calls [`main`].

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::scenario::{RunOptions, run_paths};
use crate::stack::{DEFAULT_USER, RedisMode, Stack, StackOptions, default_scenarios_dir};

/// Brings up the OIDC authorization-code testbed and runs scenario files.
#[derive(Debug, Parser)]
#[command(name = "harness", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bring up Redis, the mock IdP, extauth, the LLM upstream and the gateway; print how to
    /// use them (the seed guide's Step 3) and wait for Ctrl-C.
    Up {
        /// Also write GATEWAY_URL, IDP_URL, EXTAUTH_GRPC, EXTAUTH_HTTP, REDIS_URL,
        /// UPSTREAM_URL as KEY=value lines to this file.
        #[arg(long, value_name = "PATH")]
        env_file: Option<PathBuf>,
        /// Do Step 3.1 now and print the Keycloak login URL to open in a browser.
        #[arg(long)]
        login_hint: bool,
        /// Session store.
        #[arg(long, value_enum, default_value_t = RedisArg::Auto)]
        redis: RedisArg,
        /// Folder with realms/ and manifests/.
        #[arg(long, value_name = "DIR")]
        scenarios_dir: Option<PathBuf>,
    },
    /// Run scenario files (or folders of *.yaml), each on a fresh stack.
    Run {
        /// Files or folders; default: the workspace's scenarios/ folder.
        paths: Vec<PathBuf>,
        /// Where the snapshots are (default: scenarios/snapshots).
        #[arg(long, value_name = "DIR")]
        snapshots_dir: Option<PathBuf>,
    },
}

/// `--redis`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RedisArg {
    /// redis-server when installed, else memory.
    Auto,
    /// redis-server (error when missing).
    Process,
    /// extauth's in-memory store.
    Memory,
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

/// Runs the command line; the exit code says how it went.
pub async fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Up {
            env_file,
            login_hint,
            redis,
            scenarios_dir,
        } => match up(env_file, login_hint, redis, scenarios_dir).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("harness up: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Run {
            paths,
            snapshots_dir,
        } => run(paths, snapshots_dir).await,
    }
}

async fn up(
    env_file: Option<PathBuf>,
    login_hint: bool,
    redis: RedisArg,
    scenarios_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let mut options =
        StackOptions::from_scenarios_dir(&scenarios_dir.unwrap_or_else(default_scenarios_dir));
    options.redis = match redis {
        RedisArg::Auto => RedisMode::Auto,
        RedisArg::Process => RedisMode::Process,
        RedisArg::Memory => RedisMode::Memory,
    };
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
            "REDIS_URL",
            "UPSTREAM_URL",
        ] {
            let _ = writeln!(text, "{key}={}", var(key));
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
    println!(
        "  extauth   gRPC {}  HTTP {}  admin {}",
        stack.extauth_grpc(),
        stack.extauth_http(),
        stack.extauth_admin()
    );
    println!("  redis     {}", stack.redis_url());
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
    tokio::signal::ctrl_c().await?;
    println!("stopping…");
    stack.stop().await;
    if let Some(path) = &env_file {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

async fn run(paths: Vec<PathBuf>, snapshots_dir: Option<PathBuf>) -> ExitCode {
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
    let mut options = RunOptions::default();
    if let Some(dir) = snapshots_dir {
        options.snapshots_dir = std::path::absolute(&dir).unwrap_or(dir);
    }
    let reports = match run_paths(&paths, &options).await {
        Ok(reports) => reports,
        Err(e) => {
            eprintln!("harness run: {e}");
            return ExitCode::FAILURE;
        }
    };
    if reports.is_empty() {
        eprintln!("harness run: no scenario files found");
        return ExitCode::FAILURE;
    }
    let failed: Vec<_> = reports.iter().filter(|r| !r.passed()).collect();
    println!();
    for report in &reports {
        match &report.failure {
            None => println!("PASS {} ({})", report.name, report.path.display()),
            Some((step, _)) => println!(
                "FAIL {} ({}): step {step:?}",
                report.name,
                report.path.display()
            ),
        }
    }
    println!(
        "scenarios: {} passed, {} failed",
        reports.len() - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
