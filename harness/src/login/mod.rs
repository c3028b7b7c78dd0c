//! Login drivers: fill Keycloak's login form and follow the redirects back to the gateway.
//!
//! Two drivers behind one call, [`login`]:
//! - [`browser`]: a real headless Chromium (headless_chrome over CDP), as a person would;
//! - [`http`]: plain HTTP requests with reqwest, each redirect handled by hand.
//!
//! Both start from the IdP authorization URL (the `location` of the gateway's 302), fill
//! Keycloak's `form#kc-form-login` (`#username`, `#password`, submit `#kc-login`) or
//! oidc-provider's interaction form (`input[name=login]`, `input[name=password]`,
//! `button.login-submit`, then its consent page with the same button), and end on the page
//! the gateway sends back to after the callback. A re-rendered form with
//! "Invalid username or password." (`#input-error`) is [`LoginError::InvalidCredentials`],
//! never a timeout; a callback the gateway answers with a 4xx/5xx is
//! [`LoginError::CallbackRejected`] (status, body excerpt, whether it set a cookie) from both
//! drivers. This module owns no assertions: it reports what happened.

use std::fmt;
use std::time::Duration;

use url::Url;

pub mod browser;
pub mod http;

/// Whether a callback answer with `status` is the gateway refusing it (4xx or 5xx).
pub fn is_rejection(status: u16) -> bool {
    (400..600).contains(&status)
}

/// `text` with whitespace collapsed, cut to 200 characters (an ellipsis marks the cut).
pub(crate) fn excerpt(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 200 {
        format!("{}…", flat.chars().take(200).collect::<String>())
    } else {
        flat
    }
}

/// The text Keycloak shows for a failed login.
pub const INVALID_CREDENTIALS_TEXT: &str = "Invalid username or password.";

/// Default bound on one whole login.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// Which driver logs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Driver {
    /// Headless Chromium.
    #[default]
    Browser,
    /// Plain HTTP requests.
    Http,
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Browser => "browser",
            Self::Http => "http",
        })
    }
}

/// A cookie value: a session id, so it never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct CookieValue(String);

impl CookieValue {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for sending it or matching it against a pattern.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CookieValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CookieValue([redacted; {} chars])", self.0.len())
    }
}

/// One cookie the client holds for the gateway after the login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginCookie {
    /// Cookie name.
    pub name: String,
    /// Cookie value (secret).
    pub value: CookieValue,
    /// `Path` (`/` when unset).
    pub path: String,
    /// `HttpOnly`.
    pub http_only: bool,
    /// `Secure`.
    pub secure: bool,
}

impl LoginCookie {
    /// `name=value`, for a `Cookie` header.
    pub fn pair(&self) -> String {
        format!("{}={}", self.name, self.value.expose())
    }
}

/// What a successful login ended on.
#[derive(Debug, Clone)]
pub struct LoginOutcome {
    /// The driver that logged in.
    pub driver: Driver,
    /// The URL of the last page (the original URL at the gateway, after the callback).
    pub final_url: Url,
    /// The status of the last page when the driver sees it (http driver), else `None`.
    pub final_status: Option<u16>,
    /// Cookies held for the gateway origin, HttpOnly included.
    pub cookies: Vec<LoginCookie>,
    /// The text of the last page.
    pub page_text: String,
    /// Each hop, as `METHOD url -> status` or a short note (no secrets: codes, states and
    /// cookies are left to the caller's redaction, which sees these URLs).
    pub hops: Vec<String>,
    /// The IdP's cookies after the login (its SSO session), for a later logout at the IdP
    /// as the same user agent; the http driver keeps them, the browser's stay in its
    /// profile (`None`).
    pub idp_cookies: Option<IdpCookies>,
}

/// The cookie jar the http driver used at the IdP (its values never print).
#[derive(Clone)]
pub struct IdpCookies(pub(crate) std::sync::Arc<reqwest::cookie::Jar>);

impl IdpCookies {
    /// The jar, to send the IdP's cookies again.
    pub fn jar(&self) -> std::sync::Arc<reqwest::cookie::Jar> {
        std::sync::Arc::clone(&self.0)
    }
}

impl fmt::Debug for IdpCookies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdpCookies([redacted])")
    }
}

impl LoginOutcome {
    /// The cookie named `name`, if the client holds it.
    pub fn cookie(&self, name: &str) -> Option<&LoginCookie> {
        self.cookies.iter().find(|c| c.name == name)
    }

    /// Every cookie as one `Cookie` header value.
    pub fn cookie_header(&self) -> Option<String> {
        if self.cookies.is_empty() {
            None
        } else {
            Some(
                self.cookies
                    .iter()
                    .map(LoginCookie::pair)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        }
    }
}

/// Why a login did not end on the gateway.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The IdP re-rendered its form with "Invalid username or password.".
    #[error("the IdP refused the credentials (\"{INVALID_CREDENTIALS_TEXT}\")")]
    InvalidCredentials,
    /// The IdP showed its error page instead of the form or the redirect.
    #[error("the IdP showed an error page at step {step:?}: {message}")]
    IdpError {
        /// The step that saw it.
        step: &'static str,
        /// The page's message.
        message: String,
    },
    /// A step took longer than allowed.
    #[error("login timed out after {waited:?} at step {step:?}; last seen: {last_seen}")]
    Timeout {
        /// The step.
        step: &'static str,
        /// How long it waited.
        waited: Duration,
        /// What the driver saw last (a URL or page title).
        last_seen: String,
    },
    /// A response was not what the flow expects at this step.
    #[error("unexpected response at step {step:?}: {detail}")]
    Unexpected {
        /// The step.
        step: &'static str,
        /// What was seen instead.
        detail: String,
    },
    /// The gateway answered the IdP's redirect to its callback with an error status (4xx or
    /// 5xx) instead of the redirect back to the original URL: a relying party refusing the
    /// authorization response (bad ID token, state, issuer...).
    #[error(
        "the gateway rejected the callback with status {status}{}: {body_excerpt}",
        if cookie_names.is_empty() { String::new() } else { format!(" (and set cookies {cookie_names:?})") }
    )]
    CallbackRejected {
        /// The callback response's status.
        status: u16,
        /// The start of its body, whitespace collapsed (at most 200 characters).
        body_excerpt: String,
        /// Whether the rejecting response set (or left the client holding) a cookie for the
        /// gateway: it must not, since no session may exist after a rejected callback.
        set_cookie: bool,
        /// The names of those cookies (values never kept here).
        cookie_names: Vec<String>,
    },
    /// The browser failed (launch, CDP, script).
    #[error("browser failed at step {step:?}: {detail}")]
    Browser {
        /// The step.
        step: &'static str,
        /// The error text.
        detail: String,
    },
    /// An HTTP request failed.
    #[error("HTTP request failed at step {step:?}: {source}")]
    Http {
        /// The step.
        step: &'static str,
        /// The cause.
        source: reqwest::Error,
    },
}

/// Credentials for one login attempt; the password never prints.
#[derive(Clone)]
pub struct Credentials {
    /// The username (or email).
    pub user: String,
    password: String,
}

impl Credentials {
    /// A user and password.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            password: password.into(),
        }
    }

    /// The password, for filling the form.
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// Logs in with `driver`, starting at the IdP authorization URL `start_url`, bounded by
/// `timeout`.
pub async fn login(
    driver: Driver,
    start_url: &Url,
    credentials: &Credentials,
    timeout: Duration,
) -> Result<LoginOutcome, LoginError> {
    match driver {
        Driver::Browser => browser::login(start_url, credentials, timeout).await,
        Driver::Http => http::login(start_url, credentials, timeout).await,
    }
}

#[cfg(test)]
mod tests;
