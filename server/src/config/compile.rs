//! Raw manifests to validated runtime config. Every default is applied here, every check
//! names its field path, and nothing here does I/O.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http::HeaderName;

use super::manifest::Document;
use super::raw;
use super::{
    CompiledSecret, ConfigError, CookieConfig, OidcConfig, Report, SecretIndex, SessionConfig,
    StoreConfig, Verdict,
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

const OIDC_PREFIX: &str = "spec.configs[0].oauth2.oidcAuthorizationCode";

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
                    None => compile_auth_config(doc, &secrets).map(Arc::new),
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

fn compile_auth_config(doc: &Document, secrets: &SecretIndex) -> Result<OidcConfig, ConfigError> {
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
    if !callback_path.starts_with('/')
        || callback_path
            .chars()
            .any(|c| c == '?' || c == '#' || c.is_whitespace() || c.is_control())
    {
        return Err(field(
            doc,
            p("callbackPath"),
            format!(
                "expected a path starting with `/` without query, fragment or spaces, got {callback_path:?}"
            ),
        ));
    }
    let redirect_uri = format!("{app_url}{callback_path}");

    if oidc.client_id.trim().is_empty() {
        return Err(field(doc, p("clientId"), "expected a non-empty client id"));
    }

    let client_secret = match &oidc.client_secret_ref {
        None => None,
        Some(r) => Some(resolve_client_secret(doc, r, namespace, secrets)?),
    };

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

    let session = compile_session(doc, oidc.session.as_ref(), &p)?;

    let id_token_header = match oidc
        .headers
        .as_ref()
        .and_then(|h| h.id_token_header.as_ref())
    {
        None => None,
        Some(h) => {
            Some(parse_upstream_header(h).map_err(|m| field(doc, p("headers.idTokenHeader"), m))?)
        }
    };

    Ok(OidcConfig {
        id,
        app_url,
        app_origin,
        callback_path,
        redirect_uri,
        client_id: oidc.client_id.clone(),
        client_secret,
        issuer_url: oidc.issuer_url.clone(),
        scope: scopes.join(" "),
        session,
        id_token_header,
    })
}

fn resolve_client_secret(
    doc: &Document,
    r: &raw::ResourceRef,
    default_namespace: &str,
    secrets: &SecretIndex,
) -> Result<Secret, ConfigError> {
    let path = format!("{OIDC_PREFIX}.clientSecretRef");
    let secret_id = format!(
        "{}/{}",
        r.namespace.as_deref().unwrap_or(default_namespace),
        r.name
    );
    let Some((label, compiled)) = secrets.get(&secret_id) else {
        return Err(ConfigError::MissingSecret {
            doc: doc.label.clone(),
            path,
            secret: secret_id,
        });
    };
    let secret = compiled.as_ref().map_err(|e| ConfigError::BadSecret {
        doc: doc.label.clone(),
        path: path.clone(),
        cause: Arc::clone(e),
    })?;
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
    p: &dyn Fn(&str) -> String,
) -> Result<SessionConfig, ConfigError> {
    let session = session.ok_or_else(|| {
        field(
            doc,
            p("session"),
            "expected a `session` with `redis.options.host`: this server keeps sessions in Redis",
        )
    })?;
    let redis = session.redis.as_ref().ok_or_else(|| {
        field(
            doc,
            p("session.redis"),
            "expected `redis` with `options.host` (cookie-only sessions are not supported yet)",
        )
    })?;
    let (host, port) = parse_host_port(&redis.options.host)
        .map_err(|m| field(doc, p("session.redis.options.host"), m))?;
    let name = redis
        .cookie_name
        .clone()
        .unwrap_or_else(|| DEFAULT_COOKIE_NAME.to_owned());
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
            max_age: DEFAULT_COOKIE_MAX_AGE,
            secure: true,
            http_only: true,
            path: "/".into(),
        },
        store: StoreConfig::Redis { host, port },
    })
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
fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let expected = || format!("expected `host:port` (port defaults to 6379), got {s:?}");
    let s = s.trim();
    if s.is_empty() || s.contains('/') || s.contains(char::is_whitespace) {
        return Err(expected());
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(expected)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| expected())?,
            None if after.is_empty() => 6379,
            None => return Err(expected()),
        };
        return Ok((host.to_owned(), port));
    }
    if s.matches(':').count() > 1 {
        // A bare IPv6 address.
        return std::net::Ipv6Addr::from_str(s)
            .map(|a| (a.to_string(), 6379))
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
        None => Ok((s.to_owned(), 6379)),
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

#[cfg(test)]
mod tests;
