//! Raw manifests to validated runtime config. Every default is applied here, every check
//! names its field path, and nothing here does I/O except reading the Redis TLS files
//! ([`redis`]). Sections with many fields have their own file: [`redis`].

pub mod redis;

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http::HeaderName;

use super::manifest::Document;
use super::raw;
use super::{
    ClaimToHeader, CompiledSecret, ConfigError, CookieConfig, EndSessionMethod, JwksRefreshPolicy,
    OidcConfig, Report, SameSite, SecretIndex, SessionConfig, StoreConfig, Verdict,
};
use crate::env::EnvSource;
use crate::secret::Secret;

/// The AuthConfig API this server implements.
pub const AUTH_CONFIG_API_VERSION: &str = "extauth.solo.io/v1";
/// The Secret type Solo uses for OAuth client secrets.
pub const OAUTH_SECRET_TYPE: &str = "extauth.solo.io/oauth";
/// The key of the client secret inside the Secret.
pub const CLIENT_SECRET_KEY: &str = "client-secret";
/// Name of the optional Secret holding the state signing key.
pub const SIGNING_KEY_SECRET: &str = "extauth-signing-key";
/// Key of the signing key inside that Secret.
pub const SIGNING_KEY_KEY: &str = "signing-key";
/// Environment variable for the signing key (wins over the Secret).
pub const SIGNING_KEY_ENV: &str = "SIGNING_KEY";
/// Minimum signing key length: HS256 wants at least the hash size.
pub const MIN_SIGNING_KEY_BYTES: usize = 32;

/// Solo's default callback path.
pub const DEFAULT_CALLBACK_PATH: &str = "/oauth-gloo-callback";
/// Solo's default Redis session cookie name.
pub const DEFAULT_COOKIE_NAME: &str = "__session";
/// Solo's default cookie max age: 30 days.
pub const DEFAULT_COOKIE_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Solo's default `discoveryPollInterval`: 30 minutes.
pub const DEFAULT_DISCOVERY_POLL_INTERVAL: Duration = Duration::from_secs(30 * 60);
/// Solo's default `preExpiryBuffer`: 2 seconds.
pub const DEFAULT_PRE_EXPIRY_BUFFER: Duration = Duration::from_secs(2);
/// Default `options.poolSize` (go-redis's default per CPU, as Solo documents it).
pub const DEFAULT_POOL_SIZE: u32 = 10;
/// Default `maxPendingLogins`: logins a browser may have in flight at once (tabs).
pub const DEFAULT_MAX_PENDING_LOGINS: usize = 5;
/// Key of the 32-byte AES-GCM key inside the `cipherConfig.keyRef` Secret.
pub const CIPHER_KEY_KEY: &str = "key";
/// Shortest accepted `discoveryPollInterval`.
const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);

const OIDC_PREFIX: &str = "spec.configs[0].oauth2.oidcAuthorizationCode";

/// Request parameters the flow sets itself, which neither `authEndpointQueryParams`,
/// `tokenEndpointQueryParams` nor `autoMapFromMetadata` may set.
pub const RESERVED_PARAMS: [&str; 15] = [
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "code",
    "code_verifier",
    "grant_type",
    "refresh_token",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
];

/// Compiles every document: Secrets first (they are referenced), then each AuthConfig.
pub fn compile_all(docs: &[Document], env: &dyn EnvSource) -> Report {
    let mut secrets: SecretIndex = BTreeMap::new();
    let mut skipped = Vec::new();
    for doc in docs {
        if doc.label.kind == "Secret" {
            let id = doc.label.id.clone().unwrap_or_default();
            secrets.insert(id, (doc.label.clone(), compile_secret(doc)));
        }
    }
    let mut verdicts: Vec<Verdict> = Vec::new();
    for doc in docs {
        match doc.label.kind.as_str() {
            "Secret" => {}
            "AuthConfig" => {
                let result = match verdicts
                    .iter()
                    .find(|v| v.label.id.is_some() && v.label.id == doc.label.id)
                {
                    Some(first) => Err(ConfigError::Duplicate {
                        doc: doc.label.clone(),
                        first: format!("{}, document {}", first.label.source, first.label.index),
                    }),
                    None => compile_auth_config(doc, &secrets, env).map(Arc::new),
                };
                verdicts.push(Verdict {
                    label: doc.label.clone(),
                    result,
                });
            }
            _ => skipped.push(doc.label.clone()),
        }
    }
    Report {
        verdicts,
        skipped,
        signing_key: signing_key(env, &secrets),
    }
}

fn field(doc: &Document, path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        doc: doc.label.clone(),
        path: path.into(),
        message: message.into(),
    }
}

fn compile_secret(doc: &Document) -> Result<CompiledSecret, Arc<ConfigError>> {
    compile_secret_inner(doc).map_err(Arc::new)
}

fn compile_secret_inner(doc: &Document) -> Result<CompiledSecret, ConfigError> {
    if let Some(err) = doc.unset_under("") {
        return Err(err);
    }
    if doc.api_version != "v1" {
        return Err(field(
            doc,
            "apiVersion",
            format!("expected `v1` for a Secret, got `{}`", doc.api_version),
        ));
    }
    let raw: raw::SecretDoc = doc.parse()?;
    let mut values = BTreeMap::new();
    for (key, encoded) in &raw.data {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| field(doc, format!("data.{key}"), format!("expected base64: {e}")))?;
        let text = String::from_utf8(bytes).map_err(|_| {
            field(
                doc,
                format!("data.{key}"),
                "expected UTF-8 text once decoded",
            )
        })?;
        values.insert(key.clone(), Secret::new(text));
    }
    // `stringData` wins over `data`, as the Kubernetes API server merges them.
    for (key, value) in raw.string_data {
        values.insert(key, Secret::new(value));
    }
    Ok(CompiledSecret {
        type_: raw.type_,
        values,
    })
}

fn compile_auth_config(
    doc: &Document,
    secrets: &SecretIndex,
    env: &dyn EnvSource,
) -> Result<OidcConfig, ConfigError> {
    if doc.api_version != AUTH_CONFIG_API_VERSION {
        return Err(field(
            doc,
            "apiVersion",
            format!(
                "expected `{AUTH_CONFIG_API_VERSION}`, got `{}`",
                doc.api_version
            ),
        ));
    }
    if let Some(err) = doc.unset_under("") {
        return Err(err);
    }
    let raw: raw::AuthConfigDoc = doc.parse()?;
    let namespace = raw.metadata.namespace.as_deref().unwrap_or("default");
    let id = format!("{namespace}/{}", raw.metadata.name);

    let [step] = raw.spec.configs.as_slice() else {
        return Err(field(
            doc,
            "spec.configs",
            format!(
                "expected exactly one entry (an oauth2.oidcAuthorizationCode step), got {}",
                raw.spec.configs.len()
            ),
        ));
    };
    let oidc = step
        .oauth2
        .as_ref()
        .and_then(|o| o.oidc_authorization_code.as_ref())
        .ok_or_else(|| {
            field(
                doc,
                "spec.configs[0]",
                "expected `oauth2.oidcAuthorizationCode` (the only auth type this server implements)",
            )
        })?;

    let p = |f: &str| format!("{OIDC_PREFIX}.{f}");

    let app_url = oidc.app_url.trim_end_matches('/').to_owned();
    let app_origin = parse_http_url(&oidc.app_url).map_err(|m| field(doc, p("appUrl"), m))?;
    if app_origin.query().is_some() || app_origin.fragment().is_some() {
        return Err(field(
            doc,
            p("appUrl"),
            format!(
                "expected a URL without query or fragment, got {:?}",
                oidc.app_url
            ),
        ));
    }

    let callback_path = oidc
        .callback_path
        .clone()
        .unwrap_or_else(|| DEFAULT_CALLBACK_PATH.to_owned());
    let parse_regex = oidc.parse_callback_path_as_regex.unwrap_or(false);
    if parse_regex {
        if !callback_path.starts_with('/') {
            return Err(field(
                doc,
                p("callbackPath"),
                format!("expected a regular expression starting with `/`, got {callback_path:?}"),
            ));
        }
    } else {
        check_path(&callback_path).map_err(|m| field(doc, p("callbackPath"), m))?;
    }
    let redirect_uri = format!("{app_url}{callback_path}");

    if oidc.client_id.trim().is_empty() {
        return Err(field(doc, p("clientId"), "expected a non-empty client id"));
    }

    let client_auth = client_auth::compile(doc, oidc, namespace, secrets, &p)?;

    let issuer = parse_http_url(&oidc.issuer_url).map_err(|m| field(doc, p("issuerUrl"), m))?;
    if issuer.query().is_some() || issuer.fragment().is_some() {
        return Err(field(
            doc,
            p("issuerUrl"),
            format!(
                "expected a URL without query or fragment, got {:?}",
                oidc.issuer_url
            ),
        ));
    }

    let mut scopes: Vec<String> = Vec::new();
    for (i, s) in oidc.scopes.iter().enumerate() {
        if s.is_empty()
            || s.chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\')
        {
            return Err(field(
                doc,
                p(&format!("scopes[{i}]")),
                format!("expected a scope token without spaces or quotes, got {s:?}"),
            ));
        }
        if !scopes.contains(s) {
            scopes.push(s.clone());
        }
    }
    if !scopes.iter().any(|s| s == "openid") {
        scopes.push("openid".into());
    }

    let session = compile_session(doc, oidc.session.as_ref(), namespace, secrets, env, &p)?;

    let headers = oidc.headers.clone().unwrap_or(raw::Headers {
        id_token_header: None,
        access_token_header: None,
        use_bearer_schema_for_authorization: None,
    });
    let opt_header = |value: Option<&String>, f: &str| -> Result<Option<HeaderName>, ConfigError> {
        value
            .map(|h| parse_upstream_header(h).map_err(|m| field(doc, p(f), m)))
            .transpose()
    };
    let id_token_header = opt_header(headers.id_token_header.as_ref(), "headers.idTokenHeader")?;
    let access_token_header = opt_header(
        headers.access_token_header.as_ref(),
        "headers.accessTokenHeader",
    )?;
    let session_id_header =
        opt_header(oidc.session_id_header_name.as_ref(), "sessionIdHeaderName")?;

    let claims = |holder: Option<&raw::ClaimsToHeadersHolder>,
                  f: &str|
     -> Result<Vec<ClaimToHeader>, ConfigError> {
        let mut out = Vec::new();
        for (i, c) in holder
            .map(|h| h.claims_to_headers.as_slice())
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            if c.claim.trim().is_empty() {
                return Err(field(
                    doc,
                    p(&format!("{f}.claimsToHeaders[{i}].claim")),
                    "expected a claim name",
                ));
            }
            let header = parse_upstream_header(&c.header)
                .map_err(|m| field(doc, p(&format!("{f}.claimsToHeaders[{i}].header")), m))?;
            out.push(ClaimToHeader {
                claim: c.claim.clone(),
                header,
                append: c.append.unwrap_or(false),
            });
        }
        Ok(out)
    };
    let id_token_claims = claims(oidc.identity_token.as_ref(), "identityToken")?;
    let access_token_claims = claims(oidc.access_token.as_ref(), "accessToken")?;

    let logout_path = match &oidc.logout_path {
        None => None,
        Some(path) if path.is_empty() => None,
        Some(path) => {
            check_path(path).map_err(|m| field(doc, p("logoutPath"), m))?;
            if *path == callback_path {
                return Err(field(
                    doc,
                    p("logoutPath"),
                    "expected a path different from callbackPath",
                ));
            }
            Some(path.clone())
        }
    };
    let after_logout_url = match &oidc.after_logout_url {
        None => format!("{app_url}/"),
        Some(u) => {
            parse_http_url(u).map_err(|m| field(doc, p("afterLogoutUrl"), m))?;
            u.clone()
        }
    };
    let end_session_method = match oidc
        .end_session_properties
        .as_ref()
        .and_then(|e| e.method_type.as_deref())
    {
        None | Some("GetMethod" | "GET" | "Get") => EndSessionMethod::Get,
        Some("PostMethod" | "POST" | "Post") => EndSessionMethod::Post,
        Some(other) => {
            return Err(field(
                doc,
                p("endSessionProperties.methodType"),
                format!("expected `GetMethod` or `PostMethod`, got {other:?}"),
            ));
        }
    };

    let discovery_override = compile_discovery_override(
        doc,
        oidc.discovery_override.as_ref(),
        &p("discoveryOverride"),
    )?;
    let discovery_poll_interval = match &oidc.discovery_poll_interval {
        None => DEFAULT_DISCOVERY_POLL_INTERVAL,
        Some(d) => {
            let d = parse_duration(d).map_err(|m| field(doc, p("discoveryPollInterval"), m))?;
            if d < MIN_POLL_INTERVAL {
                return Err(field(
                    doc,
                    p("discoveryPollInterval"),
                    format!("expected at least {}s", MIN_POLL_INTERVAL.as_secs()),
                ));
            }
            d
        }
    };
    let jwks_refresh = match &oidc.jwks_cache_refresh_policy {
        None => JwksRefreshPolicy::MaxPerInterval(1),
        Some(policy) => match (
            &policy.never,
            &policy.always,
            policy.max_idp_req_per_polling_interval,
        ) {
            (Some(_), None, None) => JwksRefreshPolicy::Never,
            (None, Some(_), None) => JwksRefreshPolicy::Always,
            (None, None, Some(n)) if (1..=1000).contains(&n) => {
                JwksRefreshPolicy::MaxPerInterval(n)
            }
            (None, None, Some(n)) => {
                return Err(field(
                    doc,
                    p("jwksCacheRefreshPolicy.maxIdpReqPerPollingInterval"),
                    format!("expected 1 to 1000, got {n}"),
                ));
            }
            _ => {
                return Err(field(
                    doc,
                    p("jwksCacheRefreshPolicy"),
                    "expected exactly one of `never`, `always`, `maxIdpReqPerPollingInterval`",
                ));
            }
        },
    };
    for (f, params) in [
        ("authEndpointQueryParams", &oidc.auth_endpoint_query_params),
        (
            "tokenEndpointQueryParams",
            &oidc.token_endpoint_query_params,
        ),
    ] {
        for key in params.keys() {
            if key.is_empty() || RESERVED_PARAMS.contains(&key.as_str()) {
                return Err(field(
                    doc,
                    p(&format!("{f}.{key}")),
                    "expected a parameter the flow does not set itself",
                ));
            }
        }
    }
    let callback_regex = if parse_regex {
        Some(
            regex::Regex::new(&format!("^(?:{callback_path})$")).map_err(|e| {
                field(
                    doc,
                    p("callbackPath"),
                    format!("expected a regular expression: {e}"),
                )
            })?,
        )
    } else {
        None
    };
    let channels = logout_channels::compile(
        doc,
        oidc,
        &logout_channels::Taken {
            callback_path: &callback_path,
            callback_regex: callback_regex.as_ref(),
            logout_path: logout_path.as_deref(),
            cookie_sessions: matches!(session.store, StoreConfig::Cookie { .. }),
        },
        &p,
    )?;
    let dynamic_metadata_from_claims = metadata::dynamic_metadata_from_claims(doc, oidc, &p)?;
    let auto_map_namespace = metadata::auto_map_namespace(doc, oidc, &p)?;
    provider::check(doc, oidc, &p)?;
    let max_pending_logins = match oidc.max_pending_logins {
        None => DEFAULT_MAX_PENDING_LOGINS,
        Some(n @ 1..=50) => n as usize,
        Some(n) => {
            return Err(field(
                doc,
                p("maxPendingLogins"),
                format!("expected 1 to 50, got {n}"),
            ));
        }
    };

    Ok(OidcConfig {
        id,
        app_url,
        app_origin,
        callback_path,
        callback_regex,
        redirect_uri,
        client_id: oidc.client_id.clone(),
        client_auth,
        issuer_url: oidc.issuer_url.clone(),
        scope: scopes.join(" "),
        session,
        id_token_header,
        access_token_header,
        use_bearer_schema: headers.use_bearer_schema_for_authorization.unwrap_or(false),
        id_token_claims,
        access_token_claims,
        session_id_header,
        logout_path,
        after_logout_url,
        end_session_method,
        discovery_override,
        discovery_poll_interval,
        jwks_refresh,
        auth_endpoint_query_params: oidc.auth_endpoint_query_params.clone(),
        token_endpoint_query_params: oidc.token_endpoint_query_params.clone(),
        fail_on_redirect: raw.spec.fail_on_redirect.unwrap_or(false),
        unauthorized_for_non_browser: oidc.unauthorized_for_non_browser.unwrap_or(true),
        strict_login_binding: oidc.strict_login_binding.unwrap_or(false),
        max_pending_logins,
        front_channel_logout_path: channels.front,
        back_channel_logout_path: channels.back,
        dynamic_metadata_from_claims,
        auto_map_namespace,
    })
}

fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/')
        || path
            .chars()
            .any(|c| c == '?' || c == '#' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "expected a path starting with `/` without query, fragment or spaces, got {path:?}"
        ));
    }
    Ok(())
}

fn compile_discovery_override(
    doc: &Document,
    o: Option<&raw::DiscoveryOverride>,
    prefix: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, ConfigError> {
    let mut map = serde_json::Map::new();
    let Some(o) = o else {
        return Ok(map);
    };
    for (f, key, value) in [
        ("authEndpoint", "authorization_endpoint", &o.auth_endpoint),
        ("tokenEndpoint", "token_endpoint", &o.token_endpoint),
        ("jwksUri", "jwks_uri", &o.jwks_uri),
        (
            "endSessionEndpoint",
            "end_session_endpoint",
            &o.end_session_endpoint,
        ),
        (
            "revocationEndpoint",
            "revocation_endpoint",
            &o.revocation_endpoint,
        ),
    ] {
        if let Some(v) = value {
            parse_http_url(v).map_err(|m| field(doc, format!("{prefix}.{f}"), m))?;
            map.insert(key.into(), serde_json::Value::String(v.clone()));
        }
    }
    for (key, value) in [
        ("response_types_supported", &o.response_types),
        ("subject_types_supported", &o.subjects),
        ("id_token_signing_alg_values_supported", &o.id_token_algs),
        ("scopes_supported", &o.scopes),
        ("token_endpoint_auth_methods_supported", &o.auth_methods),
        ("claims_supported", &o.claims),
    ] {
        if let Some(v) = value {
            map.insert(key.into(), serde_json::json!(v));
        }
    }
    Ok(map)
}

/// A protobuf JSON duration (`1800s`, `0.5s`), or with `ms`, `m` or `h`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let expected =
        || format!("expected a duration such as `2s`, `1800s`, `500ms` or `30m`, got {s:?}");
    let s = s.trim();
    let (number, unit) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        return Err(expected());
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(expected());
    }
    let value: f64 = number.parse().map_err(|_| expected())?;
    let secs = value * unit;
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(expected());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The Secret `r` names (namespace defaulting to the AuthConfig's), with the label of its
/// document; a missing or rejected Secret is an error at the reference's `path`.
fn referenced_secret<'a>(
    doc: &Document,
    r: &raw::ResourceRef,
    default_namespace: &str,
    secrets: &'a SecretIndex,
    path: &str,
) -> Result<(&'a super::DocLabel, &'a CompiledSecret), ConfigError> {
    let secret_id = format!(
        "{}/{}",
        r.namespace.as_deref().unwrap_or(default_namespace),
        r.name
    );
    let Some((label, compiled)) = secrets.get(&secret_id) else {
        return Err(ConfigError::MissingSecret {
            doc: doc.label.clone(),
            path: path.to_owned(),
            secret: secret_id,
        });
    };
    let secret = compiled.as_ref().map_err(|e| ConfigError::BadSecret {
        doc: doc.label.clone(),
        path: path.to_owned(),
        cause: Arc::clone(e),
    })?;
    Ok((label, secret))
}

/// The `client-secret` of the Secret `r` names, referenced at `path`.
fn resolve_client_secret(
    doc: &Document,
    r: &raw::ResourceRef,
    default_namespace: &str,
    secrets: &SecretIndex,
    path: String,
) -> Result<Secret, ConfigError> {
    let (label, secret) = referenced_secret(doc, r, default_namespace, secrets, &path)?;
    if let Some(t) = secret.type_.as_deref().filter(|t| *t != OAUTH_SECRET_TYPE) {
        return Err(ConfigError::BadSecret {
            doc: doc.label.clone(),
            path,
            cause: Arc::new(ConfigError::Field {
                doc: label.clone(),
                path: "type".into(),
                message: format!("expected `{OAUTH_SECRET_TYPE}`, got `{t}`"),
            }),
        });
    }
    match secret.values.get(CLIENT_SECRET_KEY) {
        Some(s) if !s.is_empty() => Ok(s.clone()),
        _ => Err(ConfigError::BadSecret {
            doc: doc.label.clone(),
            path,
            cause: Arc::new(ConfigError::Field {
                doc: label.clone(),
                path: format!("stringData.{CLIENT_SECRET_KEY}"),
                message: "expected a non-empty client secret under this key".into(),
            }),
        }),
    }
}

fn compile_session(
    doc: &Document,
    session: Option<&raw::Session>,
    namespace: &str,
    secrets: &SecretIndex,
    env: &dyn EnvSource,
    p: &dyn Fn(&str) -> String,
) -> Result<SessionConfig, ConfigError> {
    let empty = raw::Session {
        fail_on_fetch_failure: None,
        redis: None,
        cookie: None,
        cookie_options: None,
        cipher_config: None,
    };
    let session = session.unwrap_or(&empty);
    if session.redis.is_some() && session.cookie.is_some() {
        return Err(field(
            doc,
            p("session"),
            "expected either `redis` or `cookie`, not both",
        ));
    }
    let opts = session
        .cookie_options
        .clone()
        .unwrap_or(raw::CookieOptions {
            max_age: None,
            not_secure: None,
            http_only: None,
            path: None,
            domain: None,
            same_site: None,
        });
    let max_age = match opts.max_age {
        None => Some(DEFAULT_COOKIE_MAX_AGE),
        Some(0) => None,
        Some(n) if n > 0 => Some(Duration::from_secs(n.unsigned_abs())),
        Some(n) => {
            return Err(field(
                doc,
                p("session.cookieOptions.maxAge"),
                format!("expected seconds >= 0 (0 = a browser-session cookie), got {n}"),
            ));
        }
    };
    let path = opts.path.clone().unwrap_or_else(|| "/".into());
    check_path(&path).map_err(|m| field(doc, p("session.cookieOptions.path"), m))?;
    if path.contains(';') {
        return Err(field(
            doc,
            p("session.cookieOptions.path"),
            "expected no `;`",
        ));
    }
    let domain = match &opts.domain {
        None => None,
        Some(d) if d.is_empty() => None,
        Some(d) => {
            check_domain(d).map_err(|m| field(doc, p("session.cookieOptions.domain"), m))?;
            Some(d.clone())
        }
    };
    let same_site = match opts.same_site.as_deref() {
        None | Some("DefaultMode" | "") => None,
        Some("LaxMode" | "Lax") => Some(SameSite::Lax),
        Some("StrictMode" | "Strict") => Some(SameSite::Strict),
        Some("NoneMode" | "None") => Some(SameSite::None),
        Some(other) => {
            return Err(field(
                doc,
                p("session.cookieOptions.sameSite"),
                format!("expected `LaxMode`, `StrictMode` or `NoneMode`, got {other:?}"),
            ));
        }
    };
    let secure = !opts.not_secure.unwrap_or(false);
    if same_site == Some(SameSite::None) && !secure {
        return Err(field(
            doc,
            p("session.cookieOptions.sameSite"),
            "`NoneMode` requires a Secure cookie (browsers drop SameSite=None without Secure): remove notSecure",
        ));
    }

    let (name, store, allow_refreshing, pre_expiry_buffer, header_name, target_domain) =
        match &session.redis {
            Some(redis) => {
                let store = StoreConfig::Redis(Box::new(redis::compile(doc, redis, env, p)?));
                let pre_expiry_buffer = match &redis.pre_expiry_buffer {
                    None => DEFAULT_PRE_EXPIRY_BUFFER,
                    Some(d) => parse_duration(d)
                        .map_err(|m| field(doc, p("session.redis.preExpiryBuffer"), m))?,
                };
                let header_name = redis
                    .header_name
                    .as_ref()
                    .map(|h| {
                        http::HeaderName::from_str(h).map_err(|_| {
                            field(
                                doc,
                                p("session.redis.headerName"),
                                format!("expected an HTTP header name, got {h:?}"),
                            )
                        })
                    })
                    .transpose()?;
                let target_domain = redis
                    .target_domain
                    .as_ref()
                    .map(|d| {
                        check_domain(d)
                            .map(|()| d.to_ascii_lowercase())
                            .map_err(|m| field(doc, p("session.redis.targetDomain"), m))
                    })
                    .transpose()?;
                (
                    redis
                        .cookie_name
                        .clone()
                        .unwrap_or_else(|| DEFAULT_COOKIE_NAME.to_owned()),
                    store,
                    redis.allow_refreshing.unwrap_or(true),
                    pre_expiry_buffer,
                    header_name,
                    target_domain,
                )
            }
            None => {
                let cookie = session.cookie.clone().unwrap_or(raw::CookieSession {
                    allow_refreshing: None,
                    key_prefix: None,
                    target_domain: None,
                });
                let key_prefix = cookie.key_prefix.clone().unwrap_or_default();
                if !key_prefix.bytes().all(is_cookie_name_byte) {
                    return Err(field(
                        doc,
                        p("session.cookie.keyPrefix"),
                        "expected cookie-name characters (letters, digits and !#$%&'*+-.^_`|~)",
                    ));
                }
                let cipher_key = match &session.cipher_config {
                    None => None,
                    Some(c) => Some(resolve_cipher_key(doc, &c.key_ref, namespace, secrets, p)?),
                };
                let target_domain = cookie
                    .target_domain
                    .as_ref()
                    .map(|d| {
                        check_domain(d)
                            .map(|()| d.to_ascii_lowercase())
                            .map_err(|m| field(doc, p("session.cookie.targetDomain"), m))
                    })
                    .transpose()?;
                (
                    format!("{key_prefix}{DEFAULT_COOKIE_NAME}"),
                    StoreConfig::Cookie {
                        cipher_key,
                        key_prefix,
                    },
                    cookie.allow_refreshing.unwrap_or(true),
                    DEFAULT_PRE_EXPIRY_BUFFER,
                    None,
                    target_domain,
                )
            }
        };
    if session.cipher_config.is_some() && session.redis.is_some() {
        return Err(field(
            doc,
            p("session.cipherConfig"),
            "only used by cookie sessions (without `redis`): Redis sessions are encrypted with a key derived from each session id",
        ));
    }
    if name.is_empty() || !name.bytes().all(is_cookie_name_byte) {
        return Err(field(
            doc,
            p("session.redis.cookieName"),
            format!("expected a cookie name (letters, digits and !#$%&'*+-.^_`|~), got {name:?}"),
        ));
    }
    Ok(SessionConfig {
        fail_on_fetch_failure: session.fail_on_fetch_failure.unwrap_or(false),
        cookie: CookieConfig {
            name,
            max_age,
            secure,
            http_only: opts.http_only.unwrap_or(true),
            path,
            domain,
            same_site,
        },
        store,
        allow_refreshing,
        pre_expiry_buffer,
        header_name,
        target_domain,
    })
}

fn check_domain(d: &str) -> Result<(), String> {
    let bare = d.strip_prefix('.').unwrap_or(d);
    if bare.is_empty()
        || !bare
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(format!(
            "expected a host name such as `example.com`, got {d:?}"
        ));
    }
    Ok(())
}

fn resolve_cipher_key(
    doc: &Document,
    r: &raw::ResourceRef,
    default_namespace: &str,
    secrets: &SecretIndex,
    p: &dyn Fn(&str) -> String,
) -> Result<Secret, ConfigError> {
    let path = p("session.cipherConfig.keyRef");
    let (label, secret) = referenced_secret(doc, r, default_namespace, secrets, &path)?;
    match secret.values.get(CIPHER_KEY_KEY) {
        Some(s) if s.expose().len() == 32 => Ok(s.clone()),
        other => Err(ConfigError::BadSecret {
            doc: doc.label.clone(),
            path,
            cause: Arc::new(ConfigError::Field {
                doc: label.clone(),
                path: format!("stringData.{CIPHER_KEY_KEY}"),
                message: format!(
                    "expected a 32-byte AES-256 key, got {}",
                    other.map_or("nothing".to_owned(), |s| format!(
                        "{} bytes",
                        s.expose().len()
                    ))
                ),
            }),
        }),
    }
}

/// RFC 6265 cookie-name: an RFC 7230 token.
fn is_cookie_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn parse_http_url(s: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(s)
        .map_err(|e| format!("expected an absolute http(s) URL, got {s:?} ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "expected an http or https URL, got scheme `{}`",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("expected a URL with a host, got {s:?}"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("expected a URL without user or password".into());
    }
    Ok(url)
}

/// `host`, `host:port`, `[v6]:port` or a bare IPv6 address; port defaults to 6379.
#[cfg(test)]
fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    parse_host_port_with(s, 6379)
}

/// `host`, `host:port`, `[v6]:port` or a bare IPv6 address; port defaults to `default_port`.
fn parse_host_port_with(s: &str, default_port: u16) -> Result<(String, u16), String> {
    let expected = || format!("expected `host:port` (port defaults to {default_port}), got {s:?}");
    let s = s.trim();
    if s.is_empty() || s.contains('/') || s.contains(char::is_whitespace) {
        return Err(expected());
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(expected)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| expected())?,
            None if after.is_empty() => default_port,
            None => return Err(expected()),
        };
        return Ok((host.to_owned(), port));
    }
    if s.matches(':').count() > 1 {
        // A bare IPv6 address.
        return std::net::Ipv6Addr::from_str(s)
            .map(|a| (a.to_string(), default_port))
            .map_err(|_| expected());
    }
    match s.split_once(':') {
        Some((host, port)) if !host.is_empty() => {
            let port: u16 = port.parse().map_err(|_| expected())?;
            if port == 0 {
                return Err(expected());
            }
            Ok((host.to_owned(), port))
        }
        Some(_) => Err(expected()),
        None => Ok((s.to_owned(), default_port)),
    }
}

/// Header names extauth may set upstream: valid, and not one that would break the request.
pub(crate) fn parse_upstream_header(s: &str) -> Result<HeaderName, String> {
    let name =
        HeaderName::from_str(s).map_err(|_| format!("expected an HTTP header name, got {s:?}"))?;
    const RESERVED: [&str; 7] = [
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "cookie",
        "te",
        "upgrade",
    ];
    if RESERVED.contains(&name.as_str()) {
        return Err(format!(
            "`{name}` cannot carry a token: it would break the upstream request"
        ));
    }
    Ok(name)
}

fn signing_key(env: &dyn EnvSource, secrets: &SecretIndex) -> Result<Option<Secret>, ConfigError> {
    let check = |origin: String, key: Secret| {
        if key.expose().len() < MIN_SIGNING_KEY_BYTES {
            Err(ConfigError::SigningKey {
                origin,
                message: format!(
                    "expected at least {MIN_SIGNING_KEY_BYTES} bytes, got {}",
                    key.expose().len()
                ),
            })
        } else {
            Ok(Some(key))
        }
    };
    if let Some(v) = env.var(SIGNING_KEY_ENV) {
        return check(
            format!("environment variable {SIGNING_KEY_ENV}"),
            Secret::new(v),
        );
    }
    let found = secrets
        .iter()
        .find(|(id, _)| id.rsplit('/').next() == Some(SIGNING_KEY_SECRET));
    let Some((_, (label, values))) = found else {
        return Ok(None);
    };
    let secret = values.as_ref().map_err(|e| ConfigError::SigningKey {
        origin: label.to_string(),
        message: e.to_string(),
    })?;
    match secret.values.get(SIGNING_KEY_KEY) {
        Some(key) => check(label.to_string(), key.clone()),
        None => Err(ConfigError::SigningKey {
            origin: label.to_string(),
            message: format!("expected the key `{SIGNING_KEY_KEY}` in stringData or data"),
        }),
    }
}

mod client_auth;
mod logout_channels;
mod metadata;
mod provider;

#[cfg(test)]
mod tests;
