use std::path::PathBuf;
use std::time::Duration;

use super::*;

fn report(
    name: &str,
    backends: &str,
    skipped: Option<&str>,
    failure: Option<&str>,
) -> ScenarioReport {
    ScenarioReport {
        name: name.to_owned(),
        backends: backends.to_owned(),
        skipped: skipped.map(str::to_owned),
        path: PathBuf::from(format!("{name}.yaml")),
        passed_steps: 1,
        failure: failure.map(|f| ("<1>".to_owned(), vec![f.to_owned()])),
        duration: Duration::from_millis(1500),
    }
}

#[test]
fn the_results_table_has_a_row_per_combination_and_the_totals() {
    let table = results_table(&[
        report("seed", "idp=mock gateway=sim redis=process", None, None),
        report(
            "seed",
            "idp=keycloak gateway=sim redis=process",
            Some("image absent"),
            None,
        ),
        report(
            "seed",
            "idp=keycloak gateway=caddy redis=process",
            Some("image absent"),
            None,
        ),
        report(
            "seed",
            "idp=mock gateway=caddy redis=process",
            None,
            Some("status: expected 200, actual 502"),
        ),
    ]);
    assert!(table.contains("PASS   seed"), "{table}");
    assert!(
        table.contains("FAIL") && table.contains("expected 200, actual 502"),
        "{table}"
    );
    // Skipped rows point at their reason, said once under the totals.
    assert_eq!(table.matches("skip reason 1").count(), 3, "{table}");
    assert_eq!(table.matches("image absent").count(), 1, "{table}");
    assert!(
        table.ends_with(
            "scenarios: 1 passed, 1 failed, 2 skipped\nskip reason 1 (2 rows): image absent\n"
        ),
        "{table}"
    );
}

#[test]
fn junit_xml_counts_and_escapes() {
    let xml = junit_xml(&[
        report("seed", "idp=mock", None, None),
        report("seed", "idp=keycloak", Some("no \"image\""), None),
        report("seed", "idp=x", None, Some("a < b & c")),
    ]);
    assert!(
        xml.contains(r#"tests="3" failures="1" skipped="1""#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<skipped message="no &quot;image&quot;"/>"#),
        "{xml}"
    );
    assert!(xml.contains("a &lt; b &amp; c"), "{xml}");
    assert!(
        xml.contains(r#"<failure message="step &lt;1&gt;">"#),
        "{xml}"
    );
}

#[test]
fn a_url_target_needs_both_urls() {
    let parsed = Cli::try_parse_from(["harness", "run", "--gateway-url", "http://127.0.0.2"]);
    assert!(parsed.is_err());
    let parsed = Cli::try_parse_from([
        "harness",
        "run",
        "--gateway-url",
        "http://127.0.0.2",
        "--idp-url",
        "http://localhost:8080",
        "--user",
        "user1",
        "--password",
        "password",
        "--matrix",
    ]);
    assert!(parsed.is_ok(), "{parsed:?}");
}

#[test]
fn load_defaults_to_eight_users_and_takes_the_up_backend_flags() {
    let parsed = Cli::try_parse_from(["harness", "load"]).expect("parses");
    match parsed.command {
        Command::Load {
            users,
            logins,
            duration,
            calls_per_login,
            ..
        } => {
            assert_eq!(users, 8);
            assert_eq!((logins, duration), (None, None));
            assert_eq!(calls_per_login, 5);
        }
        other => panic!("expected load, got {other:?}"),
    }
    let parsed = Cli::try_parse_from([
        "harness",
        "load",
        "--users",
        "2",
        "--requests",
        "3",
        "--calls-per-login",
        "4",
        "--redis",
        "memory",
        "--gateway",
        "caddy",
        "--idp",
        "oidc-provider",
        "--report",
        "out/load.json",
    ]);
    assert!(
        matches!(
            parsed,
            Ok(Cli {
                command: Command::Load {
                    users: 2,
                    logins: Some(3),
                    calls_per_login: 4,
                    ..
                }
            })
        ),
        "{parsed:?}"
    );
}

#[test]
fn load_against_a_url_target_needs_the_idp_url() {
    let parsed = Cli::try_parse_from(["harness", "load", "--gateway-url", "http://127.0.0.2"]);
    assert!(parsed.is_err());
    let parsed = Cli::try_parse_from([
        "harness",
        "load",
        "--gateway-url",
        "http://127.0.0.2",
        "--idp-url",
        "http://localhost:8080",
        "--upstream-url",
        "http://127.0.0.1:9000",
    ]);
    assert!(parsed.is_ok(), "{parsed:?}");
}

#[test]
fn replicas_and_faults_parse_and_bad_ones_are_refused_with_the_flag() {
    let parsed = Cli::try_parse_from([
        "harness",
        "load",
        "--replicas",
        "2",
        "--fault",
        "extauth-kill:0@5",
        "--fault",
        "extauth-restart:0@7.5",
    ])
    .expect("parses");
    match parsed.command {
        Command::Load {
            faults, backends, ..
        } => {
            assert_eq!(
                faults.iter().map(ToString::to_string).collect::<Vec<_>>(),
                ["extauth-kill:0@5", "extauth-restart:0@7.5"]
            );
            let options = backends.stack_options().expect("options");
            assert_eq!(options.extauth, ExtauthMode::Processes { replicas: 2 });
        }
        other => panic!("expected load, got {other:?}"),
    }
    let cases: [&[&str]; 4] = [
        &["harness", "up", "--replicas", "0"],
        &["harness", "up", "--replicas", "17"],
        &["harness", "load", "--fault", "extauth-kill@5"],
        // A target we did not start cannot be faulted.
        &[
            "harness",
            "load",
            "--gateway-url",
            "http://127.0.0.2",
            "--idp-url",
            "http://localhost:8080",
            "--fault",
            "extauth-kill:0@1",
        ],
    ];
    for args in cases {
        let err = Cli::try_parse_from(args).expect_err("refused").to_string();
        let flag = if args.contains(&"--gateway-url") {
            "--gateway-url"
        } else if args.contains(&"--fault") {
            "--fault"
        } else {
            "--replicas"
        };
        assert!(err.contains(flag), "{args:?}: {err}");
    }
    // Without --replicas, extauth runs in process.
    let parsed = Cli::try_parse_from(["harness", "up"]).expect("parses");
    match parsed.command {
        Command::Up { backends, .. } => {
            let options = backends.stack_options().expect("options");
            assert_eq!(options.extauth, ExtauthMode::InProcess);
        }
        other => panic!("expected up, got {other:?}"),
    }
}

#[test]
fn up_and_run_take_the_nginx_and_agentgateway_gateways_and_the_binary() {
    for gateway in ["nginx", "agentgateway"] {
        let parsed = Cli::try_parse_from([
            "harness",
            "up",
            "--gateway",
            gateway,
            "--agentgateway",
            "/opt/agentgateway",
        ]);
        assert!(parsed.is_ok(), "{gateway}: {parsed:?}");
    }
    let parsed = Cli::try_parse_from(["harness", "run", "--agentgateway", "/opt/agentgateway"]);
    assert!(
        matches!(
            &parsed,
            Ok(Cli {
                command: Command::Run { agentgateway: Some(path), .. }
            }) if path.as_os_str() == "/opt/agentgateway"
        ),
        "{parsed:?}"
    );
    assert!(Cli::try_parse_from(["harness", "up", "--gateway", "envoy"]).is_err());
}

#[test]
fn redis_topologies_and_a_password_are_backend_flags() {
    let Ok(Cli {
        command: Command::Up { backends, .. },
    }) = Cli::try_parse_from([
        "harness",
        "up",
        "--redis",
        "sentinel",
        "--redis-password",
        "pw",
    ])
    else {
        panic!("parses");
    };
    let options = backends.stack_options().expect("valid");
    assert_eq!(options.redis, RedisMode::Sentinel);
    assert_eq!(options.redis_password.as_deref(), Some("pw"));
    for (flag, mode) in [("cluster", RedisMode::Cluster), ("tls", RedisMode::Tls)] {
        let Ok(Cli {
            command: Command::Up { backends, .. },
        }) = Cli::try_parse_from(["harness", "up", "--redis", flag])
        else {
            panic!("parses");
        };
        assert_eq!(backends.stack_options().expect("valid").redis, mode);
    }
    let Ok(Cli {
        command: Command::Up { backends, .. },
    }) = Cli::try_parse_from([
        "harness",
        "up",
        "--redis",
        "memory",
        "--redis-password",
        "pw",
    ])
    else {
        panic!("parses");
    };
    let err = backends
        .stack_options()
        .expect_err("memory has no password");
    assert!(
        err.to_string().contains("the memory store has no password"),
        "{err}"
    );
}

#[test]
fn the_client_side_cache_is_a_backend_flag_that_needs_a_redis() {
    let backends = |redis: &str| {
        let Ok(Cli {
            command: Command::Up { backends, .. },
        }) = Cli::try_parse_from(["harness", "up", "--redis", redis, "--client-side-cache"])
        else {
            panic!("parses");
        };
        backends.stack_options()
    };
    assert!(backends("process").expect("valid").redis_client_cache);
    let err = backends("memory").expect_err("memory has no Redis to cache");
    assert_eq!(
        err.to_string(),
        "--client-side-cache keeps Redis sessions in memory: it needs a Redis (--redis process, container, tls or url)"
    );
}

#[test]
fn load_target_takes_session_counts_connections_a_rate_and_baselines() {
    let parsed = Cli::try_parse_from(["harness", "load"]).expect("parses");
    let Command::Load {
        target,
        sessions,
        connections,
        rate,
        baselines,
        ..
    } = parsed.command
    else {
        panic!("expected load");
    };
    assert_eq!(target, TargetArg::Login);
    assert_eq!((sessions, connections, rate), (vec![1000], 1, None));
    assert!(baselines.is_empty());

    let parsed = Cli::try_parse_from([
        "harness",
        "load",
        "--target",
        "grpc",
        "--sessions",
        "1000,1000000",
        "--connections",
        "16",
        "--rate",
        "5000",
        "--baseline",
        "redis",
        "--baseline",
        "noop",
    ])
    .expect("parses");
    let Command::Load {
        target,
        sessions,
        connections,
        rate,
        baselines,
        ..
    } = parsed.command
    else {
        panic!("expected load");
    };
    assert_eq!(target, TargetArg::Grpc);
    assert_eq!(sessions, vec![1000, 1_000_000]);
    assert_eq!((connections, rate), (16, Some(5000.0)));
    assert_eq!(baselines, vec![BaselineArg::Redis, BaselineArg::Noop]);

    let err = Cli::try_parse_from(["harness", "load", "--target", "tcp"]).unwrap_err();
    assert!(
        err.to_string()
            .contains("invalid value 'tcp' for '--target"),
        "{err}"
    );
    let err = Cli::try_parse_from(["harness", "load", "--sessions", "many"]).unwrap_err();
    assert!(
        err.to_string()
            .contains("invalid value 'many' for '--sessions"),
        "{err}"
    );
}

#[test]
fn bench_table_needs_reports_and_noop_authz_takes_an_address() {
    assert!(Cli::try_parse_from(["harness", "bench-table"]).is_err());
    let parsed = Cli::try_parse_from(["harness", "noop-authz", "--listen", "127.0.0.1:9191"])
        .expect("parses");
    match parsed.command {
        Command::NoopAuthz { listen } => assert_eq!(listen.to_string(), "127.0.0.1:9191"),
        other => panic!("expected noop-authz, got {other:?}"),
    }
}

#[test]
fn sim_takes_a_seed_or_a_range_of_seeds() {
    let parsed = Cli::try_parse_from(["harness", "sim", "--seed", "42", "--users", "3"])
        .expect("sim parses");
    match parsed.command {
        Command::Sim {
            seed, users, seeds, ..
        } => {
            assert_eq!((seed, users, seeds), (42, 3, None));
        }
        other => panic!("expected sim, got {other:?}"),
    }
    assert!(Cli::try_parse_from(["harness", "sim", "--users", "0"]).is_err());
    let cases: [(&str, Result<std::ops::Range<u64>, &str>); 4] = [
        ("0..200", Ok(0..200)),
        ("5..5", Err("--seeds \"5..5\": B must be greater than A")),
        ("7", Err("--seeds \"7\": expected A..B (e.g. 0..200)")),
        ("a..3", Err("--seeds \"a..3\": A must be a whole number")),
    ];
    for (text, want) in cases {
        assert_eq!(
            super::parse_seed_range(text),
            want.map_err(str::to_owned),
            "{text}"
        );
    }
}
