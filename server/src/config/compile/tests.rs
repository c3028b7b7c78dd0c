use super::*;
use crate::config::{
    ConfigError, HostPort, RedisAddress, RedisAuth, RedisTopology, validate_sources,
};
use crate::env::MapEnv;

pub(super) const SEED: &str = include_str!("../../../tests/fixtures/seed-step2.yaml");

pub(super) fn seed_env() -> MapEnv {
    MapEnv::default()
        .with("KEYCLOAK_SECRET", "s3cr3t")
        .with("KEYCLOAK_CLIENT", "a3417aca-4214-4296-8664-482f159b2fac")
        .with("KEYCLOAK_URL", "http://172.18.0.16:8080")
        .with("INGRESS_GW_ADDRESS", "172.18.0.4")
}

pub(super) fn load(text: &str, env: &MapEnv) -> Result<Arc<OidcConfig>, ConfigError> {
    let report = validate_sources(&[("seed.yaml".to_owned(), text.to_owned())], env)?;
    report.into_loaded().map(|l| l.auth_configs[0].clone())
}

pub(super) fn rejection(text: &str, env: &MapEnv) -> String {
    load(text, env).expect_err("expected REJECTED").to_string()
}

#[test]
fn seed_manifests_are_accepted_with_the_guides_values() {
    let c = load(SEED, &seed_env()).unwrap();
    assert_eq!(c.id, "agentgateway-system/oauth-authorization-code");
    assert_eq!(c.redirect_uri, "http://172.18.0.4:80/openai");
    assert_eq!(c.callback_path, "/openai");
    assert_eq!(c.client_id, "a3417aca-4214-4296-8664-482f159b2fac");
    assert_eq!(c.client_secret().unwrap().expose(), "s3cr3t");
    assert_eq!(c.issuer_url, "http://172.18.0.16:8080/realms/master/");
    assert_eq!(c.scope, "email openid");
    assert!(c.session.fail_on_fetch_failure);
    assert_eq!(c.session.cookie.name, "keycloak-session");
    let redis = c.session.store.redis().expect("Redis sessions");
    assert_eq!(
        redis.topology,
        RedisTopology::Standalone(RedisAddress::Tcp(HostPort {
            host: "ext-cache-enterprise-agentgateway".into(),
            port: 6379,
        }))
    );
    assert_eq!((redis.db, redis.pool_size), (0, DEFAULT_POOL_SIZE));
    assert_eq!(redis.key_prefix, "");
    assert_eq!(c.id_token_header.as_ref().unwrap().as_str(), "jwt");
}

#[test]
fn defaults_follow_solos_api() {
    let c = load(SEED, &seed_env()).unwrap();
    assert_eq!(c.session.cookie.max_age, Some(DEFAULT_COOKIE_MAX_AGE));
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
    assert_eq!(c.client_secret().unwrap().expose(), "s3cr3t");
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

/// The seed with `extra` lines inserted under `oidcAuthorizationCode` (8-space indent).
fn seed_with(extra: &str) -> String {
    SEED.replace("        headers:\n", &format!("{extra}        headers:\n"))
}

/// The seed with `session` replaced by `session` (10-space indented lines).
fn seed_with_session(session: &str) -> String {
    let start = SEED.find("        session:\n").unwrap();
    let end = SEED.find("        headers:\n").unwrap();
    format!(
        "{}        session:\n{session}{}",
        &SEED[..start],
        &SEED[end..]
    )
}

#[test]
fn every_issue_3_field_has_solos_default() {
    let c = load(SEED, &seed_env()).unwrap();
    assert_eq!(c.session.cookie.max_age, Some(DEFAULT_COOKIE_MAX_AGE));
    assert_eq!(c.session.cookie.domain, None);
    assert_eq!(c.session.cookie.same_site, None);
    assert!(c.session.allow_refreshing);
    assert_eq!(c.session.pre_expiry_buffer, DEFAULT_PRE_EXPIRY_BUFFER);
    assert_eq!(c.session.header_name, None);
    assert_eq!(c.session.target_domain, None);
    assert_eq!(c.session.store.key_prefix(), "");
    let redis = c.session.store.redis().expect("Redis sessions");
    assert_eq!(redis.command_timeout, Duration::from_secs(1));
    assert_eq!(redis.durable, None);
    assert_eq!(redis.tls, None);
    assert_eq!(redis.auth, RedisAuth::default());
    assert_eq!(c.access_token_header, None);
    assert!(!c.use_bearer_schema);
    assert!(c.id_token_claims.is_empty() && c.access_token_claims.is_empty());
    assert_eq!(c.logout_path, None);
    assert_eq!(c.after_logout_url, "http://172.18.0.4:80/");
    assert_eq!(c.end_session_method, EndSessionMethod::Get);
    assert!(c.discovery_override.is_empty());
    assert_eq!(c.discovery_poll_interval, DEFAULT_DISCOVERY_POLL_INTERVAL);
    assert_eq!(c.jwks_refresh, JwksRefreshPolicy::MaxPerInterval(1));
    assert!(c.auth_endpoint_query_params.is_empty());
    assert!(c.token_endpoint_query_params.is_empty());
    assert!(c.callback_regex.is_none());
    assert!(!c.fail_on_redirect);
    assert!(c.unauthorized_for_non_browser);
    assert!(!c.strict_login_binding);
    assert_eq!(c.max_pending_logins, DEFAULT_MAX_PENDING_LOGINS);
}

#[test]
fn every_issue_3_field_is_read() {
    let text = seed_with(
        "        logoutPath: /logout
        afterLogoutUrl: https://example.com/bye
        endSessionProperties: {methodType: PostMethod}
        discoveryOverride:
          authEndpoint: https://idp.example/auth
          endSessionEndpoint: https://idp.example/logout
          idTokenAlgs: [RS256]
        discoveryPollInterval: 60s
        jwksCacheRefreshPolicy: {maxIdpReqPerPollingInterval: 3}
        authEndpointQueryParams: {prompt: login}
        tokenEndpointQueryParams: {audience: api}
        parseCallbackPathAsRegex: true
        sessionIdHeaderName: x-session-id
        unauthorizedForNonBrowser: false
        strictLoginBinding: true
        maxPendingLogins: 2
        identityToken:
          claimsToHeaders: [{claim: email, header: x-email, append: true}]
        accessToken:
          claimsToHeaders: [{claim: scope, header: x-scope}]
",
    )
    .replace("spec:\n  configs:", "spec:\n  failOnRedirect: true\n  configs:")
    .replace(
        "          idTokenHeader: jwt\n",
        "          idTokenHeader: jwt\n          accessTokenHeader: authorization\n          useBearerSchemaForAuthorization: true\n",
    )
    .replace(
        "          failOnFetchFailure: true\n",
        "          failOnFetchFailure: true
          cookieOptions: {maxAge: 0, notSecure: true, httpOnly: false, path: /app, domain: example.com, sameSite: StrictMode}
",
    )
    .replace(
        "            cookieName: keycloak-session\n",
        "            cookieName: keycloak-session
            keyPrefix: 'sess:'
            allowRefreshing: false
            preExpiryBuffer: 10s
            headerName: x-session
            targetDomain: example.com
",
    )
    .replace(
        "              host: ext-cache-enterprise-agentgateway:6379\n",
        "              host: ext-cache-enterprise-agentgateway:6379\n              db: 3\n              poolSize: 20\n",
    );
    let c = load(&text, &seed_env()).unwrap();
    let cookie = &c.session.cookie;
    assert_eq!(cookie.max_age, None, "0 = a browser-session cookie");
    assert!(!cookie.secure && !cookie.http_only);
    assert_eq!(cookie.path, "/app");
    assert_eq!(cookie.domain.as_deref(), Some("example.com"));
    assert_eq!(cookie.same_site, Some(SameSite::Strict));
    let redis = c.session.store.redis().expect("Redis sessions");
    assert_eq!((redis.db, redis.pool_size), (3, 20));
    assert_eq!(redis.key_prefix, "sess:");
    assert!(!c.session.allow_refreshing);
    assert_eq!(c.session.pre_expiry_buffer, Duration::from_secs(10));
    assert_eq!(
        c.session.header_name.as_ref().unwrap().as_str(),
        "x-session"
    );
    assert_eq!(c.session.target_domain.as_deref(), Some("example.com"));
    assert_eq!(
        c.access_token_header.as_ref().unwrap().as_str(),
        "authorization"
    );
    assert!(c.use_bearer_schema);
    assert_eq!(c.id_token_claims[0].claim, "email");
    assert!(c.id_token_claims[0].append);
    assert_eq!(c.access_token_claims[0].header.as_str(), "x-scope");
    assert_eq!(
        c.session_id_header.as_ref().unwrap().as_str(),
        "x-session-id"
    );
    assert_eq!(c.logout_path.as_deref(), Some("/logout"));
    assert_eq!(c.after_logout_url, "https://example.com/bye");
    assert_eq!(c.end_session_method, EndSessionMethod::Post);
    assert_eq!(
        c.discovery_override["authorization_endpoint"],
        "https://idp.example/auth"
    );
    assert_eq!(
        c.discovery_override["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    assert_eq!(c.discovery_poll_interval, Duration::from_secs(60));
    assert_eq!(c.jwks_refresh, JwksRefreshPolicy::MaxPerInterval(3));
    assert_eq!(c.auth_endpoint_query_params["prompt"], "login");
    assert_eq!(c.token_endpoint_query_params["audience"], "api");
    assert!(c.callback_regex.as_ref().unwrap().is_match("/openai"));
    assert!(!c.callback_regex.as_ref().unwrap().is_match("/openai/x"));
    assert!(c.fail_on_redirect);
    assert!(!c.unauthorized_for_non_browser);
    assert!(c.strict_login_binding);
    assert_eq!(c.max_pending_logins, 2);
}

#[test]
fn issue_3_fields_are_rejected_with_their_path() {
    let p = "spec.configs[0].oauth2.oidcAuthorizationCode";
    let session = |extra: &str| {
        seed_with_session(&format!(
            "{extra}          redis:\n            options:\n              host: r:6379\n"
        ))
    };
    let cases: Vec<(&str, String, String, &str)> = vec![
        (
            "negative maxAge",
            session("          cookieOptions: {maxAge: -1}\n"),
            format!("{p}.session.cookieOptions.maxAge"),
            "expected seconds >= 0",
        ),
        (
            "sameSite",
            session("          cookieOptions: {sameSite: Loose}\n"),
            format!("{p}.session.cookieOptions.sameSite"),
            "LaxMode",
        ),
        (
            "None without Secure",
            session("          cookieOptions: {sameSite: NoneMode, notSecure: true}\n"),
            format!("{p}.session.cookieOptions.sameSite"),
            "Secure",
        ),
        (
            "path",
            session("          cookieOptions: {path: app}\n"),
            format!("{p}.session.cookieOptions.path"),
            "starting with `/`",
        ),
        (
            "domain",
            session("          cookieOptions: {domain: 'a b'}\n"),
            format!("{p}.session.cookieOptions.domain"),
            "host name",
        ),
        (
            "unknown cookie option",
            session("          cookieOptions: {maxage: 1}\n"),
            format!("{p}.session.cookieOptions"),
            "unknown field `maxage`",
        ),
        (
            "preExpiryBuffer",
            SEED.replace(
                "            cookieName: keycloak-session\n",
                "            preExpiryBuffer: soon\n",
            ),
            format!("{p}.session.redis.preExpiryBuffer"),
            "duration",
        ),
        (
            "db",
            SEED.replace(
                "              host: ext-cache-enterprise-agentgateway:6379\n",
                "              host: r\n              db: -2\n",
            ),
            format!("{p}.session.redis.options.db"),
            "database number",
        ),
        (
            "poolSize",
            SEED.replace(
                "              host: ext-cache-enterprise-agentgateway:6379\n",
                "              host: r\n              poolSize: 0\n",
            ),
            format!("{p}.session.redis.options.poolSize"),
            "1 to 10000",
        ),
        (
            "headerName",
            SEED.replace(
                "            cookieName: keycloak-session\n",
                "            headerName: 'bad header'\n",
            ),
            format!("{p}.session.redis.headerName"),
            "header name",
        ),
        (
            "cipher with redis",
            session("          cipherConfig: {keyRef: {name: k}}\n"),
            format!("{p}.session.cipherConfig"),
            "only used by cookie sessions",
        ),
        (
            "cipher secret missing",
            seed_with_session("          cipherConfig: {keyRef: {name: nokey}}\n"),
            format!("{p}.session.cipherConfig.keyRef"),
            "was not found",
        ),
        (
            "accessTokenHeader",
            SEED.replace(
                "          idTokenHeader: jwt\n",
                "          accessTokenHeader: host\n",
            ),
            format!("{p}.headers.accessTokenHeader"),
            "cannot carry a token",
        ),
        (
            "claim header",
            seed_with("        identityToken: {claimsToHeaders: [{claim: sub, header: 'a b'}]}\n"),
            format!("{p}.identityToken.claimsToHeaders[0].header"),
            "header name",
        ),
        (
            "claim name",
            seed_with("        accessToken: {claimsToHeaders: [{claim: '', header: x}]}\n"),
            format!("{p}.accessToken.claimsToHeaders[0].claim"),
            "claim name",
        ),
        (
            "logoutPath",
            seed_with("        logoutPath: logout\n"),
            format!("{p}.logoutPath"),
            "starting with `/`",
        ),
        (
            "logoutPath = callback",
            seed_with("        logoutPath: /openai\n"),
            format!("{p}.logoutPath"),
            "different from callbackPath",
        ),
        (
            "afterLogoutUrl",
            seed_with("        afterLogoutUrl: /bye\n"),
            format!("{p}.afterLogoutUrl"),
            "absolute http(s) URL",
        ),
        (
            "methodType",
            seed_with("        endSessionProperties: {methodType: PUT}\n"),
            format!("{p}.endSessionProperties.methodType"),
            "PostMethod",
        ),
        (
            "override URL",
            seed_with("        discoveryOverride: {tokenEndpoint: 'ftp://x'}\n"),
            format!("{p}.discoveryOverride.tokenEndpoint"),
            "http or https",
        ),
        (
            "override unknown",
            seed_with("        discoveryOverride: {tokenUrl: 'http://x'}\n"),
            format!("{p}.discoveryOverride"),
            "unknown field",
        ),
        (
            "poll interval",
            seed_with("        discoveryPollInterval: 0s\n"),
            format!("{p}.discoveryPollInterval"),
            "at least",
        ),
        (
            "jwks two policies",
            seed_with("        jwksCacheRefreshPolicy: {never: {}, always: {}}\n"),
            format!("{p}.jwksCacheRefreshPolicy"),
            "exactly one",
        ),
        (
            "jwks zero",
            seed_with("        jwksCacheRefreshPolicy: {maxIdpReqPerPollingInterval: 0}\n"),
            format!("{p}.jwksCacheRefreshPolicy.maxIdpReqPerPollingInterval"),
            "1 to 1000",
        ),
        (
            "reserved auth param",
            seed_with("        authEndpointQueryParams: {state: x}\n"),
            format!("{p}.authEndpointQueryParams.state"),
            "does not set itself",
        ),
        (
            "reserved token param",
            seed_with("        tokenEndpointQueryParams: {code_verifier: x}\n"),
            format!("{p}.tokenEndpointQueryParams.code_verifier"),
            "does not set itself",
        ),
        (
            "regex",
            seed_with("        parseCallbackPathAsRegex: true\n")
                .replace("callbackPath: /openai", "callbackPath: /cb/(x"),
            format!("{p}.callbackPath"),
            "regular expression",
        ),
        (
            "sessionIdHeaderName",
            seed_with("        sessionIdHeaderName: cookie\n"),
            format!("{p}.sessionIdHeaderName"),
            "cannot carry a token",
        ),
        (
            "maxPendingLogins",
            seed_with("        maxPendingLogins: 0\n"),
            format!("{p}.maxPendingLogins"),
            "1 to 50",
        ),
        (
            "failOnRedirect type",
            SEED.replace(
                "spec:\n  configs:",
                "spec:\n  failOnRedirect: maybe\n  configs:",
            ),
            "spec.failOnRedirect".into(),
            "boolean",
        ),
    ];
    for (label, text, path, expected) in cases {
        let msg = rejection(&text, &seed_env());
        assert!(msg.contains(&path), "{label}: path {path} not in: {msg}");
        assert!(
            msg.contains(expected),
            "{label}: {expected:?} not in: {msg}"
        );
    }
}

#[test]
fn session_without_redis_is_a_cookie_session_with_an_optional_cipher_key() {
    let text = seed_with_session("          cookieOptions: {maxAge: 3600}\n");
    let c = load(&text, &seed_env()).unwrap();
    assert_eq!(
        c.session.store,
        StoreConfig::Cookie {
            cipher_key: None,
            key_prefix: String::new()
        }
    );
    assert_eq!(c.session.cookie.name, DEFAULT_COOKIE_NAME);
    let with_key = format!(
        "{}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: cookie-key, namespace: agentgateway-system}}\nstringData: {{key: {}}}\n",
        seed_with_session(
            "          cookie: {keyPrefix: app}\n          cipherConfig: {keyRef: {name: cookie-key}}\n"
        ),
        "k".repeat(32)
    );
    let c = load(&with_key, &seed_env()).unwrap();
    assert_eq!(c.session.cookie.name, "app__session");
    assert!(matches!(
        &c.session.store,
        StoreConfig::Cookie { cipher_key: Some(k), .. } if k.expose().len() == 32
    ));
    let short = with_key.replace(&"k".repeat(32), "short");
    assert!(rejection(&short, &seed_env()).contains("expected a 32-byte AES-256 key"));
}

#[test]
fn durations_parse_like_protobuf_json() {
    for (text, secs) in [
        ("2s", 2.0),
        ("1800s", 1800.0),
        ("0.5s", 0.5),
        ("500ms", 0.5),
        ("30m", 1800.0),
        ("1h", 3600.0),
    ] {
        assert_eq!(
            parse_duration(text).unwrap(),
            Duration::from_secs_f64(secs),
            "{text}"
        );
    }
    for bad in ["", "s", "2", "-1s", "1e3s", "abc", "2 s"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}

#[test]
fn extauth_validate_accepts_the_every_field_fixture() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/every-field.yaml"
    );
    let mut out = Vec::new();
    let env = MapEnv::default().with("SIGNING_KEY", "k".repeat(32));
    let code = crate::cli::validate(&[std::path::PathBuf::from(path)], &env, &mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("AuthConfig agentgateway-system/every-field: ACCEPTED"),
        "{text}"
    );
    assert_eq!(code, std::process::ExitCode::SUCCESS);
}

mod sections;
