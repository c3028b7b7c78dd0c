//! The HTML pages, shaped and styled like Keycloak's login theme so that one browser driver
//! works on both and a person sees what Keycloak shows: the login form (`form#kc-form-login`,
//! `#username`, `#password`, `#kc-login`, `#input-error`), the error page
//! (`#kc-error-message`), the "Page has expired" page and the logout pages. One inline
//! stylesheet, no external assets. Every interpolated value is HTML-escaped here and nowhere
//! else.

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

/// Keycloak's login look, inline (no external assets): the realm name over a centred white
/// card with a blue top edge on a dark page, PatternFly-like inputs and a full-width blue
/// "Sign In" button. Class names follow Keycloak's login theme, so a page styled for one
/// reads the same on the other.
const STYLE: &str = r#"
        *, *::before, *::after { box-sizing: border-box; }
        html, body { margin: 0; min-height: 100%; }
        body {
            font-family: "Red Hat Text", "Overpass", "Helvetica Neue", Arial, sans-serif;
            font-size: 14px; line-height: 1.5; color: #151515;
            background: #1f2329 linear-gradient(165deg, #2c4257 0%, #1f2329 55%, #15171a 100%) fixed;
        }
        .login-pf-page { display: flex; flex-direction: column; align-items: center;
            min-height: 100vh; padding: 64px 16px 40px; }
        .login-pf-page-header { margin-bottom: 28px; text-align: center; }
        #kc-header-wrapper { color: #fff; font-size: 29px; font-weight: 300; line-height: 1.2;
            letter-spacing: 3px; text-transform: uppercase; overflow-wrap: anywhere; }
        .card-pf { width: 100%; max-width: 500px; background: #fff; padding: 24px 40px 36px;
            border-top: 4px solid #0066cc; box-shadow: 0 12px 32px rgba(0, 0, 0, .45); }
        .login-pf-header { text-align: center; }
        #kc-page-title { font-size: 24px; font-weight: 400; margin: 8px 0 28px; }
        .form-group { margin-bottom: 20px; }
        .pf-c-form__label { display: block; font-weight: 600; margin-bottom: 6px; }
        .pf-c-form-control { display: block; width: 100%; height: 36px; padding: 6px 10px;
            font: inherit; color: #151515; background: #fff; border: 1px solid #f0f0f0;
            border-bottom: 1px solid #8a8d90; border-radius: 0; }
        .pf-c-form-control:hover { border-bottom-color: #0066cc; }
        .pf-c-form-control:focus { outline: none; border-bottom: 2px solid #0066cc; padding-bottom: 5px; }
        .pf-c-form-control[aria-invalid="true"] { border-bottom: 2px solid #c9190b; padding-bottom: 5px; }
        #input-error { display: block; margin-top: 6px; color: #c9190b; font-size: 13px; }
        #kc-form-buttons { margin-top: 28px; }
        .pf-c-button { display: block; width: 100%; padding: 8px 16px; font: inherit;
            font-size: 16px; text-align: center; text-decoration: none; border-radius: 3px;
            border: 1px solid transparent; cursor: pointer; }
        .pf-c-button + .pf-c-button { margin-top: 12px; }
        .pf-m-primary { background: #0066cc; color: #fff; }
        .pf-m-primary:hover, .pf-m-primary:focus { background: #004080; }
        .pf-m-secondary { background: #fff; color: #0066cc; border-color: #0066cc; }
        .pf-m-secondary:hover, .pf-m-secondary:focus { border-width: 2px; padding: 7px 15px; }
        .instruction { margin: 0 0 12px; }
        #kc-error-message .instruction { color: #c9190b; }
        #kc-logout-clients { margin: 0 0 20px; padding-left: 20px; }
        a { color: #0066cc; }
        @media (max-width: 540px) { .login-pf-page { padding-top: 24px; }
            .card-pf { padding: 20px 20px 28px; } }
"#;

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
    <style>{STYLE}    </style>
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

/// Keycloak's front-channel logout page ("Logging out"): each client's logout URL in a
/// hidden iframe; once every frame has loaded (the document is `complete`), the browser goes
/// on to `continue_to` (the post-logout redirect), also offered as a link. No
/// attacker-controlled text reaches the script: it reads the link's `href`.
pub(crate) fn frontchannel_logout_page(
    realm: &str,
    clients: &[(String, String)],
    continue_to: Option<&str>,
) -> String {
    let items: String = clients
        .iter()
        .map(|(name, url)| {
            format!(
                r#"
                    <li>{}<iframe src="{}" style="display:none;"></iframe></li>"#,
                escape(name),
                escape(url)
            )
        })
        .collect();
    let next = match continue_to {
        Some(url) => format!(
            r#"
                <a id="continue" class="pf-c-button pf-m-primary" href="{}">Continue</a>
                <script>
                    document.addEventListener('readystatechange', function () {{
                        if (document.readyState === 'complete') {{
                            window.location.replace(document.getElementById('continue').href);
                        }}
                    }});
                </script>"#,
            escape(url)
        ),
        None => String::new(),
    };
    let content = format!(
        r#"                <p class="instruction">You are logging out from following apps</p>
                <ul id="kc-logout-clients">{items}
                </ul>{next}"#
    );
    layout(realm, "Logging out", &content)
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
    fn pages_carry_their_style_inline_and_load_nothing_else() {
        let html = login_page("master", "/a", "", None);
        assert!(html.contains("<style>"));
        for external in ["<link", "src=", "@import", "url("] {
            assert!(!html.contains(external), "{external}");
        }
    }

    #[test]
    fn the_frontchannel_page_frames_each_client_and_continues_to_the_redirect() {
        let clients = [
            ("App <1>".to_owned(), "http://a/fc?sid=s&iss=i".to_owned()),
            ("two".to_owned(), "http://b/fc".to_owned()),
        ];
        let html = frontchannel_logout_page("master", &clients, Some("http://a/bye?state=\"x"));
        assert!(html.contains(r#"<li>App &lt;1&gt;<iframe src="http://a/fc?sid=s&amp;iss=i" style="display:none;"></iframe></li>"#));
        assert!(html.contains(r#"<iframe src="http://b/fc""#));
        assert!(html.contains(r#"<a id="continue" class="pf-c-button pf-m-primary" href="http://a/bye?state=&quot;x">Continue</a>"#));
        assert!(html.contains("window.location.replace(document.getElementById('continue').href)"));
        let without = frontchannel_logout_page("master", &clients, None);
        assert!(!without.contains("<script>"));
        assert!(!without.contains(r#"id="continue""#));
    }

    #[test]
    fn login_page_without_error_has_no_error_element() {
        let html = login_page("master", "/a", "", None);
        assert!(!html.contains(r#"id="input-error""#));
        assert!(html.contains("<title>Sign in to master</title>"));
    }
}
