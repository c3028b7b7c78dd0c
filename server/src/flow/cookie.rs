//! The session cookie's `Set-Cookie` line.

use crate::config::CookieConfig;
use crate::session::SessionId;

/// `Set-Cookie` value that stores `id` in the browser.
pub fn session_cookie(cfg: &CookieConfig, id: &SessionId) -> String {
    let mut c = cookie::Cookie::new(cfg.name.clone(), id.expose().to_owned());
    c.set_path(cfg.path.clone());
    c.set_max_age(cookie::time::Duration::seconds(
        i64::try_from(cfg.max_age.as_secs()).unwrap_or(i64::MAX),
    ));
    c.set_http_only(cfg.http_only);
    c.set_secure(cfg.secure);
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
            max_age: DEFAULT_COOKIE_MAX_AGE,
            secure: true,
            http_only: true,
            path: "/".into(),
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
