use std::net::SocketAddr;

use super::*;

fn config() -> CaddyConfig {
    CaddyConfig {
        listen: SocketAddr::from(([127, 0, 0, 7], 80)),
        extauth_http: vec![SocketAddr::from(([127, 0, 0, 1], 9001))],
        health_port: None,
        upstream: "127.0.0.1:9002".to_owned(),
        id_token_header: "jwt".to_owned(),
    }
}

#[test]
fn the_caddyfile_forwards_the_original_uri_and_copies_the_id_token_header() {
    let text = config().caddyfile();
    for want in [
        "admin off",
        "auto_https off",
        "http://:80",
        "bind 127.0.0.7",
        "request_header -jwt",
        "forward_auth 127.0.0.1:9001",
        "uri {uri}",
        "copy_headers jwt",
        "reverse_proxy 127.0.0.1:9002",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    // The client's header is dropped before the check, not after.
    assert!(
        text.find("request_header").unwrap_or(usize::MAX) < text.find("forward_auth").unwrap_or(0)
    );
}

#[test]
fn the_installed_caddy_accepts_the_generated_caddyfile() {
    let Some(binary) = CaddyGateway::find_binary() else {
        println!("skipped: caddy is not installed");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("Caddyfile");
    std::fs::write(&file, config().caddyfile()).expect("written");
    let out = Command::new(binary)
        .args(["adapt", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .env("HOME", dir.path())
        .output()
        .expect("caddy runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(json.contains("X-Forwarded-Method"), "{json}");
}

fn replicas_config() -> CaddyConfig {
    CaddyConfig {
        extauth_http: vec![
            SocketAddr::from(([127, 0, 9, 1], 9001)),
            SocketAddr::from(([127, 0, 9, 2], 9001)),
        ],
        health_port: Some(9003),
        ..config()
    }
}

#[test]
fn with_replicas_forward_auth_balances_retries_and_health_checks_each_one() {
    let text = replicas_config().caddyfile();
    for want in [
        "forward_auth 127.0.9.1:9001 127.0.9.2:9001 {",
        "lb_policy round_robin",
        "lb_try_duration 5s",
        "lb_try_interval 50ms",
        "max_fails 1",
        "fail_duration 500ms",
        "health_uri /readyz",
        "health_port 9003",
        "health_status 200",
        "copy_headers jwt",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    // One extauth without an admin port to check: the seed's plain forward_auth.
    let single = config().caddyfile();
    assert!(!single.contains("lb_policy"), "{single}");
    assert!(!single.contains("health_uri"), "{single}");
}

#[test]
fn the_installed_caddy_accepts_the_replicas_caddyfile_with_its_health_checks() {
    let Some(binary) = CaddyGateway::find_binary() else {
        println!("skipped: caddy is not installed");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("Caddyfile");
    std::fs::write(&file, replicas_config().caddyfile()).expect("written");
    let out = Command::new(binary)
        .args(["adapt", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .env("HOME", dir.path())
        .output()
        .expect("caddy runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON config");
    let text = json.to_string();
    for want in [
        r#""selection_policy":{"policy":"round_robin"}"#,
        r#""passive":{"fail_duration":500000000,"max_fails":1}"#,
        r#""port":9003"#,
        r#""uri":"/readyz""#,
        r#"{"dial":"127.0.9.1:9001"},{"dial":"127.0.9.2:9001"}"#,
    ] {
        assert!(text.contains(want), "missing {want} in {text}");
    }
}
