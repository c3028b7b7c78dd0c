//! The middleware in front of every IdP endpoint (not the admin API): it records the request
//! in the [`RequestLog`](crate::requests::RequestLog), then applies the operational faults
//! switched on for the endpoint (latency, an error status, a dropped connection, a hang).
//!
//! It buffers the body (bounded by [`MAX_BODY`]) to log form parameters and find the client,
//! then hands the same bytes to the handler.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng as _;
use serde_json::json;

use super::AppState;
use super::error::no_store_json;
use super::params::{authorization, decode_basic};
use crate::faults::{Endpoint, FaultKind, MAX_HANG_SECONDS};
use crate::requests::{LoggedRequest, redacted_params};

/// The largest request body accepted (form posts are small).
pub(crate) const MAX_BODY: usize = 1024 * 1024;

pub(crate) async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return no_store_json(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": "invalid_request", "error_description": "Request too large"}),
            );
        }
    };
    let (realm, endpoint) = Endpoint::classify(parts.uri.path());
    let query = redacted_params(parts.uri.query().unwrap_or_default().as_bytes());
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let form = if is_form {
        redacted_params(&bytes)
    } else {
        Default::default()
    };
    let client_id = query
        .get("client_id")
        .or_else(|| form.get("client_id"))
        .cloned()
        .or_else(|| basic_client_id(&parts.headers))
        .or_else(|| is_form.then(|| assertion_subject(&bytes)).flatten());
    let seq = state.log.push(LoggedRequest {
        seq: 0,
        time: state.now(),
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        realm: realm.clone(),
        endpoint,
        client_id: client_id.clone(),
        query,
        form,
        headers: parts
            .headers
            .keys()
            .map(|k| k.as_str().to_owned())
            .collect(),
        status: None,
        url: None,
        error: None,
    });

    if let Some(realm) = &realm {
        let faults = state.take_faults(realm, client_id.as_deref(), |k| {
            k.operational_endpoint() == Some(endpoint)
        });
        for fault in faults {
            tracing::info!(?fault, ?endpoint, "operational fault");
            match fault {
                FaultKind::Latency { ms, max_ms, .. } => {
                    let delay = match max_ms {
                        Some(max) if max > ms => rand::rng().random_range(ms..=max),
                        _ => ms,
                    };
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                FaultKind::Status { status, .. } => {
                    let status =
                        StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                    state.log.set_status(seq, status.as_u16());
                    return no_store_json(
                        status,
                        json!({"error": "server_error", "error_description": "Injected fault"}),
                    );
                }
                FaultKind::ConnectionReset { .. } => return dropped_connection(),
                FaultKind::Timeout { seconds, .. } => {
                    tokio::time::sleep(Duration::from_secs(seconds.min(MAX_HANG_SECONDS))).await;
                    return dropped_connection();
                }
                _ => {}
            }
        }
    }

    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    state.log.set_status(seq, resp.status().as_u16());
    resp
}

/// A response whose body fails at once: hyper then closes the connection without a complete
/// message, which the client sees as a reset.
fn dropped_connection() -> Response {
    let failing = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected connection reset",
        ))
    });
    let mut resp = Body::from_stream(failing).into_response();
    resp.headers_mut().insert(
        header::CONTENT_LENGTH,
        header::HeaderValue::from_static("1"),
    );
    resp
}

/// The (unverified) `sub` of a `client_assertion` in a form body: the client of a
/// `private_key_jwt` request that sends no `client_id`.
fn assertion_subject(body: &[u8]) -> Option<String> {
    let (_, raw) = url::form_urlencoded::parse(body).find(|(k, _)| k == "client_assertion")?;
    crate::client_jwt::Assertion::parse(&raw)
        .ok()?
        .subject()
        .map(str::to_owned)
}

/// The client id of `Authorization: Basic` credentials.
fn basic_client_id(headers: &axum::http::HeaderMap) -> Option<String> {
    let (id, _) = decode_basic(authorization(headers, "basic")?)?;
    Some(id)
}
