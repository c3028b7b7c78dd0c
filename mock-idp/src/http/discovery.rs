//! `GET /realms/{realm}/.well-known/openid-configuration`: Keycloak-shaped provider metadata
//! (OpenID Connect Discovery 1.0), listing only what this IdP really supports.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::{AppState, HttpError, RealmState};
use crate::faults::FaultKind;

pub(crate) async fn openid_configuration(
    State(state): State<AppState>,
    Path(realm): Path<String>,
) -> Result<Json<Value>, HttpError> {
    let realm = state.realm(&realm)?;
    let mut doc = document(&realm);
    let mismatch = !state
        .take_faults(realm.realm.name(), None, |k| {
            *k == FaultKind::DiscoveryIssuerMismatch
        })
        .is_empty();
    if mismatch {
        doc["issuer"] = json!(format!("{}-mismatch", realm.issuer));
    }
    Ok(Json(doc))
}

/// The discovery document of a realm.
pub(crate) fn document(realm: &RealmState) -> Value {
    json!({
        "issuer": realm.issuer,
        "authorization_endpoint": realm.endpoint("auth"),
        "token_endpoint": realm.endpoint("token"),
        "userinfo_endpoint": realm.endpoint("userinfo"),
        "end_session_endpoint": realm.endpoint("logout"),
        "jwks_uri": realm.endpoint("certs"),
        "introspection_endpoint": realm.endpoint("token/introspect"),
        "revocation_endpoint": realm.endpoint("revoke"),
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "PS256", "ES256"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported":
            ["private_key_jwt", "client_secret_basic", "client_secret_post"],
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "claims_supported": [
            "aud", "sub", "iss", "auth_time", "name", "given_name", "family_name",
            "preferred_username", "email", "email_verified", "acr"
        ],
        "claim_types_supported": ["normal"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "code_challenge_methods_supported": ["plain", "S256"],
        "authorization_response_iss_parameter_supported": true,
        "introspection_endpoint_auth_methods_supported":
            ["private_key_jwt", "client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "revocation_endpoint_auth_methods_supported":
            ["private_key_jwt", "client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "frontchannel_logout_supported": true,
        "frontchannel_logout_session_supported": true,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
    })
}

/// The algorithms a `private_key_jwt` client assertion may use (asymmetric only, as
/// Keycloak's `client-jwt` authenticator; see `realm::KeyFamily`).
const ASSERTION_ALGS: [&str; 9] = [
    "PS384", "ES384", "RS384", "ES256", "RS256", "PS512", "PS256", "RS512", "EdDSA",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::realm::Realm;

    fn realm_state() -> RealmState {
        let realm = Realm::from_json_str(r#"{"realm":"master"}"#).unwrap();
        let issuer = url::Url::parse("http://localhost:8080/realms/master").unwrap();
        let keys = crate::keys::KeyRing::new(crate::keys::SigningKey::shared().unwrap(), 60);
        RealmState::new(realm, issuer, std::sync::Arc::new(keys), false)
    }

    #[test]
    fn discovery_document_deserializes_as_openidconnect_provider_metadata() {
        let text = document(&realm_state()).to_string();
        let meta: openidconnect::core::CoreProviderMetadata = serde_json::from_str(&text).unwrap();
        assert_eq!(
            meta.issuer().as_str(),
            "http://localhost:8080/realms/master"
        );
        assert_eq!(
            meta.jwks_uri().as_str(),
            "http://localhost:8080/realms/master/protocol/openid-connect/certs"
        );
        assert_eq!(
            meta.token_endpoint().map(|u| u.as_str()),
            Some("http://localhost:8080/realms/master/protocol/openid-connect/token")
        );
    }

    #[test]
    fn every_endpoint_lives_under_the_issuer() {
        let doc = document(&realm_state());
        for key in [
            "authorization_endpoint",
            "token_endpoint",
            "userinfo_endpoint",
            "end_session_endpoint",
            "jwks_uri",
        ] {
            let url = doc[key].as_str().unwrap();
            assert!(
                url.starts_with("http://localhost:8080/realms/master/protocol/openid-connect/"),
                "{key}: {url}"
            );
        }
    }
}
