//! A valid session: the headers the upstream gets, and the client copies it must not.

use http::HeaderName;

use super::{Allow, CheckRequest};
use crate::config::OidcConfig;
use crate::session::SessionData;

/// Header names compare equal if they do after lowercasing and `_` → `-`, the spellings a
/// proxy may normalize into one another.
pub fn same_header(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes().zip(b.bytes()).all(|(x, y)| {
            let norm = |c: u8| {
                if c == b'_' {
                    b'-'
                } else {
                    c.to_ascii_lowercase()
                }
            };
            norm(x) == norm(y)
        })
}

/// Allows `check` for `session`: sets the ID token header and removes every client-sent
/// spelling of it.
pub fn allow(config: &OidcConfig, check: &CheckRequest, session: &SessionData) -> Allow {
    let mut allow = Allow::default();
    if let Some(name) = &config.id_token_header {
        strip_client_copies(&mut allow, check, name);
        allow
            .upstream_headers
            .push((name.clone(), session.id_token.clone()));
    }
    allow
}

fn strip_client_copies(allow: &mut Allow, check: &CheckRequest, ours: &HeaderName) {
    for (name, _) in &check.headers {
        if same_header(name, ours.as_str()) && !allow.remove_headers.contains(name) {
            allow.remove_headers.push(name.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_spellings_that_proxies_merge_are_the_same() {
        for (a, b) in [
            ("jwt", "JWT"),
            ("x-id-token", "X_ID_TOKEN"),
            ("x-id-token", "x_id-token"),
        ] {
            assert!(same_header(a, b), "{a} {b}");
        }
        for (a, b) in [("jwt", "jwt2"), ("x-id-token", "xidtoken")] {
            assert!(!same_header(a, b), "{a} {b}");
        }
    }
}
