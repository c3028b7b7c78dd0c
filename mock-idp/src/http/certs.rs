//! `GET /realms/{realm}/protocol/openid-connect/certs`: the realm's JWKS.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::Value;

use super::{AppState, HttpError};

pub(crate) async fn jwks(
    State(state): State<AppState>,
    Path(realm): Path<String>,
) -> Result<Json<Value>, HttpError> {
    let rs = state.realm(&realm)?;
    Ok(Json(state.keys(&rs).jwks()))
}
