//! Adapters between the wire and [`crate::flow`]: Envoy ext_authz over gRPC, the HTTP mode
//! (forward-auth, Envoy HTTP ext_authz, nginx `auth_request`: one [`profile`] per listener),
//! and the admin listener. They translate; they never decide.

pub mod admin;
pub mod grpc;
pub mod http;
pub mod observe;
pub mod pb_struct;
pub mod profile;
pub mod proxy;

/// Sets `X-Content-Type-Options: nosniff` on every response of a router (the bodies the
/// flow writes carry it already; this covers the rest: admin pages, extractor rejections).
pub async fn nosniff(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        ::http::header::X_CONTENT_TYPE_OPTIONS,
        ::http::HeaderValue::from_static("nosniff"),
    );
    response
}
