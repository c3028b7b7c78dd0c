//! The issue-10 sections: client authentication (both spellings), the channel logouts, Envoy
//! metadata and the provider oneof: each read with its default, each refusal with its path.

use std::time::Duration;

use super::super::client_auth::DEFAULT_ASSERTION_VALID_FOR;
use super::super::metadata::DEFAULT_METADATA_NAMESPACE;
use super::{SEED, load, rejection, seed_env, seed_with};
use crate::config::ClientAuth;

const SECRET_REF: &str = "        clientSecretRef:\n          name: oauth-keycloak\n          namespace: agentgateway-system\n";
const RSA_KEY: &str = include_str!("../../../../tests/fixtures/keys/rsa-pkcs8.pem");
const EC_SEC1: &str = include_str!("../../../../tests/fixtures/keys/ec-p256-sec1.pem");
const P: &str = "spec.configs[0].oauth2.oidcAuthorizationCode";

/// The seed with its `clientSecretRef` replaced by `auth` (8-space-indented lines).
fn with_auth(auth: &str) -> String {
    assert!(SEED.contains(SECRET_REF));
    SEED.replace(SECRET_REF, auth)
}

/// A Secret `client-key` whose `stringData` holds `entries` (key, multi-line value).
fn key_secret(entries: &[(&str, &str)]) -> String {
    let mut doc = String::from(
        "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: client-key\n  namespace: agentgateway-system\nstringData:\n",
    );
    for (k, v) in entries {
        doc.push_str(&format!("  {k}: |\n"));
        for line in v.lines() {
            doc.push_str(&format!("    {line}\n"));
        }
    }
    doc
}

const PRIVATE_KEY_JWT: &str = "        clientAuthentication:\n          privateKeyJwt:\n            signingKeyRef: {name: client-key}\n";

#[test]
fn solos_current_client_secret_spelling_is_accepted() {
    let c = load(
        &with_auth(
            "        clientAuthentication:\n          clientSecret:\n            clientSecretRef: {name: oauth-keycloak, namespace: agentgateway-system}\n",
        ),
        &seed_env(),
    )
    .unwrap();
    assert_eq!(c.client_secret().unwrap().expose(), "s3cr3t");
}

#[test]
fn disable_client_secret_makes_a_public_client_in_both_spellings() {
    for auth in [
        "        disableClientSecret: true\n",
        "        clientAuthentication:\n          clientSecret: {disableClientSecret: true}\n",
    ] {
        let c = load(&with_auth(auth), &seed_env()).unwrap();
        assert!(matches!(c.client_auth, ClientAuth::Public), "{auth}");
    }
}

#[test]
fn private_key_jwt_reads_the_key_with_a_5_second_default_lifetime() {
    let text = format!(
        "{}{}",
        with_auth(PRIVATE_KEY_JWT),
        key_secret(&[("private-key", RSA_KEY)])
    );
    let c = load(&text, &seed_env()).unwrap();
    let ClientAuth::PrivateKeyJwt(jwt) = &c.client_auth else {
        panic!("expected private_key_jwt, got {:?}", c.client_auth);
    };
    assert_eq!(jwt.valid_for, DEFAULT_ASSERTION_VALID_FOR);
    assert_eq!(jwt.valid_for, Duration::from_secs(5));
    assert_eq!(jwt.key.alg(), jsonwebtoken::Algorithm::RS256);
    assert_eq!(jwt.key.kid(), None);

    let text = format!(
        "{}{}",
        with_auth(
            &PRIVATE_KEY_JWT.replace("client-key}\n", "client-key}\n            validFor: 30s\n")
        ),
        key_secret(&[("tls.key", RSA_KEY), ("alg", "PS256"), ("kid", "key-1")])
    );
    let c = load(&text, &seed_env()).unwrap();
    let ClientAuth::PrivateKeyJwt(jwt) = &c.client_auth else {
        panic!("expected private_key_jwt");
    };
    assert_eq!(jwt.valid_for, Duration::from_secs(30));
    assert_eq!(jwt.key.alg(), jsonwebtoken::Algorithm::PS256);
    assert_eq!(jwt.key.kid(), Some("key-1"));
}

#[test]
fn client_authentication_refusals_name_the_field() {
    let key = key_secret(&[("private-key", RSA_KEY)]);
    let cases: Vec<(&str, String, String)> = vec![
        (
            "both spellings",
            SEED.replace(
                SECRET_REF,
                &format!("{SECRET_REF}        clientAuthentication:\n          clientSecret: {{disableClientSecret: true}}\n"),
            ),
            format!("{P}.clientAuthentication: expected either `clientAuthentication` or the deprecated `clientSecretRef`, not both"),
        ),
        (
            "deprecated disable with clientAuthentication",
            with_auth(&format!("        disableClientSecret: true\n{PRIVATE_KEY_JWT}")) + &key,
            format!("{P}.disableClientSecret: the deprecated `disableClientSecret` cannot be combined"),
        ),
        (
            "no client authentication at all",
            with_auth(""),
            format!("{P}.clientSecretRef: expected how the client authenticates"),
        ),
        (
            "a secret and disableClientSecret",
            SEED.replace(SECRET_REF, &format!("{SECRET_REF}        disableClientSecret: true\n")),
            format!("{P}.clientSecretRef: `disableClientSecret: true` and a `clientSecretRef` contradict"),
        ),
        (
            "an empty clientSecret",
            with_auth("        clientAuthentication:\n          clientSecret: {}\n"),
            format!("{P}.clientAuthentication.clientSecret.clientSecretRef: expected how the client authenticates"),
        ),
        (
            "both methods",
            with_auth(&format!("{PRIVATE_KEY_JWT}          clientSecret: {{disableClientSecret: true}}\n")) + &key,
            format!("{P}.clientAuthentication: expected exactly one of `clientSecret` and `privateKeyJwt`"),
        ),
        (
            "no method",
            with_auth("        clientAuthentication: {}\n"),
            format!("{P}.clientAuthentication: expected exactly one of"),
        ),
        (
            "no signing key reference",
            with_auth("        clientAuthentication:\n          privateKeyJwt: {validFor: 5s}\n"),
            format!("{P}.clientAuthentication.privateKeyJwt.signingKeyRef: expected a reference"),
        ),
        (
            "a missing key Secret",
            with_auth(PRIVATE_KEY_JWT),
            "Secret agentgateway-system/client-key was not found".into(),
        ),
        (
            "a Secret without the key",
            with_auth(PRIVATE_KEY_JWT) + &key_secret(&[("other", "x")]),
            "stringData.private-key: expected the PEM private key under `private-key` (or `tls.key`)".into(),
        ),
        (
            "an SEC1 EC key",
            with_auth(PRIVATE_KEY_JWT) + &key_secret(&[("private-key", EC_SEC1)]),
            "stringData.private-key: an SEC1 `EC PRIVATE KEY` is not supported".into(),
        ),
        (
            "an HMAC algorithm",
            with_auth(PRIVATE_KEY_JWT) + &key_secret(&[("private-key", RSA_KEY), ("alg", "HS256")]),
            "stringData.alg: HS256 is not a private-key algorithm".into(),
        ),
        (
            "a zero lifetime",
            with_auth(&PRIVATE_KEY_JWT.replace("client-key}\n", "client-key}\n            validFor: 0s\n")) + &key,
            format!("{P}.clientAuthentication.privateKeyJwt.validFor: expected more than 0s and at most 3600s"),
        ),
        (
            "an unknown field",
            with_auth("        clientAuthentication:\n          clientSecret: {clientSecretRefs: {name: x}}\n"),
            "unknown field `clientSecretRefs`".into(),
        ),
    ];
    for (label, text, want) in cases {
        let msg = rejection(&text, &seed_env());
        assert!(msg.contains(&want), "{label}:\n  got  {msg}\n  want {want}");
    }
}

#[test]
fn channel_logout_paths_are_read() {
    let c = load(
        &seed_with(
            "        frontChannelLogout: {path: /fc}\n        backChannelLogout: {path: /bc}\n",
        ),
        &seed_env(),
    )
    .unwrap();
    assert_eq!(c.front_channel_logout_path.as_deref(), Some("/fc"));
    assert_eq!(c.back_channel_logout_path.as_deref(), Some("/bc"));
    let c = load(SEED, &seed_env()).unwrap();
    assert_eq!(c.front_channel_logout_path, None);
    assert_eq!(c.back_channel_logout_path, None);
}

#[test]
fn channel_logout_paths_must_be_free_paths() {
    let cases: [(&str, &str, String); 6] = [
        (
            "front on the callback",
            "        frontChannelLogout: {path: /openai}\n",
            format!("{P}.frontChannelLogout.path: expected a path different from callbackPath"),
        ),
        (
            "front on the logout path",
            "        logoutPath: /logout\n        frontChannelLogout: {path: /logout}\n",
            format!("{P}.frontChannelLogout.path: expected a path different from logoutPath"),
        ),
        (
            "back on the front path",
            "        frontChannelLogout: {path: /x}\n        backChannelLogout: {path: /x}\n",
            format!(
                "{P}.backChannelLogout.path: expected a path different from frontChannelLogout.path"
            ),
        ),
        (
            "back on the callback",
            "        backChannelLogout: {path: /openai}\n",
            format!("{P}.backChannelLogout.path: expected a path different from callbackPath"),
        ),
        (
            "not a path",
            "        frontChannelLogout: {path: fc}\n",
            format!("{P}.frontChannelLogout.path: expected a path starting with `/`"),
        ),
        (
            "no path",
            "        backChannelLogout: {}\n",
            "missing field `path`".into(),
        ),
    ];
    for (label, extra, want) in cases {
        let msg = rejection(&seed_with(extra), &seed_env());
        assert!(msg.contains(&want), "{label}:\n  got  {msg}\n  want {want}");
    }
}

#[test]
fn back_channel_logout_is_refused_with_cookie_sessions() {
    let start = SEED.find("        session:\n").unwrap();
    let end = SEED.find("        headers:\n").unwrap();
    let text = format!(
        "{}        session: {{cookie: {{}}}}\n        backChannelLogout: {{path: /bc}}\n{}",
        &SEED[..start],
        &SEED[end..]
    );
    let msg = rejection(&text, &seed_env());
    assert!(
        msg.contains(&format!(
            "{P}.backChannelLogout: back-channel logout needs server-side sessions"
        )),
        "{msg}"
    );
    // Front-channel logout works in cookie mode (the browser's cookie comes along).
    let text = text.replace("backChannelLogout", "frontChannelLogout");
    assert!(load(&text, &seed_env()).is_ok());
}

#[test]
fn envoy_metadata_sections_are_read_with_solos_default_namespace() {
    let c = load(
        &seed_with(
            "        dynamicMetadataFromClaims: {email: email, user.name: preferred_username}\n        autoMapFromMetadata: {}\n",
        ),
        &seed_env(),
    )
    .unwrap();
    assert_eq!(
        c.dynamic_metadata_from_claims,
        [
            ("email".to_owned(), "email".to_owned()),
            ("user.name".to_owned(), "preferred_username".to_owned())
        ]
    );
    assert_eq!(
        c.auto_map_namespace.as_deref(),
        Some(DEFAULT_METADATA_NAMESPACE)
    );
    let c = load(
        &seed_with("        autoMapFromMetadata: {namespace: my.ns}\n"),
        &seed_env(),
    )
    .unwrap();
    assert_eq!(c.auto_map_namespace.as_deref(), Some("my.ns"));
    let c = load(SEED, &seed_env()).unwrap();
    assert!(c.dynamic_metadata_from_claims.is_empty());
    assert_eq!(c.auto_map_namespace, None);
}

#[test]
fn envoy_metadata_refusals_name_the_field() {
    let cases = [
        (
            "        dynamicMetadataFromClaims: {\"a b\": email}\n",
            format!("{P}.dynamicMetadataFromClaims.a b: expected a metadata key"),
        ),
        (
            "        dynamicMetadataFromClaims: {email: \"e.mail\"}\n",
            format!("{P}.dynamicMetadataFromClaims.email: expected a claim name"),
        ),
        (
            "        autoMapFromMetadata: {namespace: \"a/b\"}\n",
            format!("{P}.autoMapFromMetadata.namespace: expected a filter-metadata namespace"),
        ),
    ];
    for (extra, want) in cases {
        let msg = rejection(&seed_with(extra), &seed_env());
        assert!(msg.contains(&want), "{extra}:\n  got  {msg}\n  want {want}");
    }
}

#[test]
fn the_default_provider_is_accepted_and_azure_is_refused_by_name() {
    assert!(load(&seed_with("        default: {}\n"), &seed_env()).is_ok());
    let msg = rejection(
        &seed_with("        azure: {clientId: c, tenantId: t, clientSecret: {name: s}}\n"),
        &seed_env(),
    );
    assert!(
        msg.contains(&format!("{P}.azure: the `azure` provider (Microsoft Graph group claims) is not supported by extauth")),
        "{msg}"
    );
    assert!(!msg.contains("unknown field"), "{msg}");
    let msg = rejection(&seed_with("        default: {x: 1}\n"), &seed_env());
    assert!(
        msg.contains(&format!("{P}.default: expected `{{}}`")),
        "{msg}"
    );
    let msg = rejection(
        &seed_with("        default: {}\n        azure: {}\n"),
        &seed_env(),
    );
    assert!(
        msg.contains("expected one provider, `default` or `azure`, not both"),
        "{msg}"
    );
}
