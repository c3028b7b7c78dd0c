//! The simulated network: every message is an in-process call (`tower::Service`) with a
//! seeded delay, and may be dropped. Three kinds of link:
//! - browser → IdP (the mock-idp router),
//! - extauth → IdP ([`IdpLink`], injected into extauth's `Provider`),
//! - browser → gateway → extauth (the forward-auth HTTP router, as Caddy's `forward_auth`
//!   calls it) → upstream.
//!
//! A delay moves the simulated clock and yields a drawn number of times: concurrent
//! messages overtake each other (reordering) deterministically. What the links see feeds the invariants: the refresh
//! tokens extauth presents, and how many faults actually touched a message.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http_body_util::BodyExt as _;
use rand::{Rng as _, SeedableRng as _};
use tower::ServiceExt as _;

/// reqwest's whole-request bound in extauth's provider (`REQUEST_TIMEOUT`): the in-process
/// link applies the same, so a slow IdP times out as it would over TCP.
const IDP_TIMEOUT: Duration = Duration::from_secs(10);

/// A message's answer: status, headers, body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Simulated Unix seconds when the message reached the server that answered it (for the
    /// gateway: when it asked extauth). Other tasks may move the shared clock while an
    /// answer travels back, so what the server decided is judged at this time, not at the
    /// time the answer arrives.
    pub reached_at: i64,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Faults of the links, switched by the fault schedule.
#[derive(Debug, Default, Clone)]
pub struct LinkFaults {
    /// extauth → IdP: extra delay range (ms), `None`: normal.
    pub idp_slow: Option<(u64, u64)>,
    /// extauth → IdP: per-mille of messages reset before they arrive.
    pub idp_reset_permille: u32,
    /// Every link: extra delay range (ms) for reordering bursts.
    pub jitter: Option<(u64, u64)>,
}

/// What the extauth → IdP link saw of refresh grants.
#[derive(Debug, Default)]
pub struct RefreshLedger {
    /// Refresh tokens (their hash) that the IdP already honoured, with the Redis loss
    /// count then: after a failover or data loss the store may hand extauth the session
    /// with the spent token again, which is the loss, not a second grant by extauth.
    pub spent: BTreeMap<u64, u64>,
    /// Redis losses (failover, data loss) so far.
    pub redis_losses: u64,
    /// A refresh token presented again after the IdP honoured it: (hash, step of first).
    pub reused: Vec<u64>,
    /// Successful refresh grants.
    pub grants: u64,
    /// Tokens whose grant's answer was lost (a timeout after the IdP acted): extauth cannot
    /// know they are spent, so presenting them again is no fault of its own.
    pub excused: std::collections::BTreeSet<u64>,
}

/// The network. Cheap to clone.
#[derive(Clone)]
pub struct Net {
    inner: Arc<Inner>,
}

struct Inner {
    idp: Router,
    /// The extauth replicas' forward-auth routers; a restart replaces one.
    replicas: Mutex<Vec<Router>>,
    rng: Mutex<rand::rngs::StdRng>,
    time: super::clock::SimTime,
    pub faults: Mutex<LinkFaults>,
    /// Messages where a fault acted (delay past a timeout, reset, injected error).
    touched: Mutex<u64>,
    /// Messages sent on every link.
    messages: Mutex<u64>,
    /// IdP answers lost after the IdP acted (timeouts): a refresh token spent in vain.
    lost_answers: Mutex<u64>,
    ledger: Mutex<RefreshLedger>,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Net {
    pub fn new(idp: Router, time: super::clock::SimTime, seed: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                idp,
                replicas: Mutex::new(Vec::new()),
                rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(
                    seed ^ 0x6e65_7477_6f72_6b00,
                )),
                time,
                faults: Mutex::new(LinkFaults::default()),
                touched: Mutex::new(0),
                messages: Mutex::new(0),
                lost_answers: Mutex::new(0),
                ledger: Mutex::new(RefreshLedger::default()),
            }),
        }
    }

    pub fn set_faults(&self, faults: LinkFaults) {
        *lock(&self.inner.faults) = faults;
    }

    pub fn faults(&self) -> LinkFaults {
        lock(&self.inner.faults).clone()
    }

    /// Adds an extauth replica behind the gateway.
    pub fn add_replica(&self, router: Router) {
        lock(&self.inner.replicas).push(router);
    }

    /// Replaces replica `i` (a restart: a fresh router over the same store and key).
    pub fn replace_replica(&self, i: usize, router: Router) {
        let mut replicas = lock(&self.inner.replicas);
        if let Some(slot) = replicas.get_mut(i) {
            *slot = router;
        }
    }

    pub fn replica_count(&self) -> usize {
        lock(&self.inner.replicas).len()
    }

    pub fn touched(&self) -> u64 {
        *lock(&self.inner.touched)
    }

    pub fn touch(&self) {
        *lock(&self.inner.touched) += 1;
    }

    pub fn messages(&self) -> u64 {
        *lock(&self.inner.messages)
    }

    pub fn lost_answers(&self) -> u64 {
        *lock(&self.inner.lost_answers)
    }

    pub fn take_reused_refresh_tokens(&self) -> Vec<u64> {
        std::mem::take(&mut lock(&self.inner.ledger).reused)
    }

    /// Redis lost writes (failover, data loss).
    pub fn note_redis_loss(&self) {
        lock(&self.inner.ledger).redis_losses += 1;
    }

    pub fn refresh_grants(&self) -> u64 {
        lock(&self.inner.ledger).grants
    }

    fn draw(&self, range: (u64, u64)) -> u64 {
        if range.1 <= range.0 {
            return range.0;
        }
        lock(&self.inner.rng).random_range(range.0..=range.1)
    }

    fn chance(&self, permille: u32) -> bool {
        permille > 0 && lock(&self.inner.rng).random_range(0..1000) < permille
    }

    /// One hop's delay: a few ms and a few yields (other messages may overtake this one),
    /// more of both under the jitter fault.
    async fn hop_delay(&self) {
        let jitter = self.faults().jitter;
        let mut ms = self.draw((0, 5));
        let mut yields = self.draw((0, 3));
        if let Some(range) = jitter {
            ms += self.draw(range);
            yields += self.draw((0, 40));
        }
        self.inner
            .time
            .pause(
                Duration::from_millis(ms),
                u32::try_from(yields).unwrap_or(0),
            )
            .await;
    }

    /// A browser's message to the IdP.
    pub async fn browser_to_idp(&self, request: http::Request<Vec<u8>>) -> Answer {
        *lock(&self.inner.messages) += 1;
        self.hop_delay().await;
        let reached_at = self.inner.time.now_secs();
        match call(&self.inner.idp, request).await {
            Ok(answer) => Answer {
                reached_at,
                ..answer
            },
            // The browser sees a reset as a network error page.
            Err(_) => Answer {
                status: 0,
                headers: Vec::new(),
                body: Vec::new(),
                reached_at,
            },
        }
    }

    /// extauth's message to the IdP (through [`IdpLink`]).
    async fn extauth_to_idp(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<(http::StatusCode, Vec<u8>), String> {
        *lock(&self.inner.messages) += 1;
        let refresh = refresh_token_of(&request);
        let faults = self.faults();
        self.hop_delay().await;
        if self.chance(faults.idp_reset_permille) {
            self.touch();
            return Err("connection reset by peer (simulated)".into());
        }
        // A slow IdP is slow before it acts, after it acts, or both. Past extauth's
        // request timeout the answer is lost: if the IdP acted first, extauth does not know
        // what it did (a refresh token spent, say).
        let (before, after) = faults
            .idp_slow
            .map_or((0, 0), |r| (self.draw(r) / 2, self.draw(r) / 2));
        let timeout = u64::try_from(IDP_TIMEOUT.as_millis()).unwrap_or(u64::MAX);
        if before >= timeout {
            self.inner.time.pause(IDP_TIMEOUT, 1).await;
            self.touch();
            return Err("operation timed out (simulated)".into());
        }
        self.inner
            .time
            .pause(Duration::from_millis(before), 1)
            .await;
        let acted = call(&self.inner.idp, request).await;
        if let (Some(token), Ok(answer)) = (refresh, &acted) {
            let mut ledger = lock(&self.inner.ledger);
            let losses = ledger.redis_losses;
            if ledger.spent.get(&token) == Some(&losses) && !ledger.excused.contains(&token) {
                ledger.reused.push(token);
            }
            if answer.status == 200 {
                ledger.grants += 1;
                ledger.spent.insert(token, losses);
            }
        }
        if before + after >= timeout {
            self.inner
                .time
                .pause(Duration::from_millis(timeout - before), 1)
                .await;
            self.touch();
            if acted.is_ok() {
                *lock(&self.inner.lost_answers) += 1;
                if let Some(token) = refresh {
                    lock(&self.inner.ledger).excused.insert(token);
                }
            }
            return Err("operation timed out (simulated)".into());
        }
        self.inner.time.pause(Duration::from_millis(after), 1).await;
        let answer = match acted {
            Ok(answer) => answer,
            Err(e) => {
                self.touch();
                return Err(e);
            }
        };
        let slow = (before + after > 0).then_some(());
        if slow.is_some() || answer.status >= 500 {
            self.touch();
        }
        let status =
            http::StatusCode::from_u16(answer.status).unwrap_or(http::StatusCode::BAD_GATEWAY);
        Ok((status, answer.body))
    }

    /// A browser's (or API client's) message to the app: the gateway asks extauth replica
    /// `replica` (forward auth, `X-Forwarded-*` from a trusted loopback peer) and either
    /// relays its denial or forwards to the upstream, which answers 200 with the identity
    /// headers it received.
    pub async fn to_gateway(
        &self,
        replica: usize,
        method: &str,
        path_and_query: &str,
        headers: &[(String, String)],
    ) -> Answer {
        *lock(&self.inner.messages) += 1;
        self.hop_delay().await;
        let router = {
            let replicas = lock(&self.inner.replicas);
            replicas[replica % replicas.len()].clone()
        };
        let mut check = http::Request::builder()
            .method(method)
            .uri(path_and_query)
            .header("host", super::APP_HOST)
            .header("x-forwarded-method", method)
            .header("x-forwarded-proto", "http")
            .header("x-forwarded-host", super::APP_HOST)
            .header("x-forwarded-uri", path_and_query);
        for (name, value) in headers {
            check = check.header(name.as_str(), value.as_str());
        }
        let Ok(check) = check.body(Vec::new()) else {
            return Answer {
                status: 0,
                headers: Vec::new(),
                body: b"the simulation built a bad request".to_vec(),
                reached_at: self.inner.time.now_secs(),
            };
        };
        let reached_at = self.inner.time.now_secs();
        let answer = match call(&router, check).await {
            Ok(answer) => Answer {
                reached_at,
                ..answer
            },
            Err(e) => Answer {
                status: 502,
                headers: Vec::new(),
                body: e.into_bytes(),
                reached_at,
            },
        };
        if answer.status != 200 {
            return answer;
        }
        // The upstream: 200, echoing what identity it was given.
        self.hop_delay().await;
        let mut upstream = Answer {
            status: 200,
            headers: answer
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
                .cloned()
                .collect(),
            body: b"upstream".to_vec(),
            reached_at: answer.reached_at,
        };
        if let Some(jwt) = answer.header("jwt") {
            upstream
                .headers
                .push(("x-upstream-saw-jwt".into(), jwt.to_owned()));
        }
        upstream
    }
}

/// One in-process call; a body that fails to arrive is a reset.
async fn call(router: &Router, request: http::Request<Vec<u8>>) -> Result<Answer, String> {
    let mut request = request.map(Body::from);
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let response = router
        .clone()
        .oneshot(request)
        .await
        .map_err(|e| format!("connection reset: {e}"))?;
    let status = response.status().as_u16();
    let headers = crate::header_pairs(response.headers());
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("connection reset by peer: {e}"))?
        .to_bytes()
        .to_vec();
    Ok(Answer {
        status,
        headers,
        body,
        reached_at: 0,
    })
}

/// The refresh token of a `grant_type=refresh_token` request, hashed.
fn refresh_token_of(request: &http::Request<Vec<u8>>) -> Option<u64> {
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(request.body())
        .into_owned()
        .collect();
    if form.get("grant_type").map(String::as_str) != Some("refresh_token") {
        return None;
    }
    form.get("refresh_token")
        .map(|t| super::trace::fnv(t.as_bytes()))
}

/// extauth's way to the IdP in the simulation.
#[derive(Debug, Clone)]
pub struct IdpLink(pub Net);

impl extauth::oidc::IdpTransport for IdpLink {
    fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Pin<Box<dyn std::future::Future<Output = extauth::oidc::IdpAnswer> + Send>> {
        let net = self.0.clone();
        Box::pin(async move { net.extauth_to_idp(request).await })
    }
}
