//! Gateway backends of a stack, one file each, all with the same shape (start on an address
//! given by the stack, forward to the upstream after asking extauth, stop on drop):
//! - [`sim`]: the built-in ext_authz gRPC simulator (agentgateway/Envoy semantics);
//! - [`caddy`]: Debian's Caddy with `forward_auth` to extauth's HTTP mode.

pub mod caddy;
pub mod sim;
