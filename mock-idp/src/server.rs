//! Starting and stopping an IdP: [`MockIdp::builder`] → [`MockIdpBuilder::start`] →
//! [`RunningIdp`].
//!
//! The builder binds first (port 0 is the norm in tests), then derives the public base URL
//! (often containing the bound port), the issuers, and the shared state, and serves the router
//! on a background task until [`RunningIdp::shutdown`] or drop.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use url::Url;

use crate::clock::{Clock, MockClock, SystemClock};
use crate::error::Error;
use crate::faults::{Fault, Faults};
use crate::http::{self, AppState, LogoutError, LogoutReport, LogoutTarget, RealmState};
use crate::keys::{KeyRing, SigningAlg, SigningKey};
use crate::realm::Realm;
use crate::requests::{LoggedRequest, RequestLog};

/// How long a rotated-out key stays published by default (seconds).
pub const DEFAULT_KEY_OVERLAP: Duration = Duration::from_secs(3600);

/// How long one back-channel logout call may take by default.
pub const DEFAULT_BACKCHANNEL_LOGOUT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long [`RunningIdp::shutdown`] waits for open connections before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Entry point: `MockIdp::builder()`.
#[derive(Debug)]
pub struct MockIdp;

impl MockIdp {
    /// A builder with defaults: listen on `127.0.0.1:0`, public URL `http://<bound addr>`,
    /// the system clock and the process-wide signing key.
    pub fn builder() -> MockIdpBuilder {
        MockIdpBuilder {
            realms: Vec::new(),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            public: PublicBase::Listen,
            clock: Arc::new(SystemClock),
            signing_key: None,
            key_overlap: DEFAULT_KEY_OVERLAP,
            signing_alg: SigningAlg::RS256,
            rotate_every: None,
            backchannel_timeout: DEFAULT_BACKCHANNEL_LOGOUT_TIMEOUT,
            keep_expired: false,
        }
    }
}

#[derive(Debug, Clone)]
enum PublicBase {
    /// `http://<bound address>`.
    Listen,
    /// `http://<host>:<bound port>`.
    Host(String),
    /// As given.
    Url(Url),
}

/// Configures an IdP; [`start`](Self::start) binds and serves it.
#[derive(Debug)]
#[must_use = "a builder does nothing until `.start().await`"]
pub struct MockIdpBuilder {
    realms: Vec<Realm>,
    listen: SocketAddr,
    public: PublicBase,
    clock: Arc<dyn Clock>,
    signing_key: Option<Arc<SigningKey>>,
    key_overlap: Duration,
    signing_alg: SigningAlg,
    rotate_every: Option<Duration>,
    backchannel_timeout: Duration,
    keep_expired: bool,
}

impl MockIdpBuilder {
    /// How long one back-channel logout call (a `POST` of a logout token to a client's
    /// `backchannel.logout.url`) may take before it counts as failed. Default 5 s.
    pub fn backchannel_logout_timeout(mut self, timeout: Duration) -> Self {
        self.backchannel_timeout = timeout;
        self
    }

    /// Never drops expired SSO sessions, codes and refresh tokens (default: they are purged
    /// every 30 s of IdP time, as Keycloak's cleanup task does). For tests that set the clock
    /// back: a purged session could not come back, while one kept is valid again before its
    /// expiry, so the IdP's answers are a function of the time alone.
    pub fn keep_expired_sessions(mut self, keep: bool) -> Self {
        self.keep_expired = keep;
        self
    }

    /// Serves this realm at `/realms/<name>`. Call once per realm.
    pub fn realm(mut self, realm: Realm) -> Self {
        self.realms.push(realm);
        self
    }

    /// The address to bind. Default `127.0.0.1:0` (any free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// The public base URL, as browsers and relying parties reach the IdP (e.g. through a
    /// proxy). Issuers are `<public url>/realms/<name>`.
    pub fn public_url(mut self, url: Url) -> Self {
        self.public = PublicBase::Url(url);
        self
    }

    /// The public host; the public URL becomes `http://<host>:<bound port>`. Use
    /// `"localhost"` to keep the IdP's cookies apart from an app on `127.0.0.x`.
    pub fn public_host(mut self, host: impl Into<String>) -> Self {
        self.public = PublicBase::Host(host.into());
        self
    }

    /// The clock for every issued-at, expiry and lifetime check. Default: [`SystemClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The algorithm of the generated signing key (and of keys made by rotations). Default
    /// RS256 (with [`SigningKey::shared`]); PS256 and ES256 generate a key at start.
    pub fn signing_alg(mut self, alg: SigningAlg) -> Self {
        self.signing_alg = alg;
        self
    }

    /// The signing key. Default: [`SigningKey::shared`] (RS256), one per process.
    pub fn signing_key(mut self, key: Arc<SigningKey>) -> Self {
        self.signing_key = Some(key);
        self
    }

    /// How long a key rotated out stays in the JWKS (on the IdP clock). Default one hour.
    pub fn key_overlap(mut self, overlap: Duration) -> Self {
        self.key_overlap = overlap;
        self
    }

    /// Rotates the signing key every `period` of the IdP clock (checked on each request that
    /// uses keys; the next key is generated ahead of time). Default: never.
    pub fn rotate_keys_every(mut self, period: Duration) -> Self {
        self.rotate_every = Some(period);
        self
    }

    /// Binds, then serves in the background.
    pub async fn start(self) -> Result<RunningIdp, Error> {
        if self.realms.is_empty() {
            return Err(Error::NoRealm);
        }
        let listener = TcpListener::bind(self.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: self.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: self.listen,
            source,
        })?;
        let base_url = public_base(&self.public, addr)?;
        let (state, first_realm) = self.assemble(&base_url).await?;
        let issuers: Vec<String> = state.realms.values().map(|r| r.issuer.clone()).collect();
        let app = http::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    // A dropped sender also means "stop".
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "mock-idp server stopped with an error");
            }
        });
        tracing::info!(%addr, base_url = %base_url, ?issuers, "mock-idp started");
        Ok(RunningIdp {
            addr,
            base_url,
            state,
            first_realm,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// The IdP without a socket: its router, to be called in-process (`tower::Service`), and
    /// the handle for its clock, faults and keys. `public_url` must be set (nothing is bound
    /// to derive it from); requests should carry a `ConnectInfo<SocketAddr>` extension only
    /// for the admin API, which checks it. `harness sim` runs the IdP this way.
    pub async fn in_process(self) -> Result<(RunningIdp, axum::Router), Error> {
        if self.realms.is_empty() {
            return Err(Error::NoRealm);
        }
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let base_url = match &self.public {
            PublicBase::Url(_) => public_base(&self.public, addr)?,
            _ => {
                return Err(Error::PublicUrl {
                    url: String::new(),
                    reason: "an in-process IdP needs public_url",
                });
            }
        };
        let (state, first_realm) = self.assemble(&base_url).await?;
        let router = http::router(state.clone());
        Ok((
            RunningIdp {
                addr,
                base_url,
                state,
                first_realm,
                shutdown: None,
                task: None,
            },
            router,
        ))
    }

    /// Keys, realms and the shared state for an IdP at `base_url`; the first realm's name.
    async fn assemble(self, base_url: &Url) -> Result<(AppState, String), Error> {
        let signing = match self.signing_key {
            Some(k) => k,
            None if self.signing_alg == SigningAlg::RS256 => {
                tokio::task::spawn_blocking(SigningKey::shared)
                    .await
                    .map_err(|e| crate::keys::KeyError::Task(e.to_string()))??
            }
            None => SigningKey::generate_off_thread(self.signing_alg).await?,
        };
        let alg = signing.alg();
        let clock = Arc::new(MockClock::new(self.clock));
        let first_realm = self.realms[0].name().to_owned();
        let mut realms = HashMap::new();
        for (i, realm) in self.realms.into_iter().enumerate() {
            let name = realm.name().to_owned();
            // Each realm signs with its own keys, as in Keycloak: the first with the given
            // (or shared) key, the others with keys of their own.
            let key = if i == 0 {
                Arc::clone(&signing)
            } else {
                SigningKey::generate_off_thread(alg).await?
            };
            let key_ring = Arc::new(KeyRing::new(key, self.key_overlap.as_secs()));
            if let Some(every) = self.rotate_every {
                // The spare first: its generation must not eat into the first period.
                let spare = SigningKey::generate_off_thread(alg).await?;
                key_ring.schedule(every.as_secs(), clock.unix_seconds(), spare);
            }
            let state = RealmState::new(
                realm,
                issuer_url(base_url, &name),
                key_ring,
                self.keep_expired,
            );
            if realms.insert(name.clone(), Arc::new(state)).is_some() {
                return Err(Error::DuplicateRealm(name));
            }
        }
        let state = AppState {
            realms: Arc::new(realms),
            clock,
            faults: Arc::new(Faults::default()),
            log: Arc::new(RequestLog::default()),
            http: http::outgoing_client().map_err(Error::HttpClient)?,
            backchannel_timeout: self.backchannel_timeout,
        };
        Ok((state, first_realm))
    }
}

/// Validates or derives the public base URL; the result always ends in `/`.
fn public_base(public: &PublicBase, addr: SocketAddr) -> Result<Url, Error> {
    let mut url = match public {
        PublicBase::Listen => {
            // A wildcard bind is reached through loopback.
            let ip = match addr.ip() {
                IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                ip => ip,
            };
            let text = format!("http://{}/", SocketAddr::new(ip, addr.port()));
            Url::parse(&text).map_err(|_| Error::PublicUrl {
                url: text,
                reason: "not a URL",
            })?
        }
        PublicBase::Host(host) => {
            let text = format!("http://{host}:{}/", addr.port());
            let url = Url::parse(&text).map_err(|_| Error::PublicUrl {
                url: host.clone(),
                reason: "not a valid host name",
            })?;
            if url.path() != "/" || url.query().is_some() || url.username() != "" {
                return Err(Error::PublicUrl {
                    url: host.clone(),
                    reason: "expected a bare host name",
                });
            }
            url
        }
        PublicBase::Url(url) => url.clone(),
    };
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(Error::PublicUrl {
            url: url.to_string(),
            reason: "expected an http or https URL with a host",
        });
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::PublicUrl {
            url: url.to_string(),
            reason: "a public URL has no query or fragment",
        });
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// `<base>/realms/<name>` (the realm name percent-encoded as one path segment).
fn issuer_url(base: &Url, realm: &str) -> Url {
    let mut url = base.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().push("realms").push(realm);
    }
    url
}

/// A running IdP. Stops on [`shutdown`](Self::shutdown) or when dropped.
pub struct RunningIdp {
    addr: SocketAddr,
    base_url: Url,
    state: AppState,
    /// The first realm given to the builder (the one `published_kids` describes).
    first_realm: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for RunningIdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningIdp")
            .field("addr", &self.addr)
            .field("base_url", &self.base_url.as_str())
            .finish_non_exhaustive()
    }
}

impl RunningIdp {
    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The public base URL, ending in `/` (e.g. `http://localhost:41234/`).
    pub fn base_url(&self) -> Url {
        self.base_url.clone()
    }

    /// The issuer of a realm, e.g. `http://localhost:41234/realms/master` (no trailing
    /// slash, like Keycloak).
    pub fn issuer(&self, realm: &str) -> String {
        issuer_url(&self.base_url, realm).to_string()
    }

    /// The fault registry: `idp.faults().add(Fault::once(FaultKind::IdTokenNonce))`.
    ///
    /// Faults that need work when switched on (`signing_key_rotated`,
    /// `id_token_no_kid_multiple_keys`) must go through [`add_fault`](Self::add_fault).
    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }

    /// Switches a fault on, doing first what it needs (a key rotation, an extra key), exactly
    /// as `POST /admin/mock/faults` does. Returns its id.
    pub async fn add_fault(&self, fault: Fault) -> Result<u64, String> {
        http::add_fault(&self.state, fault).await
    }

    /// The IdP clock: `idp.clock().advance(300)`.
    pub fn clock(&self) -> &MockClock {
        &self.state.clock
    }

    /// The request log.
    pub fn request_log(&self) -> &RequestLog {
        &self.state.log
    }

    /// Every logged request, oldest first.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.state.log.all()
    }

    /// Rotates every realm's signing key (same algorithm); the old ones stay published for
    /// the overlap. Returns the first realm's new `kid`.
    pub async fn rotate_keys(&self) -> Result<String, String> {
        self.rotate(None).await
    }

    /// Rotates every realm to a new key of algorithm `alg`; the first realm's new `kid`.
    pub async fn rotate_keys_to(&self, alg: SigningAlg) -> Result<String, String> {
        self.rotate(Some(alg)).await
    }

    async fn rotate(&self, alg: Option<SigningAlg>) -> Result<String, String> {
        http::rotate(&self.state, &self.state.realms_or_all(None)?, alg).await?;
        self.published_kids()
            .into_iter()
            .next()
            .ok_or_else(|| "no key published".to_owned())
    }

    /// Ends SSO sessions without a browser, as `POST /admin/mock/logout` does: every client
    /// of each session with a `backchannel.logout.url` gets a logout token.
    pub async fn logout(&self, target: &LogoutTarget) -> Result<LogoutReport, LogoutError> {
        http::logout(&self.state, target).await
    }

    /// The first realm's published `kid`s, signing key first.
    pub fn published_kids(&self) -> Vec<String> {
        self.published_kids_of(&self.first_realm)
    }

    /// A realm's published `kid`s, signing key first (empty for an unknown realm). Each realm
    /// has its own keys, as in Keycloak.
    pub fn published_kids_of(&self, realm: &str) -> Vec<String> {
        self.state
            .realms
            .get(realm)
            .map(|rs| rs.key_ring.kids(self.state.now()))
            .unwrap_or_default()
    }

    /// Stops accepting connections and waits (up to 5 s) for open ones to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for RunningIdp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn public_base_cases() {
        let cases = [
            (
                "listen v4",
                PublicBase::Listen,
                "127.0.0.1:4000",
                "http://127.0.0.1:4000/",
            ),
            (
                "listen wildcard",
                PublicBase::Listen,
                "0.0.0.0:4000",
                "http://127.0.0.1:4000/",
            ),
            (
                "listen v6",
                PublicBase::Listen,
                "[::1]:4000",
                "http://[::1]:4000/",
            ),
            (
                "public host",
                PublicBase::Host("localhost".into()),
                "127.0.0.1:4000",
                "http://localhost:4000/",
            ),
            (
                "url without slash",
                PublicBase::Url(Url::parse("https://idp.example/auth").unwrap()),
                "127.0.0.1:4000",
                "https://idp.example/auth/",
            ),
        ];
        for (label, public, bound, want) in cases {
            let got = public_base(&public, addr(bound)).unwrap();
            assert_eq!(got.as_str(), want, "{label}");
        }
    }

    #[test]
    fn public_base_rejects_unusable_urls() {
        let cases = [
            ("host with path", PublicBase::Host("localhost/x".into())),
            ("not http", PublicBase::Url(Url::parse("ftp://h/").unwrap())),
            (
                "query",
                PublicBase::Url(Url::parse("http://h/?a=1").unwrap()),
            ),
        ];
        for (label, public) in cases {
            let err = public_base(&public, addr("127.0.0.1:1")).unwrap_err();
            assert!(matches!(err, Error::PublicUrl { .. }), "{label}: {err}");
        }
    }

    #[test]
    fn issuer_has_no_trailing_slash_and_keeps_a_base_path() {
        let base = Url::parse("http://localhost:8080/auth/").unwrap();
        assert_eq!(
            issuer_url(&base, "master").as_str(),
            "http://localhost:8080/auth/realms/master"
        );
        let base = Url::parse("http://localhost:8080/").unwrap();
        assert_eq!(
            issuer_url(&base, "my realm").as_str(),
            "http://localhost:8080/realms/my%20realm"
        );
    }
}
