use super::*;

const MASTER: &str = include_str!("../../../scenarios/realms/master.json");

#[test]
fn the_scenario_master_realm_loads() {
    let realm = Realm::from_json_str(MASTER).unwrap();
    assert_eq!(realm.name(), "master");
    assert!(realm.enabled());
    let user = realm.user_for_login("user1").unwrap();
    assert!(user.check_password("password"));
    assert_eq!(user.email(), Some("user1@example.com"));
    let client = realm.client("agentgateway").unwrap();
    assert!(!client.is_public());
    assert!(
        client
            .secret()
            .unwrap()
            .matches("agentgateway-client-secret")
    );
    assert!(client.allows_redirect("http://127.0.0.1:8080/openai"));
    assert!(client.allows_redirect("http://localhost:3000/cb"));
    assert!(client.allows_redirect("http://[::1]:80/x"));
    assert!(!client.allows_redirect("https://127.0.0.1/x"));
}

#[test]
fn unknown_fields_are_ignored() {
    let json = r#"{"realm":"r","foo":1,"users":[{"username":"u","bar":[1,2],"enabled":true}],
        "clients":[{"clientId":"c","publicClient":true,"baz":{"x":1}}]}"#;
    let realm = Realm::from_json_str(json).unwrap();
    assert_eq!(realm.users().len(), 1);
    assert!(realm.client("c").unwrap().is_public());
}

#[test]
fn malformed_realm_json_names_the_field_path() {
    let cases = [
        (
            "username of wrong type",
            r#"{"realm":"r","users":[{"username":5}]}"#,
            "users[0].username",
        ),
        (
            "credential value of wrong type",
            r#"{"realm":"r","users":[{"username":"u","credentials":[{"type":"password","value":1}]}]}"#,
            "users[0].credentials[0].value",
        ),
        (
            "missing clientId",
            r#"{"realm":"r","clients":[{"secret":"s"}]}"#,
            "clients[0]",
        ),
        (
            "redirectUris not a list",
            r#"{"realm":"r","clients":[{"clientId":"c","secret":"s","redirectUris":"x"}]}"#,
            "clients[0].redirectUris",
        ),
    ];
    for (label, json, path) in cases {
        let err = Realm::from_json_str(json).unwrap_err();
        assert!(matches!(err, RealmError::Json { .. }), "{label}: {err}");
        assert_eq!(err.json_path(), Some(path), "{label}: {err}");
        assert!(err.to_string().contains(path), "{label}: {err}");
    }
}

#[test]
fn invalid_values_name_the_field_path() {
    let cases = [
        ("empty realm", r#"{"realm":""}"#, "realm"),
        (
            "confidential client without secret",
            r#"{"realm":"r","clients":[{"clientId":"c"}]}"#,
            "clients[0].secret",
        ),
        (
            "wildcard in the middle",
            r#"{"realm":"r","clients":[{"clientId":"c","publicClient":true,"redirectUris":["http://a/*/b"]}]}"#,
            "clients[0].redirectUris[0]",
        ),
        (
            "duplicate username (case-insensitive)",
            r#"{"realm":"r","users":[{"username":"a"},{"username":"A"}]}"#,
            "users[1].username",
        ),
        (
            "duplicate client",
            r#"{"realm":"r","clients":[{"clientId":"c","publicClient":true},{"clientId":"c","publicClient":true}]}"#,
            "clients[1].clientId",
        ),
        (
            "zero lifetime",
            r#"{"realm":"r","accessTokenLifespan":0}"#,
            "accessTokenLifespan",
        ),
    ];
    for (label, json, path) in cases {
        let err = Realm::from_json_str(json).unwrap_err();
        assert!(matches!(err, RealmError::Invalid { .. }), "{label}: {err}");
        assert_eq!(err.json_path(), Some(path), "{label}: {err}");
    }
}

#[test]
fn a_file_error_names_the_file_and_the_field_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.json");
    std::fs::write(
        &file,
        r#"{"realm":"r","users":[{"username":"u","email":false}]}"#,
    )
    .unwrap();
    let err = Realm::from_file(&file).unwrap_err();
    assert_eq!(err.json_path(), Some("users[0].email"));
    let text = err.to_string();
    assert!(
        text.contains("bad.json") && text.contains("users[0].email"),
        "{text}"
    );
}

#[test]
fn a_missing_file_is_a_read_error() {
    let err = Realm::from_file("/nonexistent/realm.json").unwrap_err();
    assert!(matches!(err, RealmError::Read { .. }), "{err}");
}

#[test]
fn redirect_uri_patterns_follow_keycloak() {
    let cases = [
        ("exact match", "http://a/cb", "http://a/cb", true),
        (
            "exact needs equality",
            "http://a/cb",
            "http://a/cb/x",
            false,
        ),
        (
            "trailing star is a prefix",
            "http://a/*",
            "http://a/cb?x=1",
            true,
        ),
        ("prefix must match", "http://a/*", "http://b/cb", false),
        ("star alone allows all", "*", "https://anything", true),
    ];
    for (label, pattern, uri, want) in cases {
        let p = RedirectUriPattern::parse(pattern).unwrap();
        assert_eq!(p.matches(uri), want, "{label}");
    }
}

#[test]
fn login_matches_username_or_email_case_insensitively() {
    let realm = Realm::from_json_str(MASTER).unwrap();
    for login in ["user1", "USER1", " user1 ", "User1@Example.com"] {
        assert_eq!(
            realm.user_for_login(login).map(User::username),
            Some("user1"),
            "{login}"
        );
    }
    assert!(realm.user_for_login("nobody").is_none());
}

#[test]
fn users_are_disabled_unless_enabled_like_keycloak_import() {
    let json = r#"{"realm":"r","users":[{"username":"u","credentials":[{"type":"password","value":"p"}]}]}"#;
    let realm = Realm::from_json_str(json).unwrap();
    let user = realm.user_for_login("u").unwrap();
    assert!(!user.enabled());
    assert!(!user.check_password("p"));
}

#[test]
fn a_user_without_id_gets_a_stable_derived_sub() {
    let json = r#"{"realm":"r","users":[{"username":"u","enabled":true}]}"#;
    let a = Realm::from_json_str(json).unwrap();
    let b = Realm::from_json_str(json).unwrap();
    assert_eq!(a.users()[0].id(), b.users()[0].id());
    assert_eq!(a.users()[0].id().len(), 36);
}

#[test]
fn lifetimes_default_to_keycloak_and_can_be_set() {
    let realm = Realm::from_json_str(r#"{"realm":"r"}"#).unwrap();
    assert_eq!(realm.lifetimes(), Lifetimes::default());
    let realm = Realm::from_json_str(r#"{"realm":"r","accessTokenLifespan":60}"#).unwrap();
    assert_eq!(realm.lifetimes().access_token, 60);
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let realm = Realm::from_json_str(MASTER).unwrap();
    let shown = format!("{realm:?}");
    assert!(!shown.contains("agentgateway-client-secret"), "{shown}");
    assert!(!shown.contains("\"password\""), "{shown}");
}

#[test]
fn user_attributes_become_claims_one_value_a_string_several_an_array() {
    let json = r#"{"realm":"r","users":[{"username":"u","enabled":true,
        "attributes":{"department":["research"],"groups":["a","b"],"empty":[]}}]}"#;
    let realm = Realm::from_json_str(json).unwrap();
    let attributes = realm.users()[0].attributes();
    assert_eq!(attributes["department"], serde_json::json!("research"));
    assert_eq!(attributes["groups"], serde_json::json!(["a", "b"]));
    assert!(!attributes.contains_key("empty"));
}

#[test]
fn a_user_attribute_may_not_replace_a_standard_claim() {
    let json =
        r#"{"realm":"r","users":[{"username":"u","enabled":true,"attributes":{"sub":["x"]}}]}"#;
    let err = Realm::from_json_str(json).unwrap_err().to_string();
    assert!(err.contains("users[0].attributes.sub"), "{err}");
}

const RSA_CERT: &str = include_str!("../../tests/fixtures/client-jwt/rsa-certificate.b64");
const EC_CERT: &str = include_str!("../../tests/fixtures/client-jwt/ec-certificate.b64");
const EC_PUBLIC: &str = include_str!("../../tests/fixtures/client-jwt/ec-public-key.b64");

/// A realm with one client built from `client` (clientId `c` unless given).
fn realm_with_client(client: serde_json::Value) -> Result<Realm, RealmError> {
    let mut client = client;
    if client.get("clientId").is_none() {
        client["clientId"] = serde_json::json!("c");
    }
    Realm::from_json_str(&serde_json::json!({"realm": "r", "clients": [client]}).to_string())
}

fn jwt_client(attributes: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"clientAuthenticatorType": "client-jwt", "attributes": attributes})
}

fn credential(realm: &Realm) -> &JwtCredential {
    match realm.client("c").unwrap().authenticator() {
        Authenticator::Jwt(c) => c,
        Authenticator::Secret => panic!("not client-jwt"),
    }
}

#[test]
fn a_client_jwt_client_reads_its_key_from_each_keycloak_attribute() {
    let jwks = serde_json::json!({"keys": [
        {"kty": "RSA", "use": "enc", "kid": "enc", "n": "AQAB", "e": "AQAB"},
        {"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
         "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
         "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        {"kty": "oct", "k": "c2VjcmV0"}
    ]});
    let cases = [
        (
            "certificate (RSA)",
            serde_json::json!({"jwt.credential.certificate": RSA_CERT}),
            "Certificate",
            KeyFamily::Rsa,
        ),
        (
            "certificate (EC)",
            serde_json::json!({"jwt.credential.certificate": EC_CERT}),
            "Certificate",
            KeyFamily::P256,
        ),
        (
            "PEM certificate",
            serde_json::json!({"jwt.credential.certificate":
                format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", RSA_CERT.trim())}),
            "Certificate",
            KeyFamily::Rsa,
        ),
        (
            "public key",
            serde_json::json!({"jwt.credential.public.key": EC_PUBLIC}),
            "PublicKey",
            KeyFamily::P256,
        ),
        (
            "JWKS string: signature keys only",
            serde_json::json!({"use.jwks.string": "true", "jwks.string": jwks.to_string()}),
            "JwksString",
            KeyFamily::P256,
        ),
    ];
    for (label, attributes, source, family) in cases {
        let realm = realm_with_client(jwt_client(attributes)).unwrap();
        let keys = credential(&realm).keys();
        let key = match keys {
            KeySource::Certificate(k) | KeySource::PublicKey(k) => k,
            KeySource::JwksString(list) => {
                assert_eq!(list.len(), 1, "{label}: the enc and oct keys are left out");
                assert_eq!(list[0].kid(), Some("k1"));
                assert_eq!(list[0].alg(), Some(jsonwebtoken::Algorithm::ES256));
                &list[0]
            }
            KeySource::JwksUrl(_) => panic!("{label}"),
        };
        assert!(format!("{keys:?}").starts_with(source), "{label}: {keys:?}");
        assert_eq!(key.family(), family, "{label}");
    }
    let realm = realm_with_client(jwt_client(serde_json::json!({
        "use.jwks.url": "true", "jwks.url": "http://127.0.0.1:9/jwks",
        // The URL wins over a certificate, as in Keycloak.
        "jwt.credential.certificate": RSA_CERT,
        "token.endpoint.auth.signing.alg": "PS256",
        "token.endpoint.auth.signing.max.exp": "30",
    })))
    .unwrap();
    let cred = credential(&realm);
    assert!(
        matches!(cred.keys(), KeySource::JwksUrl(u) if u.as_str() == "http://127.0.0.1:9/jwks")
    );
    assert_eq!(cred.signing_alg(), Some(jsonwebtoken::Algorithm::PS256));
    assert_eq!(cred.max_exp(), 30);
    let realm = realm_with_client(jwt_client(
        serde_json::json!({"jwt.credential.certificate": RSA_CERT}),
    ))
    .unwrap();
    assert_eq!(credential(&realm).max_exp(), DEFAULT_MAX_EXP);
    assert_eq!(credential(&realm).signing_alg(), None);
    assert!(
        realm.client("c").unwrap().secret().is_none(),
        "no secret needed"
    );
}

#[test]
fn client_authentication_settings_that_cannot_work_are_rejected_with_their_path() {
    let cases = [
        (
            "unsupported authenticator",
            serde_json::json!({"clientAuthenticatorType": "client-x509"}),
            "clients[0].clientAuthenticatorType",
        ),
        (
            "client-jwt without keys",
            jwt_client(serde_json::json!({})),
            "clients[0].attributes",
        ),
        (
            "certificate that is not base64",
            jwt_client(serde_json::json!({"jwt.credential.certificate": "%%%"})),
            "clients[0].attributes.jwt.credential.certificate",
        ),
        (
            "certificate that is not a certificate",
            jwt_client(serde_json::json!({"jwt.credential.certificate": EC_PUBLIC})),
            "clients[0].attributes.jwt.credential.certificate",
        ),
        (
            "certificate and public key",
            jwt_client(serde_json::json!({"jwt.credential.certificate": RSA_CERT,
                                          "jwt.credential.public.key": EC_PUBLIC})),
            "clients[0].attributes.jwt.credential.public.key",
        ),
        (
            "use.jwks.url without jwks.url",
            jwt_client(serde_json::json!({"use.jwks.url": "true"})),
            "clients[0].attributes.jwks.url",
        ),
        (
            "relative jwks.url",
            jwt_client(serde_json::json!({"use.jwks.url": "true", "jwks.url": "/jwks"})),
            "clients[0].attributes.jwks.url",
        ),
        (
            "jwks.string not JSON",
            jwt_client(serde_json::json!({"use.jwks.string": "true", "jwks.string": "{"})),
            "clients[0].attributes.jwks.string",
        ),
        (
            "flag that is not a boolean",
            jwt_client(serde_json::json!({"use.jwks.string": "yes"})),
            "clients[0].attributes.use.jwks.string",
        ),
        (
            "symmetric signing algorithm",
            jwt_client(serde_json::json!({"jwt.credential.certificate": RSA_CERT,
                                          "token.endpoint.auth.signing.alg": "HS256"})),
            "clients[0].attributes.token.endpoint.auth.signing.alg",
        ),
        (
            "zero max.exp",
            jwt_client(serde_json::json!({"jwt.credential.certificate": RSA_CERT,
                                          "token.endpoint.auth.signing.max.exp": "0"})),
            "clients[0].attributes.token.endpoint.auth.signing.max.exp",
        ),
        (
            "relative back-channel URL",
            serde_json::json!({"publicClient": true, "attributes": {"backchannel.logout.url": "logout"}}),
            "clients[0].attributes.backchannel.logout.url",
        ),
        (
            "front-channel URL that is not http",
            serde_json::json!({"publicClient": true, "frontchannelLogout": true,
                               "attributes": {"frontchannel.logout.url": "javascript:alert(1)"}}),
            "clients[0].attributes.frontchannel.logout.url",
        ),
    ];
    for (label, client, path) in cases {
        let err = realm_with_client(client).unwrap_err();
        assert!(matches!(err, RealmError::Invalid { .. }), "{label}: {err}");
        assert_eq!(err.json_path(), Some(path), "{label}: {err}");
    }
}

#[test]
fn a_public_client_ignores_its_authenticator_type_as_keycloak_does() {
    let realm = realm_with_client(serde_json::json!({
        "publicClient": true, "clientAuthenticatorType": "client-jwt"
    }))
    .unwrap();
    assert!(matches!(
        realm.client("c").unwrap().authenticator(),
        Authenticator::Secret
    ));
}

#[test]
fn logout_settings_follow_keycloak_defaults() {
    let realm = realm_with_client(serde_json::json!({
        "publicClient": true, "name": "My App", "frontchannelLogout": true,
        "attributes": {
            "frontchannel.logout.url": "http://app/fc?x=1",
            "backchannel.logout.url": "http://app/bc",
        }
    }))
    .unwrap();
    let c = realm.client("c").unwrap();
    assert_eq!(c.display_name(), "My App");
    let fc = c.frontchannel_logout().unwrap();
    assert!(
        fc.session_required(),
        "frontchannel.logout.session.required defaults to true"
    );
    assert_eq!(
        fc.url_for("s1", "http://idp/realms/r"),
        "http://app/fc?x=1&sid=s1&iss=http%3A%2F%2Fidp%2Frealms%2Fr"
    );
    let bc = c.backchannel_logout().unwrap();
    assert_eq!(bc.url().as_str(), "http://app/bc");
    assert!(
        !bc.session_required(),
        "absent with a URL: false, as Keycloak's import reads it"
    );
    assert!(!bc.revoke_offline_tokens());

    let realm = realm_with_client(serde_json::json!({
        "publicClient": true, "frontchannelLogout": true, "baseUrl": "http://app/",
        "attributes": {
            "frontchannel.logout.session.required": "false",
            "backchannel.logout.url": "http://app/bc",
            "backchannel.logout.session.required": "true",
            "backchannel.logout.revoke.offline.tokens": "true",
        }
    }))
    .unwrap();
    let c = realm.client("c").unwrap();
    assert_eq!(c.display_name(), "c");
    assert_eq!(
        c.frontchannel_logout().unwrap().url_for("s", "i"),
        "http://app/",
        "baseUrl, no sid"
    );
    assert!(c.backchannel_logout().unwrap().session_required());
    assert!(c.backchannel_logout().unwrap().revoke_offline_tokens());

    let cases = [
        (
            "flag off",
            serde_json::json!({"publicClient": true, "attributes": {"frontchannel.logout.url": "http://app/fc"}}),
        ),
        (
            "flag on, no URL (Keycloak's console default)",
            serde_json::json!({"publicClient": true, "frontchannelLogout": true}),
        ),
    ];
    for (label, client) in cases {
        let realm = realm_with_client(client).unwrap();
        assert!(
            realm.client("c").unwrap().frontchannel_logout().is_none(),
            "{label}"
        );
        assert!(
            realm.client("c").unwrap().backchannel_logout().is_none(),
            "{label}"
        );
    }
}
