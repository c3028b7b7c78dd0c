//! The per-login CSRF binding: a cookie listing the logins this browser started.
//!
//! At the 302 to the IdP, a browser navigation gets `<cookie>-login` = the binding values
//! (HMAC of the state's login id, see [`crate::state::StateCodec::binding`]) of its pending
//! logins, newest last, at most `maxPendingLogins` (several tabs may log in at once). At the
//! callback:
//! - the browser presents login cookies: the state's binding must be among them (compared in
//!   constant time), else 400 — a login started elsewhere cannot be completed here;
//! - it presents none: allowed, because the seed's Step 3.1 starts the login with `curl` and
//!   finishes it in a browser that never saw the 302; `strictLoginBinding: true` refuses this;
//! - after success, the used binding is removed from the cookie.

use subtle::ConstantTimeEq as _;

use super::CheckRequest;
use super::cookie;
use crate::config::OidcConfig;
use crate::state::STATE_TTL_SECS;

/// The login cookie's name for `config`.
pub fn cookie_name(config: &OidcConfig) -> String {
    format!("{}-login", config.session.cookie.name)
}

/// The pending bindings the browser presented (`None`: no login cookie at all).
pub fn presented(config: &OidcConfig, check: &CheckRequest) -> Option<Vec<String>> {
    check.cookie(&cookie_name(config)).map(|v| {
        v.split('.')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

/// Whether the browser's pending bindings contain `binding` (constant time per entry).
pub fn contains(pending: &[String], binding: &str) -> bool {
    pending.iter().fold(false, |found, p| {
        found | bool::from(p.as_bytes().ct_eq(binding.as_bytes()))
    })
}

/// `Set-Cookie` adding `binding` to what the browser has, dropping the oldest beyond the cap.
pub fn add(config: &OidcConfig, check: &CheckRequest, binding: &str) -> String {
    let pending = presented(config, check).unwrap_or_default();
    with(config, pending, binding)
}

/// `Set-Cookie` for a login started again: `used` leaves the browser's pending bindings,
/// `binding` (the new login's) joins them.
pub fn replace(config: &OidcConfig, pending: &[String], used: &str, binding: &str) -> String {
    let rest = without(pending, used).map(str::to_owned).collect();
    with(config, rest, binding)
}

/// `pending` without `binding` (compared in constant time).
fn without<'a>(pending: &'a [String], binding: &'a str) -> impl Iterator<Item = &'a str> {
    pending
        .iter()
        .filter(|p| !bool::from(p.as_bytes().ct_eq(binding.as_bytes())))
        .map(String::as_str)
}

fn with(config: &OidcConfig, mut pending: Vec<String>, binding: &str) -> String {
    pending.retain(|p| p != binding);
    pending.push(binding.to_owned());
    let keep = config.max_pending_logins;
    if pending.len() > keep {
        pending.drain(..pending.len() - keep);
    }
    cookie::named_cookie(
        &config.session.cookie,
        &cookie_name(config),
        &pending.join("."),
        STATE_TTL_SECS,
    )
}

/// `Set-Cookie` removing `binding` (or the whole cookie when it was the last one).
pub fn remove(config: &OidcConfig, pending: &[String], binding: &str) -> String {
    let rest: Vec<&str> = without(pending, binding).collect();
    if rest.is_empty() {
        cookie::removal_cookie(&config.session.cookie, &cookie_name(config))
    } else {
        cookie::named_cookie(
            &config.session.cookie,
            &cookie_name(config),
            &rest.join("."),
            STATE_TTL_SECS,
        )
    }
}
