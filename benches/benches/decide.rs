//! `flow::decide` for a request with a valid session, the hot path of every authenticated
//! call, against the memory store and against a real `redis-server`. The baseline, measured in
//! the same run, is a raw Redis `GET` of the same key: the decide/baseline ratio is the cost
//! extauth adds on top of the one round trip it cannot avoid.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use extauth::clock::SystemClock;
use extauth::config;
use extauth::env::MapEnv;
use extauth::flow::{CheckRequest, Decision, Flow};
use extauth::server::{StoreChoice, build_flow};
use extauth::session::{SessionData, SessionId};
use extauth::testing::RedisProcess;

const SEED: &str = include_str!("../../scenarios/manifests/seed-authorization-code.yaml");

fn flow(store: StoreChoice, redis_port: u16) -> Flow {
    let env = MapEnv::default()
        .with("KEYCLOAK_SECRET", "secret")
        .with("KEYCLOAK_CLIENT", "agentgateway")
        // Never contacted: a request with a session does not need the IdP.
        .with("KEYCLOAK_URL", "http://127.0.0.1:9")
        .with("INGRESS_GW_ADDRESS", "127.0.0.1")
        .with("REDIS_HOST", "127.0.0.1")
        .with("REDIS_PORT", redis_port.to_string())
        .with("SIGNING_KEY", "k".repeat(32));
    let loaded = config::load_str("seed.yaml", SEED, &env).expect("seed manifests load");
    build_flow(&loaded, store, Arc::new(SystemClock)).expect("flow builds")
}

fn session() -> SessionData {
    SessionData {
        // A Keycloak-sized ID token (~1.2 KB).
        id_token: format!(
            "eyJhbGciOiJSUzI1NiJ9.{}.{}",
            "a".repeat(900),
            "s".repeat(342)
        ),
        access_token: "a".repeat(1200),
        refresh_token: Some("r".repeat(600)),
        expires_at: i64::MAX,
        subject: "f:1234:user1".into(),
        created_at: 0,
    }
}

fn request(id: &SessionId) -> CheckRequest {
    CheckRequest::new("POST", "http", "127.0.0.1", "/openai")
        .with_header("content-type", "application/json")
        .with_header("accept", "*/*")
        .with_header("user-agent", "curl/8.5.0")
        .with_header("cookie", &format!("keycloak-session={}", id.expose()))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let redis =
        RedisProcess::start().expect("the bench needs redis-server (apt-get install redis-server)");
    let id = SessionId::generate();
    let _runtime = rt.enter();

    let memory = flow(StoreChoice::Memory, redis.port());
    let with_redis = flow(StoreChoice::FromConfig, redis.port());
    rt.block_on(async {
        for f in [&memory, &with_redis] {
            f.routes()[0]
                .store
                .save(&id, &session(), Duration::from_secs(600))
                .await
                .expect("save");
        }
    });
    let check = request(&id);
    rt.block_on(async {
        assert!(matches!(memory.decide(&check).await, Decision::Allow(_)));
        assert!(matches!(
            with_redis.decide(&check).await,
            Decision::Allow(_)
        ));
    });

    let client = redis::Client::open(redis.url()).expect("client");
    let mut conn = rt
        .block_on(client.get_multiplexed_async_connection())
        .expect("connection");
    let key = id.storage_key("");

    let mut group = c.benchmark_group("valid_session");
    group.bench_function("baseline_redis_get", |b| {
        b.to_async(&rt).iter(|| {
            let mut conn = conn.clone();
            let key = key.clone();
            async move {
                let v: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(black_box(key))
                    .query_async(&mut conn)
                    .await
                    .expect("get");
                black_box(v)
            }
        })
    });
    group.bench_function("decide_redis", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(with_redis.decide(black_box(&check)).await) })
    });
    group.bench_function("decide_memory", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(memory.decide(black_box(&check)).await) })
    });
    group.finish();
    let _ = &mut conn;
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
