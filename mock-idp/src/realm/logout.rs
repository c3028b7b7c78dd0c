//! A client's logout notifications, read from Keycloak's client representation:
//!
//! - front-channel (OpenID Connect Front-Channel Logout 1.0): the `frontchannelLogout` flag
//!   and the `frontchannel.logout.url` attribute (falling back to `baseUrl`, as Keycloak's
//!   `FrontChannelLogoutHandler` does); `frontchannel.logout.session.required` (default
//!   `true`) adds `sid` and `iss` to the URL.
//! - back-channel (OpenID Connect Back-Channel Logout 1.0): the `backchannel.logout.url`
//!   attribute; `backchannel.logout.session.required` puts `sid` in the logout token and
//!   `backchannel.logout.revoke.offline.tokens` adds Keycloak's `revoke_offline_access`
//!   event. Keycloak's import sets the session flag to `true` only for a client imported
//!   without a back-channel URL; with a URL and no flag it reads as `false`, and so it does
//!   here.

use super::attributes::{Attributes, absolute_http_url};
use super::{RealmError, invalid};

/// Where and how the logout page tells a client that the user logged out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontChannelLogout {
    url: url::Url,
    session_required: bool,
}

impl FrontChannelLogout {
    /// `None` unless `frontchannelLogout` is on and a URL is known.
    pub(super) fn compile(
        enabled: bool,
        base_url: Option<&str>,
        attributes: &Attributes<'_>,
        index: usize,
    ) -> Result<Option<Self>, RealmError> {
        let session_required = attributes.flag("frontchannel.logout.session.required", true)?;
        let explicit = attributes.url("frontchannel.logout.url")?;
        if !enabled {
            return Ok(None);
        }
        let url = match explicit {
            Some(url) => url,
            None => match base_url.map(str::trim).filter(|b| !b.is_empty()) {
                Some(base) => absolute_http_url(base)
                    .map_err(|reason| invalid(format!("clients[{index}].baseUrl"), reason))?,
                // Keycloak's consoles turn the flag on for every new client: without a URL
                // there is nothing to call.
                None => return Ok(None),
            },
        };
        Ok(Some(Self {
            url,
            session_required,
        }))
    }

    /// The URL the logout page loads for a session: with `sid` and `iss` appended when the
    /// client asks for them (Keycloak appends `sid` first).
    pub fn url_for(&self, sid: &str, issuer: &str) -> String {
        let mut url = self.url.clone();
        if self.session_required {
            url.query_pairs_mut()
                .append_pair("sid", sid)
                .append_pair("iss", issuer);
        }
        url.into()
    }

    /// Whether `sid` and `iss` are sent (`frontchannel.logout.session.required`).
    pub fn session_required(&self) -> bool {
        self.session_required
    }
}

/// Where the IdP POSTs a logout token when a session ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackChannelLogout {
    url: url::Url,
    session_required: bool,
    revoke_offline_tokens: bool,
}

impl BackChannelLogout {
    /// `None` without a `backchannel.logout.url`.
    pub(super) fn compile(attributes: &Attributes<'_>) -> Result<Option<Self>, RealmError> {
        let Some(url) = attributes.url("backchannel.logout.url")? else {
            return Ok(None);
        };
        Ok(Some(Self {
            url,
            session_required: attributes.flag("backchannel.logout.session.required", false)?,
            revoke_offline_tokens: attributes
                .flag("backchannel.logout.revoke.offline.tokens", false)?,
        }))
    }

    /// The client's back-channel logout URL.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// Whether the logout token carries `sid` (`backchannel.logout.session.required`).
    pub fn session_required(&self) -> bool {
        self.session_required
    }

    /// Whether the logout token's `events` carry `"revoke_offline_access": true`.
    pub fn revoke_offline_tokens(&self) -> bool {
        self.revoke_offline_tokens
    }
}
