use super::*;

fn config() -> AgentgatewayConfig {
    AgentgatewayConfig {
        port: 18080,
        extauth_grpc: SocketAddr::from(([127, 0, 0, 1], 9001)),
        upstream: "127.0.0.1:9002".to_owned(),
        admin: SocketAddr::from(([127, 0, 0, 1], 9003)),
        stats: SocketAddr::from(([127, 0, 0, 1], 9004)),
        readiness: SocketAddr::from(([127, 0, 0, 1], 9005)),
    }
}

#[test]
fn the_config_routes_through_ext_authz_with_every_port_of_its_own_on_loopback() {
    let text = config().yaml();
    let doc: serde_json::Value = yaml_serde::from_str(&text).expect("YAML");
    assert_eq!(doc["config"]["adminAddr"], "127.0.0.1:9003");
    assert_eq!(doc["config"]["statsAddr"], "127.0.0.1:9004");
    assert_eq!(doc["config"]["readinessAddr"], "127.0.0.1:9005");
    let bind = &doc["binds"][0];
    assert_eq!(bind["port"], 18080);
    let route = &bind["listeners"][0]["routes"][0];
    assert_eq!(route["policies"]["extAuthz"]["host"], "127.0.0.1:9001");
    assert_eq!(
        route["policies"]["extAuthz"]["policies"]["http"]["requestTimeout"],
        CHECK_TIMEOUT
    );
    assert_eq!(route["backends"][0]["host"], "127.0.0.1:9002");
}

#[test]
fn an_explicit_binary_must_exist_and_the_fallback_names_where_it_looked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("agentgateway");
    let err = binary(Some(&missing)).expect_err("no such file");
    assert!(err.contains("--agentgateway"), "{err}");
    std::fs::write(&missing, "").expect("file");
    assert_eq!(binary(Some(&missing)), Ok(missing));
    assert!(shared_binary().ends_with("shared/bin/agentgateway"));
    assert!(!shared_binary().to_string_lossy().contains(".."));
}

#[test]
fn the_agentgateway_binary_accepts_the_generated_config() {
    let binary = binary(None).unwrap_or_else(|why| panic!("{why}"));
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("agentgateway.yaml");
    std::fs::write(&file, config().yaml()).expect("written");
    let out = Command::new(binary)
        .arg("-f")
        .arg(&file)
        .arg("--validate-only")
        .output()
        .expect("agentgateway runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_access_log_gives_each_request_and_the_metadata_ext_authz_sent() {
    let text = r#"{"level":"info","scope":"agentgateway::proxy::gateway","message":"started bind"}
{"level":"info","scope":"request","http.method":"POST","http.path":"/openai","http.status":302,"reason":"DirectResponse"}
not JSON at all
{"level":"info","scope":"request","http.method":"POST","http.path":"/openai","http.status":200,"extauthz":{"user":"user1","email":"user1@example.com"}}
{"level":"info","scope":"request","http.status":200,"extauthz":null}
"#;
    let log = AccessLog::parse(text);
    assert_eq!(log.requests, 3, "request lines only");
    assert_eq!(
        log.dynamic_metadata,
        vec![serde_json::json!({"user": "user1", "email": "user1@example.com"})]
    );
    assert_eq!(AccessLog::parse(""), AccessLog::default());
}

#[test]
fn the_config_logs_requests_as_json_with_the_ext_authz_metadata() {
    let yaml = config().yaml();
    for want in ["format: json", "extauthz: extauthz"] {
        assert!(yaml.contains(want), "{want} missing from:\n{yaml}");
    }
}
