//! `GET|POST /realms/{realm}/protocol/openid-connect/userinfo`: the user's claims for a valid
//! bearer access token whose SSO session is still alive; otherwise `401` with
//! `WWW-Authenticate: Bearer ... error="invalid_token"` (RFC 6750 3.1).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::Serialize;

use super::params::authorization;
use super::{AppState, HttpError};
use crate::faults::FaultKind;
use crate::tokens::{self, ProfileClaims};

#[derive(Serialize)]
pub(crate) struct UserInfo {
    sub: String,
    #[serde(flatten)]
    profile: ProfileClaims,
}

pub(crate) async fn userinfo(
    State(state): State<AppState>,
    Path(realm): Path<String>,
    headers: HeaderMap,
) -> Result<Json<UserInfo>, HttpError> {
    let rs = state.realm(&realm)?;
    let reject = |description| HttpError::Bearer {
        realm: rs.realm.name().to_owned(),
        description,
    };
    let token = authorization(&headers, "bearer")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| reject("Token not provided"))?;
    let now = state.now();
    let claims = tokens::verify_access(&state.keys(&rs), &rs.issuer, now, token)
        .map_err(|_| reject("Token verification failed"))?;
    if rs.is_revoked(&claims.jti) {
        return Err(reject("Token verification failed"));
    }
    if rs.store().live_session(&claims.sid, now).is_none() {
        return Err(reject(
            "User session not found or doesn't have client attached on it",
        ));
    }
    let user = rs
        .realm
        .user_by_id(&claims.sub)
        .filter(|u| u.enabled())
        .ok_or_else(|| reject("User not found"))?;
    let mismatch = !state
        .take_faults(rs.realm.name(), Some(&claims.azp), |k| {
            *k == FaultKind::UserinfoSubMismatch
        })
        .is_empty();
    let sub = if mismatch {
        crate::ids::derived_uuid(&format!("other:{}", user.id()))
    } else {
        user.id().to_owned()
    };
    Ok(Json(UserInfo {
        sub,
        profile: ProfileClaims::of(user),
    }))
}
