//! The authenticated check's CPU work, N times in a row on one thread, for instruction
//! counts under `valgrind --tool=callgrind` (stable on a loaded machine, unlike timings):
//!
//! ```sh
//! cargo build --release -p benches --example hotpath
//! valgrind --tool=callgrind --callgrind-out-file=cg.out target/release/examples/hotpath http 10000
//! ```
//!
//! Instructions per check = (count at N − count at 0) / N. What is run:
//! - `decide`: `Flow::decide` with a valid session in the memory store;
//! - `http`: the HTTP adapter around it (axum's headers to the check, the decision to the
//!   response, the metrics and the decision log line, written to a sink);
//! - `grpc`: the same for the ext_authz adapter;
//! - each with `-uncached` (`decide-uncached`...): the stored session opened in full on every
//!   check (extauth otherwise reuses what it opened for the same stored bytes and id).

use std::sync::Arc;
use std::time::{Duration, Instant};

use extauth::clock::SystemClock;
use extauth::config;
use extauth::env::MapEnv;
use extauth::flow::{Decision, Flow};
use extauth::metrics::Transport;
use extauth::server::{StoreChoice, build_flow};
use extauth::session::{SessionData, SessionId};
use extauth::transport::{grpc, http, observe};

const SEED: &str = include_str!("../../scenarios/manifests/seed-authorization-code.yaml");

fn flow() -> Flow {
    let env = MapEnv::default()
        .with("KEYCLOAK_SECRET", "secret")
        .with("KEYCLOAK_CLIENT", "agentgateway")
        .with("KEYCLOAK_URL", "http://127.0.0.1:9")
        .with("INGRESS_GW_ADDRESS", "127.0.0.1")
        .with("REDIS_HOST", "127.0.0.1")
        .with("REDIS_PORT", "6379")
        .with("SIGNING_KEY", "k".repeat(32));
    let loaded = config::load_str("seed.yaml", SEED, &env).expect("seed manifests load");
    build_flow(&loaded, StoreChoice::Memory, Arc::new(SystemClock)).expect("flow builds")
}

/// A session like mock-idp's (the tokens' sizes and shapes: what a real login stores).
fn session() -> SessionData {
    benches::mock_idp_like_session()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "decide".into());
    // `decide-uncached` (and `http-uncached`, `grpc-uncached`): every read opens the stored
    // value in full, as for the first check of a session in a process.
    let what = match what.strip_suffix("-uncached") {
        Some(base) => {
            extauth::session::set_open_cache(false);
            base.to_owned()
        }
        None => what,
    };
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    // The decision log line goes where extauth writes it, minus the terminal: a sink.
    let _log = tracing::subscriber::set_default(extauth::cli::log_subscriber(
        extauth::cli::LogFormat::Text,
        tracing_subscriber::EnvFilter::new("info"),
        std::io::sink,
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let flow = {
        let _guard = rt.enter();
        flow()
    };
    let id = SessionId::generate();
    rt.block_on(async {
        flow.routes()[0]
            .store
            .save(&id, &session(), Duration::from_secs(600))
            .await
            .expect("save");
    });
    let cookie = format!("keycloak-session={}", id.expose());
    let mut headers = ::http::HeaderMap::new();
    for (k, v) in [
        ("host", "127.0.0.1"),
        ("user-agent", "curl/8.5.0"),
        ("accept", "*/*"),
        ("content-type", "application/json"),
        ("cookie", cookie.as_str()),
    ] {
        headers.insert(
            ::http::HeaderName::from_static(k),
            ::http::HeaderValue::from_str(v).expect("header"),
        );
    }
    let uri: ::http::Uri = "/openai".parse().expect("uri");
    let method = ::http::Method::POST;
    let pb = {
        let mut check = envoy_types::ext_authz::v3::pb::CheckRequest::default();
        let mut attributes = envoy_types::pb::envoy::service::auth::v3::AttributeContext::default();
        let mut request =
            envoy_types::pb::envoy::service::auth::v3::attribute_context::Request::default();
        let mut http_request =
            envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest {
                method: "POST".into(),
                path: "/openai".into(),
                host: "127.0.0.1".into(),
                scheme: "http".into(),
                protocol: "HTTP/1.1".into(),
                ..Default::default()
            };
        for (k, v) in headers.iter() {
            http_request
                .headers
                .insert(k.as_str().to_owned(), v.to_str().expect("ascii").to_owned());
        }
        http_request
            .headers
            .insert(":authority".into(), "127.0.0.1".into());
        http_request.headers.insert(":method".into(), "POST".into());
        http_request
            .headers
            .insert(":path".into(), "/openai".into());
        request.http = Some(http_request);
        attributes.request = Some(request);
        check.attributes = Some(attributes);
        check
    };

    let prebuilt = http::to_check(&method, &uri, &headers, false);
    let started = Instant::now();
    rt.block_on(async {
        for _ in 0..n {
            match what.as_str() {
                "decide" => {
                    let decision = flow.decide(std::hint::black_box(&prebuilt)).await;
                    assert!(matches!(decision, Decision::Allow(_)));
                    std::hint::black_box(decision);
                }
                "http" => {
                    let t = Instant::now();
                    let check = http::to_check(&method, &uri, &headers, false);
                    let (decision, config) = flow.decide_labelled(&check).await;
                    observe::decided(Transport::Http, config, &check, &decision, t);
                    let response = http::to_response(decision);
                    assert_eq!(response.status(), 200);
                    std::hint::black_box(response);
                }
                "grpc" => {
                    let t = Instant::now();
                    let check = grpc::to_check(std::hint::black_box(pb.clone()));
                    let (decision, config) = flow.decide_labelled(&check).await;
                    observe::decided(Transport::Grpc, config, &check, &decision, t);
                    let response = grpc::to_response(decision);
                    std::hint::black_box(response);
                }
                other => panic!("unknown workload {other:?}: decide, http or grpc"),
            }
        }
    });
    let elapsed = started.elapsed();
    if n > 0 {
        eprintln!(
            "{what}: {n} in {:.3} s, {:.2} µs each",
            elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1e6 / n as f64
        );
    }
}
