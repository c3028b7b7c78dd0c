//! The manifests as written: serde types mirroring the Kubernetes documents.
//!
//! Every type denies unknown fields so that a typo or an unsupported option is REJECTED with
//! its path instead of being silently ignored. Defaults are documented on each field and
//! applied in [`super::compile`], not here, so this layer stays a faithful mirror.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Kubernetes object metadata. Only `name` and `namespace` matter; the rest of what
/// `kubectl get -o yaml` prints (uid, labels, managedFields...) is accepted and ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    /// Object name (required).
    pub name: String,
    /// Namespace; `default` when omitted, as kubectl does.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// `kind: Secret` (`apiVersion: v1`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretDoc {
    /// `v1`.
    pub api_version: String,
    /// `Secret`.
    pub kind: String,
    /// Name and namespace.
    pub metadata: Metadata,
    /// For OAuth client secrets: `extauth.solo.io/oauth`.
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    /// Plain values.
    #[serde(default)]
    pub string_data: BTreeMap<String, String>,
    /// Base64-encoded values (what `kubectl get secret -o yaml` prints).
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    /// Accepted and ignored.
    #[serde(default)]
    pub immutable: Option<bool>,
}

/// `kind: AuthConfig` (`apiVersion: extauth.solo.io/v1`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthConfigDoc {
    /// `extauth.solo.io/v1`.
    pub api_version: String,
    /// `AuthConfig`.
    pub kind: String,
    /// Name and namespace: together the AuthConfig's id (`namespace/name`).
    pub metadata: Metadata,
    /// The auth configuration.
    pub spec: AuthConfigSpec,
    /// Written by the control plane; accepted and ignored.
    #[serde(default)]
    pub status: Option<yaml_serde::Value>,
}

/// `AuthConfig.spec`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthConfigSpec {
    /// The auth steps. This server implements exactly one `oauth2.oidcAuthorizationCode` step.
    pub configs: Vec<ConfigStep>,
}

/// One entry of `spec.configs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigStep {
    /// Optional step name (used in logs).
    #[serde(default)]
    pub name: Option<String>,
    /// OAuth2 / OIDC.
    #[serde(default)]
    pub oauth2: Option<OAuth2>,
}

/// `oauth2`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OAuth2 {
    /// The OIDC authorization-code flow.
    #[serde(default)]
    pub oidc_authorization_code: Option<OidcAuthorizationCode>,
}

/// `oauth2.oidcAuthorizationCode`: field names as in Solo's `extauth.proto`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OidcAuthorizationCode {
    /// Public URL of the app (scheme, host, optional port), e.g. `http://gateway:80`.
    /// Required. Kept exactly as written for the `redirect_uri`.
    pub app_url: String,
    /// Path of the callback, relative to `appUrl`. Default `/oauth-gloo-callback` (Solo's).
    /// May be a protected path: only requests carrying `code`+`state` or `error` on it are
    /// callbacks.
    #[serde(default)]
    pub callback_path: Option<String>,
    /// OAuth client id at the IdP. Required.
    pub client_id: String,
    /// Kubernetes Secret holding `client-secret`. Without it the client is public (no client
    /// authentication at the token endpoint; PKCE still applies).
    #[serde(default)]
    pub client_secret_ref: Option<ResourceRef>,
    /// OIDC issuer; discovery is at `issuerUrl` + `.well-known/openid-configuration`.
    /// Required. A trailing `/` is allowed (the discovery `issuer` may omit it).
    pub issuer_url: String,
    /// Scopes requested in addition to `openid`. Default: none.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Where sessions live. Required in this version (Redis).
    #[serde(default)]
    pub session: Option<Session>,
    /// Headers set on the upstream request.
    #[serde(default)]
    pub headers: Option<Headers>,
}

/// A reference to a Kubernetes object.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceRef {
    /// Object name.
    pub name: String,
    /// Namespace; default: the AuthConfig's namespace.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// `session`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Session {
    /// `true`: a session-store error denies the request with a 503. `false` (default): the
    /// request is treated as having no session and goes to login.
    #[serde(default)]
    pub fail_on_fetch_failure: Option<bool>,
    /// Redis-backed sessions.
    #[serde(default)]
    pub redis: Option<RedisSession>,
}

/// `session.redis`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedisSession {
    /// Name of the session cookie. Default `__session` (Solo's).
    #[serde(default)]
    pub cookie_name: Option<String>,
    /// Connection options.
    pub options: RedisOptions,
}

/// `session.redis.options`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedisOptions {
    /// `host:port` of the Redis server; port defaults to 6379. Required.
    pub host: String,
}

/// `headers`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Headers {
    /// Upstream header that receives the raw ID token. Default: none (not forwarded).
    #[serde(default)]
    pub id_token_header: Option<String>,
}
