//! Sessions made for the check load without logging in: one real login gives a template
//! (its tokens, as the IdP issued them), then N copies go straight into Redis under fresh
//! session ids with pipelined `SET key value EX ttl`, each value sealed exactly as extauth's
//! stores seal it ([`extauth::session::sealed_value`]). A million take seconds, not the hours
//! a million logins would.
//!
//! Also here: what a session costs Redis, `MEMORY USAGE` over a sample of the keys.

use std::sync::Arc;
use std::time::{Duration, Instant};

use extauth::session::{SessionData, SessionId};
use serde::Serialize;

/// Sessions per pipeline.
const BATCH: usize = 1_000;
/// Pipelines in flight.
const IN_FLIGHT: usize = 4;
/// Keys sampled with `MEMORY USAGE` per set.
const MEMORY_SAMPLE: usize = 200;
/// The most sessions one run creates in all.
pub const MAX_SESSIONS: usize = 2_000_000;

/// One set of pre-created sessions: what a client sends and what Redis holds.
#[derive(Debug)]
pub struct SessionSet {
    /// `Cookie` header values, `name=id`.
    pub cookies: Vec<String>,
    /// The Redis keys, in the same order.
    pub keys: Vec<String>,
}

impl SessionSet {
    /// How many sessions.
    pub fn len(&self) -> usize {
        self.cookies.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.cookies.is_empty()
    }
}

/// Where and how sessions are written.
#[derive(Debug, Clone)]
pub struct SessionLayout {
    /// `redis://host:port`.
    pub redis_url: String,
    /// `session.redis.keyPrefix`.
    pub key_prefix: String,
    /// `session.redis.cookieName`.
    pub cookie_name: String,
    /// The keys' TTL.
    pub ttl: Duration,
}

/// What creating the sessions took, and what they cost Redis.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CreationReport {
    /// Sessions written, all sets together.
    pub sessions: usize,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Sessions per second.
    pub per_second: f64,
    /// The sealed value of one session, bytes.
    pub value_bytes: usize,
    /// Mean `MEMORY USAGE` of the sampled keys, bytes.
    pub memory_usage_mean_bytes: f64,
    /// Largest sampled `MEMORY USAGE`, bytes.
    pub memory_usage_max_bytes: u64,
    /// Keys sampled.
    pub memory_sampled: usize,
    /// Growth of Redis's `used_memory` per session created, bytes.
    pub used_memory_per_session_bytes: f64,
}

/// Writes `counts[i]` sessions for set `i`, copies of `template` (expiring in a day, so no
/// refresh happens during a run) under fresh ids.
pub async fn create(
    layout: &SessionLayout,
    template: &SessionData,
    counts: &[usize],
) -> Result<(Vec<Arc<SessionSet>>, CreationReport), String> {
    let total: usize = counts.iter().sum();
    if total > MAX_SESSIONS {
        return Err(format!(
            "--sessions: {total} sessions in all, more than the {MAX_SESSIONS} one run creates"
        ));
    }
    let client = redis::Client::open(layout.redis_url.as_str())
        .map_err(|e| format!("redis {}: {e}", layout.redis_url))?;
    let conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("redis {}: {e}", layout.redis_url))?;
    let used_before = used_memory(&mut conn.clone()).await?;
    let now = unix_now();
    let data = Arc::new(SessionData {
        expires_at: now + 86_400,
        created_at: now,
        ..template.clone()
    });
    let value_bytes = {
        let id = SessionId::generate();
        extauth::session::sealed_value(&id, &data)
            .map_err(|e| format!("sealing a session: {e}"))?
            .len()
    };
    let started = Instant::now();
    let mut sets = Vec::with_capacity(counts.len());
    for &count in counts {
        let mut cookies = Vec::with_capacity(count);
        let mut keys = Vec::with_capacity(count);
        let mut batches = tokio::task::JoinSet::new();
        let mut remaining = count;
        let mut collected = 0;
        loop {
            while remaining > 0 && batches.len() < IN_FLIGHT {
                let n = remaining.min(BATCH);
                remaining -= n;
                let data = Arc::clone(&data);
                let layout = layout.clone();
                let ttl = layout.ttl.as_secs().max(1);
                let mut conn = conn.clone();
                batches.spawn(async move {
                    let sealed = tokio::task::spawn_blocking(move || seal_batch(&layout, &data, n))
                        .await
                        .map_err(|e| format!("sealing sessions: {e}"))??;
                    let mut pipe = redis::pipe();
                    for (_, key, value) in &sealed {
                        pipe.cmd("SET")
                            .arg(key)
                            .arg(value)
                            .arg("EX")
                            .arg(ttl)
                            .ignore();
                    }
                    pipe.query_async::<()>(&mut conn)
                        .await
                        .map_err(|e| format!("writing sessions to Redis: {e}"))?;
                    Ok::<_, String>(
                        sealed
                            .into_iter()
                            .map(|(cookie, key, _)| (cookie, key))
                            .collect::<Vec<_>>(),
                    )
                });
            }
            let Some(done) = batches.join_next().await else {
                break;
            };
            let done = done.map_err(|e| format!("session batch: {e}"))??;
            collected += done.len();
            for (cookie, key) in done {
                cookies.push(cookie);
                keys.push(key);
            }
        }
        debug_assert_eq!(collected, count);
        sets.push(Arc::new(SessionSet { cookies, keys }));
    }
    let seconds = started.elapsed().as_secs_f64();
    let used_after = used_memory(&mut conn.clone()).await?;
    let (mean, max, sampled) = memory_usage(&mut conn.clone(), &sets).await?;
    Ok((
        sets,
        CreationReport {
            sessions: total,
            seconds,
            per_second: if seconds > 0.0 {
                total as f64 / seconds
            } else {
                0.0
            },
            value_bytes,
            memory_usage_mean_bytes: mean,
            memory_usage_max_bytes: max,
            memory_sampled: sampled,
            used_memory_per_session_bytes: if total == 0 {
                0.0
            } else {
                used_after.saturating_sub(used_before) as f64 / total as f64
            },
        },
    ))
}

/// `n` fresh sessions: (cookie header value, Redis key, sealed value).
fn seal_batch(
    layout: &SessionLayout,
    data: &SessionData,
    n: usize,
) -> Result<Vec<(String, String, Vec<u8>)>, String> {
    (0..n)
        .map(|_| {
            let id = SessionId::generate();
            let value = extauth::session::sealed_value(&id, data)
                .map_err(|e| format!("sealing a session: {e}"))?;
            Ok((
                format!("{}={}", layout.cookie_name, id.expose()),
                id.storage_key(&layout.key_prefix),
                value,
            ))
        })
        .collect()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

async fn used_memory(conn: &mut redis::aio::MultiplexedConnection) -> Result<u64, String> {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(conn)
        .await
        .map_err(|e| format!("redis INFO memory: {e}"))?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0))
}

/// Mean and max `MEMORY USAGE key SAMPLES 0` over up to [`MEMORY_SAMPLE`] keys of each set,
/// spread evenly across it.
async fn memory_usage(
    conn: &mut redis::aio::MultiplexedConnection,
    sets: &[Arc<SessionSet>],
) -> Result<(f64, u64, usize), String> {
    let mut pipe = redis::pipe();
    let mut n = 0usize;
    for set in sets {
        let step = (set.len() / MEMORY_SAMPLE).max(1);
        for key in set.keys.iter().step_by(step).take(MEMORY_SAMPLE) {
            pipe.cmd("MEMORY")
                .arg("USAGE")
                .arg(key)
                .arg("SAMPLES")
                .arg(0);
            n += 1;
        }
    }
    if n == 0 {
        return Ok((0.0, 0, 0));
    }
    let sizes: Vec<Option<u64>> = pipe
        .query_async(conn)
        .await
        .map_err(|e| format!("redis MEMORY USAGE: {e}"))?;
    let sizes: Vec<u64> = sizes.into_iter().flatten().collect();
    let max = sizes.iter().copied().max().unwrap_or(0);
    let mean = if sizes.is_empty() {
        0.0
    } else {
        sizes.iter().sum::<u64>() as f64 / sizes.len() as f64
    };
    Ok((mean, max, sizes.len()))
}
