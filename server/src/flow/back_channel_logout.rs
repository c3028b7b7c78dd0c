//! `backChannelLogout.path`, an extauth extension (OpenID Connect Back-Channel Logout 1.0;
//! Solo's API has none): the IdP POSTs `logout_token=<JWT>` here, server to server.
//!
//! 1. the body must be a form with one `logout_token` (the gateway must forward request
//!    bodies to ext_authz: Envoy's `with_request_body`; the HTTP listener reads its own);
//! 2. the token is verified ([`crate::oidc`]: signature, `iss`, `aud`, `iat`, `exp`, `jti`,
//!    `events`, no `nonce`, `sid` and/or `sub`);
//! 3. its `jti` is recorded; a second use is refused;
//! 4. every session of the `sid` (or, without one, of the `sub`) ends;
//! 5. 200, uncached. A refusal is 400 `{"error":"invalid_request",...}` (section 2.8), never a
//!    5xx; an unreachable IdP (JWKS) or store is a 503, which the IdP may retry.

use super::channel_logout::{done, end_sessions, jti_ttl};
use super::{CheckRequest, Decision, Flow, FlowError, Route};
use crate::session::index::{IndexKey, jti_key};

/// Ends the sessions a logout token names.
pub async fn handle(
    _flow: &Flow,
    route: &Route,
    check: &CheckRequest,
) -> Result<Decision, FlowError> {
    if check.method != "POST" {
        return Err(FlowError::MethodNotAllowed("POST"));
    }
    let Some(body) = check.body.as_deref() else {
        return Err(FlowError::LogoutRequest(
            "no request body reached extauth: the gateway must forward it (Envoy: with_request_body)",
        ));
    };
    let mut token = None;
    for (key, value) in form_urlencoded::parse(body) {
        if key == "logout_token" {
            if token.is_some() {
                return Err(FlowError::LogoutRequest(
                    "`logout_token` appears more than once",
                ));
            }
            token = Some(value.into_owned());
        }
    }
    let Some(token) = token else {
        return Err(FlowError::LogoutRequest(
            "expected a form with `logout_token` (application/x-www-form-urlencoded)",
        ));
    };
    let claims = route
        .provider
        .verify_logout_token(&token)
        .await
        .map_err(FlowError::Idp)?;
    let cfg = &route.config;
    let issuer = route
        .provider
        .discovered()
        .await
        .map_err(FlowError::Idp)?
        .issuer
        .clone();
    let Some(index) = route.store.index() else {
        return Err(FlowError::Internal(
            "back-channel logout without a session index".into(),
        ));
    };
    let used = jti_key(&issuer, &claims.jti);
    if !index
        .first_use(&used, jti_ttl())
        .await
        .map_err(FlowError::SessionStore)?
    {
        return Err(FlowError::LogoutRequest(
            "this logout token was already used",
        ));
    }
    let key = match (&claims.sid, &claims.sub) {
        (Some(sid), _) => IndexKey::Sid(sid.clone()),
        (None, Some(sub)) => IndexKey::Sub(sub.clone()),
        (None, None) => return Err(FlowError::LogoutRequest("neither `sid` nor `sub`")),
    };
    let ended = match end_sessions(route, &issuer, &key).await {
        Ok(n) => n,
        Err(e) => {
            // The IdP may retry this very token once the store is back.
            if let Err(forget) = index.forget_use(&used).await {
                tracing::warn!(config = %cfg.id, error = %forget, "back-channel logout: could not forget the jti of a failed logout");
            }
            return Err(e);
        }
    };
    tracing::info!(config = %cfg.id, by_sid = claims.sid.is_some(), sessions = ended, "back-channel logout");
    Ok(Decision::Deny(done("text/plain; charset=utf-8", "")))
}
