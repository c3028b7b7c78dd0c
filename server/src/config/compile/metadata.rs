//! Envoy metadata in both directions: `dynamicMetadataFromClaims` (ID-token claims out, as
//! the gRPC `CheckResponse.dynamic_metadata`) and `autoMapFromMetadata` (authorization and
//! token request parameters in, from the `CheckRequest`'s `metadata_context`).

use super::{Document, field};
use crate::config::ConfigError;
use crate::config::raw;

/// `autoMapFromMetadata.namespace` when omitted (Solo's).
pub const DEFAULT_METADATA_NAMESPACE: &str = "solo_authconfig_oidc";

/// Claim names Solo allows: letters and digits, `-` or `_` as separators.
fn is_claim_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Metadata keys: the same, plus `.` (Envoy's own keys are dotted).
fn is_metadata_key(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub(super) fn dynamic_metadata_from_claims(
    doc: &Document,
    oidc: &raw::OidcAuthorizationCode,
    p: &dyn Fn(&str) -> String,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::with_capacity(oidc.dynamic_metadata_from_claims.len());
    for (key, claim) in &oidc.dynamic_metadata_from_claims {
        let path = p(&format!("dynamicMetadataFromClaims.{key}"));
        if !is_metadata_key(key) {
            return Err(field(
                doc,
                path,
                format!("expected a metadata key of letters, digits, `-`, `_` or `.`, got {key:?}"),
            ));
        }
        if !is_claim_name(claim) {
            return Err(field(
                doc,
                path,
                format!(
                    "expected a claim name of letters and digits with `-` or `_` as separators, got {claim:?}"
                ),
            ));
        }
        out.push((key.clone(), claim.clone()));
    }
    Ok(out)
}

pub(super) fn auto_map_namespace(
    doc: &Document,
    oidc: &raw::OidcAuthorizationCode,
    p: &dyn Fn(&str) -> String,
) -> Result<Option<String>, ConfigError> {
    let Some(auto) = &oidc.auto_map_from_metadata else {
        return Ok(None);
    };
    match auto.namespace.as_deref() {
        None | Some("") => Ok(Some(DEFAULT_METADATA_NAMESPACE.to_owned())),
        Some(ns) if is_metadata_key(ns) => Ok(Some(ns.to_owned())),
        Some(ns) => Err(field(
            doc,
            p("autoMapFromMetadata.namespace"),
            format!(
                "expected a filter-metadata namespace of letters, digits, `-`, `_` or `.`, got {ns:?}"
            ),
        )),
    }
}
