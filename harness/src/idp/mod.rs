//! The identity provider of a stack, one of five backends, all configured from the same
//! Keycloak realm-export JSON:
//! - `mock`: the in-process mock IdP ([`mock_idp`]), Keycloak's layout;
//! - `mock-container`: the same mock IdP as the `mock-idp:latest` image (built locally by
//!   `just images`: nothing is pulled here) through testcontainers, host networking, on a
//!   loopback port the harness picks, the realm file mounted read-only, ready when discovery
//!   answers. Its admin API answers loopback peers only, which host networking makes us. No
//!   engine or no image is an [`IdpError::Docker`] in one line with the fix;
//! - `oidc-provider`: panva's OpenID-certified `oidc-provider` (npm, installed into
//!   `harness/oidc-provider/` by `npm ci` when missing), run by `node` as a child process
//!   with Keycloak's URL layout (see `harness/oidc-provider/server.mjs`);
//! - `keycloak`: the `quay.io/keycloak/keycloak` image through testcontainers
//!   (`start-dev --import-realm`, realm file mounted in `/opt/keycloak/data/import/`, ready on
//!   `/health/ready`), only when the image is present locally: otherwise the run is
//!   [`IdpError::Skipped`] with the reason in one line;
//! - `url`: an IdP we did not start.
//!
//! Every backend serves `{base}/realms/{realm}` as its issuer; the base URL is on `localhost`
//! so a browser keeps the IdP's cookies apart from the gateway's (on 127.0.0.N).

use std::io::{BufRead as _, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testcontainers::core::{AccessMode, Mount, WaitFor};
use testcontainers::runners::AsyncRunner as _;
use testcontainers::{ContainerAsync, GenericImage, ImageExt as _};

use extauth::testing::free_port;

use crate::docker::{self, DockerError};

/// Keycloak's image name the harness asks for.
pub const KEYCLOAK_IMAGE: &str = "quay.io/keycloak/keycloak";
/// Its tag.
pub const KEYCLOAK_TAG: &str = "26.0";
/// The mock IdP's image name (`harness/scripts/build-images.sh mock-idp`).
pub const MOCK_IDP_IMAGE: &str = "mock-idp";
/// Its tag.
pub const MOCK_IDP_TAG: &str = "latest";
/// Where the realm file is mounted in the mock IdP's container.
const MOCK_IDP_REALM_PATH: &str = "/etc/mock-idp/realm.json";
/// How long the mock IdP's container may take to answer discovery.
const MOCK_IDP_READY: Duration = Duration::from_secs(30);
/// How long Keycloak may take to be ready.
const KEYCLOAK_READY: Duration = Duration::from_secs(180);
/// How long oidc-provider may take to print `READY`.
const NODE_READY: Duration = Duration::from_secs(20);
/// How long `npm ci` may take.
const NPM_TIMEOUT: Duration = Duration::from_secs(180);

/// Which IdP to run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum IdpMode {
    /// The in-process mock.
    #[default]
    Mock,
    /// The mock IdP's `mock-idp:latest` container (an error without an engine or the image).
    MockContainer,
    /// panva's oidc-provider under node.
    OidcProvider,
    /// A Keycloak container (skipped when the image is absent).
    Keycloak,
    /// An IdP at this base URL (`KEYCLOAK_URL`, without `/realms/...`).
    Url(String),
}

/// Why the IdP is not running.
#[derive(Debug, thiserror::Error)]
pub enum IdpError {
    /// This backend cannot run on this machine; the one-line reason.
    #[error("skipped: {0}")]
    Skipped(String),
    /// The mock did not start.
    #[error("mock IdP: {0}")]
    Mock(#[from] mock_idp::Error),
    /// No Docker engine answers, or it lacks the mock IdP's image (the message says how to fix).
    #[error("mock-container: {0}")]
    Docker(#[from] DockerError),
    /// The mock IdP's container did not start or did not answer discovery.
    #[error("mock-container: {0}")]
    MockContainer(String),
    /// node, npm or the script failed.
    #[error("oidc-provider: {0}")]
    OidcProvider(String),
    /// The Keycloak container failed.
    #[error("keycloak: {0}")]
    Keycloak(String),
}

/// What every backend needs.
#[derive(Debug, Clone)]
pub struct IdpSetup {
    /// The realm export.
    pub realm_file: PathBuf,
    /// The gateway's client.
    pub client_id: String,
    /// The exact redirect URIs to register (oidc-provider wants no wildcards).
    pub redirect_uris: Vec<String>,
    /// A folder for logs.
    pub dir: PathBuf,
}

/// A running IdP.
#[derive(Debug)]
pub enum RunningIdp {
    /// In-process.
    Mock(mock_idp::RunningIdp),
    /// The mock IdP's container.
    MockContainer(Box<MockIdpContainer>),
    /// A node child process.
    OidcProvider(NodeIdp),
    /// A container.
    Keycloak(Box<KeycloakContainer>),
    /// Not ours.
    External(String),
}

impl RunningIdp {
    /// Starts `mode`.
    pub async fn start(
        mode: &IdpMode,
        realm: mock_idp::Realm,
        setup: &IdpSetup,
    ) -> Result<Self, IdpError> {
        match mode {
            IdpMode::Mock => Ok(Self::Mock(
                mock_idp::MockIdp::builder()
                    .realm(realm)
                    .listen(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
                    .public_host("localhost")
                    .start()
                    .await?,
            )),
            IdpMode::MockContainer => MockIdpContainer::start(realm.name(), setup)
                .await
                .map(|c| Self::MockContainer(Box::new(c))),
            IdpMode::OidcProvider => {
                let setup = setup.clone();
                tokio::task::spawn_blocking(move || NodeIdp::start(&setup))
                    .await
                    .map_err(|e| IdpError::OidcProvider(e.to_string()))?
                    .map(Self::OidcProvider)
            }
            IdpMode::Keycloak => KeycloakContainer::start(setup)
                .await
                .map(|kc| Self::Keycloak(Box::new(kc))),
            IdpMode::Url(url) => Ok(Self::External(url.trim_end_matches('/').to_owned())),
        }
    }

    /// The base URL (`KEYCLOAK_URL`), no trailing slash.
    pub fn base_url(&self) -> String {
        match self {
            Self::Mock(idp) => idp.base_url().as_str().trim_end_matches('/').to_owned(),
            Self::MockContainer(c) => c.base_url.clone(),
            Self::OidcProvider(node) => node.base_url.clone(),
            Self::Keycloak(kc) => kc.base_url.clone(),
            Self::External(url) => url.clone(),
        }
    }

    /// The backend's name, as scenarios spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Mock(_) => "mock",
            Self::MockContainer(_) => "mock-container",
            Self::OidcProvider(_) => "oidc-provider",
            Self::Keycloak(_) => "keycloak",
            Self::External(_) => "url",
        }
    }

    /// The PID of a child process we started.
    pub fn pid(&self) -> Option<u32> {
        match self {
            Self::OidcProvider(node) => node.pid(),
            _ => None,
        }
    }

    /// The container id, for a container we started.
    pub fn container_id(&self) -> Option<String> {
        match self {
            Self::Keycloak(kc) => Some(kc.id.clone()),
            Self::MockContainer(c) => Some(c.id.clone()),
            _ => None,
        }
    }

    /// The end of its log (empty when it has none we can read).
    pub async fn log_tail(&self, lines: usize) -> String {
        match self {
            Self::OidcProvider(node) => node.log_tail(lines),
            Self::Keycloak(kc) => kc.log_tail(lines).await,
            Self::MockContainer(c) => c.log_tail(lines).await,
            Self::Mock(_) | Self::External(_) => String::new(),
        }
    }

    /// Stops what we started.
    pub async fn stop(self) {
        match self {
            Self::Mock(idp) => idp.shutdown().await,
            Self::OidcProvider(mut node) => node.stop(),
            Self::Keycloak(kc) => kc.remove().await,
            Self::MockContainer(c) => c.remove().await,
            Self::External(_) => {}
        }
    }
}

/// `harness/oidc-provider/`: the npm package and its script.
pub fn oidc_provider_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc-provider")
}

/// Runs `npm ci` in `harness/oidc-provider/` when `node_modules/oidc-provider` is missing.
pub fn ensure_oidc_provider_installed() -> Result<(), IdpError> {
    let dir = oidc_provider_dir();
    if dir
        .join("node_modules/oidc-provider/package.json")
        .is_file()
    {
        return Ok(());
    }
    let mut child = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            IdpError::Skipped(format!(
                "npm not found ({e}): install Node 20+ and npm, or run `just deps`"
            ))
        })?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(IdpError::OidcProvider(format!(
                    "`npm ci` in {} failed with {status}",
                    dir.display()
                )));
            }
            Ok(None) if started.elapsed() < NPM_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(IdpError::OidcProvider(format!(
                    "`npm ci` in {} did not finish within {NPM_TIMEOUT:?}",
                    dir.display()
                )));
            }
        }
    }
}

/// oidc-provider under node.
#[derive(Debug)]
pub struct NodeIdp {
    child: Option<Child>,
    base_url: String,
    log: PathBuf,
}

impl NodeIdp {
    fn start(setup: &IdpSetup) -> Result<Self, IdpError> {
        ensure_oidc_provider_installed()?;
        let dir = oidc_provider_dir();
        let log = setup.dir.join("oidc-provider.log");
        let log_file =
            std::fs::File::create(&log).map_err(|e| IdpError::OidcProvider(e.to_string()))?;
        // node runs in the package's folder: give it an absolute realm path.
        let realm = std::path::absolute(&setup.realm_file)
            .map_err(|e| IdpError::OidcProvider(format!("{}: {e}", setup.realm_file.display())))?;
        let mut command = Command::new("node");
        command
            .arg(dir.join("server.mjs"))
            .arg("--realm")
            .arg(&realm)
            .args(["--host", "localhost", "--port", "0", "--client"])
            .arg(&setup.client_id);
        for uri in &setup.redirect_uris {
            command.arg("--redirect-uri").arg(uri);
        }
        let mut child = command
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .map_err(|e| IdpError::Skipped(format!("node not found ({e}): install Node 20+")))?;
        crate::cleanup::record_pid("node oidc-provider", child.id());
        let stdout = child.stdout.take();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            if let Some(stdout) = stdout {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(issuer) = line.strip_prefix("READY ") {
                        let _ = tx.send(issuer.to_owned());
                    }
                }
            }
        });
        let mut node = Self {
            child: Some(child),
            base_url: String::new(),
            log,
        };
        match rx.recv_timeout(NODE_READY) {
            Ok(issuer) => {
                node.base_url = issuer
                    .find("/realms/")
                    .map_or(issuer.as_str(), |at| &issuer[..at])
                    .to_owned();
                Ok(node)
            }
            Err(why) => {
                let what = match why {
                    std::sync::mpsc::RecvTimeoutError::Timeout => {
                        format!("no READY line within {NODE_READY:?}")
                    }
                    std::sync::mpsc::RecvTimeoutError::Disconnected => {
                        "node exited before its READY line".to_owned()
                    }
                };
                // Give stderr a moment to reach the log.
                std::thread::sleep(Duration::from_millis(100));
                let tail = node.log_tail(8);
                node.stop();
                Err(IdpError::OidcProvider(format!("{what}; log tail:\n{tail}")))
            }
        }
    }

    /// Its PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn log_tail(&self, lines: usize) -> String {
        crate::logs::file_tail(&self.log, lines)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NodeIdp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Keycloak in a container (host network).
#[derive(Debug)]
pub struct KeycloakContainer {
    container: Option<ContainerAsync<GenericImage>>,
    base_url: String,
    id: String,
}

impl KeycloakContainer {
    async fn start(setup: &IdpSetup) -> Result<Self, IdpError> {
        let image = format!("{KEYCLOAK_IMAGE}:{KEYCLOAK_TAG}");
        docker::image(&image, "`docker load` it first")
            .map_err(|e| IdpError::Skipped(format!("keycloak: {e}")))?;
        let port = free_port().map_err(|e| IdpError::Keycloak(e.to_string()))?;
        let management = free_port().map_err(|e| IdpError::Keycloak(e.to_string()))?;
        let realm = std::fs::canonicalize(&setup.realm_file)
            .map_err(|e| IdpError::Keycloak(format!("{}: {e}", setup.realm_file.display())))?;
        let base_url = format!("http://localhost:{port}");
        let container = GenericImage::new(KEYCLOAK_IMAGE, KEYCLOAK_TAG)
            .with_wait_for(WaitFor::Nothing)
            .with_network("host")
            .with_label("org.oidc-testbed.harness", "keycloak")
            .with_mount(Mount::bind_mount(
                realm.display().to_string(),
                "/opt/keycloak/data/import/realm.json",
            ))
            .with_env_var("KC_BOOTSTRAP_ADMIN_USERNAME", "admin")
            .with_env_var("KC_BOOTSTRAP_ADMIN_PASSWORD", "admin")
            .with_cmd([
                "start-dev".to_owned(),
                "--import-realm".to_owned(),
                "--health-enabled=true".to_owned(),
                format!("--http-port={port}"),
                format!("--http-management-port={management}"),
                "--http-host=127.0.0.1".to_owned(),
                format!("--hostname={base_url}"),
            ])
            .start()
            .await
            .map_err(|e| IdpError::Keycloak(e.to_string()))?;
        let id = container.id().to_owned();
        crate::cleanup::record_container(&id);
        let kc = Self {
            container: Some(container),
            base_url,
            id,
        };
        let ready = format!("http://127.0.0.1:{management}/health/ready");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| IdpError::Keycloak(e.to_string()))?;
        let started = Instant::now();
        while started.elapsed() < KEYCLOAK_READY {
            if client
                .get(&ready)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(kc);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let tail = kc.log_tail(5).await;
        kc.remove().await;
        Err(IdpError::Keycloak(format!(
            "{ready} not ready within {KEYCLOAK_READY:?}; log tail: {tail}"
        )))
    }

    async fn log_tail(&self, lines: usize) -> String {
        crate::logs::stdout_tail(self.container.as_ref(), lines).await
    }

    async fn remove(mut self) {
        if let Some(c) = self.container.take() {
            let _ = c.rm().await;
        }
    }
}

/// The mock IdP's image in a container (host network), serving one realm file.
#[derive(Debug)]
pub struct MockIdpContainer {
    container: Option<ContainerAsync<GenericImage>>,
    base_url: String,
    id: String,
}

impl MockIdpContainer {
    /// Checks the engine and the local image, starts the container on a free loopback port
    /// and waits until `realm`'s discovery answers.
    async fn start(realm: &str, setup: &IdpSetup) -> Result<Self, IdpError> {
        let image = format!("{MOCK_IDP_IMAGE}:{MOCK_IDP_TAG}");
        docker::image(&image, "build it with `just images`")?;
        let port = free_port().map_err(|e| IdpError::MockContainer(e.to_string()))?;
        let realm_file = std::fs::canonicalize(&setup.realm_file)
            .map_err(|e| IdpError::MockContainer(format!("{}: {e}", setup.realm_file.display())))?;
        let container = GenericImage::new(MOCK_IDP_IMAGE, MOCK_IDP_TAG)
            .with_wait_for(WaitFor::Nothing)
            .with_network("host")
            .with_label("org.oidc-testbed.harness", "mock-idp")
            .with_mount(
                Mount::bind_mount(realm_file.display().to_string(), MOCK_IDP_REALM_PATH)
                    .with_access_mode(AccessMode::ReadOnly),
            )
            .with_cmd([
                "--realm".to_owned(),
                MOCK_IDP_REALM_PATH.to_owned(),
                "--listen".to_owned(),
                format!("127.0.0.1:{port}"),
                // As the in-process mock: a browser keeps the IdP's cookies apart from the
                // gateway's (on 127.0.0.N).
                "--public-host".to_owned(),
                "localhost".to_owned(),
            ])
            .start()
            .await
            .map_err(|e| IdpError::MockContainer(e.to_string()))?;
        let id = container.id().to_owned();
        crate::cleanup::record_container(&id);
        let idp = Self {
            container: Some(container),
            base_url: format!("http://localhost:{port}"),
            id,
        };
        let discovery =
            format!("http://127.0.0.1:{port}/realms/{realm}/.well-known/openid-configuration");
        match idp.wait_for(&discovery).await {
            Ok(()) => Ok(idp),
            Err(why) => {
                let tail = idp.log_tail(8).await;
                idp.remove().await;
                Err(IdpError::MockContainer(format!("{why}; log tail:\n{tail}")))
            }
        }
    }

    /// Polls `url` until it answers 200, the container exits or [`MOCK_IDP_READY`] passes.
    async fn wait_for(&self, url: &str) -> Result<(), String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        let mut last = String::from("no answer yet");
        while started.elapsed() < MOCK_IDP_READY {
            match client.get(url).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => last = format!("answered {}", r.status()),
                Err(e) => last = e.to_string(),
            }
            // A bad realm file or flag ends the process at once: no need to wait it out.
            if let Some(c) = &self.container
                && !c.is_running().await.unwrap_or(true)
            {
                let code = c.exit_code().await.ok().flatten();
                return Err(format!(
                    "the container exited (code {code:?}) before {url} answered"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "{url} did not answer within {MOCK_IDP_READY:?} ({last})"
        ))
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The last `lines` lines of its stdout then its stderr (the `tracing` log).
    async fn log_tail(&self, lines: usize) -> String {
        let Some(c) = &self.container else {
            return String::new();
        };
        let mut out = c.stdout_to_vec().await.unwrap_or_default();
        out.extend(c.stderr_to_vec().await.unwrap_or_default());
        crate::logs::tail(&String::from_utf8_lossy(&out), lines)
    }

    async fn remove(mut self) {
        if let Some(c) = self.container.take() {
            let _ = c.rm().await;
        }
    }
}

#[cfg(test)]
mod tests;
