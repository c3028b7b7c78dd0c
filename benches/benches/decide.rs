//! `flow::decide`, the whole decision for one request, with its baseline in the same group:
//! - `valid_session`: a request with a valid session, the hot path of every authenticated
//!   call, on the memory store and on a real `redis-server`, beside a bare Redis `GET` of the
//!   same key (the one round trip the check cannot avoid);
//! - `refused`: requests answered without a session: no cookie (the 302 to the IdP), a
//!   forged cookie (a well-formed id Redis does not hold: a `GET`, then the 302), a callback
//!   whose `state` was tampered with;
//! - `callback`: a real callback, the code exchanged at an in-process mock-idp (its token
//!   endpoint signs an RS256 ID token) and the session saved in Redis; each code is made by
//!   a login outside the timed part.
//!
//! The IdP's discovery document and keys are fetched once, before timing.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use extauth::clock::SystemClock;
use extauth::config;
use extauth::env::MapEnv;
use extauth::flow::{CheckRequest, Decision, Flow};
use extauth::server::{StoreChoice, build_flow};
use extauth::session::{SessionData, SessionId};
use extauth::testing::{RedisProcess, form_login};
use mock_idp::{MockIdp, Realm, RunningIdp};

const SEED: &str = include_str!("../../scenarios/manifests/seed-authorization-code.yaml");
const REALM: &str = include_str!("../../scenarios/realms/master.json");
const CLIENT_SECRET: &str = "agentgateway-client-secret";
const HOST: &str = "127.0.0.1:80";

fn flow(store: StoreChoice, redis_port: u16, idp: &str) -> Flow {
    let env = MapEnv::default()
        .with("KEYCLOAK_SECRET", CLIENT_SECRET)
        .with("KEYCLOAK_CLIENT", "agentgateway")
        .with("KEYCLOAK_URL", idp)
        .with("INGRESS_GW_ADDRESS", "127.0.0.1")
        .with("REDIS_HOST", "127.0.0.1")
        .with("REDIS_PORT", redis_port.to_string())
        .with("SIGNING_KEY", "k".repeat(32));
    let loaded = config::load_str("seed.yaml", SEED, &env).expect("seed manifests load");
    build_flow(&loaded, store, Arc::new(SystemClock)).expect("flow builds")
}

/// A session like mock-idp's (the tokens' sizes and shapes: what a real login stores).
fn session() -> SessionData {
    benches::mock_idp_like_session()
}

fn request() -> CheckRequest {
    CheckRequest::new("POST", "http", HOST, "/openai")
        .with_header("content-type", "application/json")
        .with_header("accept", "*/*")
        .with_header("user-agent", "curl/8.5.0")
}

fn with_session(id: &SessionId) -> CheckRequest {
    request().with_header("cookie", &format!("keycloak-session={}", id.expose()))
}

/// The callback request a browser sends after logging in: `code` and `state` from the IdP,
/// and the login-binding cookie the 302 set.
async fn callback_request(flow: &Flow) -> CheckRequest {
    let Decision::Deny(redirect) = flow.decide(&request()).await else {
        panic!("a request without a session is not allowed");
    };
    let header = |name: &str| {
        redirect
            .headers
            .iter()
            .filter(|(n, _)| n.as_str() == name)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    let location = header("location").pop().expect("a 302 to the IdP");
    let cookies = header("set-cookie")
        .iter()
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
        .collect::<Vec<_>>()
        .join("; ");
    let back = form_login(&location, "user1", "password")
        .await
        .expect("login at the mock IdP");
    let target = format!("{}?{}", back.path(), back.query().unwrap_or_default());
    let mut check = CheckRequest::new("GET", "http", HOST, &target);
    if !cookies.is_empty() {
        check = check.with_header("cookie", &cookies);
    }
    check
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let redis =
        RedisProcess::start().expect("the bench needs redis-server (apt-get install redis-server)");
    let _runtime = rt.enter();
    let idp: RunningIdp = rt.block_on(async {
        MockIdp::builder()
            .realm(Realm::from_json_str(REALM).expect("realm"))
            .start()
            .await
            .expect("mock IdP starts")
    });
    let idp_url = idp.base_url().as_str().trim_end_matches('/').to_owned();
    let memory = flow(StoreChoice::Memory, redis.port(), &idp_url);
    let with_redis = flow(StoreChoice::FromConfig, redis.port(), &idp_url);
    let id = SessionId::generate();
    rt.block_on(async {
        for f in [&memory, &with_redis] {
            f.routes()[0]
                .store
                .save(&id, &session(), Duration::from_secs(600))
                .await
                .expect("save");
        }
    });
    let valid = with_session(&id);
    let forged = with_session(&SessionId::generate());
    let no_session = request();
    let tampered = rt.block_on(async {
        let mut check = callback_request(&with_redis).await;
        // One character of the state's signature changed.
        let query = check.query.take().expect("a callback query");
        let at = query.find("state=").expect("state") + "state=".len();
        let end = query[at..].find('&').map_or(query.len(), |i| at + i);
        let last = query[..end].chars().last().expect("a state value");
        let swapped = if last == 'A' { 'B' } else { 'A' };
        check.query = Some(format!("{}{swapped}{}", &query[..end - 1], &query[end..]));
        check
    });
    rt.block_on(async {
        assert!(matches!(memory.decide(&valid).await, Decision::Allow(_)));
        assert!(matches!(
            with_redis.decide(&valid).await,
            Decision::Allow(_)
        ));
        for refused in [&forged, &no_session, &tampered] {
            assert!(matches!(
                with_redis.decide(refused).await,
                Decision::Deny(_)
            ));
        }
        let callback = callback_request(&with_redis).await;
        let Decision::Deny(back) = with_redis.decide(&callback).await else {
            panic!("a callback answers a redirect");
        };
        assert_eq!(back.status.as_u16(), 302, "{}", back.body);
    });

    let client = redis::Client::open(redis.url()).expect("client");
    let conn = rt
        .block_on(client.get_multiplexed_async_connection())
        .expect("connection");
    let key = id.storage_key("");

    let mut group = c.benchmark_group("valid_session");
    group.bench_function("baseline_redis_get", |b| {
        b.to_async(&rt).iter(|| {
            let mut conn = conn.clone();
            let key = black_box(key.as_str());
            async move {
                let v: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(key)
                    .query_async(&mut conn)
                    .await
                    .expect("get");
                black_box(v)
            }
        })
    });
    group.bench_function("decide_redis", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(with_redis.decide(black_box(&valid)).await) })
    });
    group.bench_function("decide_memory", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(memory.decide(black_box(&valid)).await) })
    });
    // The same with every read opening the stored value in full (key derivation, AES-GCM,
    // inflating, decoding): the first check of a session in this process, or one whose value
    // changed since.
    extauth::session::set_open_cache(false);
    group.bench_function("decide_memory_uncached", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(memory.decide(black_box(&valid)).await) })
    });
    extauth::session::set_open_cache(true);
    group.finish();

    let mut group = c.benchmark_group("refused");
    group.bench_function("baseline_redis_get", |b| {
        b.to_async(&rt).iter(|| {
            let mut conn = conn.clone();
            let key = black_box(key.as_str());
            async move {
                let v: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(key)
                    .query_async(&mut conn)
                    .await
                    .expect("get");
                black_box(v)
            }
        })
    });
    group.bench_function("no_session_302", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(with_redis.decide(black_box(&no_session)).await) })
    });
    group.bench_function("forged_cookie_redis", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(with_redis.decide(black_box(&forged)).await) })
    });
    group.bench_function("tampered_state", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(with_redis.decide(black_box(&tampered)).await) })
    });
    group.finish();

    let mut group = c.benchmark_group("callback");
    group.sample_size(20);
    group.bench_function("baseline_no_session_302", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(with_redis.decide(black_box(&no_session)).await) })
    });
    group.bench_function("code_exchange_mock_idp", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let flow = &with_redis;
            async move {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    // The login that makes the code is not timed.
                    let callback = callback_request(flow).await;
                    let started = Instant::now();
                    let decision = flow.decide(black_box(&callback)).await;
                    timed += started.elapsed();
                    black_box(decision);
                }
                timed
            }
        })
    });
    group.finish();
    drop(_runtime);
    rt.block_on(idp.shutdown());
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
