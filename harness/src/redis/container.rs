//! Redis in a container, through testcontainers: image `redis:7` (built locally by
//! `just images`: nothing is pulled here), host networking, a port the harness picks and
//! passes as `--port N`, ready when Redis logs "Ready to accept connections".
//!
//! Owns one container; [`RedisContainer::remove`] (or drop) removes it. `stop` / `start_again`
//! stop and restart the same container on the same port, for store-outage scenarios.

use std::time::{Duration, Instant};

use testcontainers::core::WaitFor;
use testcontainers::runners::AsyncRunner as _;
use testcontainers::{ContainerAsync, GenericImage, ImageExt as _};

use extauth::testing::free_port;

use super::{RedisError, ping};
use crate::docker;

/// The image name the harness asks for.
pub const IMAGE_NAME: &str = "redis";
/// Its tag.
pub const IMAGE_TAG: &str = "7";
/// How long a container may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running Redis container on 127.0.0.1 (host network).
#[derive(Debug)]
pub struct RedisContainer {
    container: Option<ContainerAsync<GenericImage>>,
    port: u16,
    id: String,
}

impl RedisContainer {
    /// Checks the engine and the local image, then starts the container (with
    /// `requirepass` when `password` is given).
    pub async fn start(password: Option<&str>) -> Result<Self, RedisError> {
        let image = format!("{IMAGE_NAME}:{IMAGE_TAG}");
        docker::image(&image, "build it with `just images`").map_err(RedisError::Docker)?;
        let port = free_port().map_err(RedisError::Prepare)?;
        let container = GenericImage::new(IMAGE_NAME, IMAGE_TAG)
            .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"))
            .with_network("host")
            .with_label("org.oidc-testbed.harness", "redis")
            .with_startup_timeout(START_TIMEOUT)
            .with_cmd(
                [
                    "redis-server".to_owned(),
                    "--port".to_owned(),
                    port.to_string(),
                    "--bind".to_owned(),
                    "127.0.0.1".to_owned(),
                    "--save".to_owned(),
                    String::new(),
                    "--appendonly".to_owned(),
                    "no".to_owned(),
                ]
                .into_iter()
                .chain(
                    password
                        .into_iter()
                        .flat_map(|p| ["--requirepass".to_owned(), p.to_owned()]),
                ),
            )
            .start()
            .await
            .map_err(|e| RedisError::Container(e.to_string()))?;
        let id = container.id().to_owned();
        crate::cleanup::record_container(&id);
        Ok(Self {
            container: Some(container),
            port,
            id,
        })
    }

    /// `redis://127.0.0.1:N`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port Redis listens on (host network).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Stops the container (kept, restartable).
    pub async fn stop(&mut self) -> Result<(), RedisError> {
        if let Some(c) = &self.container {
            c.stop_with_timeout(Some(0))
                .await
                .map_err(|e| RedisError::Container(e.to_string()))?;
        }
        Ok(())
    }

    /// Starts the stopped container again (same port, empty) and waits for `PING`.
    pub async fn start_again(&mut self) -> Result<(), RedisError> {
        let Some(c) = &self.container else {
            return Err(RedisError::Container("the container was removed".into()));
        };
        c.start()
            .await
            .map_err(|e| RedisError::Container(e.to_string()))?;
        let started = Instant::now();
        let mut reason = String::from("no answer yet");
        while started.elapsed() < START_TIMEOUT {
            match ping(self.port) {
                Ok(()) => return Ok(()),
                Err(e) => reason = e,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(RedisError::NotReady {
            port: self.port,
            waited: started.elapsed(),
            reason,
            log_tail: self.log_tail(5).await,
        })
    }

    /// The last `lines` lines of the container's output.
    pub async fn log_tail(&self, lines: usize) -> String {
        crate::logs::stdout_tail(self.container.as_ref(), lines).await
    }

    /// Removes the container and waits for it.
    pub async fn remove(mut self) {
        if let Some(c) = self.container.take() {
            let _ = c.rm().await;
        }
    }
}
