//! The session lifecycle as a state machine (`proptest-state-machine`): two browsers log in,
//! call, get refreshed (success, `invalid_grant`, a transient IdP error), log out; the clock
//! jumps (both ways, across every expiry boundary); the store goes down with or without its
//! data, and is flushed. Every answer of the real [`Flow::decide`] is compared with a small
//! reference model, against both stores: memory, and Redis (a real `redis-server`, killed
//! and restarted, or refusing the store's every command through an ACL while keeping its
//! data).
//!
//! The model's rules, which are the properties:
//! - a request is allowed exactly when the model's session is valid: its cookie is kept, its
//!   data is stored, and its tokens are fresh or refreshable now (or still valid while the
//!   IdP fails transiently);
//! - `invalid_grant` deletes the session; a transient IdP or store error never does;
//! - a store outage is a 503 with `failOnFetchFailure: true`, a new login with `false`;
//! - a completed login stores exactly one session; logout deletes it;
//! - after every step, each session the SUT ever created is stored exactly when the model
//!   says so, and the IdP saw exactly one `refresh_token` grant per request that found its
//!   session due (within `preExpiryBuffer` of expiry).
//!
//! The IdP is mock-idp in-process on the same clock as extauth; the token endpoint's
//! transient faults are mock-idp's `status 503` and `connection_reset`.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};

use super::testkit::{self, Jar, Observed, describe, header, location, rt};
use super::{CheckRequest, Decision, Flow};
use crate::clock::{Clock as _, ManualClock};
use crate::session::redis::RedisStore;
use crate::session::{SessionId, SessionStore};
use crate::testing::RedisProcess;

/// Where the clock starts (any time works: both sides read the same clock).
const T0: i64 = 1_800_000_000;
/// The realm's lifetimes (`scenarios/realms/master.json`) and extauth's defaults.
const ACCESS_TOKEN: i64 = 300;
const SSO_IDLE: i64 = 1800;
const SSO_MAX: i64 = 36_000;
const PRE_EXPIRY_BUFFER: i64 = 2;
const COOKIE_MAX_AGE: i64 = 30 * 24 * 3600;
const BROWSERS: usize = 2;

const STORE_DOWN: &str = "The session store is unavailable. Try again later.\n";
const IDP_DOWN: &str = "The identity provider is unavailable. Try again later.\n";

/// A transient fault of the IdP's token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdpFault {
    /// `503` with a JSON error body.
    Unavailable,
    /// The connection drops without a response.
    Reset,
}

/// One step.
#[derive(Debug, Clone)]
enum Step {
    /// Browser `b` calls the API (`Accept: */*`).
    Call(usize),
    /// Browser `b` navigates to the app; if sent to the IdP, logs in and comes back.
    Login(usize),
    /// Browser `b` opens `logoutPath`.
    Logout(usize),
    /// The clock (extauth's and the IdP's) moves by this many seconds.
    Advance(i64),
    /// The token endpoint starts failing (`Some`) or recovers (`None`).
    Idp(Option<IdpFault>),
    /// The store stops answering; with `lose_data` it also loses everything (Redis: the
    /// process is killed; memory: every session is deleted).
    StoreDown { lose_data: bool },
    /// The store answers again (Redis: restarted, or its ACL restored).
    StoreUp,
    /// Every session is gone (`FLUSHALL`).
    Flush,
}

/// What the SUT must answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// Nothing to compare (not a request).
    Nothing,
    /// Forwarded upstream, with the ID token in `jwt`.
    Allow,
    /// A 302 to the IdP's authorization endpoint.
    ToIdp,
    /// After the IdP: a 302 back to the app with a new session cookie.
    LoggedIn,
    /// A 302 to the IdP's end-session endpoint, the session cookie removed.
    LoggedOut,
    /// A 503 with this body.
    Unavailable(&'static str),
}

/// One session the SUT created, by creation order (the SUT keeps their ids in that order).
#[derive(Debug, Clone)]
struct Session {
    /// The browser whose cookie names it (`None`: logged out, or the cookie was dropped or
    /// replaced; the data may still be stored).
    browser: Option<usize>,
    /// The browser keeps the cookie until then (`Max-Age`).
    cookie_until: i64,
    /// Whether its data is in the store.
    stored: bool,
    /// Memory store: the entry lives until then (the last save + the TTL). Redis keeps
    /// time by its own clock, which the test does not move.
    store_until: Option<i64>,
    /// When the tokens expire.
    tokens_expire: i64,
    /// The IdP's SSO session: when it started and was last used (login, refresh).
    idp_started: i64,
    idp_used: i64,
}

/// The reference model.
#[derive(Debug, Clone)]
struct Model {
    redis: bool,
    fail_on_fetch_failure: bool,
    now: i64,
    store_up: bool,
    idp_fault: Option<IdpFault>,
    sessions: Vec<Session>,
    /// `refresh_token` grants sent to the IdP so far: one per request whose session is due.
    refresh_grants: usize,
    /// The expected answer to the last step.
    expect: Expect,
}

impl Model {
    fn current(&self, b: usize) -> Option<usize> {
        self.sessions.iter().position(|s| s.browser == Some(b))
    }

    fn live_in_store(&self, s: &Session) -> bool {
        s.stored && s.store_until.is_none_or(|until| self.now < until)
    }

    fn saved(&self) -> Option<i64> {
        (!self.redis).then_some(self.now + COOKIE_MAX_AGE)
    }

    /// A request from browser `b` with its cookie, as the flow must answer it.
    fn request(&mut self, b: usize) -> Expect {
        let now = self.now;
        let Some(i) = self.current(b) else {
            return Expect::ToIdp;
        };
        if now >= self.sessions[i].cookie_until {
            // The browser dropped the cookie: the data (if any) is an orphan now.
            self.sessions[i].browser = None;
            return Expect::ToIdp;
        }
        if !self.store_up {
            return if self.fail_on_fetch_failure {
                Expect::Unavailable(STORE_DOWN)
            } else {
                Expect::ToIdp
            };
        }
        if !self.live_in_store(&self.sessions[i]) {
            return Expect::ToIdp;
        }
        let saved = self.saved();
        let fault = self.idp_fault;
        if self.sessions[i].tokens_expire - PRE_EXPIRY_BUFFER > now {
            return Expect::Allow;
        }
        // Due: one refresh grant, whatever the IdP answers.
        self.refresh_grants += 1;
        let s = &mut self.sessions[i];
        if fault.is_some() {
            return if s.tokens_expire > now {
                Expect::Allow
            } else {
                Expect::Unavailable(IDP_DOWN)
            };
        }
        let idp_alive = now < (s.idp_used + SSO_IDLE).min(s.idp_started + SSO_MAX);
        if idp_alive {
            s.tokens_expire = now + ACCESS_TOKEN;
            s.idp_used = now;
            s.store_until = saved;
            Expect::Allow
        } else {
            // invalid_grant: the session is deleted; the browser keeps a dead cookie.
            s.stored = false;
            Expect::ToIdp
        }
    }

    fn login(&mut self, b: usize) -> Expect {
        let first = self.request(b);
        if first != Expect::ToIdp {
            return first;
        }
        if self.idp_fault.is_some() {
            return Expect::Unavailable(IDP_DOWN);
        }
        if !self.store_up {
            return Expect::Unavailable(STORE_DOWN);
        }
        if let Some(i) = self.current(b) {
            self.sessions[i].browser = None;
        }
        self.sessions.push(Session {
            browser: Some(b),
            cookie_until: self.now + COOKIE_MAX_AGE,
            stored: true,
            store_until: self.saved(),
            tokens_expire: self.now + ACCESS_TOKEN,
            idp_started: self.now,
            idp_used: self.now,
        });
        Expect::LoggedIn
    }

    fn logout(&mut self, b: usize) -> Expect {
        if let Some(i) = self.current(b) {
            let kept = self.now < self.sessions[i].cookie_until;
            if kept && self.store_up {
                self.sessions[i].stored = false;
            }
            self.sessions[i].browser = None;
        }
        Expect::LoggedOut
    }
}

/// The store a test runs against.
trait Backend: std::fmt::Debug + Clone + 'static {
    const REDIS: bool;
}
#[derive(Debug, Clone)]
struct Memory;
impl Backend for Memory {
    const REDIS: bool = false;
}
#[derive(Debug, Clone)]
struct Redis;
impl Backend for Redis {
    const REDIS: bool = true;
}

struct Lifecycle<B>(PhantomData<B>);

fn browser() -> impl Strategy<Value = usize> {
    0..BROWSERS
}

impl<B: Backend> ReferenceStateMachine for Lifecycle<B> {
    type State = Model;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Model> {
        any::<bool>()
            .prop_map(|fail_on_fetch_failure| Model {
                redis: B::REDIS,
                fail_on_fetch_failure,
                now: T0,
                store_up: true,
                idp_fault: None,
                sessions: Vec::new(),
                refresh_grants: 0,
                expect: Expect::Nothing,
            })
            .boxed()
    }

    fn transitions(_state: &Model) -> BoxedStrategy<Step> {
        prop_oneof![
            5 => browser().prop_map(Step::Call),
            4 => browser().prop_map(Step::Login),
            1 => browser().prop_map(Step::Logout),
            4 => prop::sample::select(vec![
                1i64, 150, 297, 298, 299, 300, 301, 1200, 1799, 1800, 1801, 3600, 36_001,
                COOKIE_MAX_AGE - 1, COOKIE_MAX_AGE, -60, -600,
            ])
            .prop_map(Step::Advance),
            1 => prop_oneof![
                Just(None),
                Just(Some(IdpFault::Unavailable)),
                Just(Some(IdpFault::Reset)),
            ]
            .prop_map(Step::Idp),
            1 => any::<bool>().prop_map(|lose_data| Step::StoreDown { lose_data }),
            2 => Just(Step::StoreUp),
            1 => Just(Step::Flush),
        ]
        .boxed()
    }

    fn preconditions(state: &Model, step: &Step) -> bool {
        match step {
            Step::StoreDown { .. } | Step::Flush => state.store_up,
            Step::StoreUp => !state.store_up,
            _ => true,
        }
    }

    fn apply(mut state: Model, step: &Step) -> Model {
        state.expect = match *step {
            Step::Call(b) => state.request(b),
            Step::Login(b) => state.login(b),
            Step::Logout(b) => state.logout(b),
            Step::Advance(secs) => {
                state.now += secs;
                Expect::Nothing
            }
            Step::Idp(fault) => {
                state.idp_fault = fault;
                Expect::Nothing
            }
            Step::StoreDown { lose_data } => {
                state.store_up = false;
                if lose_data {
                    state.sessions.iter_mut().for_each(|s| s.stored = false);
                }
                Expect::Nothing
            }
            Step::StoreUp => {
                state.store_up = true;
                Expect::Nothing
            }
            Step::Flush => {
                state.sessions.iter_mut().for_each(|s| s.stored = false);
                Expect::Nothing
            }
        };
        state
    }
}

/// The system under test, one per case: extauth's flow, mock-idp, the store, two browsers.
struct Sut {
    clock: ManualClock,
    idp: mock_idp::RunningIdp,
    redis: Option<RedisProcess>,
    /// Redis is killed (not only refusing commands).
    killed: bool,
    store: Arc<Observed>,
    flow: Flow,
    jars: Vec<Jar>,
    /// Every session id the flow set, in creation order (the model's `sessions`).
    ids: Vec<SessionId>,
}

/// A command to the test's Redis (outside the store under test), as user `admin` (which
/// the ACL steps leave alone), or as `default` to create `admin`.
fn redis_admin(redis: &RedisProcess, as_admin: bool, args: &[&str]) {
    let url = if as_admin {
        format!("redis://admin:x@127.0.0.1:{}", redis.port())
    } else {
        redis.url()
    };
    let result = redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        .and_then(|mut conn| {
            let mut cmd = redis::cmd(args[0]);
            for a in &args[1..] {
                cmd.arg(*a);
            }
            cmd.query::<redis::Value>(&mut conn)
        });
    if let Err(e) = result {
        panic!("redis {args:?}: {e}");
    }
}

/// Creates the `admin` user the test's own commands use.
fn redis_add_admin(redis: &RedisProcess) {
    redis_admin(
        redis,
        false,
        &[
            "ACL", "SETUSER", "admin", "on", "nopass", "+@all", "~*", "&*",
        ],
    );
}

impl Sut {
    fn start(model: &Model) -> Self {
        let clock = ManualClock::new(T0);
        let idp = rt().block_on(testkit::start_idp(&clock));
        let redis = model.redis.then(|| {
            let r = RedisProcess::start()
                .unwrap_or_else(|e| panic!("the Redis lifecycle test needs redis-server: {e}"));
            redis_add_admin(&r);
            r
        });
        let redis_addr = redis.as_ref().map_or("127.0.0.1:1".to_owned(), |r| {
            format!("127.0.0.1:{}", r.port())
        });
        let text = testkit::SEED
            .replace(
                "failOnFetchFailure: true",
                &format!("failOnFetchFailure: {}", model.fail_on_fetch_failure),
            )
            .replace(
                "        callbackPath: /openai\n",
                "        callbackPath: /openai\n        logoutPath: /logout\n",
            );
        let loaded = testkit::load(
            &text,
            &testkit::seed_env(idp.base_url().as_str(), &redis_addr),
        );
        let store = match &redis {
            Some(r) => {
                let _guard = rt().enter();
                let inner =
                    RedisStore::new(&r.url(), "").unwrap_or_else(|e| panic!("a Redis store: {e}"));
                Observed::new(Arc::new(inner))
            }
            None => Observed::memory(&clock),
        };
        let flow = testkit::flow_with_store(&loaded, Arc::clone(&store) as _, &clock);
        Self {
            clock,
            idp,
            redis,
            killed: false,
            store,
            flow,
            jars: vec![Jar::default(); BROWSERS],
            ids: Vec::new(),
        }
    }

    fn decide(&self, check: &CheckRequest) -> Decision {
        rt().block_on(self.flow.decide(check))
    }

    fn request(&mut self, b: usize, accept: &str) -> Decision {
        let check = CheckRequest::new("POST", "http", testkit::APP_HOST, "/openai")
            .with_header("accept", accept);
        let now = self.clock.now();
        let check = self.jars[b].send(check, now);
        self.decide(&check)
    }

    fn keep_cookies(&mut self, b: usize, d: &Decision) {
        let now = self.clock.now();
        match d {
            Decision::Allow(a) => self.jars[b].apply(&a.response_headers, now),
            Decision::Deny(d) => self.jars[b].apply(&d.headers, now),
        }
    }

    /// Browser `b` navigates to the app and, if sent to the IdP, logs in there: the last
    /// decision.
    fn login(&mut self, b: usize) -> Decision {
        let first = self.request(b, "text/html");
        self.keep_cookies(b, &first);
        let auth = match &first {
            Decision::Deny(d) if d.status == 302 => location(d).map(str::to_owned),
            _ => None,
        };
        let Some(auth) = auth.filter(|a| a.starts_with(&self.auth_endpoint())) else {
            return first;
        };
        let back = rt()
            .block_on(crate::testing::form_login(&auth, "user1", "password"))
            .unwrap_or_else(|e| panic!("the IdP's login form: {e}"));
        let target = format!("{}?{}", back.path(), back.query().unwrap_or_default());
        let check = CheckRequest::new("GET", "http", testkit::APP_HOST, &target)
            .with_header("accept", "text/html");
        let now = self.clock.now();
        let check = self.jars[b].send(check, now);
        let callback = self.decide(&check);
        self.keep_cookies(b, &callback);
        if let Some(id) = self.jars[b]
            .get("keycloak-session", self.clock.now())
            .and_then(SessionId::parse)
            .filter(|id| !self.ids.contains(id))
        {
            self.ids.push(id);
        }
        callback
    }

    fn auth_endpoint(&self) -> String {
        format!("{}/protocol/openid-connect/auth", self.idp.issuer("master"))
    }

    fn check(&self, step: &Step, want: &Expect, got: &Decision) {
        let ok = match (want, got) {
            (Expect::Nothing, _) => true,
            (Expect::Allow, Decision::Allow(a)) => a
                .upstream_headers
                .iter()
                .any(|(n, v)| n == "jwt" && v.split('.').count() == 3),
            (Expect::ToIdp, Decision::Deny(d)) => {
                d.status == 302 && location(d).is_some_and(|l| l.starts_with(&self.auth_endpoint()))
            }
            (Expect::LoggedIn, Decision::Deny(d)) => {
                d.status == 302
                    && location(d) == Some(format!("http://{}/openai", testkit::APP_HOST).as_str())
                    && header(d, "set-cookie")
                        .iter()
                        .any(|c| c.starts_with("keycloak-session=") && !c.contains("Max-Age=0"))
            }
            (Expect::LoggedOut, Decision::Deny(d)) => {
                d.status == 302
                    && location(d).is_some_and(|l| l.contains("/protocol/openid-connect/logout"))
                    && header(d, "set-cookie")
                        .iter()
                        .any(|c| c.starts_with("keycloak-session=;") && c.contains("Max-Age=0"))
            }
            (Expect::Unavailable(body), Decision::Deny(d)) => d.status == 503 && d.body == *body,
            _ => false,
        };
        assert!(
            ok,
            "step {step:?}: expected {want:?}, got {}",
            describe(got)
        );
    }

    fn set_idp_fault(&self, fault: Option<IdpFault>) {
        use mock_idp::{Endpoint, Fault, FaultKind};
        self.idp.faults().clear();
        let kind = match fault {
            None => return,
            Some(IdpFault::Unavailable) => FaultKind::Status {
                endpoint: Endpoint::Token,
                status: 503,
            },
            Some(IdpFault::Reset) => FaultKind::ConnectionReset {
                endpoint: Endpoint::Token,
            },
        };
        if let Err(e) = self.idp.faults().add(Fault::sticky(kind)) {
            panic!("a mock-idp fault: {e}");
        }
    }

    fn store_down(&mut self, lose_data: bool) {
        match &mut self.redis {
            Some(r) if lose_data => {
                r.stop();
                self.killed = true;
            }
            // Every command of `default` (the store's user) refused (NOPERM), the data kept.
            Some(r) => redis_admin(r, true, &["ACL", "SETUSER", "default", "-@all"]),
            None => {
                if lose_data {
                    self.wipe();
                }
                self.store.down.store(true, Ordering::SeqCst);
            }
        }
    }

    fn store_up(&mut self) {
        match &mut self.redis {
            Some(r) if self.killed => {
                r.restart()
                    .unwrap_or_else(|e| panic!("redis-server restarts: {e}"));
                self.killed = false;
                redis_add_admin(r);
                // The store's connection reconnects on use: up means it answers again.
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while rt().block_on(self.store.ping()).is_err() {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the Redis store did not reconnect within 10 s"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            Some(r) => redis_admin(r, true, &["ACL", "SETUSER", "default", "+@all"]),
            None => self.store.down.store(false, Ordering::SeqCst),
        }
    }

    /// Deletes every session (memory: through the inner store; Redis: `FLUSHALL`).
    fn wipe(&self) {
        match &self.redis {
            Some(r) => redis_admin(r, true, &["FLUSHALL"]),
            None => {
                for id in &self.ids {
                    if let Err(e) = rt().block_on(self.store.inner.delete(id)) {
                        panic!("wiping the memory store: {e}");
                    }
                }
            }
        }
    }
}

impl<B: Backend> StateMachineTest for Lifecycle<B> {
    type SystemUnderTest = Sut;
    type Reference = Lifecycle<B>;

    fn init_test(model: &Model) -> Sut {
        Sut::start(model)
    }

    fn apply(mut sut: Sut, model: &Model, step: Step) -> Sut {
        let got = match step {
            Step::Call(b) => {
                let d = sut.request(b, "*/*");
                sut.keep_cookies(b, &d);
                Some(d)
            }
            Step::Login(b) => Some(sut.login(b)),
            Step::Logout(b) => {
                let check = CheckRequest::new("GET", "http", testkit::APP_HOST, "/logout")
                    .with_header("accept", "text/html");
                let now = sut.clock.now();
                let check = sut.jars[b].send(check, now);
                let d = sut.decide(&check);
                sut.keep_cookies(b, &d);
                Some(d)
            }
            Step::Advance(secs) => {
                sut.clock.advance(secs);
                None
            }
            Step::Idp(fault) => {
                sut.set_idp_fault(fault);
                None
            }
            Step::StoreDown { lose_data } => {
                sut.store_down(lose_data);
                None
            }
            Step::StoreUp => {
                sut.store_up();
                None
            }
            Step::Flush => {
                sut.wipe();
                None
            }
        };
        if let Some(d) = &got {
            sut.check(&step, &model.expect, d);
        }
        sut
    }

    fn check_invariants(sut: &Sut, model: &Model) {
        assert_eq!(sut.clock.now(), model.now);
        let grants = sut
            .idp
            .requests()
            .iter()
            .filter(|r| {
                r.endpoint == mock_idp::Endpoint::Token
                    && r.form.get("grant_type").map(String::as_str) == Some("refresh_token")
            })
            .count();
        assert_eq!(
            grants, model.refresh_grants,
            "refresh_token grants sent to the IdP"
        );
        assert_eq!(
            sut.ids.len(),
            model.sessions.len(),
            "sessions created (a completed login creates exactly one)"
        );
        if !model.store_up {
            return;
        }
        for (i, (id, s)) in sut.ids.iter().zip(&model.sessions).enumerate() {
            let stored = match rt().block_on(sut.store.inner.load(id)) {
                Ok(d) => d.is_some(),
                Err(e) => panic!("reading session {i} back: {e}"),
            };
            assert_eq!(
                stored,
                model.live_in_store(s),
                "session {i} stored (model: {s:?})"
            );
        }
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        // Each case starts mock-idp (and redis-server): a few dozen keep `just test` short.
        cases: crate::testing::proptest_cases(32),
        max_shrink_iters: 2048,
        ..ProptestConfig::default()
    }
}

prop_state_machine! {
    #![proptest_config(config())]

    #[test]
    fn the_session_lifecycle_on_the_memory_store_follows_the_model(
        sequential 1..40 => Lifecycle<Memory>
    );

    #[test]
    fn the_session_lifecycle_on_redis_follows_the_model(
        sequential 1..40 => Lifecycle<Redis>
    );
}
