//! The browser login driver: headless Chromium over CDP (headless_chrome, blocking, run on
//! the blocking pool).
//!
//! A fresh profile per login; Keycloak's form is filled and submitted with one `evaluate`
//! call (typing is slow over CDP); then the driver polls the page (a marker set before the
//! submit tells the old page from the next one) until it is on another origin than the IdP
//! (the gateway, after its callback redirect) or shows the IdP's error. Every wait is bounded
//! and names its step. The `Network` domain's main-frame document events give the status of
//! the callback navigation (the last request the IdP redirected off its origin, answered by
//! a response or by the next request's `redirectResponse`): a 4xx/5xx there is
//! [`LoginError::CallbackRejected`], never a success without a cookie. The browser is closed on every path, and killed by its PID when it
//! does not exit.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use headless_chrome::protocol::cdp::Network;
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde::Deserialize;
use url::Url;

use super::{
    CookieValue, Credentials, Driver, INVALID_CREDENTIALS_TEXT, LoginCookie, LoginError,
    LoginOutcome,
};

/// Where Debian's `chromium` package puts the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Flags that keep a test browser quiet and off the network.
const ARGS: &[&str] = &[
    "--disable-component-update",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-sync",
    "--disable-gpu",
];

/// Extra time the async side waits beyond the login timeout before killing the browser.
const GRACE: Duration = Duration::from_secs(10);

/// Logs in with a fresh headless Chromium (see the module docs).
pub async fn login(
    start_url: &Url,
    credentials: &Credentials,
    timeout: Duration,
) -> Result<LoginOutcome, LoginError> {
    let pid = Arc::new(Mutex::new(None::<u32>));
    let job = {
        let pid = Arc::clone(&pid);
        let start_url = start_url.clone();
        let credentials = credentials.clone();
        tokio::task::spawn_blocking(move || run(&start_url, &credentials, timeout, &pid))
    };
    let started = Instant::now();
    let result = match tokio::time::timeout(timeout + GRACE, job).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(LoginError::Browser {
            step: "browser thread",
            detail: join.to_string(),
        }),
        Err(_) => Err(LoginError::Timeout {
            step: "browser login (CDP call hung)",
            waited: started.elapsed(),
            last_seen: start_url.origin().ascii_serialization(),
        }),
    };
    // Whatever happened, no browser outlives the login.
    let leftover = pid.lock().map(|p| *p).unwrap_or(None);
    if let Some(pid) = leftover {
        kill_if_alive(pid);
    }
    result
}

/// Whether Chromium is installed where the driver looks.
pub fn chromium_available() -> bool {
    Path::new(CHROMIUM).is_file()
}

fn run(
    start_url: &Url,
    credentials: &Credentials,
    timeout: Duration,
    pid_slot: &Mutex<Option<u32>>,
) -> Result<LoginOutcome, LoginError> {
    let profile = tempfile::Builder::new()
        .prefix("harness-chromium-")
        .tempdir()
        .map_err(|e| LoginError::Browser {
            step: "create a browser profile",
            detail: e.to_string(),
        })?;
    let browser = launch(profile.path().to_path_buf(), timeout)?;
    let pid = browser.get_process_id();
    if let Some(pid) = pid {
        crate::cleanup::record_pid("chromium", pid);
    }
    if let Ok(mut slot) = pid_slot.lock() {
        *slot = pid;
    }
    let result = drive(&browser, start_url, credentials, timeout);
    // Close: dropping the last handle sends Browser.close and kills the child; then make sure.
    drop(browser);
    if let Some(pid) = pid {
        kill_if_alive(pid);
    }
    if let Ok(mut slot) = pid_slot.lock() {
        *slot = None;
    }
    drop(profile);
    result
}

fn launch(profile: PathBuf, timeout: Duration) -> Result<Browser, LoginError> {
    if !chromium_available() {
        return Err(LoginError::Browser {
            step: "launch chromium",
            detail: format!("{CHROMIUM} not found: install it (apt-get install chromium)"),
        });
    }
    let options = LaunchOptions::default_builder()
        .path(Some(PathBuf::from(CHROMIUM)))
        .sandbox(false)
        .headless(true)
        .user_data_dir(Some(profile))
        .args(ARGS.iter().map(OsStr::new).collect())
        .idle_browser_timeout(timeout + GRACE)
        .build()
        .map_err(|e| LoginError::Browser {
            step: "launch chromium",
            detail: e.to_string(),
        })?;
    Browser::new(options).map_err(|e| LoginError::Browser {
        step: "launch chromium",
        detail: e.to_string(),
    })
}

/// What the poll script reports about the current page.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageState {
    /// Not the page the form was submitted from.
    fresh: bool,
    ready: String,
    url: String,
    invalid: Option<String>,
    error: Option<String>,
    has_form: bool,
    consent: bool,
    text: String,
}

const POLL_SCRIPT: &str = r#"JSON.stringify({
  fresh: !window.__harnessSubmitted,
  ready: document.readyState,
  url: location.href,
  invalid: (document.querySelector('#input-error') || {}).textContent || null,
  error: (document.querySelector('#kc-error-message') || {}).textContent || null,
  hasForm: !!(document.querySelector('form#kc-form-login') || document.querySelector('form input[name=login]')),
  consent: !!document.querySelector('form input[name=prompt][value=consent]'),
  text: document.body ? document.body.innerText : ''
})"#;

fn drive(
    browser: &Browser,
    start_url: &Url,
    credentials: &Credentials,
    timeout: Duration,
) -> Result<LoginOutcome, LoginError> {
    let started = Instant::now();
    let deadline = started + timeout;
    let tab = browser.new_tab().map_err(|e| LoginError::Browser {
        step: "open a tab",
        detail: e.to_string(),
    })?;
    tab.set_default_timeout(timeout);
    let mut hops = vec![format!("open {start_url}")];
    let idp_origin = start_url.origin();
    let navigations = watch_navigations(&tab)?;

    // 1. The login form.
    let step = "load the IdP login form";
    tab.navigate_to(start_url.as_str())
        .map_err(|e| LoginError::Browser {
            step,
            detail: e.to_string(),
        })?;
    let first = poll(&tab, step, deadline, started, |page| {
        page.ready == "complete" && (page.has_form || page.error.is_some())
    })?;
    if let Some(message) = first.error {
        return Err(LoginError::IdpError {
            step,
            message: collapse(&message),
        });
    }

    // 2. Fill and submit in one call.
    let step = "fill and submit the login form";
    let script = format!(
        r#"(() => {{
  // Keycloak's form, else oidc-provider's interaction form.
  const kc = document.querySelector('form#kc-form-login');
  const form = kc || (document.querySelector('form input[name=login]') || {{}}).form;
  const user = kc ? document.querySelector('#username') : form && form.querySelector('input[name=login]');
  const pass = kc ? document.querySelector('#password') : form && form.querySelector('input[name=password]');
  const submit = kc ? document.querySelector('#kc-login') : form && form.querySelector('button.login-submit');
  if (!form || !user || !pass || !submit) return 'missing form fields';
  user.value = {user};
  pass.value = {pass};
  window.__harnessSubmitted = true;
  submit.click();
  return 'submitted';
}})()"#,
        user = js_string(&credentials.user),
        pass = js_string(credentials.password()),
    );
    let answer = tab
        .evaluate(&script, false)
        .map_err(|e| LoginError::Browser {
            step,
            detail: e.to_string(),
        })?;
    let said = answer
        .value
        .as_ref()
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if said != "submitted" {
        return Err(LoginError::Unexpected {
            step,
            detail: format!("the form script said {said:?}"),
        });
    }
    hops.push(format!("submit form at {}", first.url));

    // 3. The next page: the gateway (done), the form again (refused), or an error page.
    let step = "wait for the page after the login";
    let after_submit = |page: &PageState| {
        if !page.fresh || page.ready != "complete" {
            return false;
        }
        let elsewhere = Url::parse(&page.url).is_ok_and(|u| u.origin() != idp_origin);
        elsewhere || page.invalid.is_some() || page.error.is_some() || page.consent
    };
    let mut last = poll(&tab, step, deadline, started, after_submit)?;
    if last.consent && last.invalid.is_none() {
        // oidc-provider asks for consent once per client: the same button again.
        let step = "confirm the consent page";
        let script = "(() => { const b = document.querySelector('button.login-submit'); \
             if (!b) return 'missing button'; window.__harnessSubmitted = true; b.click(); \
             return 'submitted'; })()";
        tab.evaluate(script, false)
            .map_err(|e| LoginError::Browser {
                step,
                detail: e.to_string(),
            })?;
        hops.push(format!("confirm consent at {}", last.url));
        last = poll(&tab, step, deadline, started, |page| {
            after_submit(page) && !page.consent
        })?;
    }
    if last
        .invalid
        .as_deref()
        .is_some_and(|t| t.contains(INVALID_CREDENTIALS_TEXT))
    {
        return Err(LoginError::InvalidCredentials);
    }
    if let Some(message) = last.error.or(last.invalid) {
        return Err(LoginError::IdpError {
            step,
            message: collapse(&message),
        });
    }
    let final_url = Url::parse(&last.url).map_err(|e| LoginError::Unexpected {
        step,
        detail: format!("the browser's URL does not parse: {e}"),
    })?;
    hops.push(format!("landed on {final_url}"));

    // 4. The cookies the browser holds for the page it landed on (HttpOnly included).
    let cookies: Vec<LoginCookie> = tab
        .get_cookies()
        .map_err(|e| LoginError::Browser {
            step: "read the browser's cookies",
            detail: e.to_string(),
        })?
        .into_iter()
        .map(|c| LoginCookie {
            name: c.name,
            value: CookieValue::new(c.value),
            path: c.path,
            http_only: c.http_only,
            secure: c.secure,
        })
        .collect();

    // 5. How the gateway answered the callback, from the main frame's network events.
    let callback = wait_for_callback_answer(&navigations, &idp_origin, deadline);
    if let Some(answer) = &callback
        && super::is_rejection(answer.status)
    {
        // A fresh profile held no gateway cookie before the callback: any cookie for
        // the page it landed on came with the callback's answer.
        let mut cookie_names: Vec<String> = cookies.iter().map(|c| c.name.clone()).collect();
        if answer.set_cookie_header && cookie_names.is_empty() {
            cookie_names.push("(a Set-Cookie header)".to_owned());
        }
        let _ = tab.close(false);
        return Err(LoginError::CallbackRejected {
            status: answer.status,
            body_excerpt: super::excerpt(&last.text),
            set_cookie: !cookie_names.is_empty(),
            cookie_names,
        });
    }
    let _ = tab.close(false);
    Ok(LoginOutcome {
        driver: Driver::Browser,
        final_url,
        final_status: None,
        cookies,
        page_text: last.text,
        hops,
        idp_cookies: None,
    })
}

/// One main-frame document request or response, as the CDP `Network` domain reports it.
#[derive(Debug, Clone)]
enum Navigation {
    /// A request for `url`; `from` is the redirect response that led to it, if any.
    Request { url: String, from: Option<Answer> },
    /// A final (non-redirect) response.
    Response(Answer),
}

/// A document response: its URL, status and whether it carried a `Set-Cookie` header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    url: String,
    status: u16,
    set_cookie_header: bool,
}

impl Answer {
    fn of(response: &Network::Response) -> Self {
        let set_cookie_header = response
            .headers
            .0
            .as_ref()
            .and_then(serde_json::Value::as_object)
            .is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case("set-cookie")));
        Self {
            url: response.url.clone(),
            status: u16::try_from(response.status).unwrap_or(0),
            set_cookie_header,
        }
    }
}

type NavigationLog = Arc<Mutex<Vec<Navigation>>>;

/// Enables the `Network` domain and records the main frame's document requests and
/// responses (redirects arrive as the next request's `redirectResponse`).
fn watch_navigations(tab: &Arc<Tab>) -> Result<NavigationLog, LoginError> {
    let log: NavigationLog = Arc::default();
    let main_frame = tab.get_target_id().clone();
    let sink = Arc::clone(&log);
    let listener = move |event: &Event| {
        let is_main = |frame: &Option<String>| frame.as_deref().is_none_or(|f| f == main_frame);
        let entry = match event {
            Event::NetworkRequestWillBeSent(e)
                if e.params.Type == Some(Network::ResourceType::Document)
                    && is_main(&e.params.frame_id) =>
            {
                Navigation::Request {
                    url: e.params.request.url.clone(),
                    from: e.params.redirect_response.as_ref().map(Answer::of),
                }
            }
            Event::NetworkResponseReceived(e)
                if e.params.Type == Network::ResourceType::Document
                    && is_main(&e.params.frame_id) =>
            {
                Navigation::Response(Answer::of(&e.params.response))
            }
            _ => return,
        };
        if let Ok(mut log) = sink.lock() {
            log.push(entry);
        }
    };
    tab.add_event_listener(Arc::new(listener))
        .map_err(|e| LoginError::Browser {
            step: "watch the network",
            detail: e.to_string(),
        })?;
    tab.call_method(Network::Enable {
        max_total_buffer_size: None,
        max_resource_buffer_size: None,
        max_post_data_size: None,
        report_direct_socket_traffic: None,
        enable_durable_messages: None,
    })
    .map_err(|e| LoginError::Browser {
        step: "enable the network domain",
        detail: e.to_string(),
    })?;
    Ok(log)
}

/// The gateway's answer to the last callback: the last document request the IdP redirected
/// off its own origin, and the response (or redirect) it got. `None` when not seen.
fn callback_answer(log: &[Navigation], idp_origin: &url::Origin) -> Option<Answer> {
    let on_idp = |url: &str| Url::parse(url).is_ok_and(|u| &u.origin() == idp_origin);
    let mut callback: Option<String> = None;
    let mut answer: Option<Answer> = None;
    for entry in log {
        match entry {
            Navigation::Request { url, from } => {
                if let Some(from) = from
                    && callback.as_deref() == Some(from.url.as_str())
                {
                    answer = Some(from.clone());
                }
                if from.as_ref().is_some_and(|f| on_idp(&f.url)) && !on_idp(url) {
                    callback = Some(url.clone());
                    answer = None;
                }
            }
            Navigation::Response(response) => {
                if callback.as_deref() == Some(response.url.as_str()) {
                    answer = Some(response.clone());
                }
            }
        }
    }
    answer
}

/// [`callback_answer`], waiting up to a second for events still in flight.
fn wait_for_callback_answer(
    log: &NavigationLog,
    idp_origin: &url::Origin,
    deadline: Instant,
) -> Option<Answer> {
    let until = (Instant::now() + Duration::from_secs(1)).min(deadline);
    loop {
        let seen = log
            .lock()
            .ok()
            .and_then(|log| callback_answer(&log, idp_origin));
        if seen.is_some() || Instant::now() >= until {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls the page every 100 ms until `done` or the deadline; evaluation errors during a
/// navigation are expected and retried.
fn poll(
    tab: &Tab,
    step: &'static str,
    deadline: Instant,
    started: Instant,
    done: impl Fn(&PageState) -> bool,
) -> Result<PageState, LoginError> {
    let mut last_seen = String::from("nothing yet");
    while Instant::now() < deadline {
        match tab.evaluate(POLL_SCRIPT, false) {
            Ok(object) => {
                let page = object
                    .value
                    .as_ref()
                    .and_then(serde_json::Value::as_str)
                    .and_then(|json| serde_json::from_str::<PageState>(json).ok());
                if let Some(page) = page {
                    if done(&page) {
                        return Ok(page);
                    }
                    last_seen = format!("{} ({})", page.url, page.ready);
                }
            }
            Err(e) => last_seen = format!("{} (script: {e})", tab.get_url()),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(LoginError::Timeout {
        step,
        waited: started.elapsed(),
        last_seen,
    })
}

/// A JavaScript string literal (JSON is valid JavaScript).
fn js_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Sends SIGKILL to `pid` when it still runs (never by name).
fn kill_if_alive(pid: u32) {
    if !crate::cleanup::process_alive(pid) {
        return;
    }
    tracing::warn!(
        pid,
        "chromium did not exit with the browser handle; killing it"
    );
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}
