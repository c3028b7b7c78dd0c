//! Adapters between the wire and [`crate::flow`]: Envoy ext_authz over gRPC, the HTTP mode
//! (forward-auth, Envoy HTTP ext_authz, nginx `auth_request`: one [`profile`] per listener),
//! and the admin listener. They translate; they never decide.

pub mod admin;
pub mod grpc;
pub mod http;
pub mod observe;
pub mod profile;
pub mod proxy;
