//! How the client authenticates at the token endpoint: `clientAuthentication`
//! (`clientSecret` or `privateKeyJwt`), or the deprecated top-level `clientSecretRef` and
//! `disableClientSecret`. The two spellings cannot be mixed, and a client must say how it
//! authenticates (Solo's rule: a secret is required unless it is disabled).

use std::sync::Arc;
use std::time::Duration;

use super::{Document, field, parse_duration, referenced_secret, resolve_client_secret};
use crate::assertion::AssertionKey;
use crate::config::raw;
use crate::config::{ClientAuth, ConfigError, PrivateKeyJwtConfig, SecretIndex};

/// `privateKeyJwt.validFor` when omitted (Solo's default).
pub const DEFAULT_ASSERTION_VALID_FOR: Duration = Duration::from_secs(5);
/// The longest accepted `validFor`: an assertion is a credential; Keycloak itself refuses
/// ones issued more than 60 s ago by default.
const MAX_ASSERTION_VALID_FOR: Duration = Duration::from_secs(3600);
/// Keys of the signing-key Secret, in the order they are looked up.
pub const SIGNING_KEY_KEYS: [&str; 2] = ["private-key", "tls.key"];
/// Optional key of the signing-key Secret naming the algorithm (`RS256`, `ES256`, ...).
pub const SIGNING_ALG_KEY: &str = "alg";
/// Optional key of the signing-key Secret holding the `kid` header.
pub const SIGNING_KID_KEY: &str = "kid";

const MISSING: &str = "expected how the client authenticates: `clientAuthentication.clientSecret.clientSecretRef` (or the deprecated `clientSecretRef`), `clientAuthentication.privateKeyJwt`, or `disableClientSecret: true` for a public client";

pub(super) fn compile(
    doc: &Document,
    oidc: &raw::OidcAuthorizationCode,
    namespace: &str,
    secrets: &SecretIndex,
    p: &dyn Fn(&str) -> String,
) -> Result<ClientAuth, ConfigError> {
    let Some(auth) = &oidc.client_authentication else {
        return deprecated(doc, oidc, namespace, secrets, p);
    };
    if oidc.client_secret_ref.is_some() {
        return Err(field(
            doc,
            p("clientAuthentication"),
            "expected either `clientAuthentication` or the deprecated `clientSecretRef`, not both: move the reference to `clientAuthentication.clientSecret.clientSecretRef`",
        ));
    }
    if oidc.disable_client_secret.is_some() {
        return Err(field(
            doc,
            p("disableClientSecret"),
            "the deprecated `disableClientSecret` cannot be combined with `clientAuthentication`: set `clientAuthentication.clientSecret.disableClientSecret` instead",
        ));
    }
    match (&auth.client_secret, &auth.private_key_jwt) {
        (Some(secret), None) => secret_or_public(
            doc,
            secret.client_secret_ref.as_ref(),
            secret.disable_client_secret.unwrap_or(false),
            namespace,
            secrets,
            &p("clientAuthentication.clientSecret.clientSecretRef"),
            &p("clientAuthentication.clientSecret"),
        ),
        (None, Some(jwt)) => private_key_jwt(doc, jwt, namespace, secrets, p),
        _ => Err(field(
            doc,
            p("clientAuthentication"),
            "expected exactly one of `clientSecret` and `privateKeyJwt`",
        )),
    }
}

/// The deprecated top-level spelling.
fn deprecated(
    doc: &Document,
    oidc: &raw::OidcAuthorizationCode,
    namespace: &str,
    secrets: &SecretIndex,
    p: &dyn Fn(&str) -> String,
) -> Result<ClientAuth, ConfigError> {
    secret_or_public(
        doc,
        oidc.client_secret_ref.as_ref(),
        oidc.disable_client_secret.unwrap_or(false),
        namespace,
        secrets,
        &p("clientSecretRef"),
        &p("clientSecretRef"),
    )
}

fn secret_or_public(
    doc: &Document,
    reference: Option<&raw::ResourceRef>,
    disabled: bool,
    namespace: &str,
    secrets: &SecretIndex,
    ref_path: &str,
    owner_path: &str,
) -> Result<ClientAuth, ConfigError> {
    match (reference, disabled) {
        (Some(_), true) => Err(field(
            doc,
            owner_path,
            "`disableClientSecret: true` and a `clientSecretRef` contradict each other: remove one",
        )),
        (Some(r), false) => Ok(ClientAuth::Secret(resolve_client_secret(
            doc,
            r,
            namespace,
            secrets,
            ref_path.to_owned(),
        )?)),
        (None, true) => Ok(ClientAuth::Public),
        (None, false) => Err(field(doc, ref_path, MISSING)),
    }
}

fn private_key_jwt(
    doc: &Document,
    jwt: &raw::PrivateKeyJwt,
    namespace: &str,
    secrets: &SecretIndex,
    p: &dyn Fn(&str) -> String,
) -> Result<ClientAuth, ConfigError> {
    let path = p("clientAuthentication.privateKeyJwt.signingKeyRef");
    let Some(r) = &jwt.signing_key_ref else {
        return Err(field(
            doc,
            path,
            "expected a reference to the Secret holding the client's PEM private key",
        ));
    };
    let valid_for = match &jwt.valid_for {
        None => DEFAULT_ASSERTION_VALID_FOR,
        Some(d) => {
            let d = parse_duration(d)
                .map_err(|m| field(doc, p("clientAuthentication.privateKeyJwt.validFor"), m))?;
            if d.is_zero() || d > MAX_ASSERTION_VALID_FOR {
                return Err(field(
                    doc,
                    p("clientAuthentication.privateKeyJwt.validFor"),
                    format!(
                        "expected more than 0s and at most {}s",
                        MAX_ASSERTION_VALID_FOR.as_secs()
                    ),
                ));
            }
            d
        }
    };
    let (label, secret) = referenced_secret(doc, r, namespace, secrets, &path)?;
    let bad = |key: &str, message: String| ConfigError::BadSecret {
        doc: doc.label.clone(),
        path: path.clone(),
        cause: Arc::new(ConfigError::Field {
            doc: label.clone(),
            path: format!("stringData.{key}"),
            message,
        }),
    };
    let Some((key_name, pem)) = SIGNING_KEY_KEYS
        .iter()
        .find_map(|k| secret.values.get(*k).map(|v| (*k, v)))
    else {
        return Err(bad(
            SIGNING_KEY_KEYS[0],
            format!(
                "expected the PEM private key under `{}` (or `{}`)",
                SIGNING_KEY_KEYS[0], SIGNING_KEY_KEYS[1]
            ),
        ));
    };
    let alg = secret
        .values
        .get(SIGNING_ALG_KEY)
        .map(|a| a.expose().trim().to_owned());
    let kid = secret
        .values
        .get(SIGNING_KID_KEY)
        .map(|k| k.expose().trim().to_owned())
        .filter(|k| !k.is_empty());
    let key = AssertionKey::from_pem(pem.expose(), alg.as_deref(), kid).map_err(|e| {
        let key = if matches!(e, crate::assertion::AssertionError::Algorithm(_)) {
            SIGNING_ALG_KEY
        } else {
            key_name
        };
        bad(key, e.to_string())
    })?;
    Ok(ClientAuth::PrivateKeyJwt(PrivateKeyJwtConfig {
        key: Arc::new(key),
        valid_for,
    }))
}
