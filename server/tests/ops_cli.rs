//! `extauth serve` as an operator meets it: `--help` documents every flag, bad values are
//! refused before anything starts.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod support;

fn extauth(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_extauth"))
        .args(args)
        .env_clear()
        .output()
        .expect("run extauth");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn serve_help_documents_every_flag_and_the_admin_endpoints() {
    let (ok, help) = extauth(&["serve", "--help"]);
    assert!(ok, "{help}");
    for flag in [
        "--config <FILE>",
        "--grpc <ADDR>",
        "--http <ADDR>",
        "--admin <ADDR>",
        "--trusted-proxy <CIDR>",
        "--memory-sessions",
        "--log-format <FORMAT>",
        "--config-selector <KEY>",
        "--http-listener <PROFILE=ADDR>",
    ] {
        assert!(help.contains(flag), "{flag} is missing from:\n{help}");
    }
    for words in [
        "/healthz",
        "/readyz",
        "/metrics",
        "X-Forwarded-Method",
        "[default: 127.0.0.0/8 ::1/128]",
        "latency_ms",
        "nginx=127.0.0.1:8085",
        "docs/config-reference.md",
    ] {
        assert!(help.contains(words), "{words:?} is missing from:\n{help}");
    }
}

#[test]
fn a_trusted_proxy_that_is_not_a_network_is_refused() {
    let (ok, out) = extauth(&[
        "serve",
        "--config",
        "/nonexistent.yaml",
        "--trusted-proxy",
        "gateway.local",
    ]);
    assert!(!ok);
    assert!(
        out.contains("invalid value 'gateway.local' for '--trusted-proxy <CIDR>'"),
        "{out}"
    );
    assert!(out.contains("CIDR notation"), "{out}");
}

#[test]
fn an_http_listener_with_an_unknown_profile_or_no_address_is_refused() {
    for (value, why) in [
        (
            "traefik=127.0.0.1:8085",
            "expected one of envoy, nginx, forward-auth",
        ),
        ("nginx", "is not PROFILE=ADDR"),
        ("nginx=localhost", "is not an IP address with a port"),
    ] {
        let (ok, out) = extauth(&[
            "serve",
            "--config",
            "/nonexistent.yaml",
            "--http-listener",
            value,
        ]);
        assert!(!ok, "{value}");
        assert!(
            out.contains(&format!(
                "invalid value '{value}' for '--http-listener <PROFILE=ADDR>'"
            )),
            "{out}"
        );
        assert!(out.contains(why), "{value}: {out}");
    }
}

/// Kills the `extauth serve` child when the test ends, pass or fail.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_config_selector_flag_picks_the_auth_config_by_the_named_header() {
    let idp = support::idp().await;
    let base = idp.base_url().as_str().trim_end_matches('/').to_owned();
    // Two AuthConfigs: the seed's, and a copy named `second` with its own callback path.
    let seed = support::MANIFEST;
    let second = seed
        .split("\n---\n")
        .nth(1)
        .unwrap()
        .replace("name: oauth-authorization-code", "name: second")
        .replace("callbackPath: /openai", "callbackPath: /second");
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("two.yaml");
    std::fs::write(&manifest, format!("{seed}\n---\n{second}")).unwrap();
    let port = extauth::testing::free_port().unwrap();
    let http = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_extauth"))
        .args(["serve", "--memory-sessions", "--config-selector", "X-Route"])
        .arg("--config")
        .arg(&manifest)
        .args([
            "--grpc",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--http",
            &http,
        ])
        .env_clear()
        .envs([
            ("KEYCLOAK_SECRET", "agentgateway-client-secret"),
            ("KEYCLOAK_CLIENT", "agentgateway"),
            ("KEYCLOAK_URL", base.as_str()),
            ("INGRESS_GW_ADDRESS", "127.0.0.1"),
            ("REDIS_HOST", "127.0.0.1"),
            ("REDIS_PORT", "1"),
            ("SIGNING_KEY", "a-cli-test-signing-key-of-at-least-32-bytes"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start extauth serve");
    let _served = Served(child);
    let client = support::client();
    let get = |route: Option<&'static str>| {
        let mut req = client
            .get(format!("http://{http}/openai"))
            .header("host", "127.0.0.1:80");
        if let Some(route) = route {
            req = req.header("x-route", route);
        }
        req.send()
    };
    let mut ready = None;
    for _ in 0..100 {
        if let Ok(resp) = get(Some("agentgateway-system/second")).await {
            ready = Some(resp);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resp = ready.expect("extauth serve answers on its HTTP listener");
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A80%2Fsecond"),
        "{location}"
    );
    let resp = get(Some("agentgateway-system/oauth-authorization-code"))
        .await
        .unwrap();
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A80%2Fopenai"),
        "{location}"
    );
    // Nothing named, two loaded: a refusal that names the header to send.
    let resp = get(None).await.unwrap();
    assert_eq!(resp.status(), 403);
    let body = resp.text().await.unwrap();
    assert!(body.contains("x-route"), "{body}");
    idp.shutdown().await;
}
