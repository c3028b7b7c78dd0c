//! Shared fixtures of the flow's property tests: one Tokio runtime for the proptest cases
//! (which are synchronous), the in-process mock-idp on the test's clock, a Flow built from
//! manifest text, a browser cookie jar that honours `Max-Age` on that clock, and a store
//! wrapper that counts writes and can fail on demand.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;

use super::{CheckRequest, Decision, Deny, Flow, Route};
use crate::clock::{Clock as _, ManualClock};
use crate::config::{self, Loaded, OidcConfig};
use crate::env::MapEnv;
use crate::oidc::Provider;
use crate::secret::Secret;
use crate::session::memory::MemoryStore;
use crate::session::{SessionData, SessionId, SessionStore, StoreError};
use crate::state::StateCodec;

/// The seed's manifests (Secret, AuthConfig with Redis sessions, the gateway policy).
pub(crate) const SEED: &str =
    include_str!("../../../scenarios/manifests/seed-authorization-code.yaml");
/// The realm the seed logs in to (`user1` / `password`, client `agentgateway`).
const REALM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../scenarios/realms/master.json"
);
/// The signing key of every flow built here.
pub(crate) const SIGNING_KEY: &str = "a-property-test-signing-key-of-32-bytes-at-least";
/// `appUrl`'s host in [`seed_env`]: `appUrl` is `http://127.0.0.1:80`.
pub(crate) const APP_HOST: &str = "127.0.0.1";

/// One multi-threaded runtime shared by the property tests of this crate: proptest cases are
/// synchronous and `block_on` it; servers started on it (mock-idp, wiremock) outlive a case.
pub(crate) fn rt() -> &'static tokio::runtime::Runtime {
    static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
        #[allow(clippy::expect_used)]
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a Tokio runtime for the property tests")
    });
    &RT
}

/// The wiremock IdP of the flow's example tests (discovery and an empty JWKS), started
/// once and shared by every case.
pub(crate) fn wiremock_idp() -> &'static wiremock::MockServer {
    static IDP: std::sync::OnceLock<wiremock::MockServer> = std::sync::OnceLock::new();
    IDP.get_or_init(|| rt().block_on(super::tests::idp()))
}

/// extauth's [`ManualClock`] as mock-idp's clock: both sides of a test read one time.
#[derive(Debug)]
pub(crate) struct IdpClock(pub ManualClock);

impl mock_idp::Clock for IdpClock {
    fn now(&self) -> std::time::SystemTime {
        UNIX_EPOCH + Duration::from_secs(u64::try_from(self.0.now()).unwrap_or(0))
    }
}

/// mock-idp with the seed's realm on a free port, on `clock`.
pub(crate) async fn start_idp(clock: &ManualClock) -> mock_idp::RunningIdp {
    #[allow(clippy::expect_used)]
    mock_idp::MockIdp::builder()
        .realm(mock_idp::Realm::from_file(REALM).expect("the seed realm"))
        .public_host("localhost")
        .clock(Arc::new(IdpClock(clock.clone())))
        // The tests set the clock back as well as forward: the IdP's answers must be a
        // function of the time alone, not of when its cleanup last ran.
        .keep_expired_sessions(true)
        .start()
        .await
        .expect("mock-idp starts")
}

/// The environment of the seed's manifests against an IdP at `idp_base` and Redis at `redis`.
pub(crate) fn seed_env(idp_base: &str, redis: &str) -> MapEnv {
    let (host, port) = redis.rsplit_once(':').unwrap_or((redis, "6379"));
    MapEnv::default()
        .with("KEYCLOAK_SECRET", "agentgateway-client-secret")
        .with("KEYCLOAK_CLIENT", "agentgateway")
        .with("KEYCLOAK_URL", idp_base.trim_end_matches('/'))
        .with("INGRESS_GW_ADDRESS", APP_HOST)
        .with("REDIS_HOST", host)
        .with("REDIS_PORT", port)
        .with("SIGNING_KEY", SIGNING_KEY)
}

/// Loads manifest `text` (panics with the config error: a test bug, not a finding).
pub(crate) fn load(text: &str, env: &MapEnv) -> Loaded {
    config::load_str("property-test.yaml", text, env)
        .unwrap_or_else(|e| panic!("the test's manifest loads: {e}\n{text}"))
}

/// A flow over `loaded`'s first AuthConfig with `store`, on `clock`.
pub(crate) fn flow_with_store(
    loaded: &Loaded,
    store: Arc<dyn SessionStore>,
    clock: &ManualClock,
) -> Flow {
    let config: Arc<OidcConfig> = Arc::clone(&loaded.auth_configs[0]);
    let shared: crate::clock::SharedClock = Arc::new(clock.clone());
    #[allow(clippy::expect_used)]
    let provider = Provider::new(Arc::clone(&config), Arc::clone(&shared)).expect("a provider");
    let key = Secret::new(SIGNING_KEY);
    Flow::new(
        vec![Route::new(config, provider, store, &key)],
        StateCodec::new(&key),
        shared,
    )
}

/// The route of a one-route flow.
pub(crate) fn route(flow: &Flow) -> &Route {
    &flow.routes()[0]
}

/// A session store that counts writes and fails every call while `down`; `inner` does the
/// work (the memory store, or Redis).
#[derive(Debug)]
pub(crate) struct Observed {
    pub inner: Arc<dyn SessionStore>,
    /// Completed `save`s.
    pub saves: AtomicUsize,
    /// Completed `delete`s.
    pub deletes: AtomicUsize,
    /// While set, every call is [`StoreError::Unavailable`] and nothing is touched.
    pub down: AtomicBool,
}

impl Observed {
    pub(crate) fn new(inner: Arc<dyn SessionStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            saves: AtomicUsize::new(0),
            deletes: AtomicUsize::new(0),
            down: AtomicBool::new(false),
        })
    }

    /// A fresh memory store on `clock`, observed.
    pub(crate) fn memory(clock: &ManualClock) -> Arc<Self> {
        Self::new(Arc::new(MemoryStore::new(Arc::new(clock.clone()))))
    }

    pub(crate) fn saves(&self) -> usize {
        self.saves.load(Ordering::SeqCst)
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable(
                "the test switched the store off".into(),
            ))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl SessionStore for Observed {
    async fn load(&self, id: &SessionId) -> Result<Option<SessionData>, StoreError> {
        self.check()?;
        self.inner.load(id).await
    }
    async fn load_fresh(&self, id: &SessionId) -> Result<Option<SessionData>, StoreError> {
        self.check()?;
        self.inner.load_fresh(id).await
    }
    async fn save(
        &self,
        id: &SessionId,
        data: &SessionData,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.save(id, data, ttl).await?;
        self.saves.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.check()?;
        self.inner.delete(id).await?;
        self.deletes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.check()?;
        self.inner.ping().await
    }
    async fn try_lock(&self, id: &SessionId, ttl: Duration) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.try_lock(id, ttl).await
    }
    async fn unlock(&self, id: &SessionId) -> Result<(), StoreError> {
        self.check()?;
        self.inner.unlock(id).await
    }
}

/// A browser's cookie jar for one site: `Set-Cookie` lines in, a `Cookie` header out;
/// `Max-Age` counts on the test's clock (a browser drops the cookie then).
#[derive(Debug, Default, Clone)]
pub(crate) struct Jar {
    cookies: BTreeMap<String, (String, Option<i64>)>,
}

impl Jar {
    /// Applies every `set-cookie` of `headers` at time `now`.
    pub(crate) fn apply<'a>(
        &mut self,
        headers: impl IntoIterator<Item = &'a (http::HeaderName, String)>,
        now: i64,
    ) {
        for (name, line) in headers {
            if *name != http::header::SET_COOKIE {
                continue;
            }
            #[allow(clippy::expect_used)]
            let c = cookie::Cookie::parse(line.as_str()).expect("our Set-Cookie lines parse");
            let max_age = c.max_age().map(|d| d.whole_seconds());
            if max_age.is_some_and(|s| s <= 0) {
                self.cookies.remove(c.name());
            } else {
                self.cookies.insert(
                    c.name().to_owned(),
                    (c.value().to_owned(), max_age.map(|s| now.saturating_add(s))),
                );
            }
        }
    }

    /// The value of `name`, if the browser still keeps it at `now`.
    pub(crate) fn get(&self, name: &str, now: i64) -> Option<&str> {
        self.cookies
            .get(name)
            .filter(|(_, exp)| exp.is_none_or(|e| now < e))
            .map(|(v, _)| v.as_str())
    }

    /// `check` with this jar's `Cookie` header at `now`. Cookies past their `Max-Age` are
    /// evicted for good, as a browser does (a clock moved back later does not revive them).
    pub(crate) fn send(&mut self, check: CheckRequest, now: i64) -> CheckRequest {
        self.cookies
            .retain(|_, (_, exp)| exp.is_none_or(|e| now < e));
        if self.cookies.is_empty() {
            return check;
        }
        let header = self
            .cookies
            .iter()
            .map(|(n, (v, _))| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        check.with_header("cookie", &header)
    }
}

/// The `Location` of a redirect.
pub(crate) fn location(deny: &Deny) -> Option<&str> {
    header(deny, "location").into_iter().next()
}

/// Every value of header `name` of `deny`.
pub(crate) fn header<'a>(deny: &'a Deny, name: &str) -> Vec<&'a str> {
    deny.headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// A short description of a decision for assertion messages (no header values: they may
/// hold cookies).
pub(crate) fn describe(d: &Decision) -> String {
    match d {
        Decision::Allow(_) => "allow".into(),
        Decision::Deny(d) => format!("{} {:?}", d.status.as_u16(), d.body),
    }
}
