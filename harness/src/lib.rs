//! `harness`: brings up the OIDC authorization-code testbed, drives real logins and runs
//! scenario files.
//!
//! Map of the crate (one module per part of the stack):
//! - [`redis`]: the Redis backends, one file each (a `redis-server` process, a `redis:7`
//!   container);
//! - [`docker`]: is there a Docker engine, and does it hold an image;
//! - [`extauth`]: the extauth backends (in process, or `--replicas N` processes of the real
//!   binary that can be killed and restarted);
//! - [`idp`]: the IdP backends (mock in process or as a container, oidc-provider, Keycloak
//!   container, URL);
//! - [`cleanup`]: the record of every process and container the harness started;
//! - [`upstream`]: the OpenAI-like LLM mock that records what it received;
//! - [`gateway`]: the gateway backends, one file each: [`gateway::sim`] (an agentgateway
//!   stand-in speaking ext_authz gRPC), [`gateway::agentgateway`] (the real one),
//!   [`gateway::caddy`] (Caddy `forward_auth` in front of extauth's HTTP mode) and
//!   [`gateway::nginx`] (nginx `auth_request` and the sign-in recipe);
//! - [`logs`]: log tails for failure reports;
//! - [`login`]: the browser and plain-HTTP login drivers for Keycloak's form;
//! - [`stack`]: all of the above plus the mock IdP and extauth, wired as the seed guide says;
//! - [`scenario`]: the YAML scenario format, its runner, redaction and snapshots;
//! - [`load`]: `harness load`, virtual users logging in and calling, with a baseline; and
//!   [`load::check`], extauth's check loaded directly (HTTP or gRPC) over pre-created
//!   sessions, beside a Redis `GET`, `/healthz` and [`noop_authz`] in the same run;
//! - [`noop_authz`]: an ext_authz gRPC server that allows everything (the gRPC baseline);
//! - [`cli`]: `harness up`, `harness run` and `harness load`;
//! - [`watchdog`]: what is in flight, and the last bound on a hung run.

pub mod cleanup;
pub mod cli;
pub mod docker;
pub mod extauth;
pub mod gateway;
pub mod idp;
pub mod load;
pub mod login;
pub mod logs;
pub mod noop_authz;
pub mod redis;
pub mod scenario;
pub mod sim;
pub mod stack;
pub mod upstream;
pub mod watchdog;

/// A header map as `(name, value)` pairs, values read as UTF-8 (lossy), in the map's order:
/// how transcripts, the simulation and the upstream record the headers they saw.
pub(crate) fn header_pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}
