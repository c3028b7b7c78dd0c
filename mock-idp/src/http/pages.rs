//! The HTML pages, shaped like Keycloak's login theme so that one browser driver works on
//! both: the login form (`form#kc-form-login`, `#username`, `#password`, `#kc-login`,
//! `#input-error`), the error page (`#kc-error-message`) and the "Page has expired" page.
//! Every interpolated value is HTML-escaped here and nowhere else.

/// The message Keycloak shows for a failed login.
pub(crate) const INVALID_CREDENTIALS: &str = "Invalid username or password.";

/// Escapes text for HTML element content and double-quoted attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn layout(realm: &str, page_title: &str, content: &str) -> String {
    let realm = escape(realm);
    let page_title = escape(page_title);
    format!(
        r#"<!DOCTYPE html>
<html class="login-pf" lang="en">
<head>
    <meta charset="utf-8">
    <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
    <meta name="robots" content="noindex, nofollow">
    <meta name="viewport" content="width=device-width,initial-scale=1"/>
    <title>Sign in to {realm}</title>
</head>
<body class="">
<div class="login-pf-page">
    <div id="kc-header" class="login-pf-page-header">
        <div id="kc-header-wrapper" class="">{realm}</div>
    </div>
    <div class="card-pf">
        <header class="login-pf-header">
            <h1 id="kc-page-title">{page_title}</h1>
        </header>
        <div id="kc-content">
            <div id="kc-content-wrapper">
{content}
            </div>
        </div>
    </div>
</div>
</body>
</html>
"#
    )
}

/// The username/password form. `error` re-renders it after a failed attempt, keeping the
/// username the user typed, as Keycloak does.
pub(crate) fn login_page(realm: &str, action: &str, username: &str, error: Option<&str>) -> String {
    let action = escape(action);
    let username = escape(username);
    let invalid = if error.is_some() {
        r#" aria-invalid="true""#
    } else {
        ""
    };
    let error = error
        .map(|e| {
            format!(
                r#"
                                <span id="input-error" class="pf-c-form__helper-text pf-m-error required kc-feedback-text" aria-live="polite">{}</span>"#,
                escape(e)
            )
        })
        .unwrap_or_default();
    let content = format!(
        r#"                <div id="kc-form">
                    <div id="kc-form-wrapper">
                        <form id="kc-form-login" onsubmit="login.disabled = true; return true;" action="{action}" method="post">
                            <div class="form-group">
                                <label for="username" class="pf-c-form__label pf-c-form__label-text">Username or email</label>
                                <input tabindex="1" id="username" class="pf-c-form-control" name="username" value="{username}" type="text" autofocus autocomplete="off"{invalid} />{error}
                            </div>
                            <div class="form-group">
                                <label for="password" class="pf-c-form__label pf-c-form__label-text">Password</label>
                                <input tabindex="2" id="password" class="pf-c-form-control" name="password" type="password" autocomplete="off"{invalid} />
                            </div>
                            <div id="kc-form-buttons" class="form-group">
                                <input type="hidden" id="id-hidden-input" name="credentialId"/>
                                <input tabindex="4" class="pf-c-button pf-m-primary pf-m-block btn-lg" name="login" id="kc-login" type="submit" value="Sign In"/>
                                <input tabindex="5" class="pf-c-button pf-m-secondary pf-m-block btn-lg" name="cancel" id="kc-cancel" type="submit" value="Cancel"/>
                            </div>
                        </form>
                    </div>
                </div>"#
    );
    layout(realm, "Sign in to your account", &content)
}

/// Keycloak's error page ("We are sorry...").
pub(crate) fn error_page(realm: &str, message: &str) -> String {
    let content = format!(
        r#"                <div id="kc-error-message">
                    <p class="instruction">{}</p>
                </div>"#,
        escape(message)
    );
    layout(realm, "We are sorry...", &content)
}

/// The page for a login form that is too old or unknown, with a link that starts the
/// authorization request again when it is known.
pub(crate) fn expired_page(realm: &str, restart_url: Option<&str>) -> String {
    let link = match restart_url {
        Some(url) => format!(
            r#"To restart the login process <a id="loginRestartLink" href="{}">Click here</a>."#,
            escape(url)
        ),
        None => "Please return to the application and sign in again.".to_owned(),
    };
    let content = format!(
        r#"                <p id="instruction1" class="instruction">Your login attempt timed out. Login will start from the beginning.</p>
                <p id="instruction2" class="instruction">{link}</p>"#
    );
    layout(realm, "Page has expired", &content)
}

/// The page shown after a logout without a redirect.
pub(crate) fn logged_out_page(realm: &str) -> String {
    let content = r#"                <p class="instruction">You are logged out</p>"#;
    layout(realm, "You are logged out", content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn login_page_escapes_the_echoed_username() {
        let html = login_page(
            "master",
            "/a?b=1&c=2",
            r#""><script>"#,
            Some(INVALID_CREDENTIALS),
        );
        assert!(html.contains(r#"value="&quot;&gt;&lt;script&gt;""#));
        assert!(html.contains(r#"action="/a?b=1&amp;c=2""#));
        assert!(!html.contains("<script>"));
    }

    #[test]
    fn login_page_without_error_has_no_error_element() {
        let html = login_page("master", "/a", "", None);
        assert!(!html.contains("input-error"));
        assert!(html.contains("<title>Sign in to master</title>"));
    }
}
