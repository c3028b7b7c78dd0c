use super::*;
use crate::config::{ConfigError, validate_sources};
use crate::env::MapEnv;

const SEED: &str = include_str!("../../../tests/fixtures/seed-step2.yaml");

fn seed_env() -> MapEnv {
    MapEnv::default()
        .with("KEYCLOAK_SECRET", "s3cr3t")
        .with("KEYCLOAK_CLIENT", "a3417aca-4214-4296-8664-482f159b2fac")
        .with("KEYCLOAK_URL", "http://172.18.0.16:8080")
        .with("INGRESS_GW_ADDRESS", "172.18.0.4")
}

fn load(text: &str, env: &MapEnv) -> Result<Arc<OidcConfig>, ConfigError> {
    let report = validate_sources(&[("seed.yaml".to_owned(), text.to_owned())], env)?;
    report.into_loaded().map(|l| l.auth_configs[0].clone())
}

fn rejection(text: &str, env: &MapEnv) -> String {
    load(text, env).expect_err("expected REJECTED").to_string()
}

#[test]
fn seed_manifests_are_accepted_with_the_guides_values() {
    let c = load(SEED, &seed_env()).unwrap();
    assert_eq!(c.id, "agentgateway-system/oauth-authorization-code");
    assert_eq!(c.redirect_uri, "http://172.18.0.4:80/openai");
    assert_eq!(c.callback_path, "/openai");
    assert_eq!(c.client_id, "a3417aca-4214-4296-8664-482f159b2fac");
    assert_eq!(c.client_secret.as_ref().unwrap().expose(), "s3cr3t");
    assert_eq!(c.issuer_url, "http://172.18.0.16:8080/realms/master/");
    assert_eq!(c.scope, "email openid");
    assert!(c.session.fail_on_fetch_failure);
    assert_eq!(c.session.cookie.name, "keycloak-session");
    assert_eq!(
        c.session.store,
        StoreConfig::Redis {
            host: "ext-cache-enterprise-agentgateway".into(),
            port: 6379
        }
    );
    assert_eq!(c.id_token_header.as_ref().unwrap().as_str(), "jwt");
}

#[test]
fn defaults_follow_solos_api() {
    let c = load(SEED, &seed_env()).unwrap();
    assert_eq!(c.session.cookie.max_age, DEFAULT_COOKIE_MAX_AGE);
    assert!(c.session.cookie.secure);
    assert!(c.session.cookie.http_only);
    assert_eq!(c.session.cookie.path, "/");
    let text = SEED
        .replace("        callbackPath: /openai\n", "")
        .replace("            cookieName: keycloak-session\n", "");
    let c = load(&text, &seed_env()).unwrap();
    assert_eq!(c.callback_path, DEFAULT_CALLBACK_PATH);
    assert_eq!(c.session.cookie.name, DEFAULT_COOKIE_NAME);
}

#[test]
fn unset_client_secret_variable_is_named() {
    let env = MapEnv::default()
        .with("KEYCLOAK_CLIENT", "c")
        .with("KEYCLOAK_URL", "http://idp")
        .with("INGRESS_GW_ADDRESS", "gw");
    let msg = rejection(SEED, &env);
    assert!(msg.contains("${KEYCLOAK_SECRET}"), "{msg}");
    assert!(msg.contains("KEYCLOAK_SECRET is not set"), "{msg}");
    assert!(msg.contains("stringData.client-secret"), "{msg}");
    assert!(
        msg.contains("Secret agentgateway-system/oauth-keycloak"),
        "{msg}"
    );
}

#[test]
fn unset_variable_in_the_auth_config_names_the_field() {
    let env = MapEnv::default()
        .with("KEYCLOAK_SECRET", "s")
        .with("KEYCLOAK_CLIENT", "c")
        .with("INGRESS_GW_ADDRESS", "gw");
    let msg = rejection(SEED, &env);
    assert!(
        msg.contains("spec.configs[0].oauth2.oidcAuthorizationCode.issuerUrl: `${KEYCLOAK_URL}`"),
        "{msg}"
    );
    assert!(
        msg.contains(
            "AuthConfig agentgateway-system/oauth-authorization-code (seed.yaml, document 2)"
        ),
        "{msg}"
    );
}

#[test]
fn missing_secret_is_named_as_such() {
    let text = SEED.split("---").nth(1).unwrap();
    let msg = rejection(text, &seed_env());
    assert!(
        msg.contains("Secret agentgateway-system/oauth-keycloak was not found"),
        "{msg}"
    );
    assert!(msg.contains("clientSecretRef"), "{msg}");
}

#[test]
fn unknown_fields_are_rejected_with_their_path() {
    let text = SEED.replace(
        "        scopes:\n",
        "        scopez: [x]\n        scopes:\n",
    );
    let msg = rejection(&text, &seed_env());
    assert!(
        msg.contains("spec.configs[0].oauth2.oidcAuthorizationCode"),
        "{msg}"
    );
    assert!(msg.contains("unknown field `scopez`"), "{msg}");
}

#[test]
fn invalid_values_are_rejected_with_what_was_expected() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "app url without host",
            "appUrl: \"http://${INGRESS_GW_ADDRESS}:80\"",
            "appUrl: \"http://:80\"",
            "appUrl",
        ),
        (
            "app url not http",
            "appUrl: \"http://${INGRESS_GW_ADDRESS}:80\"",
            "appUrl: \"ftp://gw\"",
            "http or https",
        ),
        (
            "callback not a path",
            "callbackPath: /openai",
            "callbackPath: openai",
            "callbackPath: expected a path",
        ),
        (
            "bad redis port",
            "host: ext-cache-enterprise-agentgateway:6379",
            "host: redis:http",
            "options.host: expected `host:port`",
        ),
        (
            "bad cookie name",
            "cookieName: keycloak-session",
            "cookieName: \"a b\"",
            "cookieName: expected a cookie name",
        ),
        (
            "bad header",
            "idTokenHeader: jwt",
            "idTokenHeader: \"j w t\"",
            "idTokenHeader: expected an HTTP header name",
        ),
        (
            "reserved header",
            "idTokenHeader: jwt",
            "idTokenHeader: cookie",
            "cannot carry a token",
        ),
        (
            "scope with space",
            "- email",
            "- \"email profile\"",
            "scopes[0]",
        ),
        (
            "wrong api version",
            "apiVersion: extauth.solo.io/v1\n",
            "apiVersion: extauth.solo.io/v2\n",
            "apiVersion: expected `extauth.solo.io/v1`",
        ),
        (
            "missing client id",
            "        clientId: ${KEYCLOAK_CLIENT}\n",
            "",
            "missing field `clientId`",
        ),
    ];
    for (label, from, to, expected) in cases {
        assert!(SEED.contains(from), "{label}: fixture lacks {from:?}");
        let msg = rejection(&SEED.replace(from, to), &seed_env());
        assert!(msg.contains(expected), "{label}: {msg}");
    }
}

#[test]
fn secret_of_the_wrong_type_is_rejected() {
    let text = SEED.replace("type: extauth.solo.io/oauth", "type: Opaque");
    let msg = rejection(&text, &seed_env());
    assert!(
        msg.contains("expected `extauth.solo.io/oauth`, got `Opaque`"),
        "{msg}"
    );
}

#[test]
fn secret_data_is_base64_decoded() {
    let text = SEED.replace(
        "stringData:\n  client-secret: ${KEYCLOAK_SECRET}",
        "data:\n  client-secret: czNjcjN0",
    );
    let c = load(&text, &seed_env()).unwrap();
    assert_eq!(c.client_secret.as_ref().unwrap().expose(), "s3cr3t");
}

#[test]
fn other_kinds_are_skipped_not_rejected() {
    let text = format!(
        "{SEED}---\napiVersion: enterpriseagentgateway.solo.io/v1alpha1\nkind: EnterpriseAgentgatewayPolicy\nmetadata:\n  name: p\nspec: {{}}\n"
    );
    let report = validate_sources(&[("seed.yaml".into(), text)], &seed_env()).unwrap();
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].kind, "EnterpriseAgentgatewayPolicy");
}

#[test]
fn files_without_an_auth_config_are_an_error() {
    let text = SEED.split("---").next().unwrap();
    let err = validate_sources(&[("s.yaml".into(), text.into())], &seed_env()).unwrap_err();
    assert!(matches!(err, ConfigError::NoAuthConfig { .. }), "{err}");
}

#[test]
fn duplicate_auth_configs_are_rejected() {
    let second = SEED.split("---").nth(1).unwrap();
    let text = format!("{SEED}---{second}");
    let report = validate_sources(&[("s.yaml".into(), text)], &seed_env()).unwrap();
    assert!(report.verdicts[0].result.is_ok());
    assert!(matches!(
        report.verdicts[1].result,
        Err(ConfigError::Duplicate { .. })
    ));
}

#[test]
fn signing_key_comes_from_env_then_secret() {
    let report = validate_sources(&[("s".into(), SEED.into())], &seed_env()).unwrap();
    assert!(report.signing_key.unwrap().is_none());

    let env = seed_env().with(SIGNING_KEY_ENV, "k".repeat(32));
    let report = validate_sources(&[("s".into(), SEED.into())], &env).unwrap();
    assert_eq!(
        report.signing_key.unwrap().unwrap().expose(),
        "k".repeat(32)
    );

    let env = seed_env().with(SIGNING_KEY_ENV, "short");
    let report = validate_sources(&[("s".into(), SEED.into())], &env).unwrap();
    assert!(matches!(
        report.signing_key,
        Err(ConfigError::SigningKey { .. })
    ));

    let text = format!(
        "{SEED}---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: extauth-signing-key\n  namespace: agentgateway-system\nstringData:\n  signing-key: {}\n",
        "s".repeat(40)
    );
    let report = validate_sources(&[("s".into(), text)], &seed_env()).unwrap();
    assert_eq!(
        report.signing_key.unwrap().unwrap().expose(),
        "s".repeat(40)
    );
}

#[test]
fn redis_hosts_parse_in_every_form() {
    let cases = [
        ("redis", ("redis", 6379)),
        ("redis:6380", ("redis", 6380)),
        ("127.0.0.1:7000", ("127.0.0.1", 7000)),
        ("[::1]:7000", ("::1", 7000)),
        ("::1", ("::1", 6379)),
    ];
    for (input, (host, port)) in cases {
        assert_eq!(
            parse_host_port(input).unwrap(),
            (host.to_owned(), port),
            "{input}"
        );
    }
    for bad in [
        "",
        "redis:",
        "redis:0",
        "redis:99999",
        ":6379",
        "a b:1",
        "redis://x:1",
    ] {
        assert!(parse_host_port(bad).is_err(), "{bad:?} should be rejected");
    }
}
