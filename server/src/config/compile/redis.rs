//! `session.redis` → [`RedisConfig`]: Solo's `RedisOptions` (`host` as `host:port` or
//! `unix:///path`, `db`, `poolSize`, `socketType`, `tlsCertMountPath`) and extauth's
//! extensions (`topology`, `sentinel`, `cluster`, `commandTimeout`, `durableSessions`,
//! `clientSideCache`), with
//! the credentials from the environment (`REDIS_PASSWORD`, `REDIS_USERNAME`,
//! `REDIS_SENTINEL_PASSWORD`, `REDIS_SENTINEL_USERNAME`).
//!
//! The one piece of I/O in config loading lives here: the TLS files are read (and parsed as
//! PEM) at load, so that a missing or unreadable file is REJECTED with its path by
//! `extauth validate`, not found at the first request.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::super::manifest::Document;
use super::super::raw;
use super::{DEFAULT_POOL_SIZE, field, parse_duration, parse_host_port_with};
use crate::config::{
    ConfigError, DurableSessions, HostPort, RedisAddress, RedisAuth, RedisConfig, RedisTls,
    RedisTopology,
};
use crate::env::EnvSource;
use crate::secret::Secret;

/// The data nodes' password (Solo's: the pod's `REDIS_PASSWORD`).
pub const REDIS_PASSWORD_ENV: &str = "REDIS_PASSWORD";
/// An ACL user for the data nodes.
pub const REDIS_USERNAME_ENV: &str = "REDIS_USERNAME";
/// The sentinels' own password.
pub const REDIS_SENTINEL_PASSWORD_ENV: &str = "REDIS_SENTINEL_PASSWORD";
/// An ACL user for the sentinels.
pub const REDIS_SENTINEL_USERNAME_ENV: &str = "REDIS_SENTINEL_USERNAME";
/// Default `commandTimeout`: a second, so that a dead Redis fails a request quickly (the
/// redis crate's own defaults take ~10 s on a dead port).
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest accepted `commandTimeout`.
const MAX_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `durableSessions.timeout`.
pub const DEFAULT_DURABLE_TIMEOUT: Duration = Duration::from_millis(500);
/// Default port of a sentinel.
pub const SENTINEL_PORT: u16 = 26379;
/// Default port of a data node.
pub const REDIS_PORT: u16 = 6379;
/// The files of `tlsCertMountPath` (a Kubernetes TLS Secret mounted as a folder).
pub const TLS_CA_FILE: &str = "ca.crt";
/// The client certificate, for mutual TLS.
pub const TLS_CERT_FILE: &str = "tls.crt";
/// The client key, for mutual TLS.
pub const TLS_KEY_FILE: &str = "tls.key";

/// Compiles `session.redis` (`p` makes a field path under the AuthConfig).
pub(super) fn compile(
    doc: &Document,
    redis: &raw::RedisSession,
    env: &dyn EnvSource,
    p: &dyn Fn(&str) -> String,
) -> Result<RedisConfig, ConfigError> {
    let o = &redis.options;
    let opt = |f: &str| p(&format!("session.redis.options.{f}"));

    let topology_name = o.topology.as_deref().unwrap_or("standalone");
    let tls_asked = match o.socket_type.as_deref() {
        None | Some("TCP") => false,
        Some("TLS") => true,
        Some(other) => {
            return Err(field(
                doc,
                opt("socketType"),
                format!("expected `TCP` or `TLS`, got {other:?}"),
            ));
        }
    };
    let topology = match topology_name {
        "standalone" => {
            reject_block(doc, o.sentinel.is_some(), &opt("sentinel"), "sentinel")?;
            reject_block(doc, o.cluster.is_some(), &opt("cluster"), "cluster")?;
            let host = o.host.as_deref().ok_or_else(|| {
                field(
                    doc,
                    opt("host"),
                    "expected `host:port` or `unix:///path/redis.sock` (required with the standalone topology)",
                )
            })?;
            let address = parse_address(host).map_err(|m| field(doc, opt("host"), m))?;
            if tls_asked && matches!(address, RedisAddress::Unix(_)) {
                return Err(field(
                    doc,
                    opt("socketType"),
                    "`TLS` is for TCP: a unix socket is local, use `TCP` (or a `host:port`)",
                ));
            }
            RedisTopology::Standalone(address)
        }
        "sentinel" => {
            reject_host(doc, o.host.as_deref(), &opt("host"), "sentinel.addresses")?;
            reject_block(doc, o.cluster.is_some(), &opt("cluster"), "cluster")?;
            let sentinel = o.sentinel.as_ref().ok_or_else(|| {
                field(
                    doc,
                    opt("sentinel"),
                    "expected `masterName` and `addresses` (required with topology: sentinel)",
                )
            })?;
            let master_name = match sentinel.master_name.as_deref().map(str::trim) {
                Some(name) if !name.is_empty() && !name.contains(char::is_whitespace) => {
                    name.to_owned()
                }
                Some(name) => {
                    return Err(field(
                        doc,
                        opt("sentinel.masterName"),
                        format!("expected a master name without spaces, got {name:?}"),
                    ));
                }
                None => {
                    return Err(field(
                        doc,
                        opt("sentinel.masterName"),
                        "expected the monitored master's name (`sentinel monitor NAME ...`, e.g. `mymaster`)",
                    ));
                }
            };
            let sentinels = addresses(
                doc,
                &sentinel.addresses,
                &opt("sentinel.addresses"),
                SENTINEL_PORT,
            )?;
            RedisTopology::Sentinel {
                master_name,
                sentinels,
            }
        }
        "cluster" => {
            reject_host(doc, o.host.as_deref(), &opt("host"), "cluster.nodes")?;
            reject_block(doc, o.sentinel.is_some(), &opt("sentinel"), "sentinel")?;
            let cluster = o.cluster.as_ref().ok_or_else(|| {
                field(
                    doc,
                    opt("cluster"),
                    "expected `nodes` (seed nodes, `host:port`; required with topology: cluster)",
                )
            })?;
            let nodes = addresses(doc, &cluster.nodes, &opt("cluster.nodes"), REDIS_PORT)?;
            RedisTopology::Cluster { nodes }
        }
        other => {
            return Err(field(
                doc,
                opt("topology"),
                format!("expected `standalone`, `sentinel` or `cluster`, got {other:?}"),
            ));
        }
    };

    let db = match o.db {
        None => 0,
        Some(n) if (0..=i64::from(u16::MAX)).contains(&n) => n as u32,
        Some(n) => {
            return Err(field(
                doc,
                opt("db"),
                format!("expected a database number >= 0, got {n}"),
            ));
        }
    };
    if db != 0 && matches!(topology, RedisTopology::Cluster { .. }) {
        return Err(field(
            doc,
            opt("db"),
            format!(
                "expected 0 with topology: cluster (Redis Cluster has only database 0), got {db}"
            ),
        ));
    }
    let pool_size = match o.pool_size {
        None => DEFAULT_POOL_SIZE,
        Some(n) if (1..=10_000).contains(&n) => n as u32,
        Some(n) => {
            return Err(field(
                doc,
                opt("poolSize"),
                format!("expected 1 to 10000, got {n}"),
            ));
        }
    };
    let key_prefix = redis.key_prefix.clone().unwrap_or_default();
    if key_prefix
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(field(
            doc,
            p("session.redis.keyPrefix"),
            "expected no spaces or control characters",
        ));
    }

    let tls = match (tls_asked, o.tls_cert_mount_path.as_deref()) {
        (true, Some(dir)) => {
            Some(read_tls(Path::new(dir)).map_err(|m| field(doc, opt("tlsCertMountPath"), m))?)
        }
        (true, None) => {
            return Err(field(
                doc,
                opt("tlsCertMountPath"),
                format!(
                    "expected a folder with `{TLS_CA_FILE}` (and `{TLS_CERT_FILE}` + `{TLS_KEY_FILE}` for mutual TLS): required with socketType: TLS"
                ),
            ));
        }
        (false, Some(_)) => {
            return Err(field(
                doc,
                opt("tlsCertMountPath"),
                "only used with socketType: TLS (add `socketType: TLS`, or remove this field)",
            ));
        }
        (false, None) => None,
    };

    let command_timeout = match &o.command_timeout {
        None => DEFAULT_COMMAND_TIMEOUT,
        Some(text) => {
            let d = parse_duration(text).map_err(|m| field(doc, opt("commandTimeout"), m))?;
            if d.is_zero() || d > MAX_COMMAND_TIMEOUT {
                return Err(field(
                    doc,
                    opt("commandTimeout"),
                    format!(
                        "expected more than 0 and at most {}s, got {text:?}",
                        MAX_COMMAND_TIMEOUT.as_secs()
                    ),
                ));
            }
            d
        }
    };
    let durable = match &o.durable_sessions {
        None => None,
        Some(d) => Some(durable(doc, d, command_timeout, &opt)?),
    };

    let client_side_cache = o.client_side_cache.unwrap_or(false);
    if client_side_cache && !matches!(topology, RedisTopology::Standalone(_)) {
        return Err(field(
            doc,
            opt("clientSideCache"),
            "supported with the standalone topology only (remove it, or use `host`)",
        ));
    }
    let auth = credentials(doc, env, REDIS_USERNAME_ENV, REDIS_PASSWORD_ENV, &opt(""))?;
    let sentinel_auth = credentials(
        doc,
        env,
        REDIS_SENTINEL_USERNAME_ENV,
        REDIS_SENTINEL_PASSWORD_ENV,
        &opt("sentinel"),
    )?;
    Ok(RedisConfig {
        topology,
        db,
        pool_size,
        key_prefix,
        tls,
        auth,
        sentinel_auth,
        command_timeout,
        durable,
        client_side_cache,
    })
}

fn reject_block(doc: &Document, present: bool, path: &str, name: &str) -> Result<(), ConfigError> {
    if present {
        Err(field(
            doc,
            path,
            format!(
                "only used with topology: {name} (set `topology: {name}`, or remove this field)"
            ),
        ))
    } else {
        Ok(())
    }
}

/// `host` names one server; with Sentinel or Cluster the servers come from elsewhere, and a
/// `host` that would be ignored is more likely a mistake than an intent.
fn reject_host(
    doc: &Document,
    host: Option<&str>,
    path: &str,
    instead: &str,
) -> Result<(), ConfigError> {
    match host {
        Some(_) => Err(field(
            doc,
            path,
            format!(
                "not used with this topology: the servers come from `{instead}` (remove `host`)"
            ),
        )),
        None => Ok(()),
    }
}

fn addresses(
    doc: &Document,
    list: &[String],
    path: &str,
    default_port: u16,
) -> Result<Vec<HostPort>, ConfigError> {
    if list.is_empty() {
        return Err(field(
            doc,
            path,
            format!("expected at least one `host:port` (port defaults to {default_port})"),
        ));
    }
    let mut out: Vec<HostPort> = Vec::with_capacity(list.len());
    for (i, text) in list.iter().enumerate() {
        let (host, port) = parse_host_port_with(text, default_port)
            .map_err(|m| field(doc, format!("{path}[{i}]"), m))?;
        let address = HostPort { host, port };
        if out.contains(&address) {
            return Err(field(
                doc,
                format!("{path}[{i}]"),
                format!("{address} is listed twice"),
            ));
        }
        out.push(address);
    }
    Ok(out)
}

/// `host:port` (port 6379 by default) or `unix:///absolute/path`.
fn parse_address(text: &str) -> Result<RedisAddress, String> {
    if let Some(path) = text.trim().strip_prefix("unix://") {
        let path = PathBuf::from(path);
        if !path.is_absolute() || path.as_os_str().len() < 2 {
            return Err(format!(
                "expected `unix:///absolute/path/redis.sock`, got {text:?}"
            ));
        }
        return Ok(RedisAddress::Unix(path));
    }
    let (host, port) = parse_host_port_with(text, REDIS_PORT)
        .map_err(|m| format!("{m}, or `unix:///path/redis.sock`"))?;
    Ok(RedisAddress::Tcp(HostPort { host, port }))
}

fn durable(
    doc: &Document,
    d: &raw::DurableSessions,
    command_timeout: Duration,
    opt: &dyn Fn(&str) -> String,
) -> Result<DurableSessions, ConfigError> {
    let replicas = match d.replicas {
        None => 1,
        Some(n) if (1..=64).contains(&n) => n as u32,
        Some(n) => {
            return Err(field(
                doc,
                opt("durableSessions.replicas"),
                format!("expected 1 to 64 replicas, got {n}"),
            ));
        }
    };
    let timeout = match &d.timeout {
        None => DEFAULT_DURABLE_TIMEOUT,
        Some(text) => {
            parse_duration(text).map_err(|m| field(doc, opt("durableSessions.timeout"), m))?
        }
    };
    // `WAIT n 0` blocks forever; and the WAIT runs inside the call's own bound.
    if timeout.as_millis() == 0 || timeout >= command_timeout {
        return Err(field(
            doc,
            opt("durableSessions.timeout"),
            format!(
                "expected at least 1ms and less than commandTimeout ({}ms): the WAIT runs within the write's timeout",
                command_timeout.as_millis()
            ),
        ));
    }
    Ok(DurableSessions { replicas, timeout })
}

fn credentials(
    doc: &Document,
    env: &dyn EnvSource,
    user_var: &str,
    password_var: &str,
    path: &str,
) -> Result<RedisAuth, ConfigError> {
    let read = |name: &str| env.var(name).filter(|v| !v.is_empty());
    let username = read(user_var);
    let password = read(password_var).map(Secret::new);
    if username.is_some() && password.is_none() {
        return Err(field(
            doc,
            path.trim_end_matches('.'),
            format!(
                "the environment variable {user_var} is set but {password_var} is not: an ACL user needs its password"
            ),
        ));
    }
    Ok(RedisAuth { username, password })
}

/// Reads and checks the PEM files of `tlsCertMountPath`.
pub(crate) fn read_tls(dir: &Path) -> Result<RedisTls, String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a readable folder", dir.display()));
    }
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let ca = read(TLS_CA_FILE)?;
    let certificates = CertificateDer::pem_slice_iter(&ca)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            format!(
                "{}: not PEM certificates: {e}",
                dir.join(TLS_CA_FILE).display()
            )
        })?;
    if certificates.is_empty() {
        return Err(format!(
            "{}: expected at least one PEM certificate (-----BEGIN CERTIFICATE-----)",
            dir.join(TLS_CA_FILE).display()
        ));
    }
    let (cert_path, key_path) = (dir.join(TLS_CERT_FILE), dir.join(TLS_KEY_FILE));
    let client = match (cert_path.exists(), key_path.exists()) {
        (false, false) => None,
        (true, false) | (false, true) => {
            let (present, missing) = if cert_path.exists() {
                (&cert_path, &key_path)
            } else {
                (&key_path, &cert_path)
            };
            return Err(format!(
                "{} without {}: mutual TLS needs both (or neither, for TLS without a client certificate)",
                present.display(),
                missing.display()
            ));
        }
        (true, true) => {
            let cert = read(TLS_CERT_FILE)?;
            let key = read(TLS_KEY_FILE)?;
            let chain = CertificateDer::pem_slice_iter(&cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{}: not a PEM certificate: {e}", cert_path.display()))?;
            if chain.is_empty() {
                return Err(format!(
                    "{}: expected a PEM certificate (-----BEGIN CERTIFICATE-----)",
                    cert_path.display()
                ));
            }
            PrivateKeyDer::from_pem_slice(&key).map_err(|e| {
                format!(
                    "{}: expected a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
                    key_path.display()
                )
            })?;
            let key = String::from_utf8(key)
                .map_err(|_| format!("{}: expected PEM text", key_path.display()))?;
            Some((cert, Secret::new(key)))
        }
    };
    Ok(RedisTls {
        mount_path: dir.to_owned(),
        ca,
        client,
    })
}

#[cfg(test)]
mod tests;
