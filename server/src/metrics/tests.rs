//! The registry and its text format. The registry is process-wide, so each test uses label
//! values of its own and compares deltas.

use std::time::Duration;

use http::StatusCode;

use super::*;
use crate::flow::{Allow, Deny};

#[test]
fn outcomes_are_named_by_status_class() {
    let cases = [
        ("allow", Decision::Allow(Allow::default())),
        (
            "redirect",
            Decision::Deny(Deny::redirect("http://idp/".into())),
        ),
        (
            "deny_bad_request",
            Decision::Deny(Deny::text(StatusCode::BAD_REQUEST, "")),
        ),
        (
            "deny_unauthorized",
            Decision::Deny(Deny::text(StatusCode::UNAUTHORIZED, "")),
        ),
        (
            "deny_forbidden",
            Decision::Deny(Deny::text(StatusCode::FORBIDDEN, "")),
        ),
        (
            "deny_client",
            Decision::Deny(Deny::text(StatusCode::TOO_MANY_REQUESTS, "")),
        ),
        (
            "deny_error",
            Decision::Deny(Deny::text(StatusCode::SERVICE_UNAVAILABLE, "")),
        ),
        ("respond", Decision::Deny(Deny::text(StatusCode::OK, ""))),
    ];
    for (want, decision) in cases {
        assert_eq!(outcome(&decision), want, "{decision:?}");
    }
}

#[test]
fn a_decision_counts_once_and_lands_in_one_latency_bucket() {
    let before = counter_value(
        DECISIONS,
        &[
            ("transport", "grpc"),
            ("outcome", "allow"),
            ("config", "unit/decision"),
        ],
    );
    record_decision(
        Transport::Grpc,
        "unit/decision",
        "allow",
        Duration::from_millis(3),
    );
    let after = counter_value(
        DECISIONS,
        &[
            ("config", "unit/decision"),
            ("outcome", "allow"),
            ("transport", "grpc"),
        ],
    );
    assert_eq!(after, before + 1);
    let text = render();
    assert!(
        text.contains(
            "extauth_decisions_total{config=\"unit/decision\",outcome=\"allow\",transport=\"grpc\"} "
        ),
        "{text}"
    );
    assert!(text.contains("# TYPE extauth_check_duration_seconds histogram"));
    assert!(text.contains("extauth_check_duration_seconds_bucket{transport=\"grpc\",le=\"+Inf\"}"));
}

#[test]
fn histogram_buckets_are_cumulative() {
    let mut h = Histogram::default();
    h.observe(0.0001);
    h.observe(0.003);
    h.observe(60.0);
    assert_eq!(h.count, 3);
    assert_eq!(h.buckets[0], 1, "0.1 ms is under 0.5 ms");
    assert_eq!(h.buckets[3], 1, "3 ms is under 5 ms");
    assert_eq!(h.buckets.iter().sum::<u64>(), 2, "60 s is only in +Inf");
}

#[test]
fn every_family_is_listed_before_its_first_sample() {
    let text = render();
    for (name, _, _) in FAMILIES {
        assert!(text.contains(&format!("# HELP {name} ")), "{name}");
        assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
    }
}

#[test]
fn a_call_timer_records_when_dropped_even_on_an_early_return() {
    fn failing() -> Result<(), ()> {
        let timer = redis_timer("unit_early");
        Err(())?;
        drop(timer);
        Ok(())
    }
    let _ = failing();
    {
        let _timer = idp_timer("unit_call");
    }
    let text = render();
    assert!(text.contains("extauth_redis_command_duration_seconds_count{op=\"unit_early\"} 1"));
    assert!(text.contains("extauth_idp_request_duration_seconds_count{call=\"unit_call\"} 1"));
}

#[test]
fn error_kinds_come_from_variant_names_not_their_data() {
    #[derive(Debug)]
    #[allow(dead_code)]
    enum Inner {
        Discovery { url: String },
    }
    #[derive(Debug)]
    #[allow(dead_code)]
    enum Outer {
        NoConfigSelected,
        UnknownConfig(String),
        Idp(Inner),
    }
    let cases = [
        (Outer::NoConfigSelected, "no_config_selected"),
        (
            Outer::UnknownConfig("Secret\"Value".into()),
            "unknown_config",
        ),
        (
            Outer::Idp(Inner::Discovery {
                url: "http://x".into(),
            }),
            "idp_discovery",
        ),
    ];
    for (error, want) in cases {
        assert_eq!(error_kind(&format!("{error:?}")), want);
    }
    assert_eq!(error_kind("\"just a string\""), "other");
}

#[test]
fn label_values_are_escaped() {
    assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

#[test]
fn refreshes_count_by_config_and_result() {
    let before = counter_value(REFRESHES, &[("config", "unit/refresh"), ("result", "ok")]);
    record_refresh("unit/refresh", true);
    assert_eq!(
        counter_value(REFRESHES, &[("config", "unit/refresh"), ("result", "ok")]),
        before + 1
    );
}
