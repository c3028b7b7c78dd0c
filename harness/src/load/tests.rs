use super::*;
use crate::stack::{RedisMode, Stack, StackOptions};

fn tiny(users: usize, logins: u64, calls: usize) -> LoadOptions {
    LoadOptions {
        users,
        logins_per_user: Some(logins),
        calls_per_login: calls,
        ..LoadOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_bounded_run_counts_every_login_call_and_baseline_sample() {
    let stack = Stack::up(StackOptions {
        redis: RedisMode::Memory,
        announce: false,
        prefer_port_80: false,
        ..StackOptions::default()
    })
    .await
    .expect("stack up");
    let target = LoadTarget::of_stack(&stack);
    assert!(target.upstream_url.is_some(), "{target:?}");
    let report = run(&target, &tiny(2, 3, 2)).await.expect("load runs");
    stack.stop().await;

    assert_eq!(report.errors, BTreeMap::new(), "{}", report.table());
    assert_eq!(report.logins_attempted, 6);
    assert_eq!(report.logins.count, 6);
    assert_eq!(report.gateway_unauthenticated.count, 6);
    assert_eq!(report.calls_attempted, 12);
    assert_eq!(report.calls.count, 12);
    assert_eq!(report.upstream_direct.as_ref().map(|s| s.count), Some(12));
    assert!(report.ratios.call_over_upstream_p50.is_some());

    let json = serde_json::to_value(&report).expect("report serialises");
    assert_eq!(json["logins"]["count"], 6);
    assert_eq!(json["calls"]["count"], 12);
    assert_eq!(json["upstream_direct"]["count"], 12);
    let table = report.table();
    assert!(table.contains("authenticated call"), "{table}");
    assert!(table.contains("errors: none"), "{table}");
    let svg = report.svg();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    // One distribution curve per series (the timeline's p99 line is thinner).
    assert_eq!(
        svg.matches(r#"stroke-width="2" points="#).count(),
        4,
        "{svg}"
    );
    assert!(svg.contains("over time: call p99 per 100 ms"), "{svg}");

    // No fault, no errors: the figures a fault is judged by are all zero.
    assert_eq!(report.requests_failed, 0);
    assert!(report.failed_by_kind.is_empty());
    assert_eq!(report.sessions_lost, 0);
    assert_eq!(report.longest_error_window, None);
    assert!(report.faults.is_empty() && report.faults_ok());
    // Every request is in the timeline: 6 redirects, 6 logins, 12 calls, 12 direct.
    let ok: u64 = report.timeline.buckets.iter().map(|b| b.ok).sum();
    assert_eq!(ok, 36);
    assert_eq!(json["sessions_lost"], 0);
    assert_eq!(json["timeline"]["bucket_ms"], 100);
}

/// Carries out any fault by wiping the session store: Redis stopped and started again
/// empty, as a failover to a replica that never got the writes would leave it.
struct WipeRedis<'a>(&'a mut crate::stack::RunningStack);

impl FaultInjector for WipeRedis<'_> {
    fn inject(&mut self, _kind: FaultKind) -> faults::Injection<'_> {
        Box::pin(async move {
            self.0.redis_stop().await?;
            self.0.redis_start().await.map(|()| None)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_session_store_counts_each_cookie_sent_back_to_log_in_as_one_session_lost() {
    let mut stack = Stack::up(StackOptions {
        redis: RedisMode::Process,
        announce: false,
        prefer_port_80: false,
        ..StackOptions::default()
    })
    .await
    .expect("stack up");
    let target = LoadTarget::of_stack(&stack);
    let options = LoadOptions {
        users: 3,
        logins_per_user: None,
        duration: Some(Duration::from_secs(3)),
        // Each user keeps its session for the whole run unless it is lost.
        calls_per_login: 100_000,
        ..LoadOptions::default()
    };
    let fault: Fault = "redis-failover@1".parse().expect("parses");
    let report = run_with_faults(
        &target,
        &options,
        &[fault],
        Some(&mut WipeRedis(&mut stack)),
    )
    .await
    .expect("load runs");
    stack.stop().await;

    let table = report.table();
    assert!(report.faults_ok(), "{table}");
    // Every user held a working session at 1 s; after the wipe each is sent to log in
    // once, then logs in again and keeps its new session.
    assert_eq!(report.sessions_lost, 3, "{table}");
    let lost_in_buckets: u64 = report
        .timeline
        .buckets
        .iter()
        .map(|b| b.sessions_lost)
        .sum();
    assert_eq!(lost_in_buckets, 3);
    let fired = report.faults[0].fired_s.expect("fired");
    assert!(
        report
            .timeline
            .buckets
            .iter()
            .filter(|b| b.sessions_lost > 0)
            .all(|b| b.start_s + 0.1 > fired),
        "no session lost before the fault: {table}"
    );
    assert_eq!(
        report
            .errors
            .get("call: status 302 (session lost: sent to log in again)"),
        Some(&3),
        "{table}"
    );
    assert!(table.contains("sessions lost: 3"), "{table}");
}

#[tokio::test]
async fn a_non_loopback_target_is_refused_before_any_request() {
    let target = LoadTarget {
        gateway_url: "http://192.0.2.1".into(),
        upstream_url: None,
        description: String::new(),
    };
    let err = run(&target, &tiny(1, 1, 1)).await.expect_err("refused");
    assert!(
        matches!(
            err,
            LoadError::NotLoopback {
                what: "gateway",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn an_unbounded_run_is_refused() {
    let target = LoadTarget {
        gateway_url: "http://127.0.0.1:9".into(),
        upstream_url: None,
        description: String::new(),
    };
    let options = LoadOptions {
        logins_per_user: None,
        duration: None,
        ..LoadOptions::default()
    };
    let err = run(&target, &options).await.expect_err("refused");
    assert!(matches!(err, LoadError::Options(_)), "{err}");
}

#[tokio::test]
async fn a_dead_gateway_is_counted_as_errors_by_kind_not_a_failure_of_the_run() {
    // A port nobody listens on: bind one, note it, close it.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let target = LoadTarget {
        gateway_url: format!("http://127.0.0.1:{port}"),
        upstream_url: None,
        description: "nothing".into(),
    };
    let report = run(&target, &tiny(2, 2, 1)).await.expect("run completes");
    assert_eq!(report.logins_attempted, 4);
    assert_eq!(report.logins.count, 0);
    assert_eq!(report.error_total(), 4, "{:?}", report.errors);
    assert!(
        report.errors.keys().all(|k| k.starts_with("redirect: ")),
        "{:?}",
        report.errors
    );
    // An empty report still renders.
    assert!(report.table().contains("errors: 4"));
    assert!(report.svg().contains("</svg>"));
}

#[test]
fn loopback_means_127_slash_8_ipv6_loopback_or_localhost() {
    for (url, want) in [
        ("http://127.0.0.1:8080", true),
        ("http://127.0.0.5", true),
        ("http://localhost:3000/x", true),
        ("http://[::1]:80", true),
        ("http://10.0.0.1", false),
        ("http://example.com", false),
        ("not a url", false),
    ] {
        assert_eq!(is_loopback(url), want, "{url}");
    }
}
