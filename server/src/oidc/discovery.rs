//! Fetching the discovery document and JWKS.
//!
//! We fetch discovery ourselves rather than with `ProviderMetadata::discover_async` because
//! that compares `issuer` with `issuerUrl` byte for byte, and the seed's `issuerUrl` ends with
//! `/` while Keycloak's `issuer` does not. Here they must match up to that trailing slash; ID
//! tokens are then checked against discovery's `issuer`.

use openidconnect::JsonWebKeySet;
use openidconnect::core::CoreProviderMetadata;

use super::OidcError;

/// Largest discovery or JWKS document we read.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// `issuerUrl` + `.well-known/openid-configuration` (one `/` between them).
pub fn discovery_url(issuer_url: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer_url.trim_end_matches('/')
    )
}

/// Discovery fields the `openidconnect` core metadata type does not keep.
#[derive(Debug, Default)]
pub(super) struct Extra {
    pub end_session_endpoint: Option<String>,
    pub revocation_endpoint: Option<String>,
    pub iss_parameter_supported: bool,
    /// The JWKS keys as `jsonwebtoken` reads them (for logout tokens); a key it cannot read
    /// (an encryption key, an unknown curve) is skipped, not an error.
    pub jwks: Vec<jsonwebtoken::jwk::Jwk>,
}

/// Fetches discovery, applies `overrides` (discovery keys → values that win), then the JWKS.
pub(super) async fn fetch(
    http: &super::IdpHttp,
    issuer_url: &str,
    overrides: &serde_json::Map<String, serde_json::Value>,
) -> Result<(CoreProviderMetadata, Extra), OidcError> {
    let url = discovery_url(issuer_url);
    let err = |reason: String| OidcError::Discovery {
        url: url.clone(),
        reason,
    };
    let timer = crate::metrics::idp_timer("discovery");
    let body = get(http, &url).await.map_err(err)?;
    drop(timer);
    let mut document: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| err(format!("not a discovery document: {e}")))?;
    if let Some(map) = document.as_object_mut() {
        for (k, v) in overrides {
            map.insert(k.clone(), v.clone());
        }
    }
    let mut extra = Extra {
        end_session_endpoint: document
            .get("end_session_endpoint")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        revocation_endpoint: document
            .get("revocation_endpoint")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        iss_parameter_supported: document
            .get("authorization_response_iss_parameter_supported")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
        jwks: Vec::new(),
    };
    let mut metadata: CoreProviderMetadata = serde_json::from_value(document)
        .map_err(|e| err(format!("not a discovery document: {e}")))?;
    let found = metadata.issuer().as_str();
    if found.trim_end_matches('/') != issuer_url.trim_end_matches('/') {
        return Err(OidcError::IssuerMismatch {
            url,
            configured: issuer_url.to_owned(),
            found: found.to_owned(),
        });
    }
    let jwks_url = metadata.jwks_uri().to_string();
    let timer = crate::metrics::idp_timer("jwks");
    let jwks_body = get(http, &jwks_url)
        .await
        .map_err(|reason| OidcError::Discovery {
            url: jwks_url.clone(),
            reason,
        })?;
    drop(timer);
    let jwks: JsonWebKeySet<_> =
        serde_json::from_slice(&jwks_body).map_err(|e| OidcError::Discovery {
            url: jwks_url,
            reason: format!("not a JWKS: {e}"),
        })?;
    metadata = metadata.set_jwks(jwks);
    extra.jwks = serde_json::from_slice::<serde_json::Value>(&jwks_body)
        .ok()
        .and_then(|v| v.get("keys").and_then(|k| k.as_array()).cloned())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|k| serde_json::from_value(k).ok())
        .collect();
    Ok((metadata, extra))
}

async fn get(http: &super::IdpHttp, url: &str) -> Result<Vec<u8>, String> {
    let request = http.get(url).header("accept", "application/json");
    let (status, body) = http
        .send(request, MAX_DOCUMENT_BYTES, "document too large")
        .await?;
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    Ok(body)
}
