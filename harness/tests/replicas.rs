//! Several extauth replicas (`extauth serve` processes of the real binary) behind each
//! gateway, over real sockets: a login started on one replica finishes on another, and a
//! replica killed or restarted under load fails no request.
//!
//! Needs the `extauth` binary next to this test's folder (`cargo build -p extauth`, which
//! `cargo test --workspace` and `just test` do) and `redis-server`; Caddy rows need `caddy`.

use std::time::Duration;

use harness::extauth::ExtauthMode;
use harness::load::{Fault, FaultInjector, LoadOptions, LoadReport, LoadTarget, run_with_faults};
use harness::login::{self, Credentials, Driver};
use harness::stack::{GatewayMode, RedisMode, RunningStack, Stack, StackOptions};

fn two_replicas(gateway: GatewayMode) -> StackOptions {
    StackOptions {
        redis: RedisMode::Process,
        gateway,
        extauth: ExtauthMode::Processes { replicas: 2 },
        announce: false,
        ..StackOptions::default()
    }
}

async fn up(gateway: GatewayMode) -> RunningStack {
    match Stack::up(two_replicas(gateway)).await {
        Ok(stack) => stack,
        Err(e) => panic!("two replicas behind {gateway:?} did not come up: {e}"),
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

const BODY: &str = r#"{"model": "gpt-3.5-turbo", "messages": []}"#;

/// Replica 0 answers the first request (straight on its HTTP listener, as the gateway would
/// ask it) and is killed; the IdP sends the browser back through the gateway, where only
/// replica 1 is left to verify the `state` replica 0 signed.
async fn login_crosses_replicas(gateway: GatewayMode) {
    let mut stack = up(gateway).await;
    let (_, replica0_http, _) = stack.extauth_listeners()[0];
    let ingress = stack.vars()["INGRESS_GW_ADDRESS"].clone();
    let response = client()
        .post(format!("http://{replica0_http}/openai"))
        .header("host", &ingress)
        .header("content-type", "application/json")
        .body(BODY)
        .send()
        .await
        .expect("replica 0 answers");
    assert_eq!(response.status(), 302);
    let location = url::Url::parse(
        response.headers()["location"]
            .to_str()
            .expect("ascii location"),
    )
    .expect("a URL");
    assert!(location.as_str().starts_with(stack.idp_url()), "{location}");
    let replica0_pid = stack.extauth_pids()[0].expect("replica 0 runs");
    stack.extauth_kill(0).expect("replica 0 killed");
    assert!(!harness::cleanup::process_alive(replica0_pid));

    let outcome = login::login(
        Driver::Http,
        &location,
        &Credentials::new("user1", "password"),
        login::DEFAULT_TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("the callback on replica 1 failed: {e}"));
    assert_eq!(outcome.final_status, Some(200));
    let cookie = outcome.cookie_header().expect("a session cookie");
    let call = client()
        .post(format!("{}/openai", stack.gateway_url()))
        .header("content-type", "application/json")
        .header("cookie", cookie)
        .body(BODY)
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(call.status(), 200);
    let pids = stack.extauth_pids();
    stack.stop().await;
    for pid in pids.into_iter().flatten() {
        assert!(
            !harness::cleanup::process_alive(pid),
            "extauth {pid} survived stop"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_started_on_one_replica_finishes_on_another_behind_the_simulator() {
    login_crosses_replicas(GatewayMode::Simulator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_started_on_one_replica_finishes_on_another_behind_caddy() {
    login_crosses_replicas(GatewayMode::Caddy).await;
}

/// 4 users for 4 s, each keeping its session (many calls per login), with `faults`.
async fn load_with(gateway: GatewayMode, faults: &[&str]) -> LoadReport {
    let mut stack = up(gateway).await;
    let target = LoadTarget::of_stack(&stack);
    let faults: Vec<Fault> = faults.iter().map(|f| f.parse().expect("a fault")).collect();
    let options = LoadOptions {
        users: 4,
        logins_per_user: None,
        duration: Some(Duration::from_secs(4)),
        calls_per_login: 1000,
        ..LoadOptions::default()
    };
    let report = run_with_faults(
        &target,
        &options,
        &faults,
        Some(&mut stack as &mut dyn FaultInjector),
    )
    .await
    .expect("load runs");
    stack.stop().await;
    report
}

fn assert_nothing_failed(report: &LoadReport) {
    let table = report.table();
    assert!(report.faults_ok(), "{table}");
    assert!(report.faults.iter().all(|f| f.fired_s.is_some()), "{table}");
    assert_eq!(report.requests_failed, 0, "{table}");
    assert!(report.errors.is_empty(), "{table}");
    assert_eq!(report.sessions_lost, 0, "{table}");
    assert_eq!(report.longest_error_window, None, "{table}");
    // The run did work on both sides of the faults.
    assert!(report.calls.count > 100, "{table}");
    assert!(report.faults.iter().all(|f| f.calls_during > 0), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_load_fails_no_request_behind_the_simulator() {
    assert_nothing_failed(&load_with(GatewayMode::Simulator, &["extauth-kill:0@1.5"]).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_load_fails_no_request_behind_caddy() {
    assert_nothing_failed(&load_with(GatewayMode::Caddy, &["extauth-kill:0@1.5"]).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_fails_no_request_behind_the_simulator() {
    let report = load_with(
        GatewayMode::Simulator,
        &["extauth-restart:0@1", "extauth-restart:1@2.5"],
    )
    .await;
    assert_nothing_failed(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_fails_no_request_behind_caddy() {
    let report = load_with(
        GatewayMode::Caddy,
        &["extauth-restart:0@1", "extauth-restart:1@2.5"],
    )
    .await;
    assert_nothing_failed(&report);
}

#[test]
fn harness_load_refuses_a_fault_on_a_replica_the_stack_does_not_run_before_starting_it() {
    let started = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["load", "--replicas", "2", "--duration", "5", "--quiet"])
        .args(["--fault", "extauth-kill:9@1"])
        .output()
        .expect("harness runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "harness load: --fault extauth-kill:9@1: replica 9 does not exist: the stack runs 2 replicas (0 to 1)"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused before any part started"
    );
}
