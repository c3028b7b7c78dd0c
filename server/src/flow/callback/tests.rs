//! Properties of the callback, through the real [`Flow::decide`](crate::flow::Flow::decide)
//! against the in-process mock-idp (discovery, token endpoint, JWKS) and the memory store:
//! - arbitrary callback queries (repeated, empty, huge and badly encoded parameters; `state`
//!   absent, garbage, foreign, expired or valid; `error` with and without `state`; the right
//!   or a wrong `iss`) never panic, never answer a 5xx, never allow and never create a
//!   session;
//! - a real login's callback creates exactly one session, whatever unknown parameters ride
//!   along, and replaying it creates none.

use std::sync::{Arc, OnceLock};

use proptest::prelude::*;

use super::MAX_CALLBACK_QUERY;
use crate::clock::ManualClock;
use crate::flow::testkit::{self, Observed, describe, header, location, rt};
use crate::flow::{CheckRequest, Decision, Flow};
use crate::secret::Secret;
use crate::state::StateCodec;

struct Fixture {
    idp: mock_idp::RunningIdp,
    flow: Flow,
    store: Arc<Observed>,
}

/// mock-idp and a flow over an observed memory store, shared by the cases of one test (each
/// test has its own `slot`, so that counting a case's writes sees that case only).
fn fixture(slot: &'static OnceLock<Fixture>) -> &'static Fixture {
    slot.get_or_init(new_fixture)
}

/// mock-idp and a flow over an observed memory store, for one test alone.
fn new_fixture() -> Fixture {
    let clock = ManualClock::at_system_time();
    let idp = rt().block_on(testkit::start_idp(&clock));
    let env = testkit::seed_env(idp.base_url().as_str(), "127.0.0.1:1");
    let loaded = testkit::load(testkit::SEED, &env);
    let store = Observed::memory(&clock);
    let flow = testkit::flow_with_store(&loaded, Arc::clone(&store) as _, &clock);
    Fixture { idp, flow, store }
}

/// What the `state` parameter holds.
#[derive(Debug, Clone)]
enum State {
    /// A state this server issued just now.
    Valid,
    /// Issued by this server, 30 minutes ago (expired).
    Expired,
    /// Signed with another key.
    Foreign,
    /// A valid state with one character changed.
    Tampered(usize),
    /// Anything.
    Raw(String),
}

/// One `key=value` of the query, before encoding.
#[derive(Debug, Clone)]
enum Param {
    Code(String),
    State(State),
    Error(String),
    ErrorDescription(String),
    /// The IdP's issuer (right) or another.
    Iss(bool),
    /// A key the flow does not read.
    Other(String, String),
    /// Bytes as they are: a lone `%`, `%zz`, invalid UTF-8 escapes, `=`s, `&`s.
    Raw(String),
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[A-Za-z0-9._~-]{0,40}",
        2 => "\\PC{0,40}",
        1 => Just(String::new()),
        1 => (1usize..9_000).prop_map(|n| "x".repeat(n)),
    ]
}

fn param() -> impl Strategy<Value = Param> {
    prop_oneof![
        3 => text().prop_map(Param::Code),
        3 => prop_oneof![
            3 => Just(State::Valid),
            1 => Just(State::Expired),
            1 => Just(State::Foreign),
            1 => any::<usize>().prop_map(State::Tampered),
            2 => text().prop_map(State::Raw),
        ]
        .prop_map(Param::State),
        1 => prop_oneof![Just("access_denied".to_owned()), text()].prop_map(Param::Error),
        1 => text().prop_map(Param::ErrorDescription),
        2 => any::<bool>().prop_map(Param::Iss),
        1 => ("[a-z_]{1,12}", text()).prop_map(|(k, v)| Param::Other(k, v)),
        1 => prop::sample::select(vec![
            "%", "%zz", "code=%C3%28", "state=%FF%FE", "code", "=", "&", "state==", "code=a=b",
            "%00=%00", "+=+",
        ])
        .prop_map(str::to_owned)
        .prop_map(Param::Raw),
    ]
}

/// A query as the IdP (or anyone) may send it to the callback path.
#[derive(Debug, Clone)]
struct Query {
    params: Vec<Param>,
    /// Extra `&`s between parameters.
    doubled: Vec<bool>,
}

fn query() -> impl Strategy<Value = Query> {
    prop::collection::vec(param(), 0..7).prop_flat_map(|params| {
        let n = params.len();
        (Just(params), prop::collection::vec(any::<bool>(), n))
            .prop_map(|(params, doubled)| Query { params, doubled })
    })
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl Query {
    fn render(&self, fx: &Fixture) -> String {
        let now = fx.flow.now();
        let original = format!("http://{}/openai", testkit::APP_HOST);
        let issue = |at: i64| {
            fx.flow
                .state()
                .issue(&original, at)
                .map(|s| s.token)
                .unwrap_or_default()
        };
        let mut out = String::new();
        for (p, doubled) in self.params.iter().zip(&self.doubled) {
            let pair = match p {
                Param::Code(v) => format!("code={}", encode(v)),
                Param::State(s) => {
                    let value = match s {
                        State::Valid => issue(now),
                        State::Expired => issue(now - crate::state::STATE_TTL_SECS),
                        State::Foreign => StateCodec::new(&Secret::new("f".repeat(32)))
                            .issue(&original, now)
                            .map(|s| s.token)
                            .unwrap_or_default(),
                        State::Tampered(i) => {
                            let mut t = issue(now).into_bytes();
                            let at = i % t.len().max(1);
                            if let Some(b) = t.get_mut(at) {
                                *b = if *b == b'A' { b'B' } else { b'A' };
                            }
                            String::from_utf8(t).unwrap_or_default()
                        }
                        State::Raw(v) => v.clone(),
                    };
                    format!("state={}", encode(&value))
                }
                Param::Error(v) => format!("error={}", encode(v)),
                Param::ErrorDescription(v) => format!("error_description={}", encode(v)),
                Param::Iss(true) => format!("iss={}", encode(&fx.idp.issuer("master"))),
                Param::Iss(false) => format!("iss={}", encode("http://evil.example/realms/master")),
                Param::Other(k, v) => format!("{k}={}", encode(v)),
                Param::Raw(raw) => raw.clone(),
            };
            if !out.is_empty() {
                out.push('&');
            }
            if *doubled {
                out.push('&');
            }
            out.push_str(&pair);
        }
        out
    }
}

fn callback(query: &str) -> CheckRequest {
    CheckRequest::new(
        "GET",
        "http",
        testkit::APP_HOST,
        &format!("/openai?{query}"),
    )
    .with_header("accept", "text/html")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::testing::proptest_cases(128)))]

    #[test]
    fn no_callback_query_allows_creates_a_session_or_answers_a_5xx(q in query()) {
        static FIXTURE: OnceLock<Fixture> = OnceLock::new();
        let fx = fixture(&FIXTURE);
        let query = q.render(fx);
        let saves = fx.store.saves();
        let decision = rt().block_on(fx.flow.decide(&callback(&query)));
        let Decision::Deny(deny) = &decision else {
            return Err(TestCaseError::fail(format!("allowed: {query:?}")));
        };
        prop_assert!(
            !deny.status.is_server_error(),
            "{} for a client's query {:?}", describe(&decision), query
        );
        prop_assert_eq!(fx.store.saves(), saves, "a session was stored");
        let cookies = header(deny, "set-cookie");
        prop_assert!(
            cookies.iter().all(|c| !c.starts_with("keycloak-session=")),
            "a session cookie was set: {:?}", cookies
        );
        if query.len() > MAX_CALLBACK_QUERY {
            prop_assert_eq!(deny.status.as_u16(), 400);
            prop_assert_eq!(
                &deny.body,
                &format!(
                    "Request refused: the callback query string is larger than {MAX_CALLBACK_QUERY} bytes.\n"
                )
            );
        }
    }
}

/// A login at the IdP for a request to `target`: the callback query it redirects back with.
fn real_login(fx: &Fixture, target: &str) -> Result<String, TestCaseError> {
    let start = CheckRequest::new("GET", "http", testkit::APP_HOST, target)
        .with_header("accept", "text/html");
    let Decision::Deny(d) = rt().block_on(fx.flow.decide(&start)) else {
        return Err(TestCaseError::fail(
            "a request without a session was allowed",
        ));
    };
    let auth = location(&d).ok_or_else(|| TestCaseError::fail("no redirect to the IdP"))?;
    let back = rt()
        .block_on(crate::testing::form_login(auth, "user1", "password"))
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    back.query()
        .map(str::to_owned)
        .ok_or_else(|| TestCaseError::fail("the IdP came back without a query"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::testing::proptest_cases(16)))]

    #[test]
    fn a_good_callback_creates_one_session_once_and_its_replay_none(
        path in "/openai(/[a-z0-9._-]{1,8}){0,2}",
        original_query in prop::option::of("[a-z0-9=&]{1,20}"),
        extra in prop::collection::vec(("[a-z_]{1,10}", "[A-Za-z0-9 ]{0,10}"), 0..3),
    ) {
        static FIXTURE: OnceLock<Fixture> = OnceLock::new();
        let fx = fixture(&FIXTURE);
        let target = match &original_query {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        };
        let mut query = real_login(fx, &target)?;
        for (k, v) in &extra {
            if !["code", "state", "error", "error_description", "iss"].contains(&k.as_str()) {
                query.push_str(&format!("&{k}={}", encode(v)));
            }
        }
        let saves = fx.store.saves();
        let first = rt().block_on(fx.flow.decide(&callback(&query)));
        let Decision::Deny(deny) = &first else {
            return Err(TestCaseError::fail("the callback itself was allowed"));
        };
        prop_assert_eq!(deny.status.as_u16(), 302, "{}", describe(&first));
        let back = format!("http://{}{target}", testkit::APP_HOST);
        prop_assert_eq!(location(deny), Some(back.as_str()));
        prop_assert_eq!(fx.store.saves(), saves + 1, "exactly one session");
        let session: Vec<&str> = header(deny, "set-cookie")
            .into_iter()
            .filter(|c| c.starts_with("keycloak-session="))
            .collect();
        prop_assert_eq!(session.len(), 1, "one session cookie");
        // The session works...
        let mut jar = testkit::Jar::default();
        jar.apply(&deny.headers, fx.flow.now());
        let call = jar.send(
            CheckRequest::new("POST", "http", testkit::APP_HOST, "/openai"),
            fx.flow.now(),
        );
        let allowed = rt().block_on(fx.flow.decide(&call));
        prop_assert!(matches!(allowed, Decision::Allow(_)), "{}", describe(&allowed));
        // ...and the replayed callback creates none (the code is spent at the IdP): it
        // starts the login again, once, at the IdP's authorization endpoint.
        let replay = rt().block_on(fx.flow.decide(&callback(&query)));
        let Decision::Deny(again) = &replay else {
            return Err(TestCaseError::fail("the replayed callback was allowed"));
        };
        prop_assert_eq!(again.status.as_u16(), 302, "{}", describe(&replay));
        let restart = location(again).unwrap_or_default();
        prop_assert!(
            restart.contains("/protocol/openid-connect/auth?"),
            "the replay goes back to the IdP: {}",
            restart
        );
        prop_assert_eq!(fx.store.saves(), saves + 1, "the replay stored a session");
        prop_assert!(header(again, "set-cookie").iter().all(|c| !c.starts_with("keycloak-session=")));
    }
}

#[test]
fn an_error_without_state_is_a_401_naming_the_error() {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    let fx = fixture(&FIXTURE);
    let d = rt().block_on(fx.flow.decide(&callback("error=access_denied")));
    let Decision::Deny(d) = d else {
        panic!("allowed")
    };
    assert_eq!(d.status.as_u16(), 401);
    assert_eq!(
        d.body,
        "The identity provider did not complete the login: access_denied.\n"
    );
}

/// Found by `harness sim` (seed 11, 6 users, 120 steps): after the IdP rotated its key a
/// second time within one discovery poll interval, the one JWKS refetch that
/// `jwksCacheRefreshPolicy` allows by default was spent, so the ID token of every login (and
/// refresh) on that replica failed as "signed with a key not in the JWKS" until the interval
/// ended. An ID token the token endpoint just returned may always have the JWKS refetched.
#[test]
fn logins_keep_working_after_two_key_rotations_in_one_poll_interval() {
    let fx = new_fixture();
    // Before any rotation (the first fetch), after one (the budget's refetch), after two.
    for rotations in 0..3 {
        if rotations > 0 {
            rt().block_on(fx.idp.rotate_keys())
                .expect("the IdP rotates its key");
        }
        let query = real_login(&fx, "/openai").expect("the IdP logs the user in");
        let saves = fx.store.saves();
        let decision = rt().block_on(fx.flow.decide(&callback(&query)));
        let Decision::Deny(deny) = &decision else {
            panic!("the callback itself was allowed");
        };
        assert_eq!(
            deny.status.as_u16(),
            302,
            "after {rotations} rotation(s): {}",
            describe(&decision)
        );
        assert_eq!(fx.store.saves(), saves + 1, "after {rotations} rotation(s)");
    }
}
