use std::net::SocketAddr;

use super::*;

fn config() -> NginxConfig {
    NginxConfig {
        listen: SocketAddr::from(([127, 0, 0, 7], 80)),
        extauth_nginx: vec![SocketAddr::from(([127, 0, 0, 1], 9003))],
        upstream: "127.0.0.1:9002".to_owned(),
        id_token_header: "jwt".to_owned(),
    }
}

#[test]
fn the_config_checks_with_extauth_and_signs_in_on_401() {
    let text = config().nginx_conf(Path::new("/tmp/stack/nginx"));
    for want in [
        "master_process off;",
        "pid /tmp/stack/nginx/nginx.pid;",
        "client_body_temp_path /tmp/stack/nginx/client_body;",
        "listen 127.0.0.7:80;",
        "large_client_header_buffers 4 32k;",
        "proxy_buffer_size 32k;",
        "server 127.0.0.1:9003 max_fails=0;",
        "auth_request /_extauth/check;",
        "auth_request_set $extauth_jwt $upstream_http_jwt;",
        "proxy_set_header jwt $extauth_jwt;",
        "auth_request_set $extauth_cookie_1 $upstream_http_x_extauth_set_cookie_1;",
        "add_header Set-Cookie $extauth_cookie_4 always;",
        "error_page 401 = @extauth_sign_in;",
        "proxy_pass http://extauth/extauth/check;",
        "proxy_set_header X-Forwarded-Uri $request_uri;",
        "rewrite ^ /extauth/sign_in? break;",
        "proxy_pass http://llm;",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    assert!(!text.contains("x_extauth_set_cookie_5"), "{text}");
}

#[test]
fn a_dashed_identity_header_becomes_an_nginx_variable_name() {
    let mut c = config();
    c.id_token_header = "X-Id-Token".to_owned();
    let text = c.nginx_conf(Path::new("/d"));
    assert!(
        text.contains("auth_request_set $extauth_x_id_token $upstream_http_x_id_token;"),
        "{text}"
    );
    assert!(
        text.contains("proxy_set_header X-Id-Token $extauth_x_id_token;"),
        "{text}"
    );
}

#[test]
fn the_installed_nginx_accepts_the_generated_config() {
    let binary = NginxGateway::find_binary()
        .expect("nginx is not installed: apt-get install nginx (Debian's has auth_request)");
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, config().nginx_conf(dir.path())).expect("written");
    let out = Command::new(binary)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .args(["-t", "-q"])
        .output()
        .expect("nginx runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
