//! The HTTP face of the IdP: Keycloak's URL layout, one file per endpoint.
//!
//! - `discovery`: `/.well-known/openid-configuration`
//! - `certs`: `/protocol/openid-connect/certs` (JWKS)
//! - `authorize`: `/protocol/openid-connect/auth` (validates, renders the form or does SSO)
//! - `login`: `/login-actions/authenticate` (checks the password, issues the code)
//! - `token`: `/protocol/openid-connect/token` (code and refresh grants)
//! - `userinfo`: `/protocol/openid-connect/userinfo`
//! - `introspect`: `/protocol/openid-connect/token/introspect` and `/revoke`
//! - `logout`: `/protocol/openid-connect/logout` (with the front-channel logout page)
//! - `backchannel`: the back-channel logout calls a logout makes to clients
//! - `client_auth`: client authentication for the token, introspection and revocation
//!   endpoints (`client_secret_basic`/`_post`, `private_key_jwt`)
//! - `pages`: the HTML (login form, error, expired and logout pages)
//! - `error`: the one place that maps errors to responses
//! - `observe`: the middleware that logs every request and applies operational faults
//! - `admin`: the test-control API under `/admin/mock` (loopback peers only)
//!
//! Handlers read state through [`AppState`], a cheap-to-clone struct of handles.

mod admin;
mod authorize;
mod backchannel;
mod certs;
mod client_auth;
mod discovery;
mod error;
mod introspect;
mod login;
mod logout;
mod observe;
mod pages;
mod params;
mod token;
mod userinfo;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::routing::{get, post};
use serde_json::json;

use crate::clock::{Clock, MockClock};
use crate::faults::{FaultKind, Faults};
use crate::keys::{KeyRing, Keys, SigningKey};
use crate::realm::Realm;
use crate::requests::RequestLog;
use crate::store::Store;
pub(crate) use admin::{add_fault, rotate};
pub(crate) use backchannel::logout;
pub use backchannel::{LogoutError, LogoutReport, LogoutTarget, Notification};
pub(crate) use error::HttpError;

/// Everything a handler may reach.
#[derive(Clone)]
pub(crate) struct AppState {
    pub realms: Arc<HashMap<String, Arc<RealmState>>>,
    pub clock: Arc<MockClock>,
    pub faults: Arc<Faults>,
    pub log: Arc<RequestLog>,
    /// The client for calls the IdP makes (back-channel logout, a client's `jwks.url`):
    /// redirects off, no proxy.
    pub http: reqwest::Client,
    /// How long one back-channel logout call may take.
    pub backchannel_timeout: std::time::Duration,
}

/// The client [`AppState::http`] holds.
///
/// A system without CA certificates (a bare container image) still gets a client: plain
/// `http://` calls work and `https://` ones fail their certificate check, said once at start.
pub(crate) fn outgoing_client() -> Result<reqwest::Client, reqwest::Error> {
    let builder = || {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(std::time::Duration::from_secs(5))
    };
    match builder().build() {
        Ok(client) => Ok(client),
        Err(e) => {
            tracing::warn!(
                error = %e,
                "no CA certificates on this system: https back-channel and jwks calls will fail"
            );
            builder().tls_certs_only(Vec::new()).build()
        }
    }
}

impl AppState {
    /// The named realm, or Keycloak's 404.
    pub(crate) fn realm(&self, name: &str) -> Result<Arc<RealmState>, HttpError> {
        match self.realms.get(name) {
            Some(r) if r.realm.enabled() => Ok(Arc::clone(r)),
            Some(_) => Err(HttpError::RealmDisabled),
            None => Err(HttpError::RealmNotFound),
        }
    }

    pub(crate) fn now(&self) -> u64 {
        self.clock.unix_seconds()
    }

    /// A realm's keys in force now (doing a scheduled rotation first when one is due).
    pub(crate) fn keys(&self, rs: &RealmState) -> Keys {
        let now = self.now();
        if rs.key_ring.rotate_if_due(now) {
            next_key_later(&rs.key_ring, now, KeyRing::replenish);
        }
        rs.key_ring.snapshot(now)
    }

    /// The realm named `realm`, or every realm (by name) when `None`; `Err` names an
    /// unknown realm.
    pub(crate) fn realms_or_all(
        &self,
        realm: Option<&str>,
    ) -> Result<Vec<Arc<RealmState>>, String> {
        match realm {
            Some(name) => self
                .realms
                .get(name)
                .map(|rs| vec![Arc::clone(rs)])
                .ok_or_else(|| format!("no such realm: {name}")),
            None => {
                let mut all: Vec<_> = self.realms.values().cloned().collect();
                all.sort_by(|a, b| a.realm.name().cmp(b.realm.name()));
                Ok(all)
            }
        }
    }

    /// Rotates to the staged key right before signing (`signing_key_rotated_at_signing`),
    /// then stages the next one off the request path, for a sticky fault.
    pub(crate) fn rotate_at_signing(&self, rs: &RealmState) {
        let now = self.now();
        let Some(kid) = rs.key_ring.rotate_to_staged(now) else {
            tracing::warn!(
                "signing_key_rotated_at_signing: no staged key yet; signing with the current key"
            );
            return;
        };
        tracing::info!(%kid, "signing key rotated just before signing");
        let still_on = self
            .faults
            .list()
            .iter()
            .any(|a| matches!(a.fault.kind, FaultKind::SigningKeyRotatedAtSigning));
        if !still_on {
            return;
        }
        next_key_later(&rs.key_ring, now, KeyRing::stage);
    }

    /// Faults that act now on this realm and client (spending the `once` ones).
    pub(crate) fn take_faults(
        &self,
        realm: &str,
        client: Option<&str>,
        wanted: impl Fn(&FaultKind) -> bool,
    ) -> Vec<FaultKind> {
        self.faults.take(realm, client, wanted)
    }
}

/// Generates a key of `ring`'s signing algorithm on the blocking pool (RSA takes a while),
/// then hands it to `keep` (the next scheduled key, or a staged one).
fn next_key_later(ring: &Arc<KeyRing>, now: u64, keep: fn(&KeyRing, Arc<SigningKey>)) {
    let ring = Arc::clone(ring);
    let alg = ring.snapshot(now).signing.alg();
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn_blocking(move || match SigningKey::generate_for(alg) {
            Ok(key) => keep(&ring, Arc::new(key)),
            Err(e) => tracing::error!(error = %e, "cannot make the next signing key"),
        });
    }
}

/// One served realm: its definition, public URLs and server-side state.
#[derive(Debug)]
pub(crate) struct RealmState {
    pub realm: Realm,
    /// `<public base>/realms/<name>`, without a trailing slash (as Keycloak's `iss`).
    pub issuer: String,
    /// The path of `KEYCLOAK_SESSION`: `<public base path>/realms/<name>/`.
    pub cookie_path: String,
    /// Whether the public URL is `https` (then cookies are `Secure`).
    pub secure: bool,
    /// Keycloak puts the authenticator's execution id in the form action; one per realm.
    pub execution: String,
    /// The realm's own keys (as in Keycloak, a realm's tokens verify with its JWKS only).
    pub key_ring: Arc<KeyRing>,
    store: Mutex<Store>,
    /// `jti`s of access tokens revoked through `/revoke`.
    revoked: Mutex<std::collections::HashSet<String>>,
    /// `jti`s of client assertions already used (`private_key_jwt` replay protection).
    used_jtis: Mutex<crate::client_jwt::UsedJtis>,
}

impl RealmState {
    pub(crate) fn new(
        realm: Realm,
        issuer: url::Url,
        key_ring: Arc<KeyRing>,
        keep_expired: bool,
    ) -> Self {
        let secure = issuer.scheme() == "https";
        let cookie_path = format!("{}/", issuer.path());
        let store = Store::new(realm.lifetimes());
        let store = Mutex::new(if keep_expired {
            store.keep_expired()
        } else {
            store
        });
        Self {
            realm,
            issuer: issuer.as_str().trim_end_matches('/').to_owned(),
            cookie_path,
            secure,
            execution: crate::ids::random_uuid(),
            key_ring,
            store,
            revoked: Mutex::default(),
            used_jtis: Mutex::default(),
        }
    }

    /// The client-assertion `jti`s already used (never held across an `.await`).
    pub(crate) fn used_jtis(&self) -> MutexGuard<'_, crate::client_jwt::UsedJtis> {
        self.used_jtis.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether an access token was revoked.
    pub(crate) fn is_revoked(&self, jti: &str) -> bool {
        self.revoked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(jti)
    }

    /// Revokes an access token.
    pub(crate) fn revoke(&self, jti: String) {
        self.revoked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(jti);
    }

    /// `<issuer>/protocol/openid-connect/<name>`.
    pub(crate) fn endpoint(&self, name: &str) -> String {
        format!("{}/protocol/openid-connect/{name}", self.issuer)
    }

    /// The realm's state. A poisoned lock is recovered: every store operation leaves the maps
    /// consistent, so a panic elsewhere cannot have left half an update behind.
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The router for all realms.
pub(crate) fn router(state: AppState) -> Router {
    let oidc = "/realms/{realm}/protocol/openid-connect";
    Router::new()
        .route("/health/ready", get(ready))
        .route(
            "/realms/{realm}/.well-known/openid-configuration",
            get(discovery::openid_configuration),
        )
        .route(&format!("{oidc}/certs"), get(certs::jwks))
        .route(&format!("{oidc}/auth"), get(authorize::authorize))
        .route(
            "/realms/{realm}/login-actions/authenticate",
            post(login::authenticate),
        )
        .route(&format!("{oidc}/token"), post(token::token))
        .route(
            &format!("{oidc}/token/introspect"),
            post(introspect::introspect),
        )
        .route(&format!("{oidc}/revoke"), post(introspect::revoke))
        .route(
            &format!("{oidc}/userinfo"),
            get(userinfo::userinfo).post(userinfo::userinfo),
        )
        .route(
            &format!("{oidc}/logout"),
            get(logout::logout).post(logout::logout),
        )
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ))
        .merge(admin::router(state.clone()))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Keycloak's readiness probe (`/health/ready`).
async fn ready() -> axum::Json<serde_json::Value> {
    axum::Json(json!({ "status": "UP" }))
}

async fn not_found() -> HttpError {
    HttpError::NotFound
}
