//! Tokens that expired, or will within `preExpiryBuffer`, are renewed with the
//! `refresh_token` grant (when `allowRefreshing`).
//!
//! - one refresh per session at a time: an in-process single flight, plus a short Redis lock
//!   (`SET NX PX`) across replicas; whoever waits rereads the session the winner saved;
//! - cookie sessions (nothing server side): an in-process single flight keyed by a digest of
//!   the refresh token, whose result the waiters reuse for [`RECENT_REFRESH`] seconds (each
//!   response sets the new cookie). Replicas do not share it: behind several replicas,
//!   concurrent requests of one cookie session may each refresh;
//! - `invalid_grant` (the IdP session ended) deletes the session: the request starts a login;
//! - a transient IdP or store error never deletes anything: the still-valid token keeps
//!   serving, an expired one is a 503.

use std::time::Duration;

use super::{Active, Flow, FlowError, Route, cookie};
use crate::oidc::OidcError;
use crate::session::{SessionData, SessionId};

/// How long the cross-replica refresh lock lives (a crashed holder frees it by then). It
/// outlives the holder's longest token call (the IdP request timeout) with room for saving
/// the result: a lock that expired while its holder still waited on a slow IdP let another
/// replica refresh with the same refresh token, a second grant of one rotation (which an IdP
/// with refresh-token reuse detection answers by ending the session). Found by `harness
/// sim` (seeds 17 and 29 with the default 8 users and 300 steps).
pub const LOCK_TTL: Duration = Duration::from_secs(crate::oidc::REQUEST_TIMEOUT.as_secs() + 2);
/// How often, and how many times, a replica that lost the lock rereads the session.
const WAIT_STEP: Duration = Duration::from_millis(100);
const WAIT_STEPS: u32 = 30;
/// How long a cookie session's refresh result serves requests that carried the old cookie
/// (seconds).
pub const RECENT_REFRESH: i64 = 30;

/// The single-flight key of a cookie session: a digest of its refresh token, never the token.
fn cookie_flight_key(refresh_token: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(refresh_token.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("cookie:{hex}")
}

fn due(route: &Route, data: &SessionData, now: i64) -> bool {
    let buffer = i64::try_from(route.config.session.pre_expiry_buffer.as_secs()).unwrap_or(0);
    data.expires_at - buffer <= now
}

/// The session to use for this request, refreshed if due; `None` means "log in again".
pub async fn ensure_fresh(
    flow: &Flow,
    route: &Route,
    id: Option<SessionId>,
    data: SessionData,
    present_chunks: usize,
) -> Result<Option<Active>, FlowError> {
    let now = flow.now();
    let valid = data.expires_at > now;
    if !due(route, &data, now) {
        return Ok(Some(Active::new(data, id)));
    }
    if !route.config.session.allow_refreshing || data.refresh_token.is_none() {
        // Nothing to refresh with: usable until the ID token expires, then a new login
        // (silent at the IdP while its session lasts).
        return Ok(valid.then_some(Active::new(data, id)));
    }
    let fallback = |data: SessionData, id: Option<SessionId>, e: FlowError| {
        if valid {
            tracing::warn!(config = %route.config.id, error = %e, "token refresh failed; the current token is still valid");
            Ok(Some(Active::new(data, id)))
        } else {
            Err(e)
        }
    };
    match &id {
        Some(id) => {
            let flight = flow.refresh_flight(&id.storage_key(""));
            let _guard = flight.lock().await;
            match route.store.try_lock(id, LOCK_TTL).await {
                Ok(true) => {}
                Ok(false) => return wait_for_other_replica(flow, route, id, data).await,
                Err(e) => return fallback(data, Some(id.clone()), FlowError::SessionStore(e)),
            }
            // Under both locks, the session as it is now: another request or replica may
            // have refreshed it since this request read it, and its refresh token is then
            // spent (refreshing with it again would end the session).
            let outcome = async {
                let current = match route.store.load_fresh(id).await {
                    Ok(Some(current)) => current,
                    Ok(None) => return Ok(None),
                    Err(e) => return fallback(data, Some(id.clone()), FlowError::SessionStore(e)),
                };
                if !due(route, &current, flow.now()) {
                    return Ok(Some(Active::new(current, Some(id.clone()))));
                }
                match refresh_and_save(route, Some(id), &current).await {
                    Ok(Some(fresh)) => Ok(Some(Active::new(fresh, Some(id.clone())))),
                    Ok(None) => Ok(None),
                    Err(e) => fallback(current, Some(id.clone()), e),
                }
            }
            .await;
            if let Err(e) = route.store.unlock(id).await {
                tracing::warn!(config = %route.config.id, error = %e, "could not release the refresh lock (it expires by itself)");
            }
            outcome
        }
        None => match refresh_cookie_session(flow, route, &data).await {
            Ok(Some(fresh)) => {
                let set_cookie = match route.seal_cookie(&fresh)? {
                    Some(v) => {
                        cookie::value_cookies(&route.config.session.cookie, &v, present_chunks)
                            .map_err(|e| FlowError::Internal(e.to_string()))?
                    }
                    None => Vec::new(),
                };
                Ok(Some(Active {
                    data: fresh,
                    id: None,
                    set_cookie,
                }))
            }
            Ok(None) => Ok(None),
            Err(e) => fallback(data, None, e),
        },
    }
}

/// A cookie session's refresh, once per refresh token in this process (see the module docs).
async fn refresh_cookie_session(
    flow: &Flow,
    route: &Route,
    data: &SessionData,
) -> Result<Option<SessionData>, FlowError> {
    let Some(refresh_token) = data.refresh_token.as_deref() else {
        return Ok(None);
    };
    let key = cookie_flight_key(refresh_token);
    let flight = flow.refresh_flight(&key);
    let _guard = flight.lock().await;
    if let Some(fresh) = flow.recent_cookie_refresh(&key) {
        return Ok(Some(fresh));
    }
    let outcome = refresh_and_save(route, None, data).await;
    if let Ok(Some(fresh)) = &outcome {
        flow.remember_cookie_refresh(key, fresh);
    }
    outcome
}

/// Another replica holds the lock: reread until it saved fresh tokens, for a bounded time.
async fn wait_for_other_replica(
    flow: &Flow,
    route: &Route,
    id: &SessionId,
    current: SessionData,
) -> Result<Option<Active>, FlowError> {
    for _ in 0..WAIT_STEPS {
        tokio::time::sleep(WAIT_STEP).await;
        match route.store.load_fresh(id).await {
            Ok(Some(d)) if !due(route, &d, flow.now()) => {
                return Ok(Some(Active::new(d, Some(id.clone()))));
            }
            Ok(None) => return Ok(None),
            _ => {}
        }
    }
    if current.expires_at > flow.now() {
        Ok(Some(Active::new(current, Some(id.clone()))))
    } else {
        Err(FlowError::Idp(OidcError::TokenEndpoint(
            "another replica is refreshing this session".into(),
        )))
    }
}

/// Refreshes `data`; `Ok(None)` when the IdP refused the refresh token (session deleted).
async fn refresh_and_save(
    route: &Route,
    id: Option<&SessionId>,
    data: &SessionData,
) -> Result<Option<SessionData>, FlowError> {
    let Some(refresh_token) = data.refresh_token.as_deref() else {
        return Ok(None);
    };
    match route.provider.refresh(refresh_token, &data.id_token).await {
        Ok(tokens) => {
            crate::metrics::record_refresh(&route.config.id, true);
            let expires_at = tokens.expires_at();
            let fresh = SessionData {
                id_token: tokens.id_token,
                access_token: tokens.access_token,
                refresh_token: tokens.refresh_token.or_else(|| data.refresh_token.clone()),
                expires_at,
                subject: if tokens.subject.is_empty() {
                    data.subject.clone()
                } else {
                    tokens.subject
                },
                created_at: data.created_at,
            };
            if let Some(id) = id {
                route
                    .store
                    .save(id, &fresh, route.config.session.cookie.ttl())
                    .await
                    .map_err(FlowError::SessionStore)?;
            }
            tracing::info!(config = %route.config.id, sub = %fresh.subject, "tokens refreshed");
            Ok(Some(fresh))
        }
        Err(OidcError::RefreshRejected { error }) => {
            crate::metrics::record_refresh(&route.config.id, false);
            tracing::info!(config = %route.config.id, %error, "refresh token refused; the session ends");
            if let Some(id) = id
                && let Err(e) = route.store.delete(id).await
            {
                tracing::warn!(config = %route.config.id, error = %e, "could not delete the ended session");
            }
            Ok(None)
        }
        // The grant happened but its tokens could not be checked (the IdP's JWKS out of
        // reach): the stored session keeps its tokens with the new refresh token, so that
        // the next attempt does not present the spent one (which an IdP with reuse
        // detection answers by ending the session). Found by `harness sim` (seed 17).
        Err(OidcError::RefreshUnverified {
            refresh_token,
            source,
        }) => {
            if let Some(id) = id {
                let kept = SessionData {
                    refresh_token: Some(refresh_token.expose().to_owned()),
                    ..data.clone()
                };
                if let Err(e) = route
                    .store
                    .save(id, &kept, route.config.session.cookie.ttl())
                    .await
                {
                    tracing::warn!(config = %route.config.id, error = %e, "could not keep the new refresh token of an unchecked refresh");
                }
            }
            Err(FlowError::Idp(*source))
        }
        Err(e) => Err(FlowError::Idp(e)),
    }
}
