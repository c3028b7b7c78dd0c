//! The plain-HTTP login driver: reqwest with redirects off, every hop by hand.
//!
//! 1. `GET` the authorization URL (IdP cookies kept in a jar for the IdP only), following the
//!    IdP's own redirects to its login page;
//! 2. parse the login form's `action` (HTML-unescaped): Keycloak's `form#kc-form-login`
//!    (`username`/`password`) or oidc-provider's (`login`/`password`), and `POST` it;
//! 3. follow the IdP's redirects (confirming oidc-provider's consent page once) until one
//!    leaves the IdP: the `redirect_uri` carrying `code` and `state`;
//! 4. `GET` that callback through the gateway, capture its `Set-Cookie`s and 302 `location`
//!    (when the gateway starts the login again instead, because the IdP refused the code as
//!    spent, follow it once through the IdP, whose session answers at once, to a new callback);
//! 5. `GET` the location with the cookies and record the final status and text.
//!
//! The gateway requests use a client with no jar, so the cookies sent are exactly the ones
//! captured (a jar might refuse a `Secure` cookie over http).

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Client, Response, StatusCode};
use url::Url;

use super::{
    CookieValue, Credentials, Driver, INVALID_CREDENTIALS_TEXT, IdpCookies, LoginCookie,
    LoginError, LoginOutcome,
};

/// Runs the login (see the module docs), bounded by `timeout` overall.
pub async fn login(
    start_url: &Url,
    credentials: &Credentials,
    timeout: Duration,
) -> Result<LoginOutcome, LoginError> {
    let started = Instant::now();
    match tokio::time::timeout(timeout, run(start_url, credentials)).await {
        Ok(result) => result,
        Err(_) => Err(LoginError::Timeout {
            step: "http login",
            waited: started.elapsed(),
            last_seen: start_url.origin().ascii_serialization(),
        }),
    }
}

fn client(jar: Option<Arc<reqwest::cookie::Jar>>) -> Result<Client, LoginError> {
    let builder = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10));
    let builder = match jar {
        Some(jar) => builder.cookie_provider(jar),
        None => builder,
    };
    builder.build().map_err(|source| LoginError::Http {
        step: "build client",
        source,
    })
}

async fn run(start_url: &Url, credentials: &Credentials) -> Result<LoginOutcome, LoginError> {
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let idp = client(Some(Arc::clone(&jar)))?;
    let gateway = client(None)?;
    let mut hops = Vec::new();

    // 1. The login page (oidc-provider first redirects to its interaction page).
    let step = "GET the IdP login page";
    let (page_url, html) = follow_to_page(&idp, step, start_url.clone(), &mut hops).await?;
    let form = LoginForm::find(&html).ok_or_else(|| classify_page(step, StatusCode::OK, &html))?;
    let action = page_url
        .join(&form.action)
        .map_err(|e| LoginError::Unexpected {
            step,
            detail: format!("form action is not a URL: {e}"),
        })?;

    // 2-3. Submit; follow the IdP's own redirects (and its consent page) to the callback.
    let step = "POST the login form";
    let fields = form.fields(credentials);
    let mut answer = idp
        .post(action.clone())
        .form(&fields)
        .send()
        .await
        .map_err(|source| LoginError::Http { step, source })?;
    hops.push(format!("POST {action} -> {}", answer.status().as_u16()));
    let idp_origin = start_url.origin();
    let mut current = action;
    let mut consented = false;
    let callback = loop {
        if answer.status().is_redirection() {
            let next = location(step, &answer, &current)?;
            if next.origin() != idp_origin || hops.len() > MAX_HOPS {
                break next;
            }
            answer = idp
                .get(next.clone())
                .send()
                .await
                .map_err(|source| LoginError::Http { step, source })?;
            hops.push(format!("GET {next} -> {}", answer.status().as_u16()));
            current = next;
            continue;
        }
        let status = answer.status();
        let html = answer.text().await.unwrap_or_default();
        match consent_action(&html) {
            Some(consent) if status == StatusCode::OK && !consented => {
                consented = true;
                let target = current.join(&consent).map_err(|e| LoginError::Unexpected {
                    step,
                    detail: format!("consent form action is not a URL: {e}"),
                })?;
                answer = idp
                    .post(target.clone())
                    .form(&[("prompt", "consent")])
                    .send()
                    .await
                    .map_err(|source| LoginError::Http { step, source })?;
                hops.push(format!("POST {target} -> {}", answer.status().as_u16()));
                current = target;
            }
            _ => return Err(classify_page(step, status, &html)),
        }
    };
    let has = |name: &str| callback.query_pairs().any(|(k, _)| k == name);
    if !(has("code") && has("state")) {
        return Err(LoginError::Unexpected {
            step,
            detail: format!(
                "the IdP redirected to {} without code and state (params: {})",
                callback.origin().ascii_serialization(),
                callback
                    .query_pairs()
                    .map(|(k, _)| k.into_owned())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        });
    }

    // 4. The callback at the gateway. When it starts the login again (the IdP refused the
    // code as spent, e.g. after the gateway retried the callback on another replica), the
    // IdP's session sends the browser straight back with a new code: follow that, once.
    let step = "GET the callback at the gateway";
    let mut callback = callback;
    let mut restarted = false;
    let answer = loop {
        let answer = gateway
            .get(callback.clone())
            .send()
            .await
            .map_err(|source| LoginError::Http { step, source })?;
        hops.push(format!("GET {callback} -> {}", answer.status().as_u16()));
        if !restarted && answer.status().is_redirection() {
            let next = location(step, &answer, &callback)?;
            if next.origin() == idp_origin {
                restarted = true;
                callback = back_from_idp(&idp, next, &idp_origin, &mut hops).await?;
                continue;
            }
        }
        break answer;
    };
    if super::is_rejection(answer.status().as_u16()) {
        let status = answer.status().as_u16();
        let cookie_names: Vec<String> = set_cookies(&answer).into_iter().map(|c| c.name).collect();
        let body = answer.text().await.unwrap_or_default();
        return Err(LoginError::CallbackRejected {
            status,
            body_excerpt: clip(&body),
            set_cookie: !cookie_names.is_empty(),
            cookie_names,
        });
    }
    if !answer.status().is_redirection() {
        let status = answer.status();
        let body = answer.text().await.unwrap_or_default();
        return Err(LoginError::Unexpected {
            step,
            detail: format!(
                "status {status} (expected a 302 back to the original URL): {}",
                clip(&body)
            ),
        });
    }
    let cookies = set_cookies(&answer);
    let original = location(step, &answer, &callback)?;

    // 5. Back to the original URL with the cookies.
    let step = "GET the original URL with the cookie";
    let mut request = gateway.get(original.clone());
    let header = cookies
        .iter()
        .map(LoginCookie::pair)
        .collect::<Vec<_>>()
        .join("; ");
    if !header.is_empty() {
        request = request.header(COOKIE, header);
    }
    let last = request
        .send()
        .await
        .map_err(|source| LoginError::Http { step, source })?;
    let final_status = last.status().as_u16();
    hops.push(format!("GET {original} -> {final_status}"));
    let page_text = last
        .text()
        .await
        .map_err(|source| LoginError::Http { step, source })?;
    Ok(LoginOutcome {
        driver: Driver::Http,
        final_url: original,
        final_status: Some(final_status),
        cookies,
        page_text,
        hops,
        idp_cookies: Some(IdpCookies(jar)),
    })
}

/// Bound on the redirects followed at the IdP.
const MAX_HOPS: usize = 12;

/// A login started again by the gateway: GETs `url` at the IdP, following its redirects
/// (its session cookie in the jar), to the first one that leaves the IdP, the new callback.
async fn back_from_idp(
    idp: &Client,
    url: Url,
    idp_origin: &url::Origin,
    hops: &mut Vec<String>,
) -> Result<Url, LoginError> {
    let step = "follow the login started again back through the IdP";
    match follow(idp, step, url, Some(idp_origin), hops).await? {
        Followed::Left(next) => Ok(next),
        Followed::Page(_, status, html) => Err(classify_page(step, status, &html)),
    }
}

/// Where [`follow`] stopped.
enum Followed {
    /// A page: its URL, status and text.
    Page(Url, StatusCode, String),
    /// A redirect away from the origin it was to stay at.
    Left(Url),
}

/// GETs `url` with the IdP client, following redirects (at most [`MAX_HOPS`]), until a page,
/// or, with `stay_at`, until a redirect leaves that origin.
async fn follow(
    idp: &Client,
    step: &'static str,
    mut url: Url,
    stay_at: Option<&url::Origin>,
    hops: &mut Vec<String>,
) -> Result<Followed, LoginError> {
    for _ in 0..MAX_HOPS {
        let response = idp
            .get(url.clone())
            .send()
            .await
            .map_err(|source| LoginError::Http { step, source })?;
        let status = response.status();
        hops.push(format!("GET {url} -> {}", status.as_u16()));
        if status.is_redirection() {
            let next = location(step, &response, &url)?;
            if stay_at.is_some_and(|origin| next.origin() != *origin) {
                return Ok(Followed::Left(next));
            }
            url = next;
            continue;
        }
        let html = response
            .text()
            .await
            .map_err(|source| LoginError::Http { step, source })?;
        return Ok(Followed::Page(url, status, html));
    }
    Err(LoginError::Unexpected {
        step,
        detail: format!("more than {MAX_HOPS} redirects at the IdP"),
    })
}

/// GETs `url`, following redirects (IdP cookies kept), until a page; its URL and text.
async fn follow_to_page(
    idp: &Client,
    step: &'static str,
    url: Url,
    hops: &mut Vec<String>,
) -> Result<(Url, String), LoginError> {
    match follow(idp, step, url, None, hops).await? {
        Followed::Page(url, StatusCode::OK, html) => Ok((url, html)),
        Followed::Page(_, status, html) => Err(classify_page(step, status, &html)),
        Followed::Left(url) => Err(LoginError::Unexpected {
            step,
            detail: format!("a redirect to {url} ended the follow"),
        }),
    }
}

/// Which IdP's login form a page holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FormKind {
    /// Keycloak's (and the mock's) `form#kc-form-login` with `#username`, `#password`.
    Keycloak,
    /// oidc-provider's interaction form with `login`, `password`.
    OidcProvider,
}

/// A login form: its kind and `action` (HTML-unescaped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoginForm {
    pub kind: FormKind,
    pub action: String,
}

impl LoginForm {
    /// The fields that submit this form for `credentials`.
    pub(crate) fn fields<'a>(&self, credentials: &'a Credentials) -> Vec<(&'static str, &'a str)> {
        match self.kind {
            FormKind::Keycloak => vec![
                ("username", credentials.user.as_str()),
                ("password", credentials.password()),
                ("credentialId", ""),
            ],
            FormKind::OidcProvider => vec![
                ("prompt", "login"),
                ("login", credentials.user.as_str()),
                ("password", credentials.password()),
            ],
        }
    }

    /// The login form on `html`, if any.
    pub(crate) fn find(html: &str) -> Option<Self> {
        if let Some(action) = form_action(html) {
            return Some(Self {
                kind: FormKind::Keycloak,
                action,
            });
        }
        if html.contains("name=\"login\"") && html.contains("name=\"password\"") {
            return first_form_action(html).map(|action| Self {
                kind: FormKind::OidcProvider,
                action,
            });
        }
        None
    }
}

/// The action of an oidc-provider consent page's form, if `html` is one.
pub(crate) fn consent_action(html: &str) -> Option<String> {
    if html.contains("name=\"prompt\" value=\"consent\"") {
        first_form_action(html)
    } else {
        None
    }
}

/// The `action` of the first `<form>` on the page, HTML-unescaped.
fn first_form_action(html: &str) -> Option<String> {
    action_of_tag_at(html, html.find("<form")?)
}

/// What a non-redirect IdP page means.
fn classify_page(step: &'static str, status: StatusCode, html: &str) -> LoginError {
    if html.contains("id=\"input-error\"") && html.contains(INVALID_CREDENTIALS_TEXT) {
        LoginError::InvalidCredentials
    } else if let Some(message) = element_text(html, "kc-error-message") {
        LoginError::IdpError { step, message }
    } else {
        LoginError::Unexpected {
            step,
            detail: format!("status {status}: {}", clip(html)),
        }
    }
}

fn location(step: &'static str, response: &Response, base: &Url) -> Result<Url, LoginError> {
    let value = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| LoginError::Unexpected {
            step,
            detail: format!("status {} without a location", response.status()),
        })?;
    base.join(value).map_err(|e| LoginError::Unexpected {
        step,
        detail: format!("location is not a URL: {e}"),
    })
}

/// The cookies a response sets (name, value, path, flags); expired ones are left out.
fn set_cookies(response: &Response) -> Vec<LoginCookie> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(parse_set_cookie)
        .collect()
}

/// Parses one `Set-Cookie` value; `None` for a deletion (`Max-Age=0` or empty value).
pub(crate) fn parse_set_cookie(header: &str) -> Option<LoginCookie> {
    let mut parts = header.split(';');
    let (name, value) = parts.next()?.split_once('=')?;
    let mut cookie = LoginCookie {
        name: name.trim().to_owned(),
        value: CookieValue::new(value.trim().trim_matches('"')),
        path: "/".to_owned(),
        http_only: false,
        secure: false,
    };
    for attribute in parts {
        let (key, val) = attribute
            .split_once('=')
            .map_or((attribute.trim(), ""), |(k, v)| (k.trim(), v.trim()));
        match key.to_ascii_lowercase().as_str() {
            "path" => cookie.path = val.to_owned(),
            "httponly" => cookie.http_only = true,
            "secure" => cookie.secure = true,
            "max-age" if val.parse::<i64>().is_ok_and(|age| age <= 0) => return None,
            _ => {}
        }
    }
    (!cookie.name.is_empty() && !cookie.value.expose().is_empty()).then_some(cookie)
}

/// The `action` of `form#kc-form-login`, HTML-unescaped.
pub(crate) fn form_action(html: &str) -> Option<String> {
    let at = html.find("id=\"kc-form-login\"")?;
    action_of_tag_at(html, html[..at].rfind("<form")?)
}

/// The `action` of the tag opening at byte `start` of `html`, HTML-unescaped.
fn action_of_tag_at(html: &str, start: usize) -> Option<String> {
    let end = start + html[start..].find('>')?;
    let tag = &html[start..end];
    let value_start = tag.find("action=\"")? + "action=\"".len();
    let value_len = tag[value_start..].find('"')?;
    Some(unescape(&tag[value_start..value_start + value_len]))
}

/// The `src` of every `<iframe>` in `html`, in page order, HTML-unescaped: the clients'
/// front-channel logout URLs on an IdP's logout page.
pub(crate) fn iframe_sources(html: &str) -> Vec<String> {
    let mut sources = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find("<iframe") {
        rest = &rest[at + "<iframe".len()..];
        let Some(end) = rest.find('>') else { break };
        let tag = &rest[..end];
        if let Some(start) = tag.find("src=\"").map(|i| i + "src=\"".len())
            && let Some(len) = tag[start..].find('"')
        {
            sources.push(unescape(&tag[start..start + len]));
        }
        rest = &rest[end..];
    }
    sources
}

/// The text inside the element with `id` (tags stripped, whitespace collapsed).
fn element_text(html: &str, id: &str) -> Option<String> {
    let at = html.find(&format!("id=\"{id}\""))?;
    let open_end = at + html[at..].find('>')? + 1;
    let rest = &html[open_end..];
    // Up to the closing tag of the outer element: good enough for Keycloak's error page.
    let close = rest.find("</div>").unwrap_or(rest.len());
    let mut text = String::new();
    let mut in_tag = false;
    for c in rest[..close].chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    Some(unescape(
        &text.split_whitespace().collect::<Vec<_>>().join(" "),
    ))
}

/// Decodes the entities Keycloak and the mock write in attributes and text.
pub(crate) fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';').filter(|end| *end <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn clip(text: &str) -> String {
    super::excerpt(text)
}
