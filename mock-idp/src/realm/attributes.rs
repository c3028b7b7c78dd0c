//! A client's `attributes` map as Keycloak keeps it: every value a string, `"true"`/`"false"`
//! for flags. A blank value counts as absent (Keycloak's exports write `""` for unset
//! attributes). Every error names the attribute's JSON path.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{RealmError, invalid};

/// The attributes of the client at `clients[index]`.
pub(super) struct Attributes<'a> {
    raw: &'a BTreeMap<String, Value>,
    index: usize,
}

impl<'a> Attributes<'a> {
    pub(super) fn new(raw: &'a BTreeMap<String, Value>, index: usize) -> Self {
        Self { raw, index }
    }

    /// The JSON path of attribute `name`, for error messages.
    pub(super) fn path(&self, name: &str) -> String {
        format!("clients[{}].attributes.{name}", self.index)
    }

    /// The value of `name`, trimmed; `None` when absent, `null` or blank.
    pub(super) fn string(&self, name: &str) -> Result<Option<&'a str>, RealmError> {
        match self.raw.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim())),
            Some(_) => Err(invalid(self.path(name), "client attributes are strings")),
        }
    }

    /// The value of `name` as written, blank included (`post.logout.redirect.uris: ""` means
    /// "no post-logout redirect at all", unlike an absent attribute).
    pub(super) fn raw_string(&self, name: &str) -> Result<Option<&'a str>, RealmError> {
        match self.raw.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(invalid(self.path(name), "client attributes are strings")),
        }
    }

    /// A `"true"`/`"false"` attribute, `default` when absent. Keycloak reads anything but
    /// `true` as false; a typo here would silently switch a feature off, so it is refused.
    pub(super) fn flag(&self, name: &str, default: bool) -> Result<bool, RealmError> {
        match self.string(name)? {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(_) => Err(invalid(self.path(name), "expected \"true\" or \"false\"")),
        }
    }

    /// An absolute `http`/`https` URL.
    pub(super) fn url(&self, name: &str) -> Result<Option<url::Url>, RealmError> {
        self.string(name)?
            .map(|v| absolute_http_url(v).map_err(|reason| invalid(self.path(name), reason)))
            .transpose()
    }
}

/// Parses an absolute `http` or `https` URL with a host.
pub(super) fn absolute_http_url(value: &str) -> Result<url::Url, &'static str> {
    let url = url::Url::parse(value).map_err(|_| "expected an absolute http or https URL")?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("expected an absolute http or https URL");
    }
    Ok(url)
}
