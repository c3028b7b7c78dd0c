//! `frontChannelLogout.path` (Solo's) and `backChannelLogout.path` (an extauth extension):
//! paths the IdP calls to end sessions. Each must be a plain path that no other flow path
//! (callback, logout, the other channel) takes. Back-channel logout needs server-side
//! sessions: a cookie session cannot be ended without the browser, so it is REJECTED there.

use super::{Document, check_path, field};
use crate::config::ConfigError;
use crate::config::raw;

/// The paths the flow already answers, which a channel path must not take.
pub(super) struct Taken<'a> {
    pub callback_path: &'a str,
    pub callback_regex: Option<&'a regex::Regex>,
    pub logout_path: Option<&'a str>,
    pub cookie_sessions: bool,
}

/// The compiled channel paths.
#[derive(Debug, Default)]
pub(super) struct Channels {
    pub front: Option<String>,
    pub back: Option<String>,
}

pub(super) fn compile(
    doc: &Document,
    oidc: &raw::OidcAuthorizationCode,
    taken: &Taken<'_>,
    p: &dyn Fn(&str) -> String,
) -> Result<Channels, ConfigError> {
    let mut channels = Channels::default();
    for (name, spec) in [
        ("frontChannelLogout", &oidc.front_channel_logout),
        ("backChannelLogout", &oidc.back_channel_logout),
    ] {
        let Some(spec) = spec else { continue };
        let path_field = p(&format!("{name}.path"));
        let path = spec.path.as_str();
        check_path(path).map_err(|m| field(doc, path_field.clone(), m))?;
        let clash = |what: &str| {
            field(
                doc,
                path_field.clone(),
                format!("expected a path different from {what} ({path:?} is taken)"),
            )
        };
        if path == taken.callback_path || taken.callback_regex.is_some_and(|re| re.is_match(path)) {
            return Err(clash("callbackPath"));
        }
        if taken.logout_path == Some(path) {
            return Err(clash("logoutPath"));
        }
        if name == "backChannelLogout" {
            if channels.front.as_deref() == Some(path) {
                return Err(clash("frontChannelLogout.path"));
            }
            if taken.cookie_sessions {
                return Err(field(
                    doc,
                    p(name),
                    "back-channel logout needs server-side sessions: cookie sessions (a `session` without `redis`) live only in the browser, where the IdP's server-to-server call cannot end them; use `session.redis`, or `frontChannelLogout`",
                ));
            }
            channels.back = Some(path.to_owned());
        } else {
            channels.front = Some(path.to_owned());
        }
    }
    Ok(channels)
}
