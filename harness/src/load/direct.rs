//! Wires a check load ([`super::check`]) to a running stack: one real login for the template
//! session, the session sets in the stack's Redis, the no-op gRPC server beside extauth
//! (inside the harness when extauth is, else as a `harness noop-authz` process), then the run.

use std::time::Duration;

use extauth::session::SessionId;
use reqwest::header::LOCATION;
use url::Url;

use super::check::{Baseline, CheckEndpoints, CheckOptions, CheckReport, CheckTarget};
use super::gateways::GatewayPair;
use super::sessions::{self, SessionLayout};
use crate::login::{self, Credentials};
use crate::noop_authz::NoopAuthz;
use crate::stack::RunningStack;

/// The pre-created sessions' TTL in Redis.
const SESSION_TTL: Duration = Duration::from_secs(3600);

/// A real session, as extauth stored it after a login through the gateway, and where it is:
/// (its data, the cookie name, the Redis key prefix).
async fn template_session(
    stack: &RunningStack,
    credentials: &Credentials,
) -> Result<(extauth::session::SessionData, String, String), String> {
    let gateway = format!("{}/openai", stack.gateway_url().trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let answer = client
        .get(&gateway)
        .send()
        .await
        .map_err(|e| format!("the template login's first request: {e}"))?;
    let location = answer
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| Url::parse(&gateway).ok()?.join(l).ok())
        .ok_or_else(|| {
            format!(
                "the template login: expected a 302 to the IdP from {gateway}, got {}",
                answer.status()
            )
        })?;
    let outcome = login::http::login(&location, credentials, login::DEFAULT_TIMEOUT)
        .await
        .map_err(|e| format!("the template login: {e}"))?;
    let (cookie_name, id) = outcome
        .cookies
        .iter()
        .find_map(|c| Some((c.name.clone(), SessionId::parse(c.value.expose())?)))
        .ok_or(
            "the template login: no session cookie holds a Redis session id (is the store Redis?)",
        )?;
    let redis_url = stack.redis_url();
    let client = redis::Client::open(redis_url).map_err(|e| format!("redis {redis_url}: {e}"))?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("redis {redis_url}: {e}"))?;
    // The key is `keyPrefix` + the id's lookup half: find it, and with it the prefix.
    let suffix = id.storage_key("");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("*{suffix}"))
        .query_async(&mut conn)
        .await
        .map_err(|e| format!("redis KEYS: {e}"))?;
    let key = keys
        .into_iter()
        .find(|k| k.ends_with(&suffix))
        .ok_or("the template login's session is not in Redis")?;
    let prefix = key.trim_end_matches(&suffix).to_owned();
    let value: Vec<u8> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .map_err(|e| format!("redis GET: {e}"))?;
    let data = extauth::session::open_value(&id, &value)
        .map_err(|e| format!("the template session does not open: {e}"))?;
    Ok((data, cookie_name, prefix))
}

/// Runs `options` against `stack`'s extauth (replica 0).
pub async fn run(
    stack: &RunningStack,
    options: &CheckOptions,
    credentials: &Credentials,
) -> Result<CheckReport, String> {
    options.validate()?;
    if stack.redis_url().is_empty() || stack.redis_url() == "memory" {
        return Err(
            "--target http|grpc pre-creates sessions in Redis: run with --redis process (or auto, container, url), not memory".into(),
        );
    }
    let Some(&(grpc, http, admin)) = stack.extauth_listeners().first() else {
        return Err("the stack runs no extauth".into());
    };
    let (template, cookie_name, key_prefix) = template_session(stack, credentials).await?;
    let layout = SessionLayout {
        redis_url: stack.redis_url().to_owned(),
        key_prefix,
        cookie_name,
        ttl: SESSION_TTL,
    };
    if options.progress {
        eprintln!(
            "load: creating {} sessions in Redis",
            options
                .sessions
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" + ")
        );
    }
    let (sets, creation) = sessions::create(&layout, &template, &options.sessions).await?;
    let in_process = stack.extauth_pids().is_empty();
    let through_gateway = options.target.through_gateway();
    let noop = if (options.target == CheckTarget::Grpc
        && options.baselines.contains(&Baseline::Noop))
        || through_gateway
    {
        Some(start_noop(in_process).await?)
    } else {
        None
    };
    let gateways = match (options.target, &noop) {
        (CheckTarget::Sim, Some(noop)) => Some(GatewayPair::sim(grpc, noop.addr()).await?),
        (CheckTarget::Agentgateway, Some(noop)) => Some(
            GatewayPair::agentgateway(
                options.agentgateway.as_deref(),
                grpc,
                noop.addr(),
                &stack.files_dir().join("load-gateways"),
            )
            .await?,
        ),
        _ => None,
    };
    if options.progress
        && let Some(pair) = &gateways
    {
        eprintln!(
            "load: {} with extauth at {}, with the no-op ext_authz at {}{}",
            options.target.as_str(),
            pair.with_extauth(),
            pair.with_noop(),
            if pair.pids().is_empty() {
                String::new()
            } else {
                format!(" (pids {:?})", pair.pids())
            }
        );
    }
    let host = Url::parse(stack.gateway_url())
        .ok()
        .and_then(|u| {
            let host = u.host_str()?.to_owned();
            Some(u.port().map_or(host.clone(), |p| format!("{host}:{p}")))
        })
        .unwrap_or_else(|| "127.0.0.1".into());
    let description = stack
        .backends()
        .iter()
        .map(|(part, name)| format!("{part}={name}"))
        .chain(gateways.as_ref().map(|_| {
            format!(
                "load-gateways={} (trivial upstream)",
                options.target.as_str()
            )
        }))
        .chain(noop.as_ref().map(|_| {
            format!(
                "noop-authz={}",
                if in_process { "in-process" } else { "process" }
            )
        }))
        .collect::<Vec<_>>()
        .join(" ");
    let endpoints = CheckEndpoints {
        http,
        grpc,
        admin,
        noop_grpc: noop.as_ref().map(NoopAuthz::addr),
        gateway: gateways.as_ref().map(GatewayPair::with_extauth),
        gateway_noop: gateways.as_ref().map(GatewayPair::with_noop),
        redis_url: stack.redis_url().to_owned(),
        host,
        description,
        extauth_pid: stack.extauth_pids().first().copied().flatten(),
    };
    let report = super::check::run(&endpoints, &sets, creation, options).await;
    drop(gateways);
    if let Some(noop) = noop {
        noop.stop().await;
    }
    report
}

/// The no-op server beside extauth: in this process when extauth is, else as a process of
/// this executable (`harness noop-authz`).
async fn start_noop(in_process: bool) -> Result<NoopAuthz, String> {
    if !in_process
        && let Ok(exe) = std::env::current_exe()
        && exe.file_name().is_some_and(|n| n == "harness")
    {
        return NoopAuthz::spawn(&exe).await.map_err(|e| e.to_string());
    }
    NoopAuthz::start_in_process()
        .await
        .map_err(|e| e.to_string())
}
