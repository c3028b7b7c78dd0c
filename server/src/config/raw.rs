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
    /// `true`: never answer a redirect; a request that would be redirected to the IdP gets a
    /// 401 instead. Default false (Solo's).
    #[serde(default)]
    pub fail_on_redirect: Option<bool>,
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
    /// Kubernetes Secret holding `client-secret` (deprecated in Solo's API in favour of
    /// `clientAuthentication.clientSecret.clientSecretRef`; still read). Required unless
    /// `clientAuthentication` or `disableClientSecret: true` says otherwise.
    #[serde(default)]
    pub client_secret_ref: Option<ResourceRef>,
    /// How extauth authenticates to the token endpoint: a client secret or a signed JWT
    /// (`private_key_jwt`). Exclusive with the deprecated `clientSecretRef`.
    #[serde(default)]
    pub client_authentication: Option<ClientAuthentication>,
    /// Deprecated in Solo's API (see `clientAuthentication.clientSecret`): `true` for a public
    /// client (PKCE only, no secret sent). Default false.
    #[serde(default)]
    pub disable_client_secret: Option<bool>,
    /// A path the IdP loads in an iframe (`?iss=...&sid=...`) to end the sessions of an IdP
    /// session (OIDC Front-Channel Logout 1.0). Default: none.
    #[serde(default)]
    pub front_channel_logout: Option<ChannelLogout>,
    /// extauth extension: a path the IdP POSTs a `logout_token` to (OIDC Back-Channel Logout
    /// 1.0). Default: none.
    #[serde(default)]
    pub back_channel_logout: Option<ChannelLogout>,
    /// Metadata key → ID-token claim, sent as gRPC `dynamic_metadata` on every allowed
    /// request. Default: none.
    #[serde(default)]
    pub dynamic_metadata_from_claims: BTreeMap<String, String>,
    /// Authorization and token request parameters taken from the request's
    /// `metadata_context` (gRPC). Default: off.
    #[serde(default)]
    pub auto_map_from_metadata: Option<AutoMapFromMetadata>,
    /// The provider oneof: `default: {}` (any OIDC provider). Default: `default`.
    #[serde(default)]
    pub default: Option<yaml_serde::Value>,
    /// The provider oneof: Solo's Azure provider. Read only to be REJECTED with a reason.
    #[serde(default)]
    pub azure: Option<yaml_serde::Value>,
    /// OIDC issuer; discovery is at `issuerUrl` + `.well-known/openid-configuration`.
    /// Required. A trailing `/` is allowed (the discovery `issuer` may omit it).
    pub issuer_url: String,
    /// Scopes requested in addition to `openid`. Default: none.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Where sessions live. Default: cookie sessions (tokens in encrypted cookies).
    #[serde(default)]
    pub session: Option<Session>,
    /// Headers set on the upstream request.
    #[serde(default)]
    pub headers: Option<Headers>,
    /// Claims of the ID token copied into upstream headers.
    #[serde(default)]
    pub identity_token: Option<ClaimsToHeadersHolder>,
    /// Claims of the access token (when it is a JWT) copied into upstream headers.
    #[serde(default)]
    pub access_token: Option<ClaimsToHeadersHolder>,
    /// Path that logs out (deletes the session, ends the IdP session). Default: none.
    #[serde(default)]
    pub logout_path: Option<String>,
    /// Where the browser goes after logout. Default: `appUrl`.
    #[serde(default)]
    pub after_logout_url: Option<String>,
    /// How the IdP's end-session endpoint is called.
    #[serde(default)]
    pub end_session_properties: Option<EndSessionProperties>,
    /// Values that win over what discovery returns.
    #[serde(default)]
    pub discovery_override: Option<DiscoveryOverride>,
    /// How often discovery and JWKS are refetched (protobuf duration, e.g. `1800s`).
    /// Default 30 minutes.
    #[serde(default)]
    pub discovery_poll_interval: Option<String>,
    /// What to do when an ID token names a key (`kid`) that the cached JWKS lacks.
    #[serde(default)]
    pub jwks_cache_refresh_policy: Option<JwksCacheRefreshPolicy>,
    /// Extra query parameters on the authorization request.
    #[serde(default)]
    pub auth_endpoint_query_params: BTreeMap<String, String>,
    /// Extra query parameters on token endpoint requests.
    #[serde(default)]
    pub token_endpoint_query_params: BTreeMap<String, String>,
    /// Treat `callbackPath` as a regular expression matched against the whole path.
    /// Default false.
    #[serde(default)]
    pub parse_callback_path_as_regex: Option<bool>,
    /// Upstream header that receives the session id. Default: none.
    #[serde(default)]
    pub session_id_header_name: Option<String>,
    /// extauth extension: answer 401 with `WWW-Authenticate` instead of a 302 to requests
    /// that cannot follow a login (XHR, CORS, JSON-only `Accept`). Default true.
    #[serde(default)]
    pub unauthorized_for_non_browser: Option<bool>,
    /// extauth extension: require the per-login cookie at the callback even when the browser
    /// presents no login cookie at all. Default false (see the config reference).
    #[serde(default)]
    pub strict_login_binding: Option<bool>,
    /// extauth extension: pending logins remembered per browser (several tabs). Default 5.
    #[serde(default)]
    pub max_pending_logins: Option<u32>,
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
    /// Redis-backed sessions. Without it, sessions are cookies.
    #[serde(default)]
    pub redis: Option<RedisSession>,
    /// Cookie sessions (the tokens themselves in the cookie).
    #[serde(default)]
    pub cookie: Option<CookieSession>,
    /// Attributes of the session cookie.
    #[serde(default)]
    pub cookie_options: Option<CookieOptions>,
    /// The key that encrypts cookie sessions.
    #[serde(default)]
    pub cipher_config: Option<CipherConfig>,
}

/// `session.cookieOptions`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CookieOptions {
    /// Max-Age in seconds. Default 30 days; `0` = a browser-session cookie (no Max-Age).
    #[serde(default)]
    pub max_age: Option<i64>,
    /// `true`: no `Secure` attribute. Default false.
    #[serde(default)]
    pub not_secure: Option<bool>,
    /// `HttpOnly`. Default true.
    #[serde(default)]
    pub http_only: Option<bool>,
    /// `Path`. Default `/`.
    #[serde(default)]
    pub path: Option<String>,
    /// `Domain`. Default: none (host-only cookie).
    #[serde(default)]
    pub domain: Option<String>,
    /// `SameSite`: `LaxMode`/`Lax`, `StrictMode`/`Strict`, `NoneMode`/`None`. Default: omitted.
    #[serde(default)]
    pub same_site: Option<String>,
}

/// `session.cookie`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CookieSession {
    /// Refresh expired tokens with the refresh token. Default true.
    #[serde(default)]
    pub allow_refreshing: Option<bool>,
    /// Prefix of the cookie names. Default none.
    #[serde(default)]
    pub key_prefix: Option<String>,
    /// Only set cookies for requests to this host. Default: any host.
    #[serde(default)]
    pub target_domain: Option<String>,
}

/// `session.cipherConfig`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CipherConfig {
    /// Secret holding the 32-byte key under `key`.
    pub key_ref: ResourceRef,
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
    /// Prefix of the Redis keys. Default none.
    #[serde(default)]
    pub key_prefix: Option<String>,
    /// Refresh tokens that expired (or will within `preExpiryBuffer`). Default true.
    #[serde(default)]
    pub allow_refreshing: Option<bool>,
    /// How long before expiry tokens are refreshed (protobuf duration). Default `2s`.
    #[serde(default)]
    pub pre_expiry_buffer: Option<String>,
    /// A request header that may carry the session id instead of the cookie. Default none.
    #[serde(default)]
    pub header_name: Option<String>,
    /// Only set the session cookie for requests to this host. Default: any host.
    #[serde(default)]
    pub target_domain: Option<String>,
}

/// `session.redis.options`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedisOptions {
    /// `host:port` of the Redis server (port defaults to 6379), or `unix:///path/redis.sock`.
    /// Required with the standalone topology; refused with `sentinel` and `cluster`.
    #[serde(default)]
    pub host: Option<String>,
    /// Database number. Default 0 (the only one a cluster has).
    #[serde(default)]
    pub db: Option<i64>,
    /// Connections per Redis server (each multiplexed, opened as concurrency needs them).
    /// Default 10.
    #[serde(default)]
    pub pool_size: Option<i64>,
    /// `TCP` (default) or `TLS`.
    #[serde(default)]
    pub socket_type: Option<String>,
    /// With `socketType: TLS`: a folder with `ca.crt` (required) and, for mutual TLS,
    /// `tls.crt` and `tls.key` together.
    #[serde(default)]
    pub tls_cert_mount_path: Option<String>,
    /// extauth extension: `standalone` (default), `sentinel` or `cluster`.
    #[serde(default)]
    pub topology: Option<String>,
    /// extauth extension: the sentinels, with `topology: sentinel`.
    #[serde(default)]
    pub sentinel: Option<RedisSentinel>,
    /// extauth extension: the seed nodes, with `topology: cluster`.
    #[serde(default)]
    pub cluster: Option<RedisCluster>,
    /// extauth extension: the bound of every Redis call, connecting included (duration,
    /// e.g. `1s`, `500ms`). Default `1s`.
    #[serde(default)]
    pub command_timeout: Option<String>,
    /// extauth extension: `WAIT` for replicas after writing a session. Default: off.
    #[serde(default)]
    pub durable_sessions: Option<DurableSessions>,
    /// extauth extension: keep sessions in memory between checks, invalidated by Redis
    /// (RESP3 client tracking). Standalone only. Default false.
    #[serde(default)]
    pub client_side_cache: Option<bool>,
}

/// `options.sentinel`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedisSentinel {
    /// The monitored master's name (`sentinel monitor NAME ...`). Required.
    #[serde(default)]
    pub master_name: Option<String>,
    /// Sentinel `host:port` addresses (port defaults to 26379). At least one.
    #[serde(default)]
    pub addresses: Vec<String>,
}

/// `options.cluster`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedisCluster {
    /// Seed nodes, `host:port` (port defaults to 6379). At least one.
    #[serde(default)]
    pub nodes: Vec<String>,
}

/// `options.durableSessions`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DurableSessions {
    /// Replicas that must acknowledge a new or refreshed session. Default 1.
    #[serde(default)]
    pub replicas: Option<i64>,
    /// How long to wait for them (duration). Default `500ms`; less than `commandTimeout`.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// `headers`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Headers {
    /// Upstream header that receives the raw ID token. Default: none (not forwarded).
    #[serde(default)]
    pub id_token_header: Option<String>,
    /// Upstream header that receives the access token. Default: none.
    #[serde(default)]
    pub access_token_header: Option<String>,
    /// Prefix the token with `Bearer ` when the header is `Authorization`. Default false.
    #[serde(default)]
    pub use_bearer_schema_for_authorization: Option<bool>,
}

/// `identityToken` / `accessToken`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimsToHeadersHolder {
    /// Claim → header mappings.
    #[serde(default)]
    pub claims_to_headers: Vec<ClaimToHeader>,
}

/// One claim → header mapping.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimToHeader {
    /// The claim name (top-level).
    pub claim: String,
    /// The upstream header.
    pub header: String,
    /// Append to an existing header instead of replacing it. Default false.
    #[serde(default)]
    pub append: Option<bool>,
}

/// `endSessionProperties`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndSessionProperties {
    /// `GetMethod` (default) or `PostMethod`.
    #[serde(default)]
    pub method_type: Option<String>,
}

/// `discoveryOverride`: every field wins over discovery when set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiscoveryOverride {
    /// `authorization_endpoint`.
    #[serde(default)]
    pub auth_endpoint: Option<String>,
    /// `token_endpoint`.
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// `jwks_uri`.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// `end_session_endpoint`.
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    /// `revocation_endpoint`.
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    /// `response_types_supported`.
    #[serde(default)]
    pub response_types: Option<Vec<String>>,
    /// `subject_types_supported`.
    #[serde(default)]
    pub subjects: Option<Vec<String>>,
    /// `id_token_signing_alg_values_supported`.
    #[serde(default)]
    pub id_token_algs: Option<Vec<String>>,
    /// `scopes_supported`.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// `token_endpoint_auth_methods_supported`.
    #[serde(default)]
    pub auth_methods: Option<Vec<String>>,
    /// `claims_supported`.
    #[serde(default)]
    pub claims: Option<Vec<String>>,
}

/// `jwksCacheRefreshPolicy`: exactly one of the three.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwksCacheRefreshPolicy {
    /// `never: {}`: an unknown `kid` fails.
    #[serde(default)]
    pub never: Option<yaml_serde::Value>,
    /// `always: {}`: every unknown `kid` refetches.
    #[serde(default)]
    pub always: Option<yaml_serde::Value>,
    /// At most this many refetches per `discoveryPollInterval`.
    #[serde(default)]
    pub max_idp_req_per_polling_interval: Option<u32>,
}

/// `clientAuthentication`: exactly one of `clientSecret` and `privateKeyJwt`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientAuthentication {
    /// Authenticate with a client secret (`client_secret_basic`).
    #[serde(default)]
    pub client_secret: Option<ClientSecretAuth>,
    /// Authenticate with a signed JWT (RFC 7523 `private_key_jwt`).
    #[serde(default)]
    pub private_key_jwt: Option<PrivateKeyJwt>,
}

/// `clientAuthentication.clientSecret`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientSecretAuth {
    /// Secret holding `client-secret`. Required unless `disableClientSecret: true`.
    #[serde(default)]
    pub client_secret_ref: Option<ResourceRef>,
    /// `true`: a public client (PKCE only, no secret sent). Default false.
    #[serde(default)]
    pub disable_client_secret: Option<bool>,
}

/// `clientAuthentication.privateKeyJwt`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrivateKeyJwt {
    /// Secret holding the PEM private key under `private-key` (or `tls.key`). Required.
    #[serde(default)]
    pub signing_key_ref: Option<ResourceRef>,
    /// Lifetime of each `client_assertion` (protobuf duration). Default `5s`.
    #[serde(default)]
    pub valid_for: Option<String>,
}

/// `frontChannelLogout` / `backChannelLogout`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChannelLogout {
    /// The path (relative to `appUrl`). Required.
    pub path: String,
}

/// `autoMapFromMetadata`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutoMapFromMetadata {
    /// The `metadata_context` filter-metadata namespace. Default `solo_authconfig_oidc`.
    #[serde(default)]
    pub namespace: Option<String>,
}
