//! The simulator against agentgateway itself: the same requests, through both, to the same
//! fake ext_authz server and upstream, must give the same answers, upstream requests and
//! `CheckRequest`s. Where they differ, the simulator is wrong. Needs the agentgateway binary
//! (`PATH` or `../shared/bin/agentgateway`); without it the test fails and says so.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::gateway::agentgateway::{self, Agentgateway, AgentgatewayConfig};
use crate::gateway::process::GatewayProcess;

/// One request: method, path with query, headers, body.
type Sent<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);

/// What the upstream received: method, path, headers (sorted by name), body.
type Forwarded = (String, String, Vec<(String, String)>, String);

/// What one gateway did with one request, with its own address replaced by `GATEWAY`.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    upstream: Vec<Forwarded>,
    checks: Vec<BTreeMap<String, String>>,
}

/// Response headers that change every run.
const VOLATILE: &[&str] = &["date", "content-length"];

struct Both {
    sim: RunningGateway,
    agw: GatewayProcess,
    sim_upstream: Upstream,
    agw_upstream: Upstream,
    sim_authz: FakeAuthz,
    agw_authz: FakeAuthz,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn authz_server(authz: FakeAuthz) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let grpc = listener.local_addr().expect("addr");
    let service = AuthorizationServer::new(authz);
    tokio::spawn(async move {
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming)
            .await;
    });
    grpc
}

/// agentgateway in front of `grpc` and `upstream`, on a free port.
async fn start_agentgateway(grpc: SocketAddr, upstream: &Upstream, dir: &Path) -> GatewayProcess {
    let binary = agentgateway::binary(None).unwrap_or_else(|why| panic!("{why}"));
    let free = || {
        let port = extauth::testing::free_port().expect("free port");
        SocketAddr::from(([127, 0, 0, 1], port))
    };
    let config = AgentgatewayConfig {
        port: free().port(),
        extauth_grpc: grpc,
        upstream: upstream.addr().to_string(),
        admin: free(),
        stats: free(),
        readiness: free(),
    };
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || Agentgateway::start(&binary, &config, &dir))
        .await
        .expect("start thread")
        .expect("agentgateway starts")
}

/// Both gateways, each with its own fake ext_authz (or, `dead`, an address nothing listens
/// on) and upstream.
async fn both(dead: bool) -> Both {
    let dir = tempfile::tempdir().expect("temp dir");
    let (sim_authz, agw_authz) = (FakeAuthz::default(), FakeAuthz::default());
    let (sim_grpc, agw_grpc) = if dead {
        let port = extauth::testing::free_port().expect("free port");
        let nothing = SocketAddr::from(([127, 0, 0, 1], port));
        (nothing, nothing)
    } else {
        (
            authz_server(sim_authz.clone()).await,
            authz_server(agw_authz.clone()).await,
        )
    };
    let (sim_upstream, agw_upstream) = (Upstream::start().await, Upstream::start().await);
    let sim = GatewaySim::start(
        "127.0.0.1:0".parse().expect("addr"),
        sim_grpc,
        Url::parse(&sim_upstream.url()).expect("url"),
    )
    .await
    .expect("simulator starts");
    let agw = start_agentgateway(agw_grpc, &agw_upstream, dir.path()).await;
    Both {
        sim,
        agw,
        sim_upstream,
        agw_upstream,
        sim_authz,
        agw_authz,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        _dir: dir,
    }
}

fn normalize(text: &str, gateway: SocketAddr, upstream: &str) -> String {
    text.replace(&gateway.to_string(), "GATEWAY")
        .replace(upstream, "UPSTREAM")
}

async fn send(
    both: &Both,
    to: SocketAddr,
    upstream: &Upstream,
    authz: &FakeAuthz,
    request: &Sent<'_>,
) -> Seen {
    let (method, path, headers, body) = request;
    let before = upstream.received().await.len();
    let mut req = both.client.request(
        method.parse().expect("method"),
        format!("http://{to}{path}"),
    );
    for (k, v) in *headers {
        req = req.header(*k, *v);
    }
    let response = req
        .body(body.to_string())
        .send()
        .await
        .expect("gateway answers");
    let up = upstream.addr().to_string();
    let n = |t: &str| normalize(t, to, &up);
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter(|(k, _)| !VOLATILE.contains(&k.as_str()))
        .map(|(k, v)| (k.to_string(), n(&String::from_utf8_lossy(v.as_bytes()))))
        .collect();
    let body = n(&response.text().await.expect("body"));
    let upstream_seen = upstream
        .received()
        .await
        .into_iter()
        .skip(before)
        .map(|r| {
            // By name (stable: the values of one name keep their order); the order of
            // different names says nothing.
            let mut headers: Vec<(String, String)> =
                r.headers.iter().map(|(k, v)| (k.clone(), n(v))).collect();
            headers.sort_by(|a, b| a.0.cmp(&b.0));
            (r.method, r.path, headers, r.body)
        })
        .collect();
    let checks = std::mem::take(&mut *authz.seen.lock().expect("lock"))
        .into_iter()
        .map(|c| {
            let http = c
                .attributes
                .and_then(|a| a.request)
                .and_then(|r| r.http)
                .unwrap_or_default();
            let mut fields: BTreeMap<String, String> = http
                .headers
                .into_iter()
                .map(|(k, v)| (format!("header {k}"), n(&v)))
                .collect();
            fields.insert("method".into(), http.method);
            fields.insert("path".into(), http.path);
            fields.insert("host".into(), n(&http.host));
            fields.insert("scheme".into(), http.scheme);
            fields.insert("protocol".into(), http.protocol);
            fields.insert("body".into(), http.body);
            fields.insert("size".into(), http.size.to_string());
            fields.insert("raw_body".into(), format!("{:?}", http.raw_body));
            fields.insert("query".into(), http.query);
            fields.insert("fragment".into(), http.fragment);
            fields
        })
        .collect();
    Seen {
        status,
        headers,
        body,
        upstream: upstream_seen,
        checks,
    }
}

async fn differences(b: &Both, requests: &[Sent<'_>]) -> Vec<String> {
    let mut differences = Vec::new();
    for request in requests {
        let sim = send(b, b.sim.addr(), &b.sim_upstream, &b.sim_authz, request).await;
        let agw = send(b, b.agw.addr(), &b.agw_upstream, &b.agw_authz, request).await;
        if sim != agw {
            differences.push(format!(
                "{} {}:\n  simulator:    {sim:?}\n  agentgateway: {agw:?}",
                request.0, request.1
            ));
        }
    }
    differences
}

/// What differed before the simulator was fixed: the `CheckRequest` carried the body (and
/// its size) and a `host` header beside `:authority`; the upstream got the upstream's
/// address as `Host` instead of the client's; a non-OK status without a denied response
/// was an empty 403 instead of `external authorization failed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_answers_every_request_as_agentgateway_does() {
    let b = both(false).await;
    let json: &[(&str, &str)] = &[("content-type", "application/json")];
    let client_headers: &[(&str, &str)] = &[
        ("content-type", "application/json"),
        ("jwt", "forged-by-client"),
        ("x-remove-me", "secret"),
        ("x-added", "zero"),
        ("cookie", "a=1"),
    ];
    let requests: [Sent<'_>; 5] = [
        ("POST", "/deny?x=1", json, "{}"),
        ("GET", "/unset-append", &[], ""),
        ("GET", "/status-only", &[], ""),
        (
            "POST",
            "/openai?debug=1",
            client_headers,
            r#"{"model":"m1"}"#,
        ),
        ("GET", "/openai", &[("accept", "text/html")], ""),
    ];
    let differences = differences(&b, &requests).await;
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// Before: the simulator answered `503 ext_authz unavailable`; agentgateway's default
/// `failureMode` (deny) answers 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_ext_authz_is_answered_as_agentgateway_does() {
    let b = both(true).await;
    let requests: [Sent<'_>; 1] = [("GET", "/openai", &[], "")];
    let differences = differences(&b, &requests).await;
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
