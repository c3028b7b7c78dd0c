//! Gateway backends of a stack, one file each, all with the same shape (start on an address
//! given by the stack, forward to the upstream after asking extauth, stop on drop):
//! - [`sim`]: the built-in ext_authz gRPC simulator (agentgateway/Envoy semantics);
//! - [`agentgateway`]: agentgateway itself (standalone config, `extAuthz` over gRPC), against
//!   which the simulator is checked;
//! - [`caddy`]: Debian's Caddy with `forward_auth` to extauth's HTTP mode;
//! - [`nginx`]: Debian's nginx with `auth_request` to extauth's nginx profile and the
//!   `error_page 401` sign-in recipe.
//!
//! The three that run as child processes share [`process`].

pub mod agentgateway;
pub mod caddy;
pub mod nginx;
pub mod process;
pub mod sim;
