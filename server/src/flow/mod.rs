//! The decision for one request, independent of the transport:
//! [`Flow::decide`]`(check) -> `[`Decision`].
//!
//! - no session: [`login`] answers a 302 to the IdP;
//! - a callback (`callbackPath` with `code`+`state`, or `error`): [`callback`] exchanges the
//!   code, creates the session and 302s back with the cookie;
//! - a session: [`identity`] lets the request through with the ID token header.
//!
//! Errors are mapped to responses in one place, [`error`].

pub mod callback;
pub mod check;
pub mod cookie;
pub mod decision;
pub mod error;
pub mod identity;
pub mod login;

use std::sync::Arc;

pub use check::CheckRequest;
pub use decision::{Allow, Decision, Deny};
pub use error::FlowError;

use crate::clock::SharedClock;
use crate::config::OidcConfig;
use crate::oidc::Provider;
use crate::session::{SessionData, SessionId, SessionStore};
use crate::state::StateCodec;

/// The `context_extensions` key (gRPC) or header (HTTP) that picks an AuthConfig when several
/// are loaded: its value is `namespace/name`.
pub const CONFIG_SELECTOR: &str = "x-extauth-config";

/// One AuthConfig with its IdP and session store.
#[derive(Debug)]
pub struct Route {
    /// The validated config.
    pub config: Arc<OidcConfig>,
    /// Its IdP.
    pub provider: Provider,
    /// Its session store.
    pub store: Arc<dyn SessionStore>,
}

/// Everything a decision needs; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Flow {
    routes: Vec<Route>,
    state: StateCodec,
    clock: SharedClock,
}

impl Flow {
    /// A flow over `routes` (at least one).
    pub fn new(routes: Vec<Route>, state: StateCodec, clock: SharedClock) -> Self {
        Self {
            routes,
            state,
            clock,
        }
    }

    /// The routes, in config order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Decides what happens to `check`.
    pub async fn decide(&self, check: &CheckRequest) -> Decision {
        let route = match self.route_for(check) {
            Ok(r) => r,
            Err(e) => return e.into_decision(),
        };
        match self.decide_for(route, check).await {
            Ok(d) => d,
            Err(e) => {
                e.log(&route.config.id);
                e.into_decision()
            }
        }
    }

    fn route_for(&self, check: &CheckRequest) -> Result<&Route, FlowError> {
        let wanted = check
            .context
            .get(CONFIG_SELECTOR)
            .map(String::as_str)
            .or_else(|| check.header_values(CONFIG_SELECTOR).next());
        match (wanted, self.routes.as_slice()) {
            (None, [only]) => Ok(only),
            (None, _) => Err(FlowError::NoConfigSelected),
            (Some(id), routes) => routes
                .iter()
                .find(|r| r.config.id == id)
                .ok_or_else(|| FlowError::UnknownConfig(id.to_owned())),
        }
    }

    async fn decide_for(&self, route: &Route, check: &CheckRequest) -> Result<Decision, FlowError> {
        if let Some(params) = callback::callback_params(&route.config, check)? {
            return callback::handle(self, route, params).await;
        }
        match self.session(route, check).await? {
            Some(session) => Ok(Decision::Allow(identity::allow(
                &route.config,
                check,
                &session,
            ))),
            None => login::redirect(self, route, check).await,
        }
    }

    /// The live session named by the request's cookie. A store error is a [`FlowError`] only
    /// under `failOnFetchFailure`; otherwise it counts as no session (and nothing is deleted).
    async fn session(
        &self,
        route: &Route,
        check: &CheckRequest,
    ) -> Result<Option<SessionData>, FlowError> {
        let cfg = &route.config.session;
        let Some(id) = check
            .cookie(&cfg.cookie.name)
            .and_then(|v| SessionId::parse(&v))
        else {
            return Ok(None);
        };
        match route.store.load(&id).await {
            Ok(Some(s)) if s.expires_at > self.clock.now() => Ok(Some(s)),
            // The ID token expired: a new login (silent at the IdP while its session lasts).
            Ok(_) => Ok(None),
            Err(e) if cfg.fail_on_fetch_failure => Err(FlowError::SessionStore(e)),
            Err(e) => {
                tracing::warn!(config = %route.config.id, error = %e, "session store failed; treating the request as logged out");
                Ok(None)
            }
        }
    }

    pub(crate) fn now(&self) -> i64 {
        self.clock.now()
    }

    pub(crate) fn state(&self) -> &StateCodec {
        &self.state
    }
}

#[cfg(test)]
mod tests;
