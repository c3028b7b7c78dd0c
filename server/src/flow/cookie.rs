//! The session cookie's `Set-Cookie` line.

use crate::config::{CookieConfig, SameSite};
use crate::session::SessionId;

/// `Set-Cookie` value that stores `id` in the browser.
pub fn session_cookie(cfg: &CookieConfig, id: &SessionId) -> String {
    value_cookie(cfg, id.expose())
}

/// `Set-Cookie` for the session cookie with `value` (an id, or sealed tokens in cookie mode).
pub fn value_cookie(cfg: &CookieConfig, value: &str) -> String {
    let mut c = cookie::Cookie::new(cfg.name.clone(), value.to_owned());
    c.set_path(cfg.path.clone());
    if let Some(max_age) = cfg.max_age {
        c.set_max_age(cookie::time::Duration::seconds(
            i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
        ));
    }
    apply_attributes(&mut c, cfg);
    c.to_string()
}

fn apply_attributes(c: &mut cookie::Cookie<'static>, cfg: &CookieConfig) {
    c.set_path(cfg.path.clone());
    c.set_http_only(cfg.http_only);
    c.set_secure(cfg.secure);
    if let Some(domain) = &cfg.domain {
        c.set_domain(domain.clone());
    }
    if let Some(same_site) = cfg.same_site {
        c.set_same_site(match same_site {
            SameSite::Lax => cookie::SameSite::Lax,
            SameSite::Strict => cookie::SameSite::Strict,
            SameSite::None => cookie::SameSite::None,
        });
    }
}

/// `Set-Cookie` value that deletes cookie `name` (same path and domain as ours).
pub fn removal_cookie(cfg: &CookieConfig, name: &str) -> String {
    let mut c = cookie::Cookie::new(name.to_owned(), String::new());
    apply_attributes(&mut c, cfg);
    c.set_max_age(cookie::time::Duration::ZERO);
    c.set_expires(cookie::time::OffsetDateTime::UNIX_EPOCH);
    c.to_string()
}

/// A cookie with our attributes but its own name, value and lifetime.
pub fn named_cookie(cfg: &CookieConfig, name: &str, value: &str, max_age_secs: i64) -> String {
    let mut c = cookie::Cookie::new(name.to_owned(), value.to_owned());
    apply_attributes(&mut c, cfg);
    c.set_max_age(cookie::time::Duration::seconds(max_age_secs));
    c.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::compile::DEFAULT_COOKIE_MAX_AGE;

    #[test]
    fn default_cookie_is_secure_httponly_root_path_thirty_days() {
        let cfg = CookieConfig {
            name: "keycloak-session".into(),
            max_age: Some(DEFAULT_COOKIE_MAX_AGE),
            secure: true,
            http_only: true,
            path: "/".into(),
            domain: None,
            same_site: None,
        };
        let id = SessionId::generate();
        let line = session_cookie(&cfg, &id);
        assert_eq!(
            line,
            format!(
                "keycloak-session={}; HttpOnly; Secure; Path=/; Max-Age=2592000",
                id.expose()
            )
        );
    }
}
