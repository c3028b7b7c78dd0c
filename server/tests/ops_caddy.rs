//! Forward-auth behind a real Caddy (Debian's `caddy`, 2.6): the documented `forward_auth`
//! shape, where the check goes to a fixed `/auth` and only `X-Forwarded-Uri` and
//! `X-Forwarded-Method` carry the original request. Needs Debian's `caddy` (`just deps` and
//! `.ci/run` install it); without it the test fails and says so.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::HeaderMap;
use extauth::server::{self, ServeOptions, StoreChoice};
use support::*;

/// Caddy as a child process, killed by PID on drop.
struct Caddy {
    child: Child,
    log: PathBuf,
}

impl Caddy {
    fn binary() -> Option<PathBuf> {
        ["/usr/bin/caddy", "/usr/local/bin/caddy"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    }

    fn start(
        binary: &Path,
        dir: &Path,
        listen: SocketAddr,
        auth: SocketAddr,
        upstream: SocketAddr,
    ) -> Self {
        let caddyfile = dir.join("Caddyfile");
        std::fs::write(
            &caddyfile,
            format!(
                "{{\n\tadmin off\n\tauto_https off\n}}\n\
                 http://:{port} {{\n\tbind {ip}\n\troute {{\n\
                 \t\trequest_header -jwt\n\
                 \t\tforward_auth {auth} {{\n\t\t\turi /auth\n\t\t\tcopy_headers jwt\n\t\t}}\n\
                 \t\treverse_proxy {upstream}\n\t}}\n}}\n",
                port = listen.port(),
                ip = listen.ip(),
            ),
        )
        .unwrap();
        let log = dir.join("caddy.log");
        let child = Command::new(binary)
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&caddyfile)
            .env("HOME", dir)
            .env("XDG_DATA_HOME", dir.join("data"))
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let caddy = Self { child, log };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect_timeout(&listen, Duration::from_millis(100)).is_err() {
            assert!(
                Instant::now() < deadline,
                "caddy did not listen: {}",
                std::fs::read_to_string(&caddy.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        caddy
    }
}

impl Drop for Caddy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The LLM stand-in: answers with the `jwt` header it received.
async fn upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(|headers: HeaderMap| async move {
        let jwt = headers
            .get("jwt")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_owned();
        format!("upstream saw jwt={jwt}")
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_through_caddy_forward_auth_reaches_the_upstream_with_the_id_token() {
    let binary = Caddy::binary().expect(
        "this test drives a real Caddy: install it with `apt-get install caddy` (or `just deps`)",
    );
    let gateway: SocketAddr = format!("127.0.0.1:{}", extauth::testing::free_port().unwrap())
        .parse()
        .unwrap();
    let idp = idp().await;
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let extauth = server::start(
        loaded_for_app(idp.base_url().as_str(), 1, &gateway.to_string()),
        ServeOptions {
            grpc: any,
            http: any,
            admin: any,
            session_store: StoreChoice::Memory,
        },
    )
    .await
    .unwrap();
    let upstream = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let _caddy = Caddy::start(&binary, dir.path(), gateway, extauth.http_addr(), upstream);
    let http = client();
    let app = format!("http://{gateway}");

    // No session: Caddy returns extauth's 302 to the IdP, for the original path.
    let first = Answer::read(http.post(format!("{app}/openai")).send().await.unwrap()).await;
    assert_eq!(first.status, 302, "{first:?}");
    let location = url::Url::parse(first.header("location").unwrap()).unwrap();
    let params: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(params["redirect_uri"], format!("{app}/openai"));
    assert_eq!(
        jwt_claims(&params["state"])["state"],
        format!("{app}/openai")
    );

    // The IdP sends the browser back through Caddy: the callback sets the session cookie.
    let callback = log_in(&http, location.as_str()).await;
    assert_eq!(callback.origin().ascii_serialization(), app);
    let back = Answer::read(http.get(callback.as_str()).send().await.unwrap()).await;
    assert_eq!(back.status, 302, "{back:?}");
    assert_eq!(
        back.header("location"),
        Some(format!("{app}/openai").as_str())
    );
    let cookie = cookie_pair(back.header("set-cookie").unwrap());

    // With the cookie, Caddy copies the ID token onto the upstream request; a forged one is
    // stripped first.
    let ok = Answer::read(
        http.post(format!("{app}/openai"))
            .header("cookie", &cookie)
            .header("jwt", "forged")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let jwt = ok.body.strip_prefix("upstream saw jwt=").unwrap();
    assert_eq!(jwt_claims(jwt)["preferred_username"], "user1");
    extauth.shutdown().await;
}
