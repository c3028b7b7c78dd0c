//! The one place that turns errors into HTTP responses, in Keycloak's shapes: JSON
//! `{"error", "error_description"}` for the token and API endpoints, an HTML error page for
//! the browser endpoints. Client faults are 4xx with a useful message; internal faults are a
//! generic 500 whose details go to the log only.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use super::pages;

/// An error response.
#[derive(Debug)]
pub(crate) enum HttpError {
    /// No such realm: Keycloak's `404 {"error":"Realm does not exist"}`.
    RealmNotFound,
    /// The realm exists but `enabled` is false.
    RealmDisabled,
    /// No such route.
    NotFound,
    /// A browser-facing error page (400), e.g. "Client not found.".
    Page {
        /// Realm display name for the page title.
        realm: String,
        /// The message, in Keycloak's words.
        message: String,
    },
    /// An OAuth error from the token endpoint (RFC 6749 5.2).
    OAuth {
        status: StatusCode,
        error: &'static str,
        description: String,
    },
    /// A rejected bearer token at a resource endpoint (RFC 6750 3.1).
    Bearer {
        realm: String,
        description: &'static str,
    },
    /// A refused `private_key_jwt` client assertion: `400 invalid_client` with Keycloak's
    /// description (its generic `401` for an assertion no authenticator takes).
    ClientAssertion(crate::client_jwt::AssertionError),
    /// Our own failure (e.g. signing); the detail is logged, not shown.
    Internal(String),
}

impl HttpError {
    pub(crate) fn page(realm: &str, message: impl Into<String>) -> Self {
        Self::Page {
            realm: realm.to_owned(),
            message: message.into(),
        }
    }

    /// `401 invalid_client`, with Keycloak's description.
    pub(crate) fn invalid_client() -> Self {
        Self::OAuth {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: "Invalid client or Invalid client credentials".to_owned(),
        }
    }

    /// `400 invalid_grant`.
    pub(crate) fn invalid_grant(description: &str) -> Self {
        Self::OAuth {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_grant",
            description: description.to_owned(),
        }
    }

    /// `400 invalid_request`.
    pub(crate) fn invalid_request(description: impl Into<String>) -> Self {
        Self::OAuth {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            description: description.into(),
        }
    }
}

/// JSON with `Cache-Control: no-store` (RFC 6749 5.1 requires it on token responses; Keycloak
/// sends it on every error too).
pub(crate) fn no_store_json(status: StatusCode, body: impl serde::Serialize) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// HTML that must not be cached (login pages hold single-use codes).
pub(crate) fn no_store_html(status: StatusCode, body: String) -> Response {
    let mut resp = (status, Html(body)).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, must-revalidate, max-age=0"),
    );
    resp
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        match self {
            HttpError::RealmNotFound => (
                StatusCode::NOT_FOUND,
                axum::Json(json!({ "error": "Realm does not exist" })),
            )
                .into_response(),
            HttpError::RealmDisabled => (
                StatusCode::FORBIDDEN,
                axum::Json(json!({ "error": "Realm not enabled" })),
            )
                .into_response(),
            HttpError::NotFound => (
                StatusCode::NOT_FOUND,
                axum::Json(json!({ "error": "Unable to find matching target resource method" })),
            )
                .into_response(),
            HttpError::Page { realm, message } => {
                no_store_html(StatusCode::BAD_REQUEST, pages::error_page(&realm, &message))
            }
            HttpError::OAuth {
                status,
                error,
                description,
            } => no_store_json(
                status,
                json!({ "error": error, "error_description": description }),
            ),
            HttpError::Bearer { realm, description } => {
                let challenge = format!(
                    r#"Bearer realm="{}", error="invalid_token", error_description="{}""#,
                    realm.replace(['"', '\\'], ""),
                    description
                );
                let mut resp = no_store_json(
                    StatusCode::UNAUTHORIZED,
                    json!({ "error": "invalid_token", "error_description": description }),
                );
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                } else {
                    resp.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                    );
                }
                resp
            }
            HttpError::ClientAssertion(e) if e.is_generic() => {
                HttpError::invalid_client().into_response()
            }
            HttpError::ClientAssertion(e) => {
                tracing::info!(error = %e, "client assertion refused");
                no_store_json(
                    StatusCode::BAD_REQUEST,
                    json!({ "error": "invalid_client", "error_description": e.to_string() }),
                )
            }
            HttpError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                no_store_json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({ "error": "server_error", "error_description": "Internal server error" }),
                )
            }
        }
    }
}
