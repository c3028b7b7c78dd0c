//! `POST /realms/{realm}/protocol/openid-connect/token`: the token endpoint.
//!
//! Authenticates the client (`client_secret_basic`, `client_secret_post` or `private_key_jwt`,
//! see `client_auth`; a public client by `client_id`), then serves the `authorization_code` and `refresh_token` grants. Codes and
//! refresh tokens are consumed on presentation, so replays fail. Every client fault is a 4xx
//! JSON error in Keycloak's words, with `Cache-Control: no-store`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;

use super::client_auth::authenticate_client;
use super::error::no_store_json;
use super::params::Params;
use super::{AppState, HttpError, RealmState};
use crate::faults::FaultKind;
use crate::realm::{Client, User};
use crate::store::RefreshGrant;
use crate::tokens::{self, Grant, IdTamper, Scope};

/// The successful token response, in Keycloak's field order.
#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
    refresh_expires_in: u64,
    refresh_token: String,
    token_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
    #[serde(rename = "not-before-policy")]
    not_before_policy: u64,
    session_state: String,
    scope: String,
}

pub(crate) async fn token(
    State(state): State<AppState>,
    Path(realm): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    let rs = state.realm(&realm)?;
    let form = Params::parse(&body);
    let grant_type = form
        .get("grant_type")
        .ok_or_else(|| HttpError::invalid_request("Missing form parameter: grant_type"))?;
    let client = authenticate_client(&state, &rs, &headers, &form).await?;
    match grant_type {
        "authorization_code" => authorization_code(&state, &rs, client, &form),
        "refresh_token" => refresh_token(&state, &rs, client, &form),
        "client_credentials" => client_credentials(&state, &rs, client),
        _ => Err(HttpError::OAuth {
            status: StatusCode::BAD_REQUEST,
            error: "unsupported_grant_type",
            description: "Unsupported grant_type".to_owned(),
        }),
    }
}

fn authorization_code(
    state: &AppState,
    rs: &RealmState,
    client: &Client,
    form: &Params,
) -> Result<Response, HttpError> {
    let code = form
        .get("code")
        .ok_or_else(|| HttpError::invalid_request("Missing parameter: code"))?;
    let now = state.now();
    let mut store = rs.store();
    // Taken out first: whatever happens next, this code is spent.
    let grant = store
        .redeem_code(code, now)
        .ok_or_else(|| HttpError::invalid_grant("Code not valid"))?;
    let req = &grant.request;
    if req.client_id != client.client_id() {
        return Err(HttpError::invalid_grant("Code not valid"));
    }
    let redirect_ok = match form.get("redirect_uri") {
        Some(uri) => uri == req.redirect_uri,
        None => !req.redirect_uri_sent,
    };
    if !redirect_ok {
        return Err(HttpError::invalid_grant("Incorrect redirect_uri"));
    }
    if let Some(pkce) = &req.pkce {
        pkce.verify(form.get("code_verifier"))
            .map_err(|f| HttpError::invalid_grant(f.description()))?;
    }
    let user = active_user(rs, &grant.user_id)?;
    let refresh_expires_at = store
        .touch_session(&grant.sid, now)
        .ok_or_else(|| HttpError::invalid_grant("Session not active"))?;
    let refresh = RefreshGrant {
        client_id: req.client_id.clone(),
        sid: grant.sid.clone(),
        user_id: grant.user_id.clone(),
        nonce: req.nonce.clone(),
        scope: req.scope.clone(),
        auth_time: grant.auth_time,
        acr: grant.acr,
    };
    drop(store);
    issue(
        state,
        rs,
        user,
        refresh,
        now,
        refresh_expires_at,
        FaultKind::is_id_token_fault,
    )
}

fn refresh_token(
    state: &AppState,
    rs: &RealmState,
    client: &Client,
    form: &Params,
) -> Result<Response, HttpError> {
    let token = form
        .get("refresh_token")
        .ok_or_else(|| HttpError::invalid_request("Missing parameter: refresh_token"))?;
    let now = state.now();
    let claims = tokens::verify_refresh(&state.keys(rs), &rs.issuer, now, token)
        .map_err(|_| HttpError::invalid_grant("Invalid refresh token"))?;
    let mut store = rs.store();
    let belongs = store
        .peek_refresh(&claims.jti)
        .map(|g| g.client_id == client.client_id());
    match belongs {
        None => return Err(HttpError::invalid_grant("Invalid refresh token")),
        Some(false) => {
            return Err(HttpError::invalid_grant(
                "Invalid refresh token. Token client and authorized client don't match",
            ));
        }
        Some(true) => {}
    }
    // Rotation: the presented token is spent, the response carries its successor.
    let grant = store
        .take_refresh(&claims.jti)
        .ok_or_else(|| HttpError::invalid_grant("Invalid refresh token"))?;
    let refresh_expires_at = store
        .touch_session(&grant.sid, now)
        .ok_or_else(|| HttpError::invalid_grant("Session not active"))?;
    drop(store);
    let user = active_user(rs, &grant.user_id)?;
    issue(
        state,
        rs,
        user,
        grant,
        now,
        refresh_expires_at,
        FaultKind::is_refresh_fault,
    )
}

/// The `client_credentials` grant: an access token for the client's service account, no
/// refresh token and no ID token (Keycloak's default).
fn client_credentials(
    state: &AppState,
    rs: &RealmState,
    client: &Client,
) -> Result<Response, HttpError> {
    if client.is_public() || !client.service_accounts_enabled() {
        return Err(HttpError::OAuth {
            status: StatusCode::UNAUTHORIZED,
            error: "unauthorized_client",
            description: "Client not enabled to retrieve service account".to_owned(),
        });
    }
    let now = state.now();
    let lifetime = rs.realm.lifetimes().access_token;
    let access_token = tokens::mint_service_account(
        &state.keys(rs),
        &rs.issuer,
        client.client_id(),
        now,
        lifetime,
    )
    .map_err(|e| HttpError::Internal(e.to_string()))?;
    Ok(no_store_json(
        StatusCode::OK,
        serde_json::json!({
            "access_token": access_token,
            "expires_in": lifetime,
            "refresh_expires_in": 0,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "scope": "email profile",
        }),
    ))
}

fn active_user<'r>(rs: &'r RealmState, user_id: &str) -> Result<&'r User, HttpError> {
    rs.realm
        .user_by_id(user_id)
        .filter(|u| u.enabled())
        .ok_or_else(|| HttpError::invalid_grant("User disabled"))
}

fn issue(
    state: &AppState,
    rs: &RealmState,
    user: &User,
    grant: RefreshGrant,
    now: u64,
    refresh_expires_at: u64,
    faults: fn(&FaultKind) -> bool,
) -> Result<Response, HttpError> {
    let scope: &Scope = &grant.scope;
    let kinds = state.take_faults(rs.realm.name(), Some(&grant.client_id), faults);
    if !kinds.is_empty() {
        tracing::info!(?kinds, "ID token faults");
    }
    if kinds
        .iter()
        .any(|k| matches!(k, FaultKind::SigningKeyRotatedAtSigning))
    {
        state.rotate_at_signing(rs);
    }
    let minted = tokens::mint_tampered(
        &state.keys(rs),
        &Grant {
            issuer: &rs.issuer,
            user,
            client_id: &grant.client_id,
            sid: &grant.sid,
            nonce: grant.nonce.as_deref(),
            scope,
            auth_time: grant.auth_time,
            acr: grant.acr,
            now,
            access_lifetime: rs.realm.lifetimes().access_token,
            refresh_expires_at,
        },
        &IdTamper::from_faults(&kinds),
    )
    .map_err(|e| HttpError::Internal(e.to_string()))?;
    let body = TokenResponse {
        access_token: minted.access_token,
        expires_in: minted.expires_in,
        refresh_expires_in: minted.refresh_expires_in,
        refresh_token: minted.refresh_token,
        token_type: "Bearer",
        id_token: minted.id_token,
        not_before_policy: 0,
        session_state: grant.sid.clone(),
        scope: grant.scope.to_string(),
    };
    rs.store().remember_refresh(minted.refresh_jti, grant);
    // Serialized from the struct, so the fields keep Keycloak's order on the wire.
    Ok(no_store_json(StatusCode::OK, body))
}
