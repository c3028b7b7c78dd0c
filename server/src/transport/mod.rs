//! Adapters between the wire and [`crate::flow`]: Envoy ext_authz over gRPC, the HTTP mode
//! (Envoy HTTP ext_authz, forward-auth), and the admin listener. They translate; they never
//! decide.

pub mod admin;
pub mod grpc;
pub mod http;
pub mod observe;
pub mod proxy;
