//! What one session costs Redis, in the layout extauth writes now (version 2) and in the one it
//! wrote before (version 1, JSON inside the seal), measured in the same `redis-server`:
//!
//! ```sh
//! cargo run --release -p benches --example session_memory [SESSIONS]
//! ```
//!
//! Writes SESSIONS (default 400) sessions of each layout under fresh ids, the tokens shaped
//! like mock-idp's ([`benches::mock_idp_like_session`]), and prints the sealed value's size and
//! the mean `MEMORY USAGE key SAMPLES 0` of each (the issue's target: <= 2.5 KB per session).

use extauth::session::{SessionId, seal_v1, sealed_value};
use extauth::testing::RedisProcess;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(400);
    let redis = RedisProcess::start().expect("this example needs redis-server");
    let client = redis::Client::open(redis.url()).expect("redis url");
    let mut conn = client.get_connection().expect("redis connection");
    let data = benches::mock_idp_like_session();
    let mut rows = Vec::new();
    for (layout, seal) in [
        (
            "version 1 (JSON, before)",
            seal_v1 as fn(&_, &_) -> Result<Vec<u8>, _>,
        ),
        ("version 2 (compact, now)", sealed_value),
    ] {
        let mut total = 0u64;
        let mut value_bytes = 0;
        for i in 0..n {
            let id = SessionId::generate();
            let value = seal(&id, &data).expect("seal");
            value_bytes = value.len();
            let key = id.storage_key(&format!("mem{i}:"));
            redis::cmd("SET")
                .arg(&key)
                .arg(value)
                .arg("EX")
                .arg(600)
                .query::<()>(&mut conn)
                .expect("SET");
            let used: u64 = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(&key)
                .arg("SAMPLES")
                .arg(0)
                .query(&mut conn)
                .expect("MEMORY USAGE");
            total += used;
        }
        rows.push((layout, value_bytes, total as f64 / n as f64));
    }
    println!("| layout | sealed value | MEMORY USAGE (mean of {n}) |");
    println!("| --- | --- | --- |");
    for (layout, value, usage) in &rows {
        println!("| {layout} | {value} B | {usage:.0} B |");
    }
    if let [(_, _, before), (_, _, after)] = rows.as_slice() {
        println!("\nversion 2 / version 1: {:.2}x", after / before);
    }
}
