//! Virtual users: browsers with two cookie jars (the app's, the IdP's) that follow
//! redirects and fill in the IdP's login form the way `login::http` does; sometimes two
//! tabs at once; and, with the ID token they were given upstream, API clients calling with
//! `Authorization: Bearer`. Every gateway answer goes through the [`Oracle`]'s checks.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::Duration;

use rand::{Rng as _, SeedableRng as _};
use url::Url;

use super::oracle::{Oracle, claims};
use super::redis::Removal;
use super::trace::Trace;
use super::world::{self, World};
use super::{APP_HOST, Options};

/// The session cookie's name (the seed's `cookieName`).
const SESSION_COOKIE: &str = "keycloak-session";
/// How many hops one navigation may take (login: about eight).
const MAX_HOPS: usize = 16;
/// The route the users call.
const LLM_PATH: &str = "/v1/chat/completions";
/// A session is expected valid while its user was let in within this many seconds: the
/// IdP session idles out after 1800 s, and the last IdP contact (login or refresh) may be
/// up to one access-token lifetime (300 s) before the last allowed call.
const VALID_IDLE_SECS: i64 = 1800 - 300 - 100;
/// ... and while it is younger than the IdP session's maximum (36000 s), with a margin.
const VALID_AGE_SECS: i64 = 36000 - 600;

/// What a user does in a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Open the app (logging in when sent to).
    Browse,
    /// Two tabs open the app at once.
    TwoTabs,
    /// Log out.
    Logout,
    /// Replay the last callback URL.
    Replay,
    /// A malformed request (a client's fault).
    Garbage,
    /// An API call with the last ID token as a bearer token.
    Api,
    /// Away for a while (tokens and IdP sessions expire), then browse.
    LongIdle,
}

impl Action {
    pub fn draw(rng: &mut rand::rngs::StdRng) -> Self {
        match rng.random_range(0..100u32) {
            0..55 => Action::Browse,
            55..65 => Action::TwoTabs,
            65..72 => Action::Logout,
            72..78 => Action::Replay,
            78..84 => Action::Garbage,
            84..93 => Action::Api,
            _ => Action::LongIdle,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Action::Browse => "browse",
            Action::TwoTabs => "two-tabs",
            Action::Logout => "logout",
            Action::Replay => "replay-callback",
            Action::Garbage => "garbage",
            Action::Api => "api",
            Action::LongIdle => "long-idle",
        }
    }
}

/// A browser's cookies for one site; `Max-Age` counts on simulated time.
#[derive(Debug, Default, Clone)]
struct Jar(BTreeMap<String, (String, Option<i64>)>);

impl Jar {
    fn apply<'a>(&mut self, set_cookies: impl Iterator<Item = &'a str>, now: i64) {
        for line in set_cookies {
            let Ok(c) = cookie::Cookie::parse(line) else {
                continue;
            };
            let max_age = c.max_age().map(|d| d.whole_seconds());
            if max_age.is_some_and(|s| s <= 0) || c.value().is_empty() {
                self.0.remove(c.name());
            } else {
                self.0.insert(
                    c.name().to_owned(),
                    (c.value().to_owned(), max_age.map(|s| now.saturating_add(s))),
                );
            }
        }
    }

    fn header(&mut self, now: i64) -> Option<String> {
        self.0.retain(|_, (_, exp)| exp.is_none_or(|e| now < e));
        if self.0.is_empty() {
            return None;
        }
        Some(
            self.0
                .iter()
                .map(|(n, (v, _))| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }

    fn get(&self, name: &str, now: i64) -> Option<String> {
        self.0
            .get(name)
            .filter(|(_, exp)| exp.is_none_or(|e| now < e))
            .map(|(v, _)| v.clone())
    }
}

#[derive(Debug, Default)]
struct Browser {
    app: Jar,
    idp: Jar,
    /// The last callback URL (path and query) it was sent to, and whether that callback
    /// completed a login (only then is sending it again a replay).
    last_callback: Option<(String, bool)>,
    /// The last ID token the upstream saw for it.
    id_token: Option<String>,
}

/// What kind of gateway request a hop is, for the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hop {
    App,
    Callback,
    Replay,
    Logout,
    Garbage,
    Bearer,
}

/// The users and the bookkeeping of one run.
pub struct Sim<'w> {
    world: &'w World,
    browsers: Vec<RefCell<Browser>>,
    oracle: RefCell<Oracle>,
    trace: RefCell<Trace>,
    rng: RefCell<rand::rngs::StdRng>,
    step: Cell<usize>,
}

impl<'w> Sim<'w> {
    pub fn new(world: &'w World, options: &Options) -> Self {
        Self {
            world,
            browsers: (0..options.users)
                .map(|_| RefCell::new(Browser::default()))
                .collect(),
            oracle: RefCell::new(Oracle::default()),
            trace: RefCell::new(Trace::default()),
            rng: RefCell::new(rand::rngs::StdRng::seed_from_u64(
                options.seed ^ 0x7573_6572_7300_0000,
            )),
            step: Cell::new(0),
        }
    }

    pub fn begin_step(&self, step: usize) {
        self.step.set(step);
    }

    /// A trace line.
    pub fn note(&self, line: String) {
        let t = self.world.time.elapsed().as_millis();
        self.trace.borrow_mut().push(format!("t={t}ms {line}"));
    }

    pub fn violated(&self) -> bool {
        self.oracle.borrow().violation.is_some()
    }

    /// Redis lost writes: sessions may be gone through no fault of extauth.
    pub fn redis_lost(&self) {
        self.world.net.note_redis_loss();
        self.oracle.borrow_mut().loss_events += 1;
    }

    fn now(&self) -> i64 {
        self.world.time.now_secs()
    }

    fn recent(&self) -> Vec<String> {
        self.trace.borrow().recent().cloned().collect()
    }

    fn check(&self, ok: bool, invariant: &'static str, detail: impl FnOnce() -> String) {
        let step = self.step.get();
        self.oracle
            .borrow_mut()
            .check(ok, invariant, detail, step, || self.recent());
    }

    /// Losses so far: Redis events plus IdP answers lost after the IdP acted.
    fn losses(&self) -> u64 {
        self.oracle.borrow().loss_events + self.world.net.lost_answers()
    }

    /// Faults that touched a message so far.
    fn touched(&self) -> u64 {
        self.world.net.touched() + self.world.redis.touched()
    }

    /// End of a step: the refresh ledger.
    pub fn end_step(&self) {
        let reused = self.world.net.take_reused_refresh_tokens();
        self.check(reused.is_empty(), "at most one refresh-token grant per rotation", || {
            format!(
                "extauth presented {} refresh token(s) the IdP had already honoured (a second grant for one rotation)",
                reused.len()
            )
        });
    }

    /// The trace hash, its length, checks, logins and the violation.
    pub fn finish(&self) -> (u64, u64, u64, u64, Option<super::Violation>) {
        let trace = self.trace.borrow();
        let oracle = self.oracle.borrow();
        (
            trace.hash(),
            trace.lines(),
            oracle.checks,
            oracle.logins,
            oracle.violation.clone(),
        )
    }

    /// User `u` does `action` after `think_ms` of thinking.
    pub async fn act(&self, u: usize, action: Action, think_ms: u64) {
        self.world.sleep(Duration::from_millis(think_ms)).await;
        self.note(format!("u{u} {}", action.name()));
        match action {
            Action::Browse => {
                self.navigate(u, LLM_PATH, Hop::App).await;
            }
            Action::TwoTabs => {
                futures::future::join(
                    self.navigate(u, "/v1/models", Hop::App),
                    self.navigate(u, LLM_PATH, Hop::App),
                )
                .await;
            }
            Action::Logout => {
                self.navigate(u, "/logout", Hop::Logout).await;
            }
            Action::Replay => {
                let last = self.browsers[u].borrow().last_callback.clone();
                match last {
                    Some((path, true)) => {
                        self.navigate(u, &path, Hop::Replay).await;
                    }
                    _ => {
                        self.navigate(u, LLM_PATH, Hop::App).await;
                    }
                }
            }
            Action::Garbage => self.garbage(u).await,
            Action::Api => self.api(u).await,
            Action::LongIdle => {
                let secs = self.rng.borrow_mut().random_range(600..=4 * 3600u64);
                self.world.sleep(Duration::from_secs(secs)).await;
                self.navigate(u, LLM_PATH, Hop::App).await;
            }
        }
    }

    /// After the faults healed: each user gets a 200 within two navigations (the first may
    /// have to log in).
    pub async fn all_recover(&self) {
        for u in 0..self.browsers.len() {
            let mut ok = false;
            for _ in 0..3 {
                if self.navigate(u, LLM_PATH, Hop::App).await == 200 {
                    ok = true;
                    break;
                }
                if self.violated() {
                    return;
                }
            }
            self.check(
                ok,
                "after the faults heal every user gets a 200 again",
                || format!("user {u} got no 200 in three tries after every fault healed"),
            );
        }
    }

    /// A malformed request without the browser's cookies; it must be refused, never 5xx.
    async fn garbage(&self, u: usize) {
        let pick = self.rng.borrow_mut().random_range(0..6u32);
        let (path, cookie) = match pick {
            0 => ("/openai?code=abc".to_owned(), None),
            1 => ("/openai?state=not-a-state&code=abc".to_owned(), None),
            2 => ("/openai?error=access_denied".to_owned(), None),
            3 => ("/openai?state=%zz&code=%".to_owned(), None),
            4 => (
                LLM_PATH.to_owned(),
                Some(format!("{SESSION_COOKIE}=not-a-session-id")),
            ),
            _ => (
                LLM_PATH.to_owned(),
                Some(format!(
                    "{SESSION_COOKIE}=\"{}\"; {SESSION_COOKIE}=x",
                    "A".repeat(104)
                )),
            ),
        };
        let mut headers = Vec::new();
        if let Some(c) = cookie {
            headers.push(("cookie".to_owned(), c));
        }
        self.gateway_hop(u, "GET", &path, headers, Hop::Garbage, None)
            .await;
    }

    /// An API call with the user's last ID token as a bearer token.
    async fn api(&self, u: usize) {
        let token = self.browsers[u].borrow().id_token.clone();
        let Some(token) = token else {
            self.navigate(u, LLM_PATH, Hop::App).await;
            return;
        };
        let headers = vec![("authorization".to_owned(), format!("Bearer {token}"))];
        self.gateway_hop(u, "POST", LLM_PATH, headers, Hop::Bearer, Some(&token))
            .await;
    }

    /// Opens `path` on the app and follows where it leads; the final status.
    async fn navigate(&self, u: usize, path: &str, first: Hop) -> u16 {
        let Ok(base) = Url::parse(&format!("http://{APP_HOST}/")) else {
            return 0;
        };
        let Ok(mut url) = base.join(path) else {
            return 0;
        };
        let mut method = "GET";
        let mut form: Option<String> = None;
        let mut kind = first;
        let mut posted = false;
        for _ in 0..MAX_HOPS {
            let path_and_query = match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_owned(),
            };
            let answer = match url.host_str() {
                Some(APP_HOST) => {
                    if url.path() == "/openai" && kind != Hop::Replay {
                        kind = Hop::Callback;
                        self.browsers[u].borrow_mut().last_callback =
                            Some((path_and_query.clone(), false));
                    }
                    let now = self.now();
                    let cookie = self.browsers[u].borrow_mut().app.header(now);
                    let headers = cookie
                        .map(|c| ("cookie".to_owned(), c))
                        .into_iter()
                        .collect();
                    let answer = self
                        .gateway_hop(u, method, &path_and_query, headers, kind, None)
                        .await;
                    if answer.status == 200 {
                        return 200;
                    }
                    answer
                }
                Some("localhost") => {
                    let now = self.now();
                    let cookie = self.browsers[u].borrow_mut().idp.header(now);
                    let mut request = http::Request::builder()
                        .method(method)
                        .uri(&path_and_query)
                        .header("host", "localhost:8180");
                    if let Some(c) = cookie {
                        request = request.header("cookie", c);
                    }
                    let body = match form.take() {
                        Some(f) => {
                            request =
                                request.header("content-type", "application/x-www-form-urlencoded");
                            f.into_bytes()
                        }
                        None => Vec::new(),
                    };
                    let Ok(request) = request.body(body) else {
                        return 0;
                    };
                    let answer = self.world.net.browser_to_idp(request).await;
                    let now = self.now();
                    self.browsers[u]
                        .borrow_mut()
                        .idp
                        .apply(answer.all("set-cookie"), now);
                    self.note(format!(
                        "u{u} idp {method} {} -> {}",
                        url.path(),
                        answer.status
                    ));
                    answer
                }
                _ => return 0,
            };
            if (300..400).contains(&answer.status) {
                let Some(next) = answer.header("location").and_then(|l| url.join(l).ok()) else {
                    return answer.status;
                };
                url = next;
                method = "GET";
                // Only the first hop is the replay; where it leads is ordinary browsing.
                kind = Hop::App;
                continue;
            }
            if answer.status == 200 && url.host_str() == Some("localhost") && !posted {
                let html = String::from_utf8_lossy(&answer.body);
                if let Some(login) = crate::login::http::LoginForm::find(&html)
                    && let Ok(action) = url.join(&login.action)
                {
                    posted = true;
                    form = Some(
                        url::form_urlencoded::Serializer::new(String::new())
                            .append_pair("username", &world::username(u))
                            .append_pair("password", world::PASSWORD)
                            .append_pair("credentialId", "")
                            .finish(),
                    );
                    url = action;
                    method = "POST";
                    continue;
                }
            }
            return answer.status;
        }
        0
    }

    /// One request through the gateway, checked.
    async fn gateway_hop(
        &self,
        u: usize,
        method: &str,
        path_and_query: &str,
        headers: Vec<(String, String)>,
        kind: Hop,
        bearer: Option<&str>,
    ) -> super::net::Answer {
        let world = self.world;
        let now = self.now();
        let sent_session = if kind == Hop::Garbage || kind == Hop::Bearer {
            None
        } else {
            self.browsers[u].borrow().app.get(SESSION_COOKIE, now)
        };
        let key = sent_session.as_deref().and_then(|s| world.storage_key(s));
        let existed = key.as_deref().is_some_and(|k| world.redis.contains(k));
        let sets_before = key.as_deref().map_or(0, |k| world.redis.sets_of(k));
        let touched = self.touched();
        // A loss while the request is in flight may take the session it writes.
        let losses_before = self.losses();
        let replica = self
            .rng
            .borrow_mut()
            .random_range(0..world.net.replica_count());
        let answer = world
            .net
            .to_gateway(replica, method, path_and_query, &headers)
            .await;
        let now = self.now();
        self.browsers[u]
            .borrow_mut()
            .app
            .apply(answer.all("set-cookie"), now);
        self.oracle
            .borrow_mut()
            .removals(world.redis.take_removals());
        self.note(format!(
            "u{u} gw{replica} {method} {} {:?} -> {}",
            path_and_query.split('?').next().unwrap_or(""),
            kind,
            answer.status
        ));

        // 5: no 5xx unless a fault touched something meanwhile.
        let faulted = self.touched() != touched;
        self.check(
            answer.status < 500 || faulted,
            "no 5xx for a client's fault",
            || {
                format!(
                    "user {u}: {kind:?} {method} answered {} while no fault touched any message",
                    answer.status
                )
            },
        );
        if kind == Hop::Garbage {
            self.check(
                answer.status != 200,
                "no request allowed without a valid session",
                || format!("user {u}: a malformed request ({path_and_query}) was let through"),
            );
            return answer;
        }

        if answer.status == 200 {
            self.allowed(
                u,
                kind,
                bearer,
                sent_session.as_deref(),
                key.as_deref(),
                existed,
                sets_before,
                &answer,
            );
        }

        // 4: callbacks.
        let new_sessions: Vec<String> = answer
            .all("set-cookie")
            .filter_map(|l| cookie::Cookie::parse(l).ok())
            .filter(|c| {
                c.name() == SESSION_COOKIE
                    && !c.value().is_empty()
                    && c.max_age().is_none_or(|a| a.whole_seconds() > 0)
            })
            .map(|c| c.value().to_owned())
            .collect();
        if kind == Hop::Replay {
            self.check(
                new_sessions.is_empty(),
                "a completed login sets exactly one session",
                || {
                    format!(
                        "user {u}: a replayed callback set a session cookie (status {})",
                        answer.status
                    )
                },
            );
        } else if !new_sessions.is_empty() {
            if kind == Hop::Callback
                && let Some((_, completed)) = self.browsers[u].borrow_mut().last_callback.as_mut()
            {
                *completed = true;
            }
            self.login_completed(u, &new_sessions, answer.reached_at, losses_before);
        }

        // 2: a session that should be valid is not lost.
        if kind == Hop::App
            && let (Some(cookie), Some(key)) = (sent_session.as_deref(), key.as_deref())
        {
            let to_login = answer.status == 401
                || ((300..400).contains(&answer.status)
                    && answer
                        .header("location")
                        .is_some_and(|l| l.starts_with(world::IDP_BASE)));
            if to_login {
                self.lost_check(u, cookie, key, existed);
            }
        }
        if kind == Hop::Logout
            && (300..400).contains(&answer.status)
            && let Some(cookie) = sent_session.as_deref()
            && let Some(session) = self.oracle.borrow_mut().sessions.get_mut(cookie)
        {
            // Whatever the IdP does next, this session is over.
            session.ended = true;
        }
        answer
    }

    /// 1: an allowed request carried a valid session or bearer token of this user.
    #[allow(clippy::too_many_arguments)]
    fn allowed(
        &self,
        u: usize,
        kind: Hop,
        bearer: Option<&str>,
        cookie: Option<&str>,
        key: Option<&str>,
        existed: bool,
        sets_before: u64,
        answer: &super::net::Answer,
    ) {
        let me = world::username(u);
        // extauth decided at some time between the gateway asking it and the answer coming
        // back; other users' waits move the shared clock meanwhile (a four-hour idle can
        // land while this answer travels). So the token's validity and the session's last
        // use are judged at the earliest moment extauth can have decided.
        let asked = answer.reached_at;
        if kind == Hop::Bearer {
            let c = claims(bearer.unwrap_or(""));
            self.check(
                c.username.as_deref() == Some(me.as_str()),
                "no request allowed without a valid session",
                || {
                    format!(
                        "user {u}: a bearer call was let through for {:?}",
                        c.username
                    )
                },
            );
            // extauth (`openidconnect`) allows no leeway on `exp`: the token must still have
            // been valid when extauth was asked, as a lower bound of when it checked.
            self.check(c.exp.is_some_and(|exp| exp > asked), "no request allowed without a valid session", || {
                format!("user {u}: an expired bearer ID token (exp {:?}, extauth asked at {asked}, answer back at {}) was let through", c.exp, self.now())
            });
            return;
        }
        let owner = cookie.and_then(|c| self.oracle.borrow().sessions.get(c).map(|s| s.owner));
        self.check(
            owner == Some(u),
            "no request allowed without a valid session",
            || format!("user {u}: let through with a session cookie issued to {owner:?}"),
        );
        let written = key.is_some_and(|k| self.world.redis.sets_of(k) > sets_before);
        self.check(
            existed || written,
            "no request allowed without a valid session",
            || format!("user {u}: let through with a session that was not in the store"),
        );
        let jwt = answer.header("x-upstream-saw-jwt").map(str::to_owned);
        let c = claims(jwt.as_deref().unwrap_or(""));
        self.check(
            c.username.as_deref() == Some(me.as_str()),
            "no request allowed without a valid session",
            || format!("user {u}: the upstream saw the identity {:?}", c.username),
        );
        if let Some(c) = cookie
            && let Some(session) = self.oracle.borrow_mut().sessions.get_mut(c)
        {
            session.last_allowed_at = session.last_allowed_at.max(asked);
        }
        if jwt.is_some() {
            self.browsers[u].borrow_mut().id_token = jwt;
        }
    }

    /// 4: a callback that reached extauth at `at`, with `losses` loss events then, set
    /// `sessions`.
    fn login_completed(&self, u: usize, sessions: &[String], at: i64, losses: u64) {
        self.check(
            sessions.len() == 1,
            "a completed login sets exactly one session",
            || {
                format!(
                    "user {u}: one callback set {} session cookies",
                    sessions.len()
                )
            },
        );
        let value = &sessions[0];
        let fresh = !self.oracle.borrow().sessions.contains_key(value);
        self.check(fresh, "a completed login sets exactly one session", || {
            format!("user {u}: a login handed out a session id already issued")
        });
        let stored = self
            .world
            .storage_key(value)
            .is_some_and(|k| self.world.redis.sets_of(&k) >= 1);
        self.check(stored, "a completed login sets exactly one session", || {
            format!("user {u}: a login set a cookie whose session was never written")
        });
        let mut oracle = self.oracle.borrow_mut();
        oracle.sessions.insert(
            value.clone(),
            super::oracle::Session {
                owner: u,
                born_at: at,
                born_losses: losses,
                last_allowed_at: at,
                ended: false,
            },
        );
        oracle.logins += 1;
    }

    /// 2: `cookie` was sent to log in again; was the session meant to be valid?
    fn lost_check(&self, u: usize, cookie: &str, key: &str, existed: bool) {
        let now = self.now();
        let Some(session) = self.oracle.borrow().sessions.get(cookie).cloned() else {
            return;
        };
        let (born_at, born_losses, last_allowed_at) = (
            session.born_at,
            session.born_losses,
            session.last_allowed_at,
        );
        let expected_valid = session.owner == u
            && !session.ended
            && now - last_allowed_at.max(born_at) < VALID_IDLE_SECS
            && now - born_at < VALID_AGE_SECS
            && born_losses == self.losses();
        if !expected_valid {
            return;
        }
        let removed = self.oracle.borrow().removed.get(key).copied();
        let explained = !existed && matches!(removed, Some(Removal::Expired));
        self.check(explained, "no session lost except by Redis data loss", || {
            format!(
                "user {u}: sent to log in again {}s after its last allowed call and {}s after its login, with no Redis loss ({}; last removal {removed:?})",
                now - last_allowed_at,
                now - born_at,
                if existed { "the session was in the store" } else { "the session was gone from the store" }
            )
        });
    }
}
