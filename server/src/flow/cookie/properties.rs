//! Properties of the session cookie, at both ends:
//! - reading: arbitrary `Cookie` headers (several headers, duplicates, other cookies, any
//!   spacing around `;`, quoted values) resolve to the first cookie of that name, and through
//!   [`Flow::decide`](crate::flow::Flow::decide) to that cookie's session or to none; chunk
//!   cookies missing, reordered or left over join back to the value or to nothing, never to
//!   another value;
//! - writing: chunked cookie sessions round-trip for every size up to the limit (and beyond
//!   it are refused with the reason); rewriting deletes the chunks left over; every
//!   `Set-Cookie` line carries exactly what `cookieOptions` says (maxAge, notSecure, httpOnly,
//!   path, domain, sameSite).

use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::clock::ManualClock;
use crate::flow::testkit::{self, Observed, rt};
use crate::flow::{Decision, binding};
use crate::session::{SessionData, SessionStore as _};

const NOW: i64 = 1_768_504_473;
const NAME: &str = "keycloak-session";

fn cases(default: u32) -> ProptestConfig {
    ProptestConfig::with_cases(crate::testing::proptest_cases(default))
}

/// One `name=value` of a generated `Cookie` header.
#[derive(Debug, Clone)]
enum Pair {
    /// Our cookie with session `0` or `1` of the fixture.
    Session(usize),
    /// Our cookie with a value that is not a session id.
    Garbage(String),
    /// Someone else's cookie (possibly with a name that contains ours).
    Other(String, String),
}

/// How a pair is written: plain, or with its value in double quotes (RFC 6265 allows both).
#[derive(Debug, Clone)]
struct Written {
    pair: Pair,
    quoted: bool,
}

fn pair() -> impl Strategy<Value = Pair> {
    prop_oneof![
        2 => (0usize..2).prop_map(Pair::Session),
        1 => "[A-Za-z0-9=+/_-]{0,120}".prop_map(Pair::Garbage),
        3 => (
            prop_oneof![
                "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}",
                Just(format!("{NAME}.1")),
                Just(format!("{NAME}-login")),
                Just(format!("x{NAME}")),
                Just(format!("{NAME}2")),
                Just(NAME.to_ascii_uppercase()),
            ],
            "[A-Za-z0-9!#$%&'()*+./:<=>?@^_`{|}~-]{0,40}",
        )
            .prop_map(|(n, v)| Pair::Other(n, v)),
    ]
}

fn written() -> impl Strategy<Value = Written> {
    (pair(), any::<bool>()).prop_map(|(pair, quoted)| Written { pair, quoted })
}

/// A generated request's cookies: pairs spread over one to three `Cookie` headers, joined by
/// separators with any optional whitespace.
#[derive(Debug, Clone)]
struct Cookies {
    pairs: Vec<Written>,
    /// Where each header ends (indexes into `pairs`).
    splits: Vec<usize>,
    separators: Vec<&'static str>,
}

fn cookies() -> impl Strategy<Value = Cookies> {
    prop::collection::vec(written(), 0..8).prop_flat_map(|pairs| {
        let n = pairs.len();
        (
            Just(pairs),
            prop::collection::vec(0..=n, 0..3),
            prop::collection::vec(
                prop::sample::select(vec!["; ", ";", " ; ", ";  ", ";\t", "\t;\t"]),
                n.max(1),
            ),
        )
            .prop_map(|(pairs, mut splits, separators)| {
                splits.sort_unstable();
                Cookies {
                    pairs,
                    splits,
                    separators,
                }
            })
    })
}

impl Cookies {
    /// The value our cookie is written with, given the fixture's session ids.
    fn value(pair: &Pair, ids: &[SessionId]) -> Option<String> {
        match pair {
            Pair::Session(i) => Some(ids[*i].expose().to_owned()),
            Pair::Garbage(v) => Some(v.clone()),
            Pair::Other(..) => None,
        }
    }

    fn headers(&self, ids: &[SessionId]) -> Vec<String> {
        let mut headers = Vec::new();
        let mut current = String::new();
        for (i, w) in self.pairs.iter().enumerate() {
            if self.splits.contains(&i) && !current.is_empty() {
                headers.push(std::mem::take(&mut current));
            }
            if !current.is_empty() {
                current.push_str(self.separators[i]);
            }
            let (name, value) = match &w.pair {
                Pair::Other(n, v) => (n.clone(), v.clone()),
                ours => (NAME.to_owned(), Self::value(ours, ids).unwrap_or_default()),
            };
            if w.quoted {
                current.push_str(&format!("{name}=\"{value}\""));
            } else {
                current.push_str(&format!("{name}={value}"));
            }
        }
        if !current.is_empty() {
            headers.push(current);
        }
        headers
    }

    /// The first of our pairs: the one a request resolves to.
    fn first_ours(&self) -> Option<&Pair> {
        self.pairs
            .iter()
            .map(|w| &w.pair)
            .find(|p| !matches!(p, Pair::Other(..)))
    }

    fn request(&self, ids: &[SessionId]) -> CheckRequest {
        self.headers(ids).iter().fold(
            CheckRequest::new("GET", "http", testkit::APP_HOST, "/openai")
                .with_header("accept", "*/*"),
            |c, h| c.with_header("cookie", h),
        )
    }
}

/// A flow over the memory store holding two sessions, for `user0` and `user1`.
struct TwoSessions {
    flow: crate::flow::Flow,
    ids: Vec<SessionId>,
}

fn two_sessions() -> TwoSessions {
    let clock = ManualClock::new(NOW);
    let env = testkit::seed_env(&testkit::wiremock_idp().uri(), "127.0.0.1:1");
    let loaded = testkit::load(testkit::SEED, &env);
    let store = Observed::memory(&clock);
    let flow = testkit::flow_with_store(&loaded, Arc::clone(&store) as _, &clock);
    let ids: Vec<SessionId> = (0..2).map(|_| SessionId::generate()).collect();
    for (i, id) in ids.iter().enumerate() {
        let data = SessionData {
            id_token: format!("id-token-of-user{i}"),
            access_token: "at".into(),
            refresh_token: None,
            expires_at: NOW + 3600,
            subject: format!("user{i}"),
            created_at: NOW,
        };
        #[allow(clippy::unwrap_used)]
        rt().block_on(store.save(id, &data, std::time::Duration::from_secs(3600)))
            .unwrap();
    }
    TwoSessions { flow, ids }
}

proptest! {
    #![proptest_config(cases(128))]

    #[test]
    fn a_cookie_header_resolves_to_the_first_cookie_of_that_name(c in cookies()) {
        let ids = vec![SessionId::generate(), SessionId::generate()];
        let want = c.first_ours().and_then(|p| Cookies::value(p, &ids));
        prop_assert_eq!(c.request(&ids).cookie(NAME), want);
    }

    #[test]
    fn a_request_gets_the_session_of_its_first_cookie_or_none(c in cookies()) {
        let fx = two_sessions();
        let check = c.request(&fx.ids);
        let decision = rt().block_on(fx.flow.decide(&check));
        match (c.first_ours(), decision) {
            (Some(Pair::Session(i)), Decision::Allow(allow)) => {
                let jwt: Vec<&str> = allow
                    .upstream_headers
                    .iter()
                    .filter(|(n, _)| n == "jwt")
                    .map(|(_, v)| v.as_str())
                    .collect();
                prop_assert_eq!(jwt, vec![format!("id-token-of-user{i}")]);
            }
            (Some(Pair::Session(i)), Decision::Deny(d)) => {
                return Err(TestCaseError::fail(format!(
                    "session {i} was refused: {} {}",
                    d.status, d.body
                )));
            }
            (_, Decision::Allow(_)) => {
                return Err(TestCaseError::fail("allowed without a session cookie first"));
            }
            (_, Decision::Deny(d)) => prop_assert_eq!(d.status.as_u16(), 302, "{}", d.body),
        }
    }

    #[test]
    fn any_cookie_header_parses_without_panic_to_a_value_it_contains(
        name in prop_oneof![Just(NAME.to_owned()), "[!-~]{1,8}"],
        pieces in prop::collection::vec(
            prop::collection::vec(
                prop_oneof![
                    3 => Just(Piece::Name),
                    2 => prop::sample::select(vec!["=", ";", " ", "\t", "\"", "~", ".1", "3~"])
                        .prop_map(Piece::Text),
                    2 => "\\PC{0,8}".prop_map(Piece::Random),
                ],
                0..16,
            ),
            0..3,
        ),
    ) {
        let headers: Vec<String> = pieces
            .iter()
            .map(|h| h.iter().map(|p| p.render(&name)).collect())
            .collect();
        let check = headers
            .iter()
            .fold(CheckRequest::new("GET", "http", "gw", "/"), |c, h| c.with_header("cookie", h));
        if let Some(value) = check.cookie(&name) {
            // Right after some `name=` (and any opening quotes) in one of the headers.
            let pair = format!("{name}=");
            let found = headers.iter().any(|h| {
                h.match_indices(&pair)
                    .any(|(i, _)| h[i + pair.len()..].trim_start_matches('"').starts_with(&value))
            });
            prop_assert!(found, "{:?} is not the value of a {} cookie in {:?}", value, name, headers);
        }
        let _ = joined(&check, &name);
        let _ = present_chunks(&check, &name);
    }
}

/// A fragment of an arbitrary `Cookie` header.
#[derive(Debug, Clone)]
enum Piece {
    /// The cookie name asked for.
    Name,
    /// Separators, quotes, chunk markers.
    Text(&'static str),
    /// Anything printable.
    Random(String),
}

impl Piece {
    fn render(&self, name: &str) -> String {
        match self {
            Piece::Name => name.to_owned(),
            Piece::Text(t) => (*t).to_owned(),
            Piece::Random(r) => r.clone(),
        }
    }
}

fn cookie_cfg(name: &str) -> CookieConfig {
    CookieConfig {
        name: name.to_owned(),
        max_age: Some(crate::config::compile::DEFAULT_COOKIE_MAX_AGE),
        secure: true,
        http_only: true,
        path: "/".into(),
        domain: None,
        same_site: None,
    }
}

/// `name=value` of each line that sets (not deletes) a cookie.
fn pairs_of(lines: &[String]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|l| cookie::Cookie::parse(l.as_str()).ok())
        .filter(|c| c.max_age() != Some(cookie::time::Duration::ZERO))
        .map(|c| (c.name().to_owned(), c.value().to_owned()))
        .collect()
}

fn header_of(pairs: &[(String, String)]) -> CheckRequest {
    let header = pairs
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    CheckRequest::new("GET", "http", "gw", "/").with_header("cookie", &header)
}

/// Sealed values are base64url; any length up to what the chunks carry.
fn value_up_to(max: usize) -> impl Strategy<Value = String> {
    (0..=max).prop_flat_map(|n| {
        prop::collection::vec(
            prop::sample::select(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".to_vec(),
            ),
            n,
        )
        .prop_map(|bytes| String::from_utf8(bytes).unwrap_or_default())
    })
}

/// What happens to the chunk cookies between two requests.
#[derive(Debug, Clone)]
enum Tamper {
    /// Nothing.
    Keep,
    /// The browser reorders them (and puts other cookies between them).
    Shuffle(Vec<usize>),
    /// One of them is gone.
    Drop(usize),
    /// Chunks of a longer earlier value are still there.
    Leftover(usize),
}

proptest! {
    #![proptest_config(cases(64))]

    #[test]
    fn chunked_values_round_trip_for_every_size_up_to_the_limit(
        value in value_up_to(CHUNK_BYTES * MAX_CHUNKS),
        name in "[A-Za-z0-9_-]{1,32}",
        tamper in prop_oneof![
            Just(Tamper::Keep),
            prop::collection::vec(any::<usize>(), MAX_CHUNKS + 2).prop_map(Tamper::Shuffle),
            any::<usize>().prop_map(Tamper::Drop),
            (1..MAX_CHUNKS).prop_map(Tamper::Leftover),
        ],
    ) {
        let cfg = cookie_cfg(&name);
        let lines = value_cookies(&cfg, &value, 0)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        for (n, v) in pairs_of(&lines) {
            prop_assert!(n.len() + v.len() <= 4096, "a cookie of {} bytes", n.len() + v.len());
        }
        let mut sent = pairs_of(&lines);
        let count = sent.len();
        let want = match &tamper {
            Tamper::Keep => Some(value.clone()),
            Tamper::Shuffle(keys) => {
                sent.push(("other".into(), "1".into()));
                sent.push((format!("{name}-login"), "x".into()));
                let mut keyed: Vec<_> = sent.into_iter().zip(keys.iter()).collect();
                keyed.sort_by_key(|(_, k)| **k);
                sent = keyed.into_iter().map(|(p, _)| p).collect();
                Some(value.clone())
            }
            Tamper::Drop(i) => {
                sent.remove(i % count);
                None
            }
            Tamper::Leftover(extra) => {
                for i in count..count + extra {
                    sent.push((chunk_name(&name, i), "stale".into()));
                }
                Some(value.clone())
            }
        };
        let check = header_of(&sent);
        prop_assert_eq!(joined(&check, &name), want);
        // Whatever was sent, writing the value again leaves exactly its own cookies.
        let present = present_chunks(&check, &name);
        let rewrite = value_cookies(&cfg, &value, present)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut jar = testkit::Jar::default();
        let as_headers: Vec<(http::HeaderName, String)> = sent
            .iter()
            .map(|(n, v)| (http::header::SET_COOKIE, format!("{n}={v}")))
            .collect();
        jar.apply(&as_headers, NOW);
        let rewrite_headers: Vec<(http::HeaderName, String)> = rewrite
            .iter()
            .map(|l| (http::header::SET_COOKIE, l.clone()))
            .collect();
        jar.apply(&rewrite_headers, NOW);
        let after = jar.send(CheckRequest::new("GET", "http", "gw", "/"), NOW);
        prop_assert_eq!(joined(&after, &name), Some(value.clone()));
        for i in count..MAX_CHUNKS {
            prop_assert_eq!(after.cookie(&chunk_name(&name, i)), None, "chunk {} left over", i);
        }
    }

    #[test]
    fn cookie_sessions_round_trip_through_seal_chunks_and_open(
        id_token in value_up_to(12_000),
        access_token in value_up_to(2_000),
        refresh_token in prop::option::of(value_up_to(1_000)),
        subject in "\\PC{0,20}",
    ) {
        let route = cookie_route();
        let data = SessionData {
            id_token,
            access_token,
            refresh_token,
            expires_at: NOW + 300,
            subject,
            created_at: NOW,
        };
        let sealed = route
            .seal_cookie(&data)
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .ok_or_else(|| TestCaseError::fail("cookie mode seals"))?;
        let name = &route.config.session.cookie.name;
        match value_cookies(&route.config.session.cookie, &sealed, 0) {
            Ok(lines) => {
                let check = header_of(&pairs_of(&lines));
                let value = joined(&check, name)
                    .ok_or_else(|| TestCaseError::fail("the chunks join"))?;
                let key = route
                    .cookie_cipher
                    .as_ref()
                    .ok_or_else(|| TestCaseError::fail("cookie mode has a key"))?;
                prop_assert_eq!(route.open_cookie(key, &value), Some(data));
            }
            Err(e) => {
                prop_assert!(sealed.len() > CHUNK_BYTES * MAX_CHUNKS, "{}", e);
                prop_assert!(e.to_string().contains("use Redis sessions"));
            }
        }
    }
}

fn cookie_route() -> &'static crate::flow::Route {
    static FLOW: std::sync::OnceLock<crate::flow::Flow> = std::sync::OnceLock::new();
    testkit::route(FLOW.get_or_init(|| {
        let text = testkit::SEED.replace(
            "redis:\n            cookieName: keycloak-session\n            options:\n              host: ${REDIS_HOST}:${REDIS_PORT}\n",
            "cookie: {}\n",
        );
        let clock = ManualClock::new(NOW);
        let loaded = testkit::load(&text, &testkit::seed_env("http://127.0.0.1:1", "x:1"));
        assert!(matches!(
            loaded.auth_configs[0].session.store,
            crate::config::StoreConfig::Cookie { .. }
        ));
        testkit::flow_with_store(&loaded, Observed::memory(&clock), &clock)
    }))
}

#[test]
fn values_at_each_chunk_boundary_round_trip_and_one_more_byte_is_refused() {
    let cfg = cookie_cfg(NAME);
    for n in 1..=MAX_CHUNKS {
        for len in [n * CHUNK_BYTES - 1, n * CHUNK_BYTES, n * CHUNK_BYTES + 1] {
            let value = "v".repeat(len);
            match value_cookies(&cfg, &value, 0) {
                Ok(lines) => {
                    assert!(len <= CHUNK_BYTES * MAX_CHUNKS, "{len} bytes accepted");
                    assert_eq!(lines.len(), len.div_ceil(CHUNK_BYTES), "{len}");
                    let check = header_of(&pairs_of(&lines));
                    assert_eq!(
                        joined(&check, NAME).as_deref(),
                        Some(value.as_str()),
                        "{len}"
                    );
                }
                Err(e) => {
                    assert_eq!(len, CHUNK_BYTES * MAX_CHUNKS + 1, "{len} refused: {e}");
                }
            }
        }
    }
}

/// `session.cookieOptions` as written in a manifest (`None`: the field is absent).
#[derive(Debug, Clone)]
struct Options {
    max_age: Option<i64>,
    not_secure: Option<bool>,
    http_only: Option<bool>,
    path: Option<String>,
    domain: Option<String>,
    same_site: Option<&'static str>,
}

fn options() -> impl Strategy<Value = Options> {
    (
        prop::option::of(prop_oneof![Just(0i64), Just(1), 1i64..100_000_000]),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
        prop::option::of("/[a-zA-Z0-9._~%!&'()*+,=:@/-]{0,12}"),
        prop::option::of(prop_oneof![
            Just(String::new()),
            "\\.?[a-z0-9-]{1,10}(\\.[a-z0-9-]{1,6}){0,2}",
        ]),
        prop::option::of(prop::sample::select(vec![
            "DefaultMode",
            "LaxMode",
            "StrictMode",
            "NoneMode",
            "Lax",
            "Strict",
            "None",
            "",
        ])),
    )
        .prop_map(
            |(max_age, not_secure, http_only, path, domain, same_site)| Options {
                max_age,
                not_secure,
                http_only,
                path,
                domain,
                same_site,
            },
        )
}

impl Options {
    fn manifest(&self) -> String {
        let mut fields = Vec::new();
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        if let Some(v) = self.max_age {
            fields.push(format!("maxAge: {v}"));
        }
        if let Some(v) = self.not_secure {
            fields.push(format!("notSecure: {v}"));
        }
        if let Some(v) = self.http_only {
            fields.push(format!("httpOnly: {v}"));
        }
        if let Some(v) = &self.path {
            fields.push(format!("path: {}", q(v)));
        }
        if let Some(v) = &self.domain {
            fields.push(format!("domain: {}", q(v)));
        }
        if let Some(v) = self.same_site {
            fields.push(format!("sameSite: {}", q(v)));
        }
        testkit::SEED.replace(
            "          failOnFetchFailure: true\n",
            &format!(
                "          failOnFetchFailure: true\n          cookieOptions: {{{}}}\n",
                fields.join(", ")
            ),
        )
    }

    fn secure(&self) -> bool {
        !self.not_secure.unwrap_or(false)
    }

    fn same_site(&self) -> Option<cookie::SameSite> {
        match self.same_site? {
            "LaxMode" | "Lax" => Some(cookie::SameSite::Lax),
            "StrictMode" | "Strict" => Some(cookie::SameSite::Strict),
            "NoneMode" | "None" => Some(cookie::SameSite::None),
            _ => None,
        }
    }
}

proptest! {
    #![proptest_config(cases(128))]

    #[test]
    fn set_cookie_attributes_always_follow_cookie_options(opts in options()) {
        let env = testkit::seed_env("http://127.0.0.1:1", "127.0.0.1:1");
        let loaded = match crate::config::load_str("options.yaml", &opts.manifest(), &env) {
            Ok(l) => l,
            Err(e) => {
                // The one combination refused: SameSite=None without Secure.
                prop_assert!(
                    opts.same_site() == Some(cookie::SameSite::None) && !opts.secure(),
                    "refused: {}", e
                );
                prop_assert!(e.to_string().contains("session.cookieOptions.sameSite"), "{}", e);
                return Ok(());
            }
        };
        let cfg = &loaded.auth_configs[0];
        let c = &cfg.session.cookie;
        let id = SessionId::generate();
        let long = "v".repeat(CHUNK_BYTES * 2 + 5);
        let mut lines: Vec<(String, Option<i64>)> = Vec::new();
        let session_max_age = match opts.max_age {
            None => Some(30 * 24 * 3600),
            Some(0) => None,
            Some(n) => Some(n),
        };
        lines.push((session_cookie(c, &id), session_max_age));
        for l in value_cookies(c, &long, 4).map_err(|e| TestCaseError::fail(e.to_string()))? {
            let expect = if l.contains(&format!("{}.3=", c.name)) { Some(0) } else { session_max_age };
            lines.push((l, expect));
        }
        for l in removal_cookies(c, 3) {
            lines.push((l, Some(0)));
        }
        let check = CheckRequest::new("GET", "http", "gw", "/");
        lines.push((binding::add(cfg, &check, "b1"), Some(crate::state::STATE_TTL_SECS)));
        lines.push((binding::remove(cfg, &["b1".into()], "b1"), Some(0)));
        for (line, max_age) in lines {
            let parsed = cookie::Cookie::parse(line.as_str())
                .map_err(|e| TestCaseError::fail(format!("{line:?}: {e}")))?;
            let path = opts.path.clone().unwrap_or_else(|| "/".into());
            prop_assert_eq!(parsed.path(), Some(path.as_str()), "{}", line);
            let domain = opts.domain.as_deref().filter(|d| !d.is_empty()).map(|d| d.trim_start_matches('.'));
            prop_assert_eq!(parsed.domain(), domain, "{}", line);
            prop_assert_eq!(parsed.secure(), Some(opts.secure()).filter(|s| *s), "{}", line);
            prop_assert_eq!(
                parsed.http_only(),
                Some(opts.http_only.unwrap_or(true)).filter(|h| *h),
                "{}", line
            );
            prop_assert_eq!(parsed.same_site(), opts.same_site(), "{}", line);
            prop_assert_eq!(parsed.max_age().map(|d| d.whole_seconds()), max_age, "{}", line);
        }
    }
}
