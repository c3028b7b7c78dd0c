//! A plain HTTP driver of Keycloak's login form (mock-idp renders the same form), for unit
//! and integration tests that need a real login without a browser.

use std::time::Duration;

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
