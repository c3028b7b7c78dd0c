//! A valid session (or a valid ID token as `Authorization: Bearer`): the headers the upstream
//! gets, and the client copies it must not.

use http::HeaderName;
use http::header::{AUTHORIZATION, SET_COOKIE};

use super::{Active, Allow, CheckRequest, Route};
use crate::config::{ClaimToHeader, OidcConfig};
use crate::oidc::unverified_claims;

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

/// Every header this config may set upstream (client copies of these never pass), and the
/// `session.redis.headerName` that carries a session id in (a credential the upstream must
/// not see).
pub fn identity_headers(config: &OidcConfig) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = [
        &config.id_token_header,
        &config.access_token_header,
        &config.session_id_header,
        &config.session.header_name,
    ]
    .into_iter()
    .flatten()
    .cloned()
    .collect();
    names.extend(
        config
            .id_token_claims
            .iter()
            .chain(&config.access_token_claims)
            .map(|c| c.header.clone()),
    );
    names
}

/// Allows `check` for the session: sets the identity headers and removes every client-sent
/// spelling of them.
pub fn allow(route: &Route, check: &CheckRequest, active: &Active) -> Allow {
    let config = &route.config;
    let mut allow = Allow::default();
    strip_client_copies(&mut allow, check, &route.identity_headers);
    let data = &active.data;
    if let Some(name) = &config.id_token_header {
        allow
            .upstream_headers
            .push((name.clone(), token_value(config, name, &data.id_token)));
    }
    if let Some(name) = &config.access_token_header {
        allow
            .upstream_headers
            .push((name.clone(), token_value(config, name, &data.access_token)));
    }
    if let (Some(name), Some(id)) = (&config.session_id_header, &active.id) {
        allow
            .upstream_headers
            .push((name.clone(), id.expose().to_owned()));
    }
    claims_to_headers(&mut allow, &config.id_token_claims, &data.id_token);
    claims_to_headers(&mut allow, &config.access_token_claims, &data.access_token);
    allow.dynamic_metadata = super::metadata::claims_metadata(config, &data.id_token);
    for c in &active.set_cookie {
        allow.response_headers.push((SET_COOKIE, c.clone()));
    }
    allow
}

/// A valid ID token sent as `Authorization: Bearer` is a login without a cookie: `Some`
/// allow when it verifies (signature, `iss`, `aud`, `exp`); `None` otherwise.
pub async fn bearer(route: &Route, check: &CheckRequest) -> Option<Allow> {
    let token = check
        .header_values("authorization")
        .find_map(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })?
        .trim();
    if token.len() > 16 * 1024 || token.split('.').count() != 3 {
        return None;
    }
    match route.provider.verify_bearer_id_token(token).await {
        Ok(identity) => {
            tracing::debug!(config = %route.config.id, sub = %identity.subject, "bearer ID token accepted");
            let cfg = &route.config;
            let mut allow = Allow::default();
            strip_client_copies(&mut allow, check, &route.identity_headers);
            if let Some(name) = &cfg.id_token_header {
                allow
                    .upstream_headers
                    .push((name.clone(), token_value(cfg, name, token)));
            }
            claims_to_headers(&mut allow, &cfg.id_token_claims, token);
            allow.dynamic_metadata = super::metadata::claims_metadata(cfg, token);
            Some(allow)
        }
        Err(e) => {
            tracing::info!(config = %route.config.id, error = %e, "bearer token refused");
            None
        }
    }
}

fn token_value(config: &OidcConfig, header: &HeaderName, token: &str) -> String {
    if config.use_bearer_schema && *header == AUTHORIZATION {
        format!("Bearer {token}")
    } else {
        token.to_owned()
    }
}

fn claims_to_headers(allow: &mut Allow, mappings: &[ClaimToHeader], token: &str) {
    if mappings.is_empty() {
        return;
    }
    let Some(claims) = unverified_claims(token) else {
        return;
    };
    for m in mappings {
        let Some(value) = claims.get(&m.claim) else {
            continue;
        };
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if text.chars().any(|c| c.is_control()) {
            continue;
        }
        match allow
            .upstream_headers
            .iter_mut()
            .find(|(n, _)| *n == m.header)
        {
            Some((_, existing)) if m.append => {
                existing.push_str(", ");
                existing.push_str(&text);
            }
            Some((_, existing)) => *existing = text,
            None => allow.upstream_headers.push((m.header.clone(), text)),
        }
    }
}

fn strip_client_copies(allow: &mut Allow, check: &CheckRequest, ours: &[HeaderName]) {
    for (name, _) in &check.headers {
        if ours.iter().any(|o| same_header(name, o.as_str()))
            && !allow.remove_headers.contains(name)
        {
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
