//! `session.redis.options`: every topology and option accepted with its defaults, every bad
//! setting REJECTED with its field path and the reason.

use std::time::Duration;

use super::super::tests::{SEED, load, rejection, seed_env};
use super::*;
use crate::env::MapEnv;
use crate::testing::TestCerts;

const PATH: &str = "spec.configs[0].oauth2.oidcAuthorizationCode.session.redis.options";
const SEED_OPTIONS: &str =
    "            options:\n              host: ext-cache-enterprise-agentgateway:6379\n";

/// The seed with its `options` replaced by these lines (each indented 14 spaces).
fn with_options(lines: &str) -> String {
    let indented: String = lines
        .lines()
        .map(|l| format!("              {l}\n"))
        .collect();
    SEED.replace(SEED_OPTIONS, &format!("            options:\n{indented}"))
}

fn redis_of(text: &str, env: &MapEnv) -> RedisConfig {
    load(text, env)
        .expect("ACCEPTED")
        .session
        .store
        .redis()
        .expect("Redis sessions")
        .clone()
}

fn hp(host: &str, port: u16) -> HostPort {
    HostPort {
        host: host.into(),
        port,
    }
}

#[test]
fn the_seeds_options_get_every_default() {
    let redis = redis_of(SEED, &seed_env());
    assert_eq!(
        redis.topology,
        RedisTopology::Standalone(RedisAddress::Tcp(hp(
            "ext-cache-enterprise-agentgateway",
            6379
        )))
    );
    assert_eq!(redis.command_timeout, DEFAULT_COMMAND_TIMEOUT);
    assert_eq!(redis.durable, None);
    assert_eq!(redis.tls, None);
    assert_eq!(redis.auth, RedisAuth::default());
    assert_eq!(redis.sentinel_auth, RedisAuth::default());
}

#[test]
fn a_unix_socket_host_is_a_path() {
    let redis = redis_of(
        &with_options("host: unix:///var/run/redis/redis.sock"),
        &seed_env(),
    );
    assert_eq!(
        redis.topology,
        RedisTopology::Standalone(RedisAddress::Unix("/var/run/redis/redis.sock".into()))
    );
}

#[test]
fn sentinel_takes_a_master_name_and_addresses_with_the_sentinel_port_by_default() {
    let redis = redis_of(
        &with_options(
            "topology: sentinel\nsentinel:\n  masterName: mymaster\n  addresses: [\"10.0.0.1\", \"10.0.0.2:26380\", \"[::1]:26381\"]",
        ),
        &seed_env(),
    );
    assert_eq!(
        redis.topology,
        RedisTopology::Sentinel {
            master_name: "mymaster".into(),
            sentinels: vec![
                hp("10.0.0.1", 26379),
                hp("10.0.0.2", 26380),
                hp("::1", 26381)
            ],
        }
    );
}

#[test]
fn cluster_takes_seed_nodes() {
    let redis = redis_of(
        &with_options("topology: cluster\ncluster:\n  nodes: [\"r1:7000\", \"r2\"]"),
        &seed_env(),
    );
    assert_eq!(
        redis.topology,
        RedisTopology::Cluster {
            nodes: vec![hp("r1", 7000), hp("r2", 6379)],
        }
    );
}

#[test]
fn the_client_side_cache_is_off_unless_asked_for() {
    assert!(!redis_of(SEED, &seed_env()).client_side_cache);
    let redis = redis_of(
        &with_options("host: r:6379\nclientSideCache: true"),
        &seed_env(),
    );
    assert!(redis.client_side_cache);
}

#[test]
fn the_client_side_cache_on_sentinel_is_rejected_with_this_message() {
    let msg = rejection(
        &with_options(
            "topology: sentinel\nsentinel: {masterName: m, addresses: [s]}\nclientSideCache: true",
        ),
        &seed_env(),
    );
    assert_eq!(
        msg,
        "AuthConfig agentgateway-system/oauth-authorization-code (seed.yaml, document 2): \
         spec.configs[0].oauth2.oidcAuthorizationCode.session.redis.options.clientSideCache: \
         supported with the standalone topology only (remove it, or use `host`)"
    );
}

#[test]
fn timeouts_and_durable_sessions_are_read_with_their_defaults() {
    let redis = redis_of(
        &with_options("host: r:6379\ncommandTimeout: 2s\ndurableSessions: {}"),
        &seed_env(),
    );
    assert_eq!(redis.command_timeout, Duration::from_secs(2));
    assert_eq!(
        redis.durable,
        Some(DurableSessions {
            replicas: 1,
            timeout: DEFAULT_DURABLE_TIMEOUT
        })
    );
    let redis = redis_of(
        &with_options("host: r:6379\ndurableSessions: {replicas: 2, timeout: 250ms}"),
        &seed_env(),
    );
    assert_eq!(
        redis.durable,
        Some(DurableSessions {
            replicas: 2,
            timeout: Duration::from_millis(250)
        })
    );
}

#[test]
fn credentials_come_from_the_environment_and_never_print() {
    let env = seed_env()
        .with(REDIS_PASSWORD_ENV, "data-pw-123")
        .with(REDIS_USERNAME_ENV, "extauth")
        .with(REDIS_SENTINEL_PASSWORD_ENV, "sentinel-pw-456");
    let redis = redis_of(SEED, &env);
    assert_eq!(redis.auth.username.as_deref(), Some("extauth"));
    assert_eq!(
        redis.auth.password.as_ref().map(Secret::expose),
        Some("data-pw-123")
    );
    assert_eq!(
        redis.sentinel_auth.password.as_ref().map(Secret::expose),
        Some("sentinel-pw-456")
    );
    let printed = format!("{:?}", load(SEED, &env).unwrap());
    assert!(!printed.contains("data-pw-123"), "{printed}");
    assert!(!printed.contains("sentinel-pw-456"), "{printed}");
}

#[test]
fn tls_reads_the_ca_and_the_client_pair_from_the_mount_path() {
    let certs = TestCerts::generate().unwrap();
    let text = |dir: &Path| {
        with_options(&format!(
            "host: r:6380\nsocketType: TLS\ntlsCertMountPath: {}",
            dir.display()
        ))
    };
    let mutual = redis_of(&text(&certs.mount_path()), &seed_env());
    let tls = mutual.tls.expect("TLS");
    assert!(tls.client.is_some());
    assert!(!tls.ca.is_empty());
    let printed = format!("{tls:?}");
    assert!(!printed.contains("PRIVATE KEY"), "{printed}");
    let ca_only = redis_of(&text(&certs.ca_only_path()), &seed_env());
    assert!(ca_only.tls.expect("TLS").client.is_none());
}

#[test]
fn bad_redis_settings_are_rejected_with_the_field_and_the_reason() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "unknown topology",
            "host: r\ntopology: replicated",
            "topology",
            "expected `standalone`, `sentinel` or `cluster`, got \"replicated\"",
        ),
        (
            "standalone without host",
            "db: 1",
            "host",
            "required with the standalone topology",
        ),
        (
            "sentinel without addresses",
            "topology: sentinel\nsentinel: {masterName: mymaster}",
            "sentinel.addresses",
            "expected at least one `host:port` (port defaults to 26379)",
        ),
        (
            "sentinel without master name",
            "topology: sentinel\nsentinel: {addresses: [\"s:26379\"]}",
            "sentinel.masterName",
            "expected the monitored master's name",
        ),
        (
            "sentinel without its block",
            "topology: sentinel",
            "sentinel",
            "expected `masterName` and `addresses`",
        ),
        (
            "bad sentinel address",
            "topology: sentinel\nsentinel: {masterName: m, addresses: [\"s:26379\", \"s:port\"]}",
            "sentinel.addresses[1]",
            "expected `host:port` (port defaults to 26379), got \"s:port\"",
        ),
        (
            "sentinel address twice",
            "topology: sentinel\nsentinel: {masterName: m, addresses: [\"s\", \"s:26379\"]}",
            "sentinel.addresses[1]",
            "s:26379 is listed twice",
        ),
        (
            "host with sentinel",
            "host: r\ntopology: sentinel\nsentinel: {masterName: m, addresses: [s]}",
            "host",
            "not used with this topology: the servers come from `sentinel.addresses`",
        ),
        (
            "sentinel block on standalone",
            "host: r\nsentinel: {masterName: m, addresses: [s]}",
            "sentinel",
            "only used with topology: sentinel",
        ),
        (
            "cluster without nodes",
            "topology: cluster\ncluster: {}",
            "cluster.nodes",
            "expected at least one `host:port`",
        ),
        (
            "cluster with a database",
            "topology: cluster\ndb: 2\ncluster: {nodes: [r]}",
            "db",
            "expected 0 with topology: cluster (Redis Cluster has only database 0), got 2",
        ),
        (
            "cluster block on sentinel",
            "topology: sentinel\nsentinel: {masterName: m, addresses: [s]}\ncluster: {nodes: [r]}",
            "cluster",
            "only used with topology: cluster",
        ),
        (
            "unknown socket type",
            "host: r\nsocketType: SSL",
            "socketType",
            "expected `TCP` or `TLS`, got \"SSL\"",
        ),
        (
            "TLS without certificates",
            "host: r\nsocketType: TLS",
            "tlsCertMountPath",
            "required with socketType: TLS",
        ),
        (
            "certificates without TLS",
            "host: r\ntlsCertMountPath: /etc/redis-tls",
            "tlsCertMountPath",
            "only used with socketType: TLS",
        ),
        (
            "TLS on a unix socket",
            "host: unix:///run/redis.sock\nsocketType: TLS\ntlsCertMountPath: /x",
            "socketType",
            "`TLS` is for TCP",
        ),
        (
            "relative unix socket",
            "host: unix://redis.sock",
            "host",
            "expected `unix:///absolute/path/redis.sock`",
        ),
        (
            "zero command timeout",
            "host: r\ncommandTimeout: 0s",
            "commandTimeout",
            "expected more than 0 and at most 60s",
        ),
        (
            "durable wait as long as the command",
            "host: r\ncommandTimeout: 1s\ndurableSessions: {timeout: 1s}",
            "durableSessions.timeout",
            "less than commandTimeout (1000ms)",
        ),
        (
            "durable wait of zero (WAIT would block forever)",
            "host: r\ndurableSessions: {timeout: 0ms}",
            "durableSessions.timeout",
            "expected at least 1ms",
        ),
        (
            "no replicas",
            "host: r\ndurableSessions: {replicas: 0}",
            "durableSessions.replicas",
            "expected 1 to 64 replicas, got 0",
        ),
        (
            "client-side cache on sentinel",
            "topology: sentinel\nsentinel: {masterName: m, addresses: [s]}\nclientSideCache: true",
            "clientSideCache",
            "supported with the standalone topology only (remove it, or use `host`)",
        ),
        (
            "client-side cache on a cluster",
            "topology: cluster\ncluster: {nodes: [r]}\nclientSideCache: true",
            "clientSideCache",
            "supported with the standalone topology only",
        ),
        (
            "client-side cache not a boolean",
            "host: r\nclientSideCache: yes please",
            "",
            "clientSideCache: invalid type: string \"yes please\", expected a boolean",
        ),
        (
            "unknown option",
            "host: r\nmasterName: m",
            "",
            "unknown field `masterName`",
        ),
    ];
    for (label, options, path, reason) in cases {
        let msg = rejection(&with_options(options), &seed_env());
        assert!(
            msg.contains(&format!("{PATH}.{path}")) || path.is_empty(),
            "{label}: {msg}"
        );
        assert!(msg.contains(reason), "{label}: {msg}");
    }
}

#[test]
fn missing_or_broken_tls_files_are_rejected_naming_the_file() {
    let certs = TestCerts::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = |dir: &Path| {
        with_options(&format!(
            "host: r\nsocketType: TLS\ntlsCertMountPath: {}",
            dir.display()
        ))
    };
    let field = format!("{PATH}.tlsCertMountPath");
    // No ca.crt.
    let msg = rejection(&options(dir.path()), &seed_env());
    assert!(msg.contains(&field), "{msg}");
    assert!(
        msg.contains(&format!(
            "cannot read {}",
            dir.path().join("ca.crt").display()
        )),
        "{msg}"
    );
    // Not PEM.
    std::fs::write(dir.path().join("ca.crt"), "not a certificate").unwrap();
    let msg = rejection(&options(dir.path()), &seed_env());
    assert!(
        msg.contains("ca.crt: expected at least one PEM certificate"),
        "{msg}"
    );
    // tls.crt without tls.key.
    std::fs::copy(certs.ca_file(), dir.path().join("ca.crt")).unwrap();
    std::fs::copy(certs.client_cert_file(), dir.path().join("tls.crt")).unwrap();
    let msg = rejection(&options(dir.path()), &seed_env());
    assert!(msg.contains("tls.crt without"), "{msg}");
    assert!(msg.contains("tls.key: mutual TLS needs both"), "{msg}");
    // A key that is not one.
    std::fs::write(dir.path().join("tls.key"), "-----BEGIN NOTHING-----\n").unwrap();
    let msg = rejection(&options(dir.path()), &seed_env());
    assert!(msg.contains("tls.key: expected a PEM private key"), "{msg}");
    // A folder that is not there.
    let msg = rejection(&options(&dir.path().join("absent")), &seed_env());
    assert!(msg.contains("is not a readable folder"), "{msg}");
}

#[test]
fn an_acl_user_without_its_password_is_rejected() {
    let env = seed_env().with(REDIS_USERNAME_ENV, "extauth");
    let msg = rejection(SEED, &env);
    assert!(msg.contains(PATH), "{msg}");
    assert!(
        msg.contains("REDIS_USERNAME is set but REDIS_PASSWORD is not"),
        "{msg}"
    );
}
