//! extauth on Redis Sentinel and Cluster over real sockets: two replicas share the refresh
//! lock and refresh a session once; `extauth validate` REJECTS bad Redis settings and
//! `extauth serve` refuses to start when no sentinel answers (the binary, as users run it).

// Test helpers panic with context on purpose: a failed fixture is a failed test.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use extauth::clock::ManualClock;
use extauth::config;
use extauth::env::MapEnv;
use extauth::server::{self, RunningServer, ServeOptions, StoreChoice};
use extauth::testing::{RedisCluster, RedisSentinel, free_port};
use mock_idp::RunningIdp;

mod support;

const SEED_HOST: &str = "host: ${REDIS_HOST}:${REDIS_PORT}";

/// The seed's manifests with `options.host` replaced by these option lines.
fn manifest(options: &[String]) -> String {
    let indent = " ".repeat(14);
    support::MANIFEST.replace(SEED_HOST, &options.join(&format!("\n{indent}")))
}

fn sentinel_options(topology: &RedisSentinel) -> Vec<String> {
    vec![
        "topology: sentinel".into(),
        "sentinel:".into(),
        format!("  masterName: {}", topology.master_name()),
        format!(
            "  addresses: [{}]",
            topology.sentinel_addresses().join(", ")
        ),
    ]
}

fn cluster_options(cluster: &RedisCluster) -> Vec<String> {
    vec![
        "topology: cluster".into(),
        format!("cluster: {{nodes: [{}]}}", cluster.seed_nodes().join(", ")),
    ]
}

fn env(idp: &RunningIdp) -> MapEnv {
    MapEnv::default()
        .with("KEYCLOAK_SECRET", "agentgateway-client-secret")
        .with("KEYCLOAK_CLIENT", "agentgateway")
        .with(
            "KEYCLOAK_URL",
            idp.base_url().as_str().trim_end_matches('/'),
        )
        .with("INGRESS_GW_ADDRESS", support::GATEWAY)
        .with("SIGNING_KEY", "a-topology-test-signing-key-of-32+bytes")
}

async fn replica(loaded: &config::Loaded, clock: &ManualClock) -> RunningServer {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    server::start_with_clock(
        loaded.clone(),
        ServeOptions {
            grpc: any,
            http: any,
            admin: any,
            session_store: StoreChoice::FromConfig,
        },
        Arc::new(clock.clone()),
    )
    .await
    .expect("extauth starts")
}

/// `POST /openai` to extauth's HTTP listener at `addr`, with the cookie when given.
async fn ask(http: &reqwest::Client, addr: SocketAddr, cookie: Option<&str>) -> support::Answer {
    let mut req = http
        .post(format!("http://{addr}/openai"))
        .header("host", support::APP_HOST)
        .header("accept", "*/*");
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    support::Answer::read(req.send().await.unwrap()).await
}

/// A whole login through extauth at `addr` (302 to the IdP, the form, the callback's 302);
/// the session cookie as `name=value`.
async fn log_in_at(http: &reqwest::Client, addr: SocketAddr) -> String {
    let first = ask(http, addr, None).await;
    assert_eq!(first.status, 302, "{first:?}");
    let callback = support::log_in(http, first.header("location").unwrap()).await;
    let back = support::Answer::read(
        http.get(format!(
            "http://{addr}{}",
            support::path_and_query(&callback)
        ))
        .header("host", support::APP_HOST)
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(back.status, 302, "{back:?}");
    support::cookie_pair(back.header("set-cookie").unwrap())
}

/// Logs in through `one`, lets the tokens come due, then sends concurrent requests with the
/// cookie to both replicas: every one is served with the same refreshed token, and the IdP
/// saw one `refresh_token` grant (it rotates refresh tokens: a second refresh would have
/// been refused and ended the session).
async fn two_replicas_refresh_once(options: Vec<String>) {
    let idp = support::idp().await;
    let loaded = config::load_str("topology.yaml", &manifest(&options), &env(&idp))
        .expect("the manifest loads");
    let clock = ManualClock::at_system_time();
    let (one, two) = (
        replica(&loaded, &clock).await,
        replica(&loaded, &clock).await,
    );
    let http = support::client();
    let cookie = log_in_at(&http, one.http_addr()).await;
    // Both replicas have served the session before it comes due (with `clientSideCache`,
    // both hold it in memory: the refresh must not be made from a stale copy).
    for addr in [one.http_addr(), two.http_addr()] {
        assert_eq!(ask(&http, addr, Some(&cookie)).await.status, 200);
    }
    clock.advance(299);
    idp.clock().advance(299);
    let answers = futures::future::join_all((0..8).map(|i| {
        let addr = if i % 2 == 0 {
            one.http_addr()
        } else {
            two.http_addr()
        };
        ask(&http, addr, Some(&cookie))
    }))
    .await;
    assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
    let jwts: Vec<_> = answers.iter().map(|a| a.header("jwt")).collect();
    assert!(jwts.windows(2).all(|w| w[0] == w[1]), "{jwts:?}");
    let refreshes = idp
        .requests()
        .iter()
        .map(|r| format!("{r:?}"))
        .filter(|r| r.contains("/protocol/openid-connect/token") && r.contains("refresh_token"))
        .count();
    assert_eq!(refreshes, 1, "one refresh across both replicas");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_sentinel_refresh_a_session_once() {
    let topology = RedisSentinel::start().await.expect("sentinel topology");
    two_replicas_refresh_once(sentinel_options(&topology)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_a_cluster_refresh_a_session_once() {
    let cluster = RedisCluster::start().await.expect("cluster");
    two_replicas_refresh_once(cluster_options(&cluster)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_with_the_client_side_cache_refresh_a_session_once() {
    let redis = extauth::testing::RedisServer::start().expect("redis-server");
    two_replicas_refresh_once(vec![
        format!("host: {}", redis.address()),
        "clientSideCache: true".into(),
    ])
    .await;
}

/// With `clientSideCache`, a session deleted in Redis by another client (another replica's
/// logout) stops being served from memory once Redis's invalidation arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_deleted_elsewhere_is_refused_by_a_replica_that_cached_it() {
    let redis = extauth::testing::RedisServer::start().expect("redis-server");
    let idp = support::idp().await;
    let options = [
        format!("host: {}", redis.address()),
        "clientSideCache: true".into(),
    ];
    let loaded = config::load_str("topology.yaml", &manifest(&options), &env(&idp))
        .expect("the manifest loads");
    let clock = ManualClock::at_system_time();
    let extauth = replica(&loaded, &clock).await;
    let http = support::client();
    let cookie = log_in_at(&http, extauth.http_addr()).await;
    for _ in 0..3 {
        assert_eq!(
            ask(&http, extauth.http_addr(), Some(&cookie)).await.status,
            200
        );
    }
    let value = cookie.split_once('=').unwrap().1;
    let key = extauth::session::SessionId::parse(value)
        .expect("the cookie holds a session id")
        .storage_key("");
    let mut admin = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let deleted: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let started = Instant::now();
    loop {
        let answer = ask(&http, extauth.http_addr(), Some(&cookie)).await;
        if answer.status == 302 {
            break;
        }
        assert_eq!(answer.status, 200, "{answer:?}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the deleted session was still served after 2 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn write_manifest(dir: &tempfile::TempDir, options: &[String]) -> std::path::PathBuf {
    let path = dir.path().join("manifest.yaml");
    std::fs::write(&path, manifest(options)).unwrap();
    path
}

const VARS: [(&str, &str); 5] = [
    ("KEYCLOAK_SECRET", "s3cr3t"),
    ("KEYCLOAK_CLIENT", "agentgateway"),
    ("KEYCLOAK_URL", "http://127.0.0.1:1"),
    ("INGRESS_GW_ADDRESS", "127.0.0.1"),
    ("SIGNING_KEY", "a-topology-test-signing-key-of-32+bytes"),
];

#[test]
fn extauth_validate_rejects_bad_redis_settings_with_the_field_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (
            &["topology: replicated", "host: r"],
            "session.redis.options.topology: expected `standalone`, `sentinel` or `cluster`, got \"replicated\"",
        ),
        (
            &[
                "topology: sentinel",
                "sentinel: {addresses: [\"127.0.0.1:26379\"]}",
            ],
            "session.redis.options.sentinel.masterName: expected the monitored master's name",
        ),
        (
            &[
                "host: r",
                "socketType: TLS",
                "tlsCertMountPath: /nonexistent/redis-tls",
            ],
            "session.redis.options.tlsCertMountPath: /nonexistent/redis-tls is not a readable folder",
        ),
    ];
    for (options, reason) in cases {
        let options: Vec<String> = options.iter().map(|s| (*s).to_owned()).collect();
        let out = Command::new(env!("CARGO_BIN_EXE_extauth"))
            .arg("validate")
            .arg("--config")
            .arg(write_manifest(&dir, &options))
            .env_clear()
            .envs(VARS)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{text}");
        assert!(
            text.contains("AuthConfig agentgateway-system/oauth-authorization-code: REJECTED"),
            "{text}"
        );
        assert!(text.contains(reason), "{text}");
    }
}

#[test]
fn extauth_serve_fails_at_start_naming_the_sentinels_that_did_not_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (free_port().unwrap(), free_port().unwrap());
    let options = vec![
        "topology: sentinel".to_owned(),
        format!(
            "sentinel: {{masterName: mymaster, addresses: [\"127.0.0.1:{a}\", \"127.0.0.1:{b}\"]}}"
        ),
    ];
    let stderr = serve_fails_at_start(&dir, &options, "without any sentinel");
    assert!(
        stderr.contains("session store for agentgateway-system/oauth-authorization-code"),
        "{stderr}"
    );
    assert!(
        stderr.contains("no sentinel named the master \"mymaster\""),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("127.0.0.1:{a}")), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{b}")), "{stderr}");
}

#[test]
fn extauth_serve_fails_at_start_when_no_cluster_seed_node_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (free_port().unwrap(), free_port().unwrap());
    let options = vec![
        "topology: cluster".to_owned(),
        format!("cluster: {{nodes: [\"127.0.0.1:{a}\", \"127.0.0.1:{b}\"]}}"),
    ];
    let stderr = serve_fails_at_start(&dir, &options, "without any cluster node");
    assert!(
        stderr.contains("session store for agentgateway-system/oauth-authorization-code"),
        "{stderr}"
    );
    assert!(stderr.contains("no cluster seed node answered"), "{stderr}");
}

/// Runs `extauth serve` with the Redis `options`; it must exit by itself (within 20 s, else
/// the test fails saying it kept running `what`), unsuccessfully: its stderr.
fn serve_fails_at_start(dir: &tempfile::TempDir, options: &[String], what: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_extauth"))
        .args([
            "serve",
            "--grpc",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ])
        .arg("--config")
        .arg(write_manifest(dir, options))
        .env_clear()
        .envs(VARS)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("extauth serve kept running {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    stderr
}
