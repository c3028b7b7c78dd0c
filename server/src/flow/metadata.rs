//! Envoy metadata, both ways:
//! - `autoMapFromMetadata`: the gateway puts parameters for the IdP in the check's
//!   `metadata_context.filter_metadata[<namespace>]` (e.g. from a transformation filter):
//!   `authEndpointQueryParams` (or `auth_endpoint_query_params`) go on the authorization
//!   request, `tokenEndpointQueryParams` (or `token_endpoint_query_params`) on the code
//!   exchange, each an object of string (or number, boolean) values. They win over the
//!   configured parameters of the same name; parameters the flow sets itself (`state`,
//!   `redirect_uri`, `client_assertion`...) are never taken.
//! - `dynamicMetadataFromClaims`: claims of the session's (verified) ID token, keyed as
//!   configured, for the gRPC `CheckResponse.dynamic_metadata`; a claim's JSON structure is
//!   kept.

use std::collections::BTreeMap;

use super::CheckRequest;
use crate::config::OidcConfig;
use crate::config::compile::RESERVED_PARAMS;
use crate::oidc::unverified_claims;

/// At most this many parameters are taken from one metadata object.
pub const MAX_MAPPED_PARAMS: usize = 32;
/// Longest parameter name taken.
const MAX_NAME: usize = 128;
/// Longest parameter value taken.
const MAX_VALUE: usize = 2048;

/// Which request the parameters are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// The authorization request (the 302 to the IdP).
    Authorization,
    /// The token request of the code exchange.
    Token,
}

impl Request {
    fn keys(self) -> [&'static str; 2] {
        match self {
            Request::Authorization => ["authEndpointQueryParams", "auth_endpoint_query_params"],
            Request::Token => ["tokenEndpointQueryParams", "token_endpoint_query_params"],
        }
    }
}

/// The parameters `check`'s metadata gives for `request` (empty without
/// `autoMapFromMetadata`).
pub fn mapped_params(
    cfg: &OidcConfig,
    check: &CheckRequest,
    request: Request,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(namespace) = &cfg.auto_map_namespace else {
        return out;
    };
    let Some(object) = check.metadata.get(namespace).and_then(|v| v.as_object()) else {
        return out;
    };
    let Some(params) = request
        .keys()
        .iter()
        .find_map(|k| object.get(*k))
        .and_then(|v| v.as_object())
    else {
        return out;
    };
    for (name, value) in params {
        if out.len() == MAX_MAPPED_PARAMS {
            tracing::info!(config = %cfg.id, "autoMapFromMetadata: more than {MAX_MAPPED_PARAMS} parameters; the rest are ignored");
            break;
        }
        let value = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => continue,
        };
        if name.is_empty()
            || name.len() > MAX_NAME
            || value.len() > MAX_VALUE
            || RESERVED_PARAMS.contains(&name.as_str())
        {
            tracing::info!(config = %cfg.id, "autoMapFromMetadata: a reserved, empty or oversized parameter was ignored");
            continue;
        }
        out.insert(name.clone(), value);
    }
    out
}

/// `dynamicMetadataFromClaims` applied to `id_token` (verified when the session began).
pub fn claims_metadata(
    cfg: &OidcConfig,
    id_token: &str,
) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    if cfg.dynamic_metadata_from_claims.is_empty() {
        return out;
    }
    let Some(claims) = unverified_claims(id_token) else {
        return out;
    };
    for (key, claim) in &cfg.dynamic_metadata_from_claims {
        if let Some(value) = claims.get(claim) {
            out.insert(key.clone(), value.clone());
        }
    }
    out
}
