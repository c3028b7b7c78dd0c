//! The provider oneof of Solo's `OidcAuthorizationCode`: `default: {}` (any OpenID provider,
//! what extauth implements) or `azure` (Solo's Azure provider, which fetches group claims from
//! Microsoft Graph and caches them in Redis). `azure` is REJECTED by name, as unsupported,
//! rather than as an unknown field.

use super::{Document, field};
use crate::config::ConfigError;
use crate::config::raw;

pub(super) fn check(
    doc: &Document,
    oidc: &raw::OidcAuthorizationCode,
    p: &dyn Fn(&str) -> String,
) -> Result<(), ConfigError> {
    if oidc.azure.is_some() {
        let path = if oidc.default.is_some() {
            p("default")
        } else {
            p("azure")
        };
        if oidc.default.is_some() {
            return Err(field(
                doc,
                path,
                "expected one provider, `default` or `azure`, not both",
            ));
        }
        return Err(field(
            doc,
            path,
            "the `azure` provider (Microsoft Graph group claims) is not supported by extauth: remove it to use the standard OpenID Connect flow (`default: {}`), which works with Azure AD / Entra ID as an ordinary OpenID provider",
        ));
    }
    match &oidc.default {
        None => Ok(()),
        Some(yaml_serde::Value::Mapping(m)) if m.is_empty() => Ok(()),
        Some(yaml_serde::Value::Null) => Ok(()),
        Some(_) => Err(field(
            doc,
            p("default"),
            "expected `{}`: the default provider has no settings",
        )),
    }
}
