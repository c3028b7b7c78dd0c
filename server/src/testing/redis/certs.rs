//! Test certificates, generated with `rcgen` at start: a CA, a server certificate for
//! `127.0.0.1` and `localhost`, and a client certificate, written as PEM files.
//!
//! The folder layout is what extauth's `tlsCertMountPath` reads (Solo's, a Kubernetes TLS
//! Secret mounted as files): [`TestCerts::mount_path`] holds `ca.crt`, `tls.crt` and
//! `tls.key` (the client's); [`TestCerts::ca_only_path`] holds only `ca.crt` (TLS without a
//! client certificate). The server's own pair is beside them for `redis-server`.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use redis::{ClientTlsConfig, TlsCertificates};

use super::RedisSpawnError;

/// A CA with a server and a client certificate, as files in a temporary folder.
#[derive(Debug)]
pub struct TestCerts {
    dir: tempfile::TempDir,
    ca: String,
    client_cert: String,
    client_key: String,
}

const CA: &str = "ca.crt";
const CERT: &str = "tls.crt";
const KEY: &str = "tls.key";

impl TestCerts {
    /// Generates the certificates and writes them.
    pub fn generate() -> Result<Self, RedisSpawnError> {
        let certs = |e: rcgen::Error| RedisSpawnError::Certs(e.to_string());
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(certs)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "extauth test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        let ca_key = KeyPair::generate().map_err(certs)?;
        let ca_cert = ca_params.self_signed(&ca_key).map_err(certs)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf = |names: Vec<String>, cn: &str, usage: Vec<ExtendedKeyUsagePurpose>| {
            let mut params = CertificateParams::new(names).map_err(certs)?;
            params.distinguished_name.push(DnType::CommonName, cn);
            params.use_authority_key_identifier_extension = true;
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            params.extended_key_usages = usage;
            let key = KeyPair::generate().map_err(certs)?;
            let cert = params.signed_by(&key, &issuer).map_err(certs)?;
            Ok::<_, RedisSpawnError>((cert.pem(), key.serialize_pem()))
        };
        let (server_cert, server_key) = leaf(
            vec!["127.0.0.1".into(), "localhost".into()],
            "redis test server",
            // Also a client: replicas and cluster buses present it to their peers.
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        )?;
        let (client_cert, client_key) = leaf(
            vec!["extauth".into()],
            "extauth test client",
            vec![ExtendedKeyUsagePurpose::ClientAuth],
        )?;
        let ca = ca_cert.pem();

        let dir = tempfile::Builder::new()
            .prefix("extauth-redis-certs-")
            .tempdir()
            .map_err(RedisSpawnError::io("create the certificate folder"))?;
        let write = |path: PathBuf, text: &str| {
            std::fs::write(&path, text)
                .map_err(RedisSpawnError::io(format!("write {}", path.display())))
        };
        for folder in ["mount", "ca-only", "server"] {
            std::fs::create_dir_all(dir.path().join(folder))
                .map_err(RedisSpawnError::io(format!("create {folder}/")))?;
        }
        write(dir.path().join("mount").join(CA), &ca)?;
        write(dir.path().join("mount").join(CERT), &client_cert)?;
        write(dir.path().join("mount").join(KEY), &client_key)?;
        write(dir.path().join("ca-only").join(CA), &ca)?;
        write(dir.path().join("server").join(CA), &ca)?;
        write(dir.path().join("server").join(CERT), &server_cert)?;
        write(dir.path().join("server").join(KEY), &server_key)?;
        Ok(Self {
            dir,
            ca,
            client_cert,
            client_key,
        })
    }

    /// A `tlsCertMountPath` for mutual TLS: `ca.crt`, `tls.crt`, `tls.key` (the client's).
    pub fn mount_path(&self) -> PathBuf {
        self.dir.path().join("mount")
    }

    /// A `tlsCertMountPath` with only `ca.crt` (no client certificate).
    pub fn ca_only_path(&self) -> PathBuf {
        self.dir.path().join("ca-only")
    }

    /// The CA certificate file.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("server").join(CA)
    }

    /// The server's certificate file (`--tls-cert-file`).
    pub fn server_cert_file(&self) -> PathBuf {
        self.dir.path().join("server").join(CERT)
    }

    /// The server's key file (`--tls-key-file`).
    pub fn server_key_file(&self) -> PathBuf {
        self.dir.path().join("server").join(KEY)
    }

    /// The client's certificate file.
    pub fn client_cert_file(&self) -> PathBuf {
        self.mount_path().join(CERT)
    }

    /// The client's key file.
    pub fn client_key_file(&self) -> PathBuf {
        self.mount_path().join(KEY)
    }

    /// The folder everything is in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// For the redis crate: the CA, and the client certificate when `with_client`.
    pub fn client_certificates(&self, with_client: bool) -> TlsCertificates {
        TlsCertificates {
            client_tls: with_client.then(|| ClientTlsConfig {
                client_cert: self.client_cert.clone().into_bytes(),
                client_key: self.client_key.clone().into_bytes(),
            }),
            root_cert: Some(self.ca.clone().into_bytes()),
        }
    }

    /// `redis-server` arguments serving TLS on `port` only (`--port 0`), requiring client
    /// certificates when `auth_clients`.
    pub fn server_args(&self, port: u16, auth_clients: bool) -> Vec<String> {
        vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            self.server_cert_file().display().to_string(),
            "--tls-key-file".into(),
            self.server_key_file().display().to_string(),
            "--tls-ca-cert-file".into(),
            self.ca_file().display().to_string(),
            "--tls-auth-clients".into(),
            if auth_clients { "yes" } else { "no" }.into(),
            // Replicas and cluster buses speak TLS too (they present the server's pair).
            "--tls-replication".into(),
            "yes".into(),
        ]
    }
}
