//! The raw realm-export shape: a serde mirror of the subset of Keycloak's
//! `RealmRepresentation` that the mock understands.
//!
//! Unknown fields are deliberately ignored (no `deny_unknown_fields`): a real
//! `kc.sh export` holds hundreds of fields the mock has no use for, and one file must serve
//! both the mock and a real Keycloak. Defaults follow Keycloak's import
//! (`RepresentationToModel`), so a file behaves the same in both.

use serde::Deserialize;

/// `RealmRepresentation` (subset).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawRealm {
    /// The realm name, used in every URL (`/realms/{realm}`). Required.
    pub realm: String,
    /// Name shown on the login page ("Sign in to ..."). Default: the realm name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Whether the realm serves requests. Default: `true`.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Access-token lifetime in seconds. Default: 300 (Keycloak's `accessTokenLifespan`).
    #[serde(default)]
    pub access_token_lifespan: Option<u64>,
    /// Authorization-code lifetime in seconds. Default: 60 (`accessCodeLifespan`).
    #[serde(default)]
    pub access_code_lifespan: Option<u64>,
    /// How long a login form stays valid, in seconds. Default: 1800
    /// (`accessCodeLifespanLogin`).
    #[serde(default)]
    pub access_code_lifespan_login: Option<u64>,
    /// SSO session idle timeout in seconds; also the refresh-token lifetime.
    /// Default: 1800 (`ssoSessionIdleTimeout`).
    #[serde(default)]
    pub sso_session_idle_timeout: Option<u64>,
    /// SSO session maximum lifetime in seconds. Default: 36000 (`ssoSessionMaxLifespan`).
    #[serde(default)]
    pub sso_session_max_lifespan: Option<u64>,
    /// The realm's users. Default: none.
    #[serde(default)]
    pub users: Vec<RawUser>,
    /// The realm's clients. Default: none.
    #[serde(default)]
    pub clients: Vec<RawClient>,
}

/// `UserRepresentation` (subset).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawUser {
    /// The user id, used as `sub`. Default: a UUID derived from realm and username.
    #[serde(default)]
    pub id: Option<String>,
    /// Login name; Keycloak lowercases it on import. Required.
    pub username: String,
    /// Whether the user may log in. Default: `false`, as in Keycloak's import.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// E-mail address. Default: none.
    #[serde(default)]
    pub email: Option<String>,
    /// `email_verified` claim. Default: `false`.
    #[serde(default)]
    pub email_verified: Option<bool>,
    /// `given_name` claim. Default: none.
    #[serde(default)]
    pub first_name: Option<String>,
    /// `family_name` claim. Default: none.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Credentials; only `type: "password"` with a plain `value` can be used to log in.
    #[serde(default)]
    pub credentials: Vec<RawCredential>,
    /// Keycloak's user attributes (each a list of strings); they become ID-token and userinfo
    /// claims (see `User::attributes`).
    #[serde(default)]
    pub attributes: std::collections::BTreeMap<String, Vec<String>>,
}

/// `CredentialRepresentation` (subset).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawCredential {
    /// Credential type; `password` is the only one used.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The plain-text password (import form). Exports carry a hash in `secretData` instead,
    /// which the mock cannot verify.
    #[serde(default)]
    pub value: Option<String>,
}

impl std::fmt::Debug for RawCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawCredential")
            .field("kind", &self.kind)
            .field("value", &self.value.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// `ClientRepresentation` (subset).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawClient {
    /// The OAuth `client_id`. Required.
    pub client_id: String,
    /// Client secret of a confidential client. Default: none.
    #[serde(default)]
    pub secret: Option<String>,
    /// A public client authenticates with its `client_id` only. Default: `false`.
    #[serde(default)]
    pub public_client: Option<bool>,
    /// Whether the client may be used. Default: `true`, as in Keycloak's import.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Whether the authorization-code flow is allowed. Default: `true`.
    #[serde(default)]
    pub standard_flow_enabled: Option<bool>,
    /// Allowed redirect URIs; a trailing `*` makes a prefix match. Default: none.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Whether the `client_credentials` grant is allowed. Default: `false`.
    #[serde(default)]
    pub service_accounts_enabled: Option<bool>,
    /// How a confidential client authenticates: `client-secret` (Keycloak's "Client Id and
    /// Secret") or `client-jwt` ("Signed JWT", `private_key_jwt`). Default: `client-secret`.
    /// Ignored for a public client, as in Keycloak.
    #[serde(default)]
    pub client_authenticator_type: Option<String>,
    /// The name shown on the front-channel logout page. Default: the `clientId`.
    #[serde(default)]
    pub name: Option<String>,
    /// The client's base URL: the front-channel logout URL when `frontchannelLogout` is on and
    /// the `frontchannel.logout.url` attribute is blank (Keycloak's fallback). Default: none.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Whether the logout page loads the client's front-channel logout URL. Default: `false`
    /// (Keycloak's import default).
    #[serde(default)]
    pub frontchannel_logout: Option<bool>,
    /// Keycloak's client attributes (strings). Read: `pkce.code.challenge.method` (`S256` or
    /// `plain` requires PKCE with that method), `post.logout.redirect.uris` (`##`-separated
    /// patterns, `+` = the redirect URIs; absent = `+`), the `client-jwt` keys
    /// (`jwt.credential.certificate`, `jwt.credential.public.key`, `use.jwks.url` + `jwks.url`,
    /// `use.jwks.string` + `jwks.string`, `token.endpoint.auth.signing.alg`,
    /// `token.endpoint.auth.signing.max.exp`) and logout (`frontchannel.logout.url`,
    /// `frontchannel.logout.session.required`, `backchannel.logout.url`,
    /// `backchannel.logout.session.required`, `backchannel.logout.revoke.offline.tokens`).
    /// Default: none.
    #[serde(default)]
    pub attributes: std::collections::BTreeMap<String, serde_json::Value>,
}

impl std::fmt::Debug for RawClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawClient")
            .field("client_id", &self.client_id)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("public_client", &self.public_client)
            .field("enabled", &self.enabled)
            .field("standard_flow_enabled", &self.standard_flow_enabled)
            .field("redirect_uris", &self.redirect_uris)
            .field("service_accounts_enabled", &self.service_accounts_enabled)
            .field("client_authenticator_type", &self.client_authenticator_type)
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("frontchannel_logout", &self.frontchannel_logout)
            .field("attributes", &self.attributes)
            .finish()
    }
}
