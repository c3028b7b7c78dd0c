use super::super::timeline::{Event, FailKind, Op};
use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn every_kind_parses_with_its_offset_in_seconds() {
    let cases = [
        ("redis-failover@5", FaultKind::RedisFailover, ms(5000)),
        ("redis-kill-master@0", FaultKind::RedisKillMaster, ms(0)),
        ("extauth-kill:1@2.5", FaultKind::ExtauthKill(1), ms(2500)),
        (
            "extauth-restart:0@10",
            FaultKind::ExtauthRestart(0),
            ms(10_000),
        ),
    ];
    for (text, kind, at) in cases {
        let fault: Fault = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(fault, Fault { kind, at }, "{text}");
        assert_eq!(fault.to_string(), text, "round trip");
    }
}

#[test]
fn a_malformed_fault_names_itself_and_what_was_expected() {
    let cases = [
        (
            "extauth-kill:1",
            "--fault \"extauth-kill:1\": expected KIND@SECONDS, e.g. extauth-kill:0@5",
        ),
        (
            "extauth-kill@5",
            "--fault \"extauth-kill@5\": extauth-kill needs a replica index, e.g. extauth-kill:0",
        ),
        (
            "extauth-kill:x@5",
            "--fault \"extauth-kill:x@5\": replica index \"x\" is not a number",
        ),
        (
            "redis-reboot@5",
            "--fault \"redis-reboot@5\": unknown kind \"redis-reboot\"; expected one of redis-failover, redis-kill-master, extauth-kill:I, extauth-restart:I",
        ),
        (
            "extauth-stop:0@5",
            "--fault \"extauth-stop:0@5\": unknown kind \"extauth-stop\"",
        ),
        (
            "redis-failover@soon",
            "--fault \"redis-failover@soon\": \"soon\" is not a number of seconds",
        ),
        (
            "redis-failover@-1",
            "--fault \"redis-failover@-1\": \"-1\" is not a number of seconds from the start (0 or more)",
        ),
    ];
    for (text, want) in cases {
        let err = text.parse::<Fault>().expect_err(text);
        assert!(err.starts_with(want), "{text}: {err}");
    }
}

#[test]
fn a_replica_the_stack_does_not_run_is_refused_before_the_run() {
    let kill9: Fault = "extauth-kill:9@5".parse().expect("parses");
    assert_eq!(
        check(&[kill9], Some(2), None).expect_err("no replica 9"),
        "--fault extauth-kill:9@5: replica 9 does not exist: the stack runs 2 replicas (0 to 1)"
    );
    assert_eq!(
        check(&[kill9], None, None).expect_err("in process"),
        "--fault extauth-kill:9@5: needs --replicas N (without it extauth runs inside the harness and cannot be killed)"
    );
    let restart1: Fault = "extauth-restart:1@5".parse().expect("parses");
    assert!(check(&[restart1], Some(2), None).is_ok());
    assert_eq!(
        check(&[restart1], Some(2), Some(ms(5000))).expect_err("too late"),
        "--fault extauth-restart:1@5: fires after the run ends (--duration 5)"
    );
    // Redis kinds are checked by the stack when they fire (it knows its topology).
    let failover: Fault = "redis-failover@1".parse().expect("parses");
    assert!(check(&[failover], None, Some(ms(5000))).is_ok());
}

fn call(at_ms: u64, latency_ms: u64, failed: Option<FailKind>) -> Event {
    Event {
        at: ms(at_ms),
        latency: ms(latency_ms),
        op: Op::Call,
        failed,
        session_lost: false,
    }
}

#[test]
fn before_is_the_run_before_the_first_fault_and_during_stops_at_the_next_one() {
    let mut events = Vec::new();
    // 0-1 s: 100 calls at 2 ms. 1-2 s: 100 at 10 ms and a failure. 2-3 s: 100 at 4 ms.
    for i in 0..100 {
        events.push(call(i * 10, 2, None));
        events.push(call(1000 + i * 10, 10, None));
        events.push(call(2000 + i * 10, 4, None));
    }
    events.push(call(1500, 30, Some(FailKind::Connect)));
    let kill = Fired {
        fault: "extauth-kill:0@1".parse().expect("parses"),
        ran: Some((ms(1000), ms(5))),
        result: Ok(None),
    };
    let restart = Fired {
        fault: "extauth-restart:0@2".parse().expect("parses"),
        ran: Some((ms(2000), ms(50))),
        result: Err("replica 0 did not become ready".into()),
    };
    let late = Fired {
        fault: "redis-failover@9".parse().expect("parses"),
        ran: None,
        result: Ok(None),
    };
    let reports = judge(&[kill, restart, late], &events);
    assert_eq!(reports.len(), 3);
    let (k, r, l) = (&reports[0], &reports[1], &reports[2]);
    assert_eq!((k.call_p99_before_ms, k.calls_before), (2.0, 100));
    assert_eq!((k.call_p99_during_ms, k.calls_during), (10.0, 100));
    assert_eq!(k.failed_during, 1);
    assert_eq!(k.outcome, "ok");
    assert!(k.fired_ok());
    assert_eq!(
        (r.call_p99_before_ms, r.calls_before),
        (2.0, 100),
        "same baseline"
    );
    assert_eq!((r.call_p99_during_ms, r.calls_during), (4.0, 100));
    assert_eq!(r.failed_during, 0);
    assert_eq!(r.outcome, "failed: replica 0 did not become ready");
    assert!(!r.fired_ok());
    assert_eq!(l.fired_s, None);
    assert_eq!(l.outcome, "not fired: the run ended first");
    assert!(!l.fired_ok());
}
