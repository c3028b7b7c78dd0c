//! The decision for one request, independent of the transport:
//! [`Flow::decide`]`(check) -> `[`Decision`].
//!
//! - `logoutPath`: [`logout`] deletes the session, revokes tokens, ends the IdP session;
//! - `frontChannelLogout.path` / `backChannelLogout.path`: the IdP ends sessions
//!   ([`front_channel_logout`], [`back_channel_logout`], sharing [`channel_logout`]);
//! - a callback (`callbackPath` with `code`+`state`, or `error`): [`callback`] exchanges the
//!   code, creates the session and 302s back with the cookie;
//! - a session: [`identity`] lets the request through with the identity headers, after
//!   [`refresh`] renewed tokens that expired (or are about to);
//! - an ID token as `Authorization: Bearer`: [`identity`] too, without a session;
//! - nothing: [`login`] answers a 302 to the IdP (or a 401 to clients that cannot follow it).
//!
//! Behind a gateway whose check cannot answer a redirect (nginx `auth_request`), the
//! browser's answer comes from [`sign_in`], which decides the same way.
//!
//! Errors are mapped to responses in one place, [`error`].

pub mod back_channel_logout;
pub mod binding;
pub mod callback;
pub mod channel_logout;
pub mod check;
pub mod cookie;
pub mod decision;
pub mod error;
pub mod front_channel_logout;
pub mod identity;
pub mod login;
pub mod logout;
pub mod metadata;
pub mod refresh;
pub mod return_url;
pub mod sign_in;

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub use check::CheckRequest;
pub use decision::{Allow, Decision, Deny};
pub use error::FlowError;

use crate::clock::SharedClock;
use crate::config::{OidcConfig, StoreConfig};
use crate::crypto::{self, Key};
use crate::oidc::Provider;
use crate::secret::Secret;
use crate::session::{SessionData, SessionId, SessionStore, StoreError};
use crate::state::StateCodec;

/// The default `context_extensions` key (gRPC) or header (HTTP) that picks an AuthConfig when
/// several are loaded: its value is `namespace/name`. See [`Flow::with_selector`].
pub const CONFIG_SELECTOR: &str = "x-extauth-config";
/// Largest `Cookie` header (all of them together) we read; larger is a 400.
pub const MAX_COOKIE_HEADER: usize = 16 * 1024;

/// One AuthConfig with its IdP and session store.
#[derive(Debug)]
pub struct Route {
    /// The validated config.
    pub config: Arc<OidcConfig>,
    /// Its IdP.
    pub provider: Provider,
    /// Its session store (unused in cookie mode).
    pub store: Arc<dyn SessionStore>,
    /// Cookie mode: the key that seals the tokens into the cookie.
    cookie_cipher: Option<Key>,
    /// The headers this config sets upstream (and the session-id header), whose client
    /// copies are removed: [`identity::identity_headers`], computed once.
    identity_headers: Vec<http::HeaderName>,
}

impl Route {
    /// A route. In cookie mode (`session` without `redis`) the cookie key is `cipherConfig`'s,
    /// or derived from the signing key (shared by replicas) when there is none.
    pub fn new(
        config: Arc<OidcConfig>,
        provider: Provider,
        store: Arc<dyn SessionStore>,
        signing_key: &Secret,
    ) -> Self {
        let cookie_cipher = match &config.session.store {
            StoreConfig::Redis { .. } => None,
            StoreConfig::Cookie {
                cipher_key: Some(key),
                ..
            } => {
                let mut bytes = [0u8; 32];
                let raw = key.expose().as_bytes();
                let n = raw.len().min(32);
                bytes[..n].copy_from_slice(&raw[..n]);
                Some(Key::from_bytes(bytes))
            }
            StoreConfig::Cookie {
                cipher_key: None, ..
            } => Some(Key::derive(
                signing_key.expose().as_bytes(),
                b"extauth cookie sessions v1",
            )),
        };
        Self {
            identity_headers: identity::identity_headers(&config),
            config,
            provider,
            store,
            cookie_cipher,
        }
    }

    /// Whether sessions of this route live in the cookie itself.
    pub fn is_cookie_mode(&self) -> bool {
        self.cookie_cipher.is_some()
    }

    /// Cookie mode: the cookie value for `data`.
    pub(crate) fn seal_cookie(&self, data: &SessionData) -> Result<Option<String>, FlowError> {
        let Some(key) = &self.cookie_cipher else {
            return Ok(None);
        };
        let plain = serde_json::to_vec(data)
            .map_err(|e| FlowError::Internal(format!("encoding a cookie session: {e}")))?;
        let sealed = crypto::seal(key, &plain)
            .map_err(|e| FlowError::Internal(format!("sealing a cookie session: {e}")))?;
        Ok(Some(URL_SAFE_NO_PAD.encode(sealed)))
    }

    /// Cookie mode: the session sealed in cookie `value` (`None` in Redis mode, or when it
    /// does not open).
    pub(crate) fn open_cookie_value(&self, value: &str) -> Option<SessionData> {
        self.cookie_cipher
            .as_ref()
            .and_then(|key| self.open_cookie(key, value))
    }

    fn open_cookie(&self, key: &Key, value: &str) -> Option<SessionData> {
        let sealed = URL_SAFE_NO_PAD.decode(value).ok()?;
        let plain = crypto::open(key, &sealed).ok()?;
        serde_json::from_slice(&plain).ok()
    }
}

/// A live session found for a request.
#[derive(Debug, Clone)]
pub struct Active {
    /// Its data (refreshed when needed).
    pub data: SessionData,
    /// Its id (`None` in cookie mode).
    pub id: Option<SessionId>,
    /// `Set-Cookie` lines to send back (cookie mode after a refresh).
    pub set_cookie: Vec<String>,
}

impl Active {
    /// A session with nothing to send back to the browser.
    pub fn new(data: SessionData, id: Option<SessionId>) -> Self {
        Self {
            data,
            id,
            set_cookie: Vec::new(),
        }
    }
}

/// Everything a decision needs; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Flow {
    routes: Vec<Route>,
    state: StateCodec,
    clock: SharedClock,
    selector: String,
    refresh_flights: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Cookie sessions just refreshed, by a digest of the spent refresh token: requests
    /// that carried the same cookie concurrently reuse the result instead of spending the
    /// refresh token again. Kept [`refresh::RECENT_REFRESH`] at most.
    recent_cookie_refreshes: std::sync::Mutex<HashMap<String, (i64, SessionData)>>,
}

impl Flow {
    /// A flow over `routes` (at least one).
    pub fn new(routes: Vec<Route>, state: StateCodec, clock: SharedClock) -> Self {
        Self {
            routes,
            state,
            clock,
            selector: CONFIG_SELECTOR.to_owned(),
            refresh_flights: std::sync::Mutex::new(HashMap::new()),
            recent_cookie_refreshes: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Uses `key` (a `context_extensions` key, or a request header, lowercase) to pick the
    /// AuthConfig instead of [`CONFIG_SELECTOR`].
    pub fn with_selector(mut self, key: impl Into<String>) -> Self {
        self.selector = key.into().to_ascii_lowercase();
        self
    }

    /// The routes, in config order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The `context_extensions` key / header that picks the AuthConfig.
    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// Decides what happens to `check`.
    pub async fn decide(&self, check: &CheckRequest) -> Decision {
        self.decide_labelled(check).await.0
    }

    /// [`Flow::decide`], with the `config` label of the decision for metrics and logs: the
    /// AuthConfig's id, `none` when several are loaded and the request names none, `unknown`
    /// when it names one that is not loaded (never the name itself: it is client-controlled).
    pub async fn decide_labelled(&self, check: &CheckRequest) -> (Decision, &str) {
        let route = match self.route_for(check) {
            Ok(r) => r,
            Err(e) => {
                let label = match e {
                    FlowError::NoConfigSelected(_) => "none",
                    _ => "unknown",
                };
                return (e.into_decision(), label);
            }
        };
        let decision = match self.decide_for(route, check).await {
            Ok(d) => d,
            Err(e) => {
                e.log(&route.config.id);
                e.into_decision()
            }
        };
        (decision, &route.config.id)
    }

    fn route_for(&self, check: &CheckRequest) -> Result<&Route, FlowError> {
        let wanted = check
            .context
            .get(&self.selector)
            .map(String::as_str)
            .or_else(|| check.header_values(&self.selector).next());
        match (wanted, self.routes.as_slice()) {
            (None, [only]) => Ok(only),
            (None, _) => Err(FlowError::NoConfigSelected(self.selector.clone())),
            (Some(id), routes) => routes
                .iter()
                .find(|r| r.config.id == id)
                .ok_or_else(|| FlowError::UnknownConfig(id.to_owned())),
        }
    }

    async fn decide_for(&self, route: &Route, check: &CheckRequest) -> Result<Decision, FlowError> {
        let cookie_bytes: usize = check.header_values("cookie").map(str::len).sum();
        if cookie_bytes > MAX_COOKIE_HEADER {
            return Err(FlowError::TooLarge {
                what: "the Cookie header",
                limit: MAX_COOKIE_HEADER,
            });
        }
        let cfg = &route.config;
        if cfg.logout_path.as_deref() == Some(check.path.as_str()) {
            return logout::handle(self, route, check).await;
        }
        if cfg.front_channel_logout_path.as_deref() == Some(check.path.as_str()) {
            return front_channel_logout::handle(self, route, check).await;
        }
        if cfg.back_channel_logout_path.as_deref() == Some(check.path.as_str()) {
            return back_channel_logout::handle(self, route, check).await;
        }
        if let Some(params) = callback::callback_params(cfg, check)? {
            return callback::handle(self, route, check, params).await;
        }
        if let Some(active) = self.session(route, check).await? {
            return Ok(Decision::Allow(identity::allow(route, check, &active)));
        }
        if let Some(allow) = identity::bearer(route, check).await {
            return Ok(Decision::Allow(allow));
        }
        login::start(self, route, check).await
    }

    /// The live session of the request (cookie, or `session.redis.headerName`), refreshed
    /// when due. A store error is a [`FlowError`] only under `failOnFetchFailure`; otherwise
    /// it counts as no session (and nothing is deleted).
    async fn session(
        &self,
        route: &Route,
        check: &CheckRequest,
    ) -> Result<Option<Active>, FlowError> {
        let cfg = &route.config.session;
        if let Some(key) = &route.cookie_cipher {
            let Some(data) = self::cookie::joined(check, &cfg.cookie.name)
                .and_then(|v| route.open_cookie(key, &v))
            else {
                return Ok(None);
            };
            let present = self::cookie::present_chunks(check, &cfg.cookie.name);
            return refresh::ensure_fresh(self, route, None, data, present).await;
        }
        let from_header = cfg
            .header_name
            .as_ref()
            .and_then(|h| check.header_values(h.as_str()).next().map(str::to_owned));
        let Some(id) = check
            .cookie(&cfg.cookie.name)
            .or(from_header)
            .and_then(|v| SessionId::parse(&v))
        else {
            return Ok(None);
        };
        match route.store.load(&id).await {
            Ok(Some(data)) => refresh::ensure_fresh(self, route, Some(id), data, 0).await,
            Ok(None) => Ok(None),
            // Data that does not decrypt under this id (a forged or stale cookie) is no
            // session, not an outage.
            Err(StoreError::Corrupt(e)) => {
                tracing::info!(config = %route.config.id, error = %e, "session data does not decode under this id; treating as logged out");
                Ok(None)
            }
            Err(e) if cfg.fail_on_fetch_failure => Err(FlowError::SessionStore(e)),
            Err(e) => {
                tracing::warn!(config = %route.config.id, error = %e, "session store failed; treating the request as logged out");
                Ok(None)
            }
        }
    }

    /// The in-process single-flight lock of one session's refresh.
    pub(crate) fn refresh_flight(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self
            .refresh_flights
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Forget flights nobody waits on, so the map stays small.
        map.retain(|_, m| Arc::strong_count(m) > 1);
        Arc::clone(map.entry(key.to_owned()).or_default())
    }

    /// A cookie session refreshed under `key` within [`refresh::RECENT_REFRESH`].
    pub(crate) fn recent_cookie_refresh(&self, key: &str) -> Option<SessionData> {
        let now = self.now();
        let map = self
            .recent_cookie_refreshes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(key)
            .filter(|(at, _)| now - at < refresh::RECENT_REFRESH)
            .map(|(_, data)| data.clone())
    }

    /// Remembers a cookie session's refresh under `key`, forgetting old ones.
    pub(crate) fn remember_cookie_refresh(&self, key: String, fresh: &SessionData) {
        let now = self.now();
        let mut map = self
            .recent_cookie_refreshes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, (at, _)| now - *at < refresh::RECENT_REFRESH);
        map.insert(key, (now, fresh.clone()));
    }

    pub(crate) fn now(&self) -> i64 {
        self.clock.now()
    }

    pub(crate) fn state(&self) -> &StateCodec {
        &self.state
    }
}

#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;
