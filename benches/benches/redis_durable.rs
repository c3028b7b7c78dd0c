//! What `durableSessions` costs: saving a session (`SET ... EX`) on a master with one
//! replica, without and with `WAIT 1 500` in the same pipeline, measured in the same run.
//! The ratio is the price of knowing a replica holds the session before its cookie is sent
//! (a login's callback and a refresh pay it; ordinary requests only read).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use extauth::config::{
    DurableSessions, HostPort, RedisAddress, RedisAuth, RedisConfig, RedisTopology,
};
use extauth::session::redis::RedisStore;
use extauth::session::{SessionData, SessionId, SessionStore as _};
use extauth::testing::RedisServer;

fn session() -> SessionData {
    SessionData {
        // A Keycloak-sized ID token (~1.2 KB), as in `decide`.
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

fn store(port: u16, durable: Option<DurableSessions>) -> RedisStore {
    RedisStore::open(&RedisConfig {
        topology: RedisTopology::Standalone(RedisAddress::Tcp(HostPort {
            host: "127.0.0.1".into(),
            port,
        })),
        db: 0,
        pool_size: 1,
        key_prefix: "bench:".into(),
        tls: None,
        auth: RedisAuth::default(),
        sentinel_auth: RedisAuth::default(),
        command_timeout: Duration::from_secs(1),
        durable,
        client_side_cache: false,
    })
    .expect("store")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let _runtime = rt.enter();
    let master =
        RedisServer::start().expect("the bench needs redis-server (apt-get install redis-server)");
    let replica = RedisServer::builder()
        .args(["--replicaof", "127.0.0.1", &master.port().to_string()])
        .start()
        .expect("replica");
    let plain = store(master.port(), None);
    let durable = store(
        master.port(),
        Some(DurableSessions {
            replicas: 1,
            timeout: Duration::from_millis(500),
        }),
    );
    let (id, data, ttl) = (SessionId::generate(), session(), Duration::from_secs(600));
    // The replica must be linked before WAIT can be acknowledged: a WAIT that times out
    // would measure the timeout, not the replication round trip.
    rt.block_on(async {
        let started = Instant::now();
        loop {
            let before = Instant::now();
            durable.save(&id, &data, ttl).await.expect("save");
            if before.elapsed() < Duration::from_millis(100) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the replica never acknowledged: {}",
                replica.log_tail(3)
            );
        }
    });

    let mut group = c.benchmark_group("session_save");
    group.bench_function("set", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(plain.save(black_box(&id), &data, ttl).await) })
    });
    group.bench_function("set_then_wait_1_replica", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(durable.save(black_box(&id), &data, ttl).await) })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
