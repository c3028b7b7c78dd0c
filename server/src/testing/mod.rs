//! Real parts for tests: Redis in every topology extauth speaks to, on free loopback ports,
//! and a plain HTTP driver of Keycloak's login form ([`login`]).
//!
//! Public so that the server's tests, the benches and the harness share one implementation
//! ([`redis`]: standalone over TCP, a unix socket, TLS and mutual TLS, with a password or an
//! ACL user; Sentinel; Cluster). Every child process is killed by its PID on drop, every wait
//! is bounded and a failure carries the tail of the process's log. Nothing here is used by
//! the server itself.

pub mod login;
pub mod redis;

use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;

pub use login::{FormLoginError, form_login};
pub use redis::certs::TestCerts;
pub use redis::cluster::RedisCluster;
pub use redis::sentinel::RedisSentinel;
pub use redis::server::{RedisServer, RedisServerBuilder};
pub use redis::{Access, RedisSpawnError};

/// The standalone server's former name, kept for the tests that use it.
pub type RedisProcess = RedisServer;
/// The standalone server's former error name.
pub type RedisProcessError = RedisSpawnError;

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Called with `(what, pid)` for every child process started here (the harness records them
/// to prove that nothing survives a run).
pub type SpawnHook = fn(&str, u32);

static SPAWN_HOOK: Mutex<Option<SpawnHook>> = Mutex::new(None);

/// Installs the hook every spawn reports to (replacing any earlier one).
pub fn set_spawn_hook(hook: SpawnHook) {
    *SPAWN_HOOK.lock().unwrap_or_else(|e| e.into_inner()) = Some(hook);
}

pub(crate) fn report_spawn(what: &str, pid: u32) {
    let hook = *SPAWN_HOOK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(hook) = hook {
        hook(what, pid);
    }
}

/// The case count of a property test: `PROPTEST_CASES` when set (to run more, or fewer),
/// else `default`, kept small enough for `just test` on two cores.
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
