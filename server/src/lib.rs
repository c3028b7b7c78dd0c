//! `extauth`: a reference ext-auth server for the OIDC authorization-code flow behind an AI
//! gateway (agentgateway, Envoy, Caddy, nginx).
//!
//! Map of the crate:
//! - [`config`]: the seed's Kubernetes manifests (Secret + AuthConfig) → validated config;
//! - [`flow`]: the decision for one request: [`flow::login`] (302 to the IdP),
//!   [`flow::callback`] (code exchange, new session, cookie), [`flow::identity`] (allow with
//!   the ID token header), [`flow::error`] (errors → responses);
//! - [`oidc`]: discovery, code exchange and ID-token checks;
//! - [`state`]: the signed `state` parameter, PKCE verifier and nonce;
//! - [`session`]: session ids and stores (memory, Redis);
//! - [`transport`]: gRPC ext_authz, the HTTP mode, admin;
//! - [`server`]: wiring and listeners; [`cli`]: `extauth serve|validate`.

pub mod cli;
pub mod clock;
pub mod config;
pub mod env;
pub mod flow;
pub mod oidc;
pub mod secret;
pub mod server;
pub mod session;
pub mod state;
pub mod testing;
pub mod transport;
