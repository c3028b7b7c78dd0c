//! The Caddy gateway: Debian's `caddy` with `forward_auth` to extauth's HTTP mode, then
//! `reverse_proxy` to the LLM upstream.
//!
//! The harness writes the Caddyfile (admin API off, no automatic HTTPS, bound to one loopback
//! address), runs `caddy run` as a child process with its data and config folders in a
//! temporary directory, waits until the port answers, and kills it by PID on
//! [`CaddyGateway::stop`] or drop. `forward_auth` sends the check as `GET {uri}` (path and
//! query as the client sent them, `Host` kept, `X-Forwarded-Method/-Uri` set by Caddy); a
//! non-2xx answer (the 302 to the IdP, the callback's 302 with `Set-Cookie`) goes back to
//! the client as is; on a 2xx, `copy_headers` puts the ID token header on the upstream
//! request. The client's own copy of that header is removed before the check.
//!
//! With several extauth replicas, `forward_auth` gets its own upstream list and Caddy
//! 2.6's `reverse_proxy` load-balancing options (checked against the installed 2.6.2):
//! `lb_policy round_robin`; `lb_try_duration`/`lb_try_interval`, so a check whose replica
//! cannot be dialled is sent to the next one; passive health (`max_fails 1`,
//! `fail_duration`), so a replica that failed is skipped for a while; and an active health
//! check of each replica's `/readyz` on the admin port every replica shares
//! (`health_port`: Caddy 2.6 takes one port for all upstreams, which is why replicas run on
//! their own loopback addresses with the same ports). Caddy retries a GET (and the check is
//! always a GET) also when the connection broke after it was sent.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::process::{GatewayProcess, ProcessError, Readiness, find_on_path};

/// How long one check may keep looking for a replica that can be dialled.
const LB_TRY_DURATION: &str = "5s";
/// The pause between two tries of one check.
const LB_TRY_INTERVAL: &str = "50ms";
/// How long a replica that failed is skipped (passive health).
const FAIL_DURATION: &str = "500ms";
/// How often each replica's `/readyz` is asked (active health).
const HEALTH_INTERVAL: &str = "250ms";
/// extauth answers `/readyz` within 900 ms (its probe bound), plus slack.
const HEALTH_TIMEOUT: &str = "2s";

/// What Caddy fronts.
#[derive(Debug, Clone)]
pub struct CaddyConfig {
    /// Where the gateway listens (a loopback address).
    pub listen: SocketAddr,
    /// extauth's HTTP-mode address, one per replica.
    pub extauth_http: Vec<SocketAddr>,
    /// The admin port every replica listens on, for the active health check of `/readyz`
    /// (none: no active check, as with the in-process extauth).
    pub health_port: Option<u16>,
    /// The upstream, `host:port`.
    pub upstream: String,
    /// The ID-token header extauth sets on an allowed request (the seed's `jwt`).
    pub id_token_header: String,
}

impl CaddyConfig {
    /// The Caddyfile for this configuration.
    pub fn caddyfile(&self) -> String {
        let header = &self.id_token_header;
        let auth = self
            .extauth_http
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ");
        let mut balancing = String::new();
        if self.extauth_http.len() > 1 || self.health_port.is_some() {
            balancing.push_str(&format!(
                "\t\t\tlb_policy round_robin\n\
                 \t\t\tlb_try_duration {LB_TRY_DURATION}\n\
                 \t\t\tlb_try_interval {LB_TRY_INTERVAL}\n\
                 \t\t\tmax_fails 1\n\
                 \t\t\tfail_duration {FAIL_DURATION}\n"
            ));
        }
        if let Some(port) = self.health_port {
            balancing.push_str(&format!(
                "\t\t\thealth_uri /readyz\n\
                 \t\t\thealth_port {port}\n\
                 \t\t\thealth_interval {HEALTH_INTERVAL}\n\
                 \t\t\thealth_timeout {HEALTH_TIMEOUT}\n\
                 \t\t\thealth_status 200\n"
            ));
        }
        format!(
            "{{\n\tadmin off\n\tauto_https off\n}}\n\n\
             http://:{port} {{\n\tbind {ip}\n\tlog {{\n\t\toutput stderr\n\t}}\n\troute {{\n\
             \t\t# The client's own copy of the identity header never reaches the check or the LLM.\n\
             \t\trequest_header -{header}\n\
             \t\tforward_auth {auth} {{\n\t\t\turi {{uri}}\n\t\t\tcopy_headers {header}\n{balancing}\t\t}}\n\
             \t\treverse_proxy {upstream}\n\t}}\n}}\n",
            port = self.listen.port(),
            ip = self.listen.ip(),
            upstream = self.upstream,
        )
    }
}

/// Debian's `caddy`, run as a [`GatewayProcess`].
#[derive(Debug)]
pub struct CaddyGateway;

impl CaddyGateway {
    /// Finds `caddy` on `PATH` (or `/usr/bin`).
    pub fn find_binary() -> Option<PathBuf> {
        find_on_path("caddy", &[Path::new("/usr/bin")])
    }

    /// Writes the Caddyfile into `dir`, starts Caddy and waits until it listens.
    pub fn start(config: &CaddyConfig, dir: &Path) -> Result<GatewayProcess, ProcessError> {
        let binary = Self::find_binary().ok_or_else(|| ProcessError::NotFound {
            what: "caddy",
            how: "install it (apt-get install caddy)".into(),
        })?;
        let home = dir.join("caddy");
        std::fs::create_dir_all(&home).map_err(ProcessError::start("caddy"))?;
        let caddyfile = home.join("Caddyfile");
        std::fs::write(&caddyfile, config.caddyfile()).map_err(ProcessError::start("caddy"))?;
        let mut command = Command::new(binary);
        command
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&caddyfile)
            .env("HOME", &home)
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_CONFIG_HOME", home.join("config"));
        GatewayProcess::start(
            "caddy",
            command,
            config.listen,
            home.join("caddy.log"),
            &Readiness::Listening,
        )
    }
}

#[cfg(test)]
mod tests;
