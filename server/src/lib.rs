//! `extauth`: a reference ext-auth server for the OIDC authorization-code flow behind an AI
//! gateway (agentgateway, Envoy, Caddy, nginx).
//!
//! Map of the crate:
//! - [`config`]: the seed's Kubernetes manifests (Secret + AuthConfig) → validated config;
//! - [`flow`]: the decision for one request: [`flow::login`] (302 to the IdP, or 401),
//!   [`flow::callback`] (code exchange, new session, cookie), [`flow::identity`] (allow with
//!   the identity headers, or a bearer ID token), [`flow::refresh`], [`flow::logout`],
//!   [`flow::binding`] (the CSRF login cookie), [`flow::return_url`] (where a login may
//!   return), [`flow::sign_in`] (the browser's answer behind nginx `auth_request`),
//!   [`flow::error`] (errors → responses);
//! - [`crypto`]: AES-256-GCM for session data at rest and cookie sessions;
//! - [`assertion`]: RFC 7523 client assertions (`private_key_jwt`);
//! - [`oidc`]: discovery (overrides, poll interval, JWKS refetch), code exchange, refresh,
//!   revocation and ID-token checks;
//! - [`state`]: the signed `state` parameter, PKCE verifier and nonce;
//! - [`session`]: session ids and stores (memory, Redis);
//! - [`transport`]: gRPC ext_authz, the HTTP mode (one profile per gateway: forward-auth,
//!   Envoy HTTP, nginx `auth_request`), admin;
//! - [`metrics`]: Prometheus counters and histograms (served on the admin listener);
//! - [`server`]: wiring and listeners; [`cli`]: `extauth serve|validate`.

pub mod assertion;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod env;
pub mod flow;
pub mod metrics;
pub mod oidc;
pub mod random;
pub mod secret;
pub mod server;
pub mod session;
pub mod state;
pub mod testing;
pub mod transport;
