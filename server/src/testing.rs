//! Real parts for tests: a `redis-server` process on a free loopback port, and a plain HTTP
//! driver of Keycloak's login form.
//!
//! Public so that unit tests, integration tests, benches and the harness share one
//! implementation. The process is killed by PID on drop; nothing here is used by the server
//! itself.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a starting `redis-server` may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a Redis process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RedisProcessError {
    /// No `redis-server` binary.
    #[error(
        "redis-server not found on PATH or in /usr/bin: install it (apt-get install redis-server)"
    )]
    NotInstalled,
    /// Spawning or preparing failed.
    #[error("could not start redis-server: {0}")]
    Spawn(#[from] std::io::Error),
    /// It started but did not accept connections in time, or exited.
    #[error("redis-server on port {port} did not become ready: {reason}")]
    NotReady {
        /// The port it was given.
        port: u16,
        /// What was seen.
        reason: String,
    },
}

/// A `redis-server` child process on 127.0.0.1, without persistence, in its own temp dir.
#[derive(Debug)]
pub struct RedisProcess {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    binary: PathBuf,
}

impl RedisProcess {
    /// Finds `redis-server`.
    pub fn binary() -> Option<PathBuf> {
        let from_path = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("redis-server"))
                .find(|p| p.is_file())
        });
        from_path.or_else(|| {
            let p = Path::new("/usr/bin/redis-server");
            p.is_file().then(|| p.to_owned())
        })
    }

    /// Starts one on a free port and waits until it accepts connections.
    pub fn start() -> Result<Self, RedisProcessError> {
        let binary = Self::binary().ok_or(RedisProcessError::NotInstalled)?;
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("extauth-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut this = Self {
            child: None,
            port,
            dir,
            binary,
        };
        this.spawn()?;
        Ok(this)
    }

    fn spawn(&mut self) -> Result<(), RedisProcessError> {
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--dir", &self.dir.display().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), RedisProcessError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(RedisProcessError::NotReady {
                    port: self.port,
                    reason: format!("exited with {status}"),
                });
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(RedisProcessError::NotReady {
            port: self.port,
            reason: format!("no connection within {START_TIMEOUT:?}"),
        })
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The PID of the running process, if any.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process (by its PID) and waits for it: the port then refuses connections.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (data is gone: no persistence).
    pub fn restart(&mut self) -> Result<(), RedisProcessError> {
        self.stop();
        self.spawn()
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Why [`form_login`] did not end in a redirect back to the app.
#[derive(Debug, thiserror::Error)]
pub enum FormLoginError {
    /// The IdP could not be reached, or answered something unreadable.
    #[error("login form request failed: {0}")]
    Http(String),
    /// The authorization URL did not answer the login page.
    #[error("the IdP answered {status} instead of its login page: {body}")]
    NoLoginPage {
        /// The status.
        status: u16,
        /// The page.
        body: String,
    },
    /// The page has no `form#kc-form-login` with an `action`.
    #[error("the IdP's page has no form#kc-form-login with an action")]
    NoForm,
    /// The IdP showed a page instead of redirecting (e.g. "Invalid username or password.").
    #[error("the IdP refused the login: {0}")]
    Refused(String),
}

/// A browser's part of a login, as plain HTTP without cookies: open `auth_url` (the IdP's
/// authorization URL), post `user` / `password` to Keycloak's `form#kc-form-login` (mock-idp
/// renders the same form), and return the `Location` the IdP redirects to: the callback URL
/// with `code` and `state`.
pub async fn form_login(
    auth_url: &str,
    user: &str,
    password: &str,
) -> Result<url::Url, FormLoginError> {
    use openidconnect::reqwest;
    let http_err = |e: reqwest::Error| FormLoginError::Http(e.to_string());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(http_err)?;
    let page = client.get(auth_url).send().await.map_err(http_err)?;
    let status = page.status().as_u16();
    let page_url = page.url().clone();
    let html = page.text().await.map_err(http_err)?;
    if status != 200 {
        return Err(FormLoginError::NoLoginPage { status, body: html });
    }
    let action = form_action(&html).ok_or(FormLoginError::NoForm)?;
    let action = page_url
        .join(&action)
        .map_err(|e| FormLoginError::Http(format!("form action {action:?}: {e}")))?;
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("username", user)
        .append_pair("password", password)
        .finish();
    let answer = client
        .post(action)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .map_err(http_err)?;
    if answer.status().as_u16() != 302 {
        return Err(FormLoginError::Refused(
            answer.text().await.unwrap_or_default(),
        ));
    }
    let location = answer
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| FormLoginError::Http("a 302 without Location".into()))?;
    url::Url::parse(location)
        .map_err(|e| FormLoginError::Http(format!("Location {location:?}: {e}")))
}

/// The `action` of `form#kc-form-login`, HTML-unescaped (`&amp;` only: what Keycloak writes).
fn form_action(html: &str) -> Option<String> {
    let form = &html[html.find("id=\"kc-form-login\"")?..];
    let tag = &form[..form.find('>')?];
    let start = tag.find("action=\"")? + "action=\"".len();
    let value = &tag[start..];
    Some(value[..value.find('"')?].replace("&amp;", "&"))
}

/// The case count of a property test: `PROPTEST_CASES` when set (to run more, or fewer),
/// else `default`, kept small enough for `just test` on two cores.
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
