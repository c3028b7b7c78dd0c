use std::net::TcpListener;

use super::process::pick_addresses;
use super::*;

fn touch(path: &Path) {
    std::fs::write(path, b"#!/bin/sh\n").expect("written");
}

#[test]
fn an_explicit_binary_wins_over_the_environment_and_the_executables_folder() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (flag, env, next) = (
        dir.path().join("flag-extauth"),
        dir.path().join("env-extauth"),
        dir.path().join("extauth"),
    );
    for p in [&flag, &env, &next] {
        touch(p);
    }
    let exe = dir.path().join("harness");
    let found = find_binary(Some(&flag), Some(env.clone().into()), Some(&exe));
    assert_eq!(found.expect("found"), flag);
    let found = find_binary(None, Some(env.clone().into()), Some(&exe));
    assert_eq!(found.expect("found"), env);
    let found = find_binary(None, None, Some(&exe));
    assert_eq!(found.expect("found"), next);
}

#[test]
fn a_named_binary_that_is_missing_is_an_error_not_a_guess() {
    let dir = tempfile::tempdir().expect("temp dir");
    touch(&dir.path().join("extauth"));
    let exe = dir.path().join("harness");
    let missing = dir.path().join("nope");
    let err = find_binary(None, Some(missing.clone().into()), Some(&exe)).expect_err("missing");
    let text = err.to_string();
    assert!(
        text.contains(&format!("EXTAUTH_BIN {} is not a file", missing.display())),
        "{text}"
    );
    let err = find_binary(Some(&missing), None, Some(&exe)).expect_err("missing");
    assert!(err.to_string().contains("--extauth-bin"), "{err}");
}

#[test]
fn a_test_executable_in_deps_finds_extauth_one_folder_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let deps = dir.path().join("deps");
    std::fs::create_dir(&deps).expect("deps");
    touch(&dir.path().join("extauth"));
    let found = find_binary(None, None, Some(&deps.join("harness-0123abcd")));
    assert_eq!(found.expect("found"), dir.path().join("extauth"));
}

#[test]
fn no_binary_anywhere_says_to_build_it_and_where_it_looked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let err = find_binary(None, Some("".into()), Some(&dir.path().join("harness")))
        .expect_err("nothing there");
    let text = err.to_string();
    assert!(text.contains("cargo build -p harness -p extauth"), "{text}");
    assert!(
        text.contains(&dir.path().join("extauth").display().to_string()),
        "{text}"
    );
}

#[test]
fn replicas_are_one_to_sixteen_and_none_means_in_process() {
    assert_eq!(
        ExtauthMode::from_replicas(None).expect("ok"),
        ExtauthMode::InProcess
    );
    assert_eq!(
        ExtauthMode::from_replicas(Some(2)).expect("ok"),
        ExtauthMode::Processes { replicas: 2 }
    );
    assert_eq!(
        ExtauthMode::from_replicas(Some(16)).expect("ok").replicas(),
        16
    );
    for bad in [0, 17] {
        let err = ExtauthMode::from_replicas(Some(bad)).expect_err("out of range");
        assert_eq!(
            err.to_string(),
            format!("--replicas {bad}: expected 1 to 16")
        );
    }
}

#[test]
fn replica_addresses_are_distinct_loopback_ips_sharing_three_free_ports() {
    let (ips, ports) = pick_addresses(3).expect("addresses");
    assert_eq!(ips.len(), 3);
    let third = ips[0].octets()[2];
    assert_ne!(third, 0, "127.0.0.N is for gateways");
    for (i, ip) in ips.iter().enumerate() {
        assert!(ip.is_loopback());
        assert_eq!(ip.octets()[2], third);
        assert_eq!(usize::from(ip.octets()[3]), i + 1);
    }
    assert!(ports.grpc != ports.http && ports.http != ports.admin && ports.grpc != ports.admin);
    // Free on every address now.
    for ip in &ips {
        for port in [ports.grpc, ports.http, ports.admin] {
            TcpListener::bind((*ip, port)).expect("free");
        }
    }
}

#[test]
fn a_replica_spec_never_prints_its_environment_values() {
    let spec = ReplicaSpec {
        binary: "extauth".into(),
        config: "m.yaml".into(),
        env: vec![("SIGNING_KEY".into(), "do-not-print-this-key".into())],
        memory_sessions: false,
        dir: ".".into(),
    };
    let text = format!("{spec:?}");
    assert!(text.contains("SIGNING_KEY"), "{text}");
    assert!(!text.contains("do-not-print-this-key"), "{text}");
}
