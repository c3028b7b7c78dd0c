//! `harness`: brings up the OIDC authorization-code testbed, drives real logins and runs
//! scenario files.
//!
//! Map of the crate (one module per part of the stack):
//! - [`redis`]: a throwaway `redis-server` process;
//! - [`upstream`]: the OpenAI-like LLM mock that records what it received;
//! - [`gateway_sim`]: an agentgateway/Envoy stand-in speaking ext_authz gRPC;
//! - [`login`]: the browser and plain-HTTP login drivers for Keycloak's form;
//! - [`stack`]: all of the above plus the mock IdP and extauth, wired as the seed guide says;
//! - [`scenario`]: the YAML scenario format, its runner, redaction and snapshots;
//! - [`cli`]: `harness up` and `harness run`.

pub mod cli;
pub mod gateway_sim;
pub mod login;
pub mod redis;
pub mod scenario;
pub mod stack;
pub mod upstream;
