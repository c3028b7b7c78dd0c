//! Where the browser goes back after login: only ever a URL on `appUrl`'s origin.
//!
//! The original URL is built from the request's `Host`, which the client controls, and
//! travels in `state`. Before it becomes a `Location` it must parse (as a browser parses it,
//! WHATWG rules via `url`) to exactly `appUrl`'s scheme, host and port, without userinfo and
//! within [`MAX_RETURN_URL`]; anything else (`//evil`, `/\evil`, `gw@evil`, encoded tricks)
//! is replaced by `appUrl` itself.

/// Longest original URL kept (longer → `appUrl`).
pub const MAX_RETURN_URL: usize = 2048;

/// `candidate` if it is safe to redirect to after a login on `app_origin`, else the fallback
/// `app_url` + `/`.
pub fn safe_return_url(app_origin: &url::Url, app_url: &str, candidate: &str) -> String {
    if is_same_origin(app_origin, candidate) {
        candidate.to_owned()
    } else {
        format!("{}/", app_url.trim_end_matches('/'))
    }
}

/// Whether `candidate` stays on `app_origin`.
pub fn is_same_origin(app_origin: &url::Url, candidate: &str) -> bool {
    if candidate.len() > MAX_RETURN_URL
        || candidate
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return false;
    }
    let Ok(url) = url::Url::parse(candidate) else {
        return false;
    };
    url.username().is_empty()
        && url.password().is_none()
        && url.origin() == app_origin.origin()
        // `url` normalizes; a browser given the raw string must land on the same origin.
        && candidate
            .get(..app_origin.scheme().len() + 3)
            .is_some_and(|p| p.eq_ignore_ascii_case(&format!("{}://", app_origin.scheme())))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn app() -> url::Url {
        url::Url::parse("http://172.18.0.4:80").unwrap()
    }

    #[test]
    fn urls_on_the_app_origin_are_kept_exactly() {
        for ok in [
            "http://172.18.0.4/openai",
            "http://172.18.0.4:80/openai?x=1",
            "http://172.18.0.4/a/b?c=%2F%2Fevil",
        ] {
            assert_eq!(safe_return_url(&app(), "http://172.18.0.4:80", ok), ok);
        }
    }

    #[test]
    fn every_trick_to_leave_the_origin_falls_back_to_app_url() {
        let long = format!("http://172.18.0.4/{}", "a".repeat(MAX_RETURN_URL));
        for (label, bad) in [
            ("other host", "http://evil.example/"),
            ("scheme-relative", "//evil.example/"),
            ("backslash", "http://172.18.0.4/\\evil.example"),
            ("backslash host", "http:\\\\evil.example/"),
            ("userinfo", "http://172.18.0.4@evil.example/"),
            ("userinfo on our host", "http://user@172.18.0.4/"),
            ("other port", "http://172.18.0.4:8080/"),
            ("https", "https://172.18.0.4/"),
            ("javascript", "javascript:alert(1)"),
            ("encoded host", "http://%65vil.example/"),
            ("tab", "http://172.18.0.4\t.evil/"),
            ("too long", long.as_str()),
            ("relative", "/openai"),
        ] {
            assert_eq!(
                safe_return_url(&app(), "http://172.18.0.4:80", bad),
                "http://172.18.0.4:80/",
                "{label}: {bad}"
            );
        }
    }

    proptest! {
        #[test]
        fn no_accepted_return_url_leaves_the_app_origin(
            host in "(172\\.18\\.0\\.4|evil\\.example|172\\.18\\.0\\.4@evil|)",
            sep in "(/|//|\\\\|/\\\\|%2F|@|:80/|:81/|)",
            rest in "[ -~]{0,40}",
        ) {
            let candidate = format!("http://{host}{sep}{rest}");
            let out = safe_return_url(&app(), "http://172.18.0.4:80", &candidate);
            let parsed = url::Url::parse(&out).unwrap();
            prop_assert_eq!(parsed.origin(), app().origin());
            prop_assert!(parsed.username().is_empty());
        }

        #[test]
        fn arbitrary_strings_never_escape(candidate in "\\PC{0,80}") {
            let out = safe_return_url(&app(), "http://172.18.0.4:80", &candidate);
            let parsed = url::Url::parse(&out).unwrap();
            prop_assert_eq!(parsed.origin(), app().origin());
        }
    }
}
