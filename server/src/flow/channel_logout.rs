//! What front- and back-channel logout share: the index of sessions by IdP session (`sid`)
//! and user (`sub`) that a login fills ([`index_session`]) and a logout empties
//! ([`end_sessions`]), and the answer the IdP gets. The index itself is the store's
//! ([`crate::session::index`]).

use std::time::Duration;

use http::StatusCode;

use super::{Deny, FlowError, Route};
use crate::oidc::unverified_claim;
use crate::session::index::{IndexKey, keys_of};
use crate::session::{SessionData, SessionId};

/// The index keys (without the store prefix) a session is listed under.
pub fn index_keys(issuer: &str, data: &SessionData) -> Vec<String> {
    keys_of(unverified_claim(&data.id_token, "sid"), &data.subject)
        .iter()
        .map(|k| k.storage_key(issuer))
        .collect()
}

/// Whether the route keeps the index (a channel logout path is configured).
pub fn uses_index(route: &Route) -> bool {
    route.config.front_channel_logout_path.is_some()
        || route.config.back_channel_logout_path.is_some()
}

/// Lists a new session under its `sid` and `sub`. A failure is logged and counted, not
/// fatal: the login stands, and the session ends with its TTL if no channel can reach it.
pub async fn index_session(route: &Route, issuer: &str, id: &SessionId, data: &SessionData) {
    let Some(index) = route.store.index().filter(|_| uses_index(route)) else {
        return;
    };
    let keys = index_keys(issuer, data);
    if let Err(e) = index
        .add(id, &keys, route.config.session.cookie.ttl())
        .await
    {
        crate::metrics::record_error_kind("session_index");
        tracing::warn!(config = %route.config.id, error = %e, "could not index the new session for front/back-channel logout; it ends with its TTL");
    }
}

/// Takes a deleted session off the index (best effort: a stale entry only points at nothing).
pub async fn unindex_session(route: &Route, issuer: &str, id: &SessionId, data: &SessionData) {
    if let Some(index) = route.store.index().filter(|_| uses_index(route))
        && let Err(e) = index.remove(id, &index_keys(issuer, data)).await
    {
        tracing::info!(config = %route.config.id, error = %e, "could not take a deleted session off the logout index");
    }
}

/// Ends every session of `key` (an IdP session or a user) of `issuer`; how many were listed.
pub async fn end_sessions(route: &Route, issuer: &str, key: &IndexKey) -> Result<usize, FlowError> {
    let Some(index) = route.store.index() else {
        return Ok(0);
    };
    index
        .end_all(&key.storage_key(issuer))
        .await
        .map_err(FlowError::SessionStore)
}

/// Whether the session of the browser (its ID token) belongs to `sid`; any session does when
/// the request names no `sid`.
pub fn belongs_to(data: &SessionData, sid: Option<&str>) -> bool {
    match sid {
        None => true,
        Some(sid) => unverified_claim(&data.id_token, "sid").as_deref() == Some(sid),
    }
}

/// `issuer` and the `iss` a request names are the same, up to a trailing slash.
pub fn same_issuer(named: &str, issuer: &str) -> bool {
    named.trim_end_matches('/') == issuer.trim_end_matches('/')
}

/// The answer to the IdP: 200, never cached (both specs ask for it).
pub fn done(content_type: &str, body: &str) -> Deny {
    let mut deny = Deny::typed(StatusCode::OK, content_type, body);
    for (name, value) in &mut deny.headers {
        if *name == http::header::CACHE_CONTROL {
            *value = "no-cache, no-store".into();
        }
    }
    deny.with_header(http::header::PRAGMA, "no-cache".into())
}

/// How long a used logout token's `jti` is remembered: as long as the token is accepted.
pub fn jti_ttl() -> Duration {
    let secs = crate::oidc::LOGOUT_TOKEN_MAX_AGE_SECS + crate::oidc::IAT_SKEW_SECS;
    Duration::from_secs(u64::try_from(secs).unwrap_or(360))
}
