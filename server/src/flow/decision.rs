//! What the flow answers: let the request through (with headers to set and remove), or
//! answer the client directly (a redirect, an error).

use http::{HeaderName, StatusCode};

/// The verdict for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Forward upstream.
    Allow(Allow),
    /// Answer the client.
    Deny(Deny),
}

/// Forward upstream with these changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allow {
    /// Set on the upstream request, overwriting any client value.
    pub upstream_headers: Vec<(HeaderName, String)>,
    /// Removed from the upstream request (the exact spellings the client sent).
    pub remove_headers: Vec<String>,
    /// Added to the response to the client.
    pub response_headers: Vec<(HeaderName, String)>,
    /// `dynamicMetadataFromClaims`: metadata key → claim value, for the gRPC
    /// `CheckResponse.dynamic_metadata` (Envoy files it under `envoy.filters.http.ext_authz`).
    pub dynamic_metadata: serde_json::Map<String, serde_json::Value>,
}

/// Answer the client with this response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deny {
    /// Status code.
    pub status: StatusCode,
    /// Headers; `set-cookie` may repeat.
    pub headers: Vec<(HeaderName, String)>,
    /// Body (plain text).
    pub body: String,
}

/// `X-Content-Type-Options: nosniff`, on every answer extauth writes: a browser must never
/// read one of our bodies as anything but its declared type.
pub const NOSNIFF: (HeaderName, &str) = (http::header::X_CONTENT_TYPE_OPTIONS, "nosniff");

impl Deny {
    /// A plain-text response.
    pub fn text(status: StatusCode, body: impl Into<String>) -> Self {
        Self::typed(status, "text/plain; charset=utf-8", body)
    }

    /// A response with a body of `content_type`.
    pub fn typed(status: StatusCode, content_type: &str, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: vec![
                (http::header::CONTENT_TYPE, content_type.into()),
                (http::header::CACHE_CONTROL, "no-store".into()),
                (NOSNIFF.0, NOSNIFF.1.into()),
            ],
            body: body.into(),
        }
    }

    /// A `302 Found` to `location`.
    pub fn redirect(location: String) -> Self {
        Self {
            status: StatusCode::FOUND,
            headers: vec![
                (http::header::LOCATION, location),
                (http::header::CACHE_CONTROL, "no-store".into()),
                (NOSNIFF.0, NOSNIFF.1.into()),
            ],
            body: String::new(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: HeaderName, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}
