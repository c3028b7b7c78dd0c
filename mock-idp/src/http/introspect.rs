//! `POST /token/introspect` (RFC 7662) and `POST /revoke` (RFC 7009), both for an
//! authenticated client.
//!
//! Introspection answers `{"active": false}` for anything not currently valid (bad signature,
//! expired, revoked, session over, rotated-out refresh token) and the token's claims plus
//! `active`, `client_id`, `username` and `token_type` otherwise, as Keycloak does. Revocation
//! of a refresh token ends that token (its successor is never issued); of an access token,
//! puts its `jti` on the realm's revoked list. Unknown tokens still get `200` (RFC 7009 2.2).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::client_auth::authenticate_client;
use super::error::no_store_json;
use super::params::Params;
use super::{AppState, HttpError, RealmState};
use crate::realm::Client;
use crate::tokens;

pub(crate) async fn introspect(
    State(state): State<AppState>,
    Path(realm): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    let rs = state.realm(&realm)?;
    let form = Params::parse(&body);
    // Only an authenticated client may introspect; which one does not change the answer.
    let (_, token) = client_and_token(&state, &rs, &headers, &form).await?;
    let body = active_claims(&state, &rs, token).unwrap_or_else(|| json!({ "active": false }));
    Ok(no_store_json(StatusCode::OK, body))
}

/// The authenticated client and the required `token` parameter, shared by introspection and
/// revocation.
async fn client_and_token<'r, 'f>(
    state: &AppState,
    rs: &'r RealmState,
    headers: &HeaderMap,
    form: &'f Params,
) -> Result<(&'r Client, &'f str), HttpError> {
    let client = authenticate_client(state, rs, headers, form).await?;
    let token = form
        .get("token")
        .ok_or_else(|| HttpError::invalid_request("Missing parameter: token"))?;
    Ok((client, token))
}

/// The introspection answer of a token that is active now.
fn active_claims(state: &AppState, rs: &RealmState, token: &str) -> Option<Value> {
    let now = state.now();
    let keys = state.keys(rs);
    if let Ok(c) = tokens::verify_access(&keys, &rs.issuer, now, token) {
        if rs.is_revoked(&c.jti)
            || (!c.sid.is_empty() && rs.store().live_session(&c.sid, now).is_none())
        {
            return None;
        }
        let mut v = serde_json::to_value(&c).ok()?;
        v["active"] = json!(true);
        v["client_id"] = json!(c.azp);
        v["username"] = json!(c.profile.preferred_username);
        v["token_type"] = json!("Bearer");
        return Some(v);
    }
    if let Ok(c) = tokens::verify_refresh(&keys, &rs.issuer, now, token) {
        rs.store().peek_refresh(&c.jti)?;
        let mut v = serde_json::to_value(&c).ok()?;
        v["active"] = json!(true);
        v["client_id"] = json!(c.azp);
        v["token_type"] = json!("Refresh");
        return Some(v);
    }
    None
}

pub(crate) async fn revoke(
    State(state): State<AppState>,
    Path(realm): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    let rs = state.realm(&realm)?;
    let form = Params::parse(&body);
    let (client, token) = client_and_token(&state, &rs, &headers, &form).await?;
    let now = state.now();
    let keys = state.keys(&rs);
    let unmatching = || HttpError::OAuth {
        status: StatusCode::BAD_REQUEST,
        error: "unauthorized_client",
        description: "Unmatching clients".to_owned(),
    };
    if let Ok(c) = tokens::verify_refresh(&keys, &rs.issuer, now, token) {
        if c.azp != client.client_id() {
            return Err(unmatching());
        }
        rs.store().take_refresh(&c.jti);
        tracing::info!(realm = %rs.realm.name(), client = %c.azp, "refresh token revoked");
    } else if let Ok(c) = tokens::verify_access(&keys, &rs.issuer, now, token) {
        if c.azp != client.client_id() {
            return Err(unmatching());
        }
        rs.revoke(c.jti);
        tracing::info!(realm = %rs.realm.name(), client = %c.azp, "access token revoked");
    }
    Ok(StatusCode::OK.into_response())
}
