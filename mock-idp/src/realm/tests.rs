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
