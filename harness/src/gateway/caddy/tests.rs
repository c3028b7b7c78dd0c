use std::net::SocketAddr;

use super::*;

fn config() -> CaddyConfig {
    CaddyConfig {
        listen: SocketAddr::from(([127, 0, 0, 7], 80)),
        extauth_http: SocketAddr::from(([127, 0, 0, 1], 9001)),
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
