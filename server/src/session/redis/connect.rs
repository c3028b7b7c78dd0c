//! How to reach one Redis server: its address (TCP, TLS or a unix socket), the credentials
//! and the database, as a `redis::Client`. Shared by every topology; nothing here connects.

use std::sync::Once;

use redis::{
    ClientTlsConfig, ConnectionAddr, IntoConnectionInfo as _, ProtocolVersion, RedisConnectionInfo,
    RedisResult, TlsCertificates,
};

use crate::config::{HostPort, RedisAuth, RedisTls};

/// Installs the process's default rustls crypto provider (ring) unless one is set: two
/// providers are compiled into this workspace, and rustls refuses to guess between them.
pub fn ensure_tls_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // An error means another part of the process installed one first: that one serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The certificates the redis crate wants, from the files read at config load.
pub(super) fn certificates(tls: &RedisTls) -> TlsCertificates {
    TlsCertificates {
        client_tls: tls.client.as_ref().map(|(cert, key)| ClientTlsConfig {
            client_cert: cert.clone(),
            client_key: key.expose().as_bytes().to_vec(),
        }),
        root_cert: Some(tls.ca.clone()),
    }
}

/// The handshake settings: database, ACL user, password.
pub(super) fn settings(auth: &RedisAuth, db: u32) -> RedisConnectionInfo {
    let mut settings = RedisConnectionInfo::default().set_db(i64::from(db));
    if let Some(password) = &auth.password {
        settings = settings.set_password(password.expose());
    }
    if let Some(username) = &auth.username {
        settings = settings.set_username(username);
    }
    settings
}

/// The address of `node`, TLS when `tls`.
pub(super) fn tcp_addr(node: &HostPort, tls: bool) -> ConnectionAddr {
    if tls {
        ConnectionAddr::TcpTls {
            host: node.host.clone(),
            port: node.port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(node.host.clone(), node.port)
    }
}

/// A client for `addr` with these credentials and certificates.
pub(super) fn client(
    addr: ConnectionAddr,
    tls: Option<&RedisTls>,
    auth: &RedisAuth,
    db: u32,
) -> RedisResult<redis::Client> {
    client_with(addr, tls, auth, db, ProtocolVersion::RESP2)
}

/// [`client`] speaking `protocol` (RESP3 for the client-side cache's tracking connection).
pub(super) fn client_with(
    addr: ConnectionAddr,
    tls: Option<&RedisTls>,
    auth: &RedisAuth,
    db: u32,
    protocol: ProtocolVersion,
) -> RedisResult<redis::Client> {
    let info = addr
        .into_connection_info()?
        .set_redis_settings(settings(auth, db).set_protocol(protocol));
    match tls {
        Some(tls) => {
            ensure_tls_provider();
            redis::Client::build_with_tls(info, certificates(tls))
        }
        None => redis::Client::open(info),
    }
}
