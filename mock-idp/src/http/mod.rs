//! The HTTP face of the IdP: Keycloak's URL layout, one file per endpoint.
//!
//! - `discovery`: `/.well-known/openid-configuration`
//! - `certs`: `/protocol/openid-connect/certs` (JWKS)
//! - `authorize`: `/protocol/openid-connect/auth` (validates, renders the form or does SSO)
//! - `login`: `/login-actions/authenticate` (checks the password, issues the code)
//! - `token`: `/protocol/openid-connect/token` (code and refresh grants)
//! - `userinfo`: `/protocol/openid-connect/userinfo`
//! - `logout`: `/protocol/openid-connect/logout`
//! - `pages`: the HTML (login form, error and expired pages)
//! - `error`: the one place that maps errors to responses
//!
//! Handlers read state through [`AppState`], a cheap-to-clone struct of handles.

mod authorize;
mod certs;
mod discovery;
mod error;
mod login;
mod logout;
mod pages;
mod params;
mod token;
mod userinfo;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::routing::{get, post};
use serde_json::json;

use crate::clock::Clock;
use crate::keys::Keys;
use crate::realm::Realm;
use crate::store::Store;
pub(crate) use error::HttpError;

/// Everything a handler may reach.
#[derive(Clone)]
pub(crate) struct AppState {
    pub realms: Arc<HashMap<String, Arc<RealmState>>>,
    pub keys: Arc<Keys>,
    pub clock: Arc<dyn Clock>,
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
    store: Mutex<Store>,
}

impl RealmState {
    pub(crate) fn new(realm: Realm, issuer: url::Url) -> Self {
        let secure = issuer.scheme() == "https";
        let cookie_path = format!("{}/", issuer.path());
        let store = Mutex::new(Store::new(realm.lifetimes()));
        Self {
            realm,
            issuer: issuer.as_str().trim_end_matches('/').to_owned(),
            cookie_path,
            secure,
            execution: crate::ids::random_uuid(),
            store,
        }
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
            &format!("{oidc}/userinfo"),
            get(userinfo::userinfo).post(userinfo::userinfo),
        )
        .route(
            &format!("{oidc}/logout"),
            get(logout::logout).post(logout::logout),
        )
        .fallback(not_found)
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
