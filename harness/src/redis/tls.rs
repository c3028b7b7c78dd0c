//! `redis-server` serving TLS only (`--port 0 --tls-port N`, client certificates required),
//! with a CA, a server and a client certificate generated at start (`rcgen`). extauth gets
//! `socketType: TLS` and `tlsCertMountPath` on the folder holding `ca.crt`, `tls.crt` and
//! `tls.key`, as a Kubernetes TLS Secret mounted into the pod would look.

use std::sync::Arc;

use extauth::testing::{RedisServer, TestCerts};

use super::{RedisError, record_children};

/// A TLS-only Redis and its certificates (the folder goes when this is dropped).
#[derive(Debug)]
pub struct TlsRedis {
    // Field order is drop order: the server before its certificates.
    server: RedisServer,
    certs: Arc<TestCerts>,
}

impl TlsRedis {
    /// Generates the certificates and starts the server (with `requirepass` when given).
    pub fn start(password: Option<&str>) -> Result<Self, RedisError> {
        record_children();
        let certs = Arc::new(TestCerts::generate()?);
        let mut builder = RedisServer::builder().tls(Arc::clone(&certs), true);
        if let Some(password) = password {
            builder = builder.password(password);
        }
        Ok(Self {
            server: builder.start()?,
            certs,
        })
    }

    /// `rediss://127.0.0.1:N`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The server.
    pub fn server(&mut self) -> &mut RedisServer {
        &mut self.server
    }

    /// The server's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.server.pid()
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.server.log_tail(lines)
    }

    /// The `tlsCertMountPath` folder.
    pub fn cert_mount_path(&self) -> std::path::PathBuf {
        self.certs.mount_path()
    }

    /// The `session.redis.options` lines for extauth.
    pub fn manifest_options(&self) -> Vec<String> {
        vec![
            format!("host: {}", self.server.address()),
            "socketType: TLS".to_owned(),
            format!("tlsCertMountPath: {}", self.cert_mount_path().display()),
        ]
    }
}
