//! The session cookie's `Set-Cookie` lines.
//!
//! A cookie session (tokens sealed in the cookie, no Redis) often outgrows what a browser keeps
//! in one cookie (4096 bytes with name and attributes): it is then split into chunks,
//! `<name>` holding `<count>~<first part>` and `<name>.1` ... `<name>.<count-1>` the rest. A
//! value without `~` is a single cookie (`~` is not in the base64url alphabet of sealed
//! values). Chunks left over from a longer previous value are deleted in the same answer.

use crate::config::{CookieConfig, SameSite};
use crate::flow::CheckRequest;
use crate::session::SessionId;

/// The longest value one cookie carries (leaving room for the name and attributes).
pub const CHUNK_BYTES: usize = 3800;
/// The most cookies one session may take: 4 x 3800 bytes stays under the 16 KiB cookie
/// header limit that requests are held to.
pub const MAX_CHUNKS: usize = 4;

/// The name of chunk `i` (from 1) of cookie `name`.
pub fn chunk_name(name: &str, i: usize) -> String {
    format!("{name}.{i}")
}

/// How many cookies the request carries for `name` (the base and its chunk cookies).
pub fn present_chunks(check: &CheckRequest, name: &str) -> usize {
    let extra = (1..MAX_CHUNKS)
        .filter(|i| check.cookie(&chunk_name(name, *i)).is_some())
        .max()
        .unwrap_or(0);
    usize::from(check.cookie(name).is_some()).max(extra + usize::from(extra > 0))
}

/// The value of cookie `name`, joined from its chunks; `None` when absent or when a chunk is
/// missing or malformed.
pub fn joined(check: &CheckRequest, name: &str) -> Option<String> {
    let first = check.cookie(name)?;
    let Some((count, part)) = first.split_once('~') else {
        return Some(first);
    };
    let count: usize = count
        .parse()
        .ok()
        .filter(|n| (2..=MAX_CHUNKS).contains(n))?;
    let mut value = part.to_owned();
    for i in 1..count {
        value.push_str(&check.cookie(&chunk_name(name, i))?);
    }
    Some(value)
}

/// Why a value does not fit in cookies.
#[derive(Debug, thiserror::Error)]
#[error(
    "the cookie session needs {bytes} bytes, more than {MAX_CHUNKS} cookies of {CHUNK_BYTES} bytes carry: use Redis sessions (session.redis) for tokens this large"
)]
pub struct TooLarge {
    /// The sealed value's size.
    pub bytes: usize,
}

/// `Set-Cookie` lines that store `value` under the session cookie's name, in chunks when it
/// is long, and delete the chunks beyond them that the request still carries (`present`).
pub fn value_cookies(
    cfg: &CookieConfig,
    value: &str,
    present: usize,
) -> Result<Vec<String>, TooLarge> {
    let parts: Vec<&str> = if value.len() <= CHUNK_BYTES {
        vec![value]
    } else {
        // Sealed values are ASCII (base64url): byte offsets are char boundaries.
        value
            .as_bytes()
            .chunks(CHUNK_BYTES)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect()
    };
    if parts.len() > MAX_CHUNKS {
        return Err(TooLarge { bytes: value.len() });
    }
    let mut lines = Vec::with_capacity(parts.len().max(present));
    for (i, part) in parts.iter().enumerate() {
        let (name, v) = match i {
            0 if parts.len() > 1 => (cfg.name.clone(), format!("{}~{part}", parts.len())),
            0 => (cfg.name.clone(), (*part).to_owned()),
            i => (chunk_name(&cfg.name, i), (*part).to_owned()),
        };
        lines.push(cookie_named(cfg, name, v));
    }
    for i in parts.len()..present {
        lines.push(removal_cookie(cfg, &chunk_name(&cfg.name, i)));
    }
    Ok(lines)
}

/// `Set-Cookie` lines deleting the session cookie and every chunk the request carries.
pub fn removal_cookies(cfg: &CookieConfig, present: usize) -> Vec<String> {
    let mut lines = vec![removal_cookie(cfg, &cfg.name)];
    lines.extend((1..present).map(|i| removal_cookie(cfg, &chunk_name(&cfg.name, i))));
    lines
}

/// `Set-Cookie` value that stores `id` in the browser.
pub fn session_cookie(cfg: &CookieConfig, id: &SessionId) -> String {
    value_cookie(cfg, id.expose())
}

/// `Set-Cookie` for the session cookie with `value` (an id, or sealed tokens in cookie mode).
pub fn value_cookie(cfg: &CookieConfig, value: &str) -> String {
    cookie_named(cfg, cfg.name.clone(), value.to_owned())
}

fn cookie_named(cfg: &CookieConfig, name: String, value: String) -> String {
    let mut c = cookie::Cookie::new(name, value);
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
mod properties;

#[cfg(test)]
mod tests {
    use super::*;
    fn request_with(set_cookies: &[String]) -> CheckRequest {
        let header = set_cookies
            .iter()
            .filter(|l| !l.contains("Max-Age=0"))
            .map(|l| l.split(';').next().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join("; ");
        CheckRequest::new("GET", "http", "gw", "/").with_header("cookie", &header)
    }

    fn cfg() -> CookieConfig {
        CookieConfig {
            name: "s".into(),
            max_age: Some(DEFAULT_COOKIE_MAX_AGE),
            secure: true,
            http_only: true,
            path: "/".into(),
            domain: None,
            same_site: None,
        }
    }

    #[test]
    fn a_short_value_is_one_plain_cookie() {
        let lines = value_cookies(&cfg(), "abc", 0).unwrap();
        assert_eq!(lines.len(), 1);
        assert!(lines[0].starts_with("s=abc;"), "{lines:?}");
        assert_eq!(joined(&request_with(&lines), "s").as_deref(), Some("abc"));
    }

    #[test]
    fn a_long_value_is_split_and_joined_back() {
        let value: String = (0..9000)
            .map(|i| char::from(b'A' + (i % 26) as u8))
            .collect();
        let lines = value_cookies(&cfg(), &value, 0).unwrap();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("s=3~"));
        assert!(lines[2].starts_with("s.2="));
        assert!(lines.iter().all(|l| l.len() < 4096));
        let req = request_with(&lines);
        assert_eq!(joined(&req, "s").as_deref(), Some(value.as_str()));
        assert_eq!(present_chunks(&req, "s"), 3);
    }

    #[test]
    fn a_missing_or_malformed_chunk_is_no_value() {
        let value = "x".repeat(5000);
        let lines = value_cookies(&cfg(), &value, 0).unwrap();
        assert_eq!(joined(&request_with(&lines[..1]), "s"), None);
        for bad in ["s=0~x", "s=1~x", "s=99~x", "s=two~x"] {
            let req = CheckRequest::new("GET", "http", "gw", "/").with_header("cookie", bad);
            assert_eq!(joined(&req, "s"), None, "{bad}");
        }
    }

    #[test]
    fn stale_chunks_beyond_the_new_value_are_deleted() {
        let lines = value_cookies(&cfg(), "short", 3).unwrap();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].starts_with("s.1=;") && lines[1].contains("Max-Age=0"));
        assert!(lines[2].starts_with("s.2=;") && lines[2].contains("Max-Age=0"));
        let removals = removal_cookies(&cfg(), 3);
        assert_eq!(removals.len(), 3);
    }

    #[test]
    fn a_value_beyond_the_chunk_limit_is_refused_with_the_reason() {
        let err = value_cookies(&cfg(), &"x".repeat(CHUNK_BYTES * MAX_CHUNKS + 1), 0).unwrap_err();
        assert!(err.to_string().contains("use Redis sessions"), "{err}");
    }

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
