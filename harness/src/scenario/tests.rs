use std::collections::BTreeMap;
use std::path::Path;

use super::checks::{interpolate, jwt_payload, lookup, raw_params};
use super::model::{LoginResult, RedisAction};
use super::runner::shape;
use super::transcript::Redactor;
use super::*;

fn vars() -> BTreeMap<String, String> {
    [
        ("GATEWAY_URL", "http://127.0.0.2"),
        ("APP_URL", "http://127.0.0.2:80"),
        ("IDP_URL", "http://localhost:41234"),
        ("INGRESS_GW_ADDRESS", "127.0.0.2"),
        ("KEYCLOAK_CLIENT", "agentgateway"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::from_str(Path::new("t.yaml"), text)
}

#[test]
fn a_scenario_with_each_step_kind_parses() {
    let scenario = parse(
        r#"
name: t
stack: {login: http, redis: memory}
steps:
  - name: first
    request: {method: POST, path: /openai, headers: {content-type: application/json}, body: "{}"}
    expect:
      status: 302
      location: {endpoint: "${IDP_URL}/auth", params: [client_id, state]}
  - name: login
    login: {user: user1, password: password}
    expect: invalid_credentials
  - name: outage
    redis: stop
"#,
    )
    .expect("parses");
    assert_eq!(scenario.steps.len(), 3);
    assert!(
        matches!(&scenario.steps[0].action, Action::Request(r, e) if r.method == "POST" && e.status == Some(302))
    );
    assert!(matches!(&scenario.steps[1].action, Action::Login(l, e)
        if l.start_from == "last_location" && e.outcome == LoginResult::InvalidCredentials));
    assert!(matches!(
        scenario.steps[2].action,
        Action::Redis(RedisAction::Stop)
    ));
}

#[test]
fn malformed_scenarios_are_rejected_with_the_step_and_the_reason() {
    let cases = [
        (
            "unknown expect field",
            "name: t\nsteps:\n  - name: s\n    request: {path: /}\n    expect: {stauts: 200}\n",
            "step 1 (\"s\"): expect: unknown field `stauts`",
        ),
        (
            "two actions",
            "name: t\nsteps:\n  - name: s\n    request: {path: /}\n    redis: stop\n",
            "expected exactly one of",
        ),
        ("no steps", "name: t\nsteps: []\n", "no steps"),
        (
            "pause out of bounds",
            "name: t\nsteps:\n  - name: s\n    pause_ms: 600000\n",
            "step 1 (\"s\"): pause_ms: expected 1 to 60000, got 600000",
        ),
        (
            "pause with an action",
            "name: t\nsteps:\n  - name: s\n    pause_ms: 10\n    redis: stop\n",
            "a `pause_ms` step takes nothing else",
        ),
        (
            "unknown driver",
            "name: t\nstack: {login: lynx}\nsteps: []\n",
            "unknown variant `lynx`",
        ),
    ];
    for (label, text, want) in cases {
        let err = parse(text).expect_err(label).to_string();
        assert!(err.contains(want), "{label}: {err}");
    }
}

#[test]
fn interpolation_fills_known_variables_and_names_unknown_ones() {
    let v = vars();
    assert_eq!(
        interpolate("${GATEWAY_URL}/openai", &v).as_deref(),
        Ok("http://127.0.0.2/openai")
    );
    let err = interpolate("${NOPE}", &v).expect_err("unknown");
    assert!(
        err.contains("unknown variable ${NOPE}") && err.contains("GATEWAY_URL"),
        "{err}"
    );
}

#[test]
fn redaction_masks_state_code_jwts_cookies_urls_and_ports() {
    let mut r =
        Redactor::new(&vars(), &["agentgateway-client-secret".to_owned()]).expect("redactor");
    r.add_secret("ZLYHZ4XOGE6XDHY6YT256O45PB3K");
    let cases = [
        (
            "location",
            "http://localhost:41234/realms/master/protocol/openid-connect/auth?client_id=agentgateway&redirect_uri=http%3A%2F%2F127.0.0.2%3A80%2Fopenai&state=eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.sig",
            "[IDP_URL]/realms/master/protocol/openid-connect/auth?client_id=agentgateway&redirect_uri=[APP_URL]%2Fopenai&state=[state]",
        ),
        (
            "callback",
            "http://127.0.0.2:80/openai?state=abc&session_state=x&code=123",
            "[APP_URL]/openai?state=[state]&session_state=[session_state]&code=[code]",
        ),
        (
            "jwt",
            "token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln end",
            "token [jwt] end",
        ),
        (
            "secret",
            "the secret is agentgateway-client-secret",
            "the secret is [secret]",
        ),
        (
            "learned secret",
            "keycloak-session=ZLYHZ4XOGE6XDHY6YT256O45PB3K",
            "keycloak-session=[secret]",
        ),
        (
            "other port",
            "127.0.0.1:5555 and localhost:1234",
            "127.0.0.1:[port] and localhost:[port]",
        ),
        (
            "gateway host",
            "host 127.0.0.2",
            "host [INGRESS_GW_ADDRESS]",
        ),
    ];
    for (label, input, want) in cases {
        assert_eq!(r.text(input), want, "{label}");
    }
    assert_eq!(
        r.header(
            "set-cookie",
            "keycloak-session=ABC; Path=/; Expires=Wed, 21 Oct 2026 07:28:00 GMT; HttpOnly"
        ),
        "keycloak-session=[redacted]; Path=/; Expires=[time]; HttpOnly"
    );
    assert_eq!(r.header("cookie", "a=1; b=2"), "a=[redacted]; b=[redacted]");
    assert_eq!(
        r.header("set-cookie", "gone=; Max-Age=0"),
        "gone=; Max-Age=0"
    );
}

/// agentgateway's stacks (and any stack without port 80) have `appUrl` equal to the gateway
/// URL: their transcripts must redact as a port-80 stack's do, or they could not share the
/// simulator's snapshots.
#[test]
fn without_port_80_the_gateway_and_app_urls_redact_as_on_port_80() {
    let mut same = vars();
    for (k, v) in [
        ("GATEWAY_URL", "http://127.0.0.1:41000"),
        ("APP_URL", "http://127.0.0.1:41000"),
        ("INGRESS_GW_ADDRESS", "127.0.0.1:41000"),
    ] {
        same.insert(k.to_owned(), v.to_owned());
    }
    let on_80 = Redactor::new(&vars(), &[]).expect("redactor");
    let off_80 = Redactor::new(&same, &[]).expect("redactor");
    for (on, off) in [
        ("http://127.0.0.2/openai", "http://127.0.0.1:41000/openai"),
        (
            "redirect_uri=http%3A%2F%2F127.0.0.2%3A80%2Fopenai",
            "redirect_uri=http%3A%2F%2F127.0.0.1%3A41000%2Fopenai",
        ),
        ("host 127.0.0.2", "host 127.0.0.1:41000"),
    ] {
        assert_eq!(off_80.text(off), on_80.text(on), "{off}");
    }
}

#[test]
fn jwt_payload_decodes_without_verification_and_rejects_garbage() {
    // {"exp":1800,"iat":0,"nbf":0,"state":"http://localhost/openai"}
    let token = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE4MDAsImlhdCI6MCwibmJmIjowLCJzdGF0ZSI6Imh0dHA6Ly9sb2NhbGhvc3Qvb3BlbmFpIn0.sig";
    let claims = jwt_payload(token).expect("decodes");
    assert_eq!(claims["exp"], 1800);
    assert_eq!(claims["state"], "http://localhost/openai");
    assert!(jwt_payload("not-a-jwt").is_err());
    assert!(jwt_payload("a.!!!.c").is_err());
}

#[test]
fn raw_params_keep_order_and_encoding() {
    let url = url::Url::parse(
        "http://x/auth?client_id=a&redirect_uri=http%3A%2F%2Fy%3A80&scope=email+openid",
    )
    .expect("url");
    let params = raw_params(&url);
    let names: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["client_id", "redirect_uri", "scope"]);
    assert_eq!(params[2].1, "email+openid");
}

#[test]
fn json_lookup_follows_dotted_paths_through_arrays() {
    let v = serde_json::json!({"choices": [{"message": {"content": "hi"}}]});
    assert_eq!(
        lookup(&v, "choices.0.message.content"),
        Some(&serde_json::json!("hi"))
    );
    assert_eq!(lookup(&v, "choices.1"), None);
}

#[test]
fn a_secret_shape_says_length_and_alphabet_only() {
    assert_eq!(
        shape(&format!("{}=", "A".repeat(103))),
        "[redacted: 104 chars, base32]"
    );
    assert_eq!(shape("abc-_x"), "[redacted: 6 chars, base64url]");
}

#[test]
fn stack_backends_take_one_value_or_a_list_and_the_first_is_the_default() {
    use super::model::{Combo, GatewayBackend, IdpBackend, RedisBackend};
    let one = parse(
        "name: x\nstack: {idp: oidc-provider, gateway: sim}\nsteps: [{name: s, redis: stop}]",
    )
    .expect("parses");
    assert_eq!(
        one.stack.default_combo(),
        Combo {
            idp: IdpBackend::OidcProvider,
            gateway: GatewayBackend::Simulator,
            redis: RedisBackend::Auto,
        }
    );
    let many = parse(
        "name: x\nstack: {idp: [mock, keycloak], gateway: [simulator, caddy], redis: [process, container]}\nsteps: [{name: s, redis: stop}]",
    )
    .expect("parses");
    let combos = many.stack.combos();
    assert_eq!(combos.len(), 8);
    assert_eq!(combos[0], many.stack.default_combo());
    assert_eq!(combos[0].idp, IdpBackend::Mock);
    assert_eq!(
        combos[7].to_string(),
        "idp=keycloak gateway=caddy redis=container"
    );
}

#[test]
fn an_unknown_backend_or_an_empty_list_is_rejected() {
    for stack in ["{idp: okta}", "{gateway: []}", "{redis: [process, cloud]}"] {
        let text = format!("name: x\nstack: {stack}\nsteps: [{{name: s, redis: stop}}]");
        assert!(parse(&text).is_err(), "{stack} was accepted");
    }
}

#[test]
fn snapshots_are_named_per_backend_except_on_mock_behind_the_simulator() {
    use super::model::{Combo, GatewayBackend, IdpBackend, RedisBackend};
    let mut combo = Combo::default();
    assert_eq!(snapshot_name("seed", combo), "seed");
    combo.redis = RedisBackend::Container;
    assert_eq!(
        snapshot_name("seed", combo),
        "seed",
        "Redis changes nothing shown"
    );
    combo.gateway = GatewayBackend::Caddy;
    assert_eq!(snapshot_name("seed", combo), "seed.mock.caddy");
    combo.idp = IdpBackend::OidcProvider;
    combo.gateway = GatewayBackend::Simulator;
    assert_eq!(snapshot_name("seed", combo), "seed.oidc-provider.sim");
}

#[test]
fn the_mock_idp_container_shares_the_in_process_mocks_snapshots() {
    use super::model::{Combo, GatewayBackend, IdpBackend};
    let scenario =
        parse("name: x\nstack: {idp: [mock, mock-container]}\nsteps: [{name: s, redis: stop}]")
            .expect("parses");
    let combos = scenario.stack.combos();
    assert_eq!(combos[1].idp, IdpBackend::MockContainer);
    assert_eq!(
        combos[1].to_string(),
        "idp=mock-container gateway=sim redis=auto"
    );
    let mut combo = Combo {
        idp: IdpBackend::MockContainer,
        ..Combo::default()
    };
    assert_eq!(snapshot_name("seed", combo), "seed");
    combo.gateway = GatewayBackend::Caddy;
    assert_eq!(snapshot_name("seed", combo), "seed.mock.caddy");
}

#[test]
fn oidc_provider_interaction_ids_are_redacted() {
    let redactor = Redactor::new(&vars(), &[]).expect("redactor");
    assert_eq!(
        redactor.text(
            "GET http://localhost:41234/realms/master/interaction/Q995IRozKPABP08D8X-wfJmh/login"
        ),
        "GET [IDP_URL]/realms/master/interaction/[uid]/login"
    );
}

#[test]
fn an_idp_admin_step_parses_with_its_body_and_json_checks() {
    let scenario = parse(
        r#"
name: t
steps:
  - name: fault
    idp_admin: {method: POST, path: /admin/mock/faults, body: {kind: id_token_nonce, mode: sticky}}
    expect: {status: 201}
  - name: log
    idp_admin: {path: "/admin/mock/requests?endpoint=token"}
    expect: {body_json: {requests.0.form.code_verifier: "[redacted]"}}
  - name: rejected
    login: {user: user1, password: password}
    expect: callback_rejected
"#,
    )
    .unwrap();
    let Action::IdpAdmin(spec, expect) = &scenario.steps[0].action else {
        panic!("not an idp_admin step: {:?}", scenario.steps[0].action);
    };
    assert_eq!(spec.method, "POST");
    assert!(spec.body.is_some());
    assert_eq!(expect.status, Some(201));
    let Action::IdpAdmin(spec, expect) = &scenario.steps[1].action else {
        panic!("not an idp_admin step");
    };
    assert_eq!(spec.method, "GET");
    assert_eq!(
        expect.body_json["requests.0.form.code_verifier"],
        "[redacted]"
    );
    assert!(matches!(
        &scenario.steps[2].action,
        Action::Login(_, e) if e.outcome == LoginResult::CallbackRejected
    ));

    let both = parse("name: t\nsteps:\n  - name: x\n    idp_admin: {path: /a}\n    redis: stop\n");
    assert!(both.is_err(), "two step kinds in one step");
}

#[test]
fn callback_rejected_passes_only_when_the_rejection_set_no_cookie() {
    use super::runner::login_outcome;
    use crate::login::LoginError;
    let rejected = |cookie_names: &[&str]| -> Result<crate::login::LoginOutcome, LoginError> {
        Err(LoginError::CallbackRejected {
            status: 400,
            body_excerpt: "invalid ID token".into(),
            set_cookie: !cookie_names.is_empty(),
            cookie_names: cookie_names.iter().map(|n| (*n).to_owned()).collect(),
        })
    };
    let cases: [(&str, Result<_, LoginError>, LoginResult, usize, &str); 5] = [
        (
            "clean rejection",
            rejected(&[]),
            LoginResult::CallbackRejected,
            0,
            "",
        ),
        (
            "rejection with a session cookie",
            rejected(&["keycloak-session"]),
            LoginResult::CallbackRejected,
            1,
            "must set no session cookie, actual cookies [\"keycloak-session\"]",
        ),
        (
            "rejection where a success was expected",
            rejected(&[]),
            LoginResult::Success,
            1,
            "expected success, actual callback_rejected (the gateway rejected the callback with status 400",
        ),
        (
            "another error is not a rejection",
            Err(LoginError::Unexpected {
                step: "GET the callback at the gateway",
                detail: "status 200".into(),
            }),
            LoginResult::CallbackRejected,
            1,
            "expected callback_rejected, actual error:",
        ),
        (
            "wrong password",
            Err(LoginError::InvalidCredentials),
            LoginResult::InvalidCredentials,
            0,
            "",
        ),
    ];
    for (label, result, want, count, text) in cases {
        let (_, problems) = login_outcome(&result, want);
        assert_eq!(problems.len(), count, "{label}: {problems:?}");
        assert!(
            problems.iter().all(|p| p.contains(text)),
            "{label}: {problems:?}"
        );
    }
    assert_eq!(
        login_outcome(&rejected(&[]), LoginResult::CallbackRejected).0,
        "callback_rejected"
    );
}

#[test]
fn extauth_steps_kill_and_restart_a_replica_the_stack_runs() {
    let scenario = parse(
        r#"
name: t
stack: {login: http, redis: process, replicas: 2}
steps:
  - name: kill
    extauth: {kill: 1}
  - name: restart
    extauth: {restart: 0}
"#,
    )
    .expect("parses");
    assert_eq!(scenario.stack.replicas, Some(2));
    assert!(matches!(
        scenario.steps[0].action,
        Action::Extauth(model::ExtauthAction::Kill(1))
    ));
    assert!(matches!(
        scenario.steps[1].action,
        Action::Extauth(model::ExtauthAction::Restart(0))
    ));
}

#[test]
fn extauth_steps_and_replicas_that_cannot_run_are_refused_at_load() {
    let with = |stack: &str, step: &str| {
        format!("name: t\nstack: {stack}\nsteps:\n  - name: s\n    {step}\n")
    };
    let cases = [
        (
            "index past the last replica",
            with("{redis: process, replicas: 2}", "extauth: {kill: 9}"),
            "t.yaml: step 1 (\"s\"): extauth: replica 9 does not exist: stack.replicas is 2 (replicas 0 to 1)",
        ),
        (
            "no replicas",
            with("{redis: process}", "extauth: {restart: 0}"),
            "t.yaml: step 1 (\"s\"): extauth: replica 0: extauth steps need `stack.replicas: N` (without it extauth runs inside the harness and cannot be killed)",
        ),
        (
            "an expect",
            with(
                "{replicas: 2}",
                "extauth: {kill: 0}\n    expect: {status: 200}",
            ),
            "t.yaml: step 1 (\"s\"): an extauth step takes no expect",
        ),
        (
            "another action too",
            with(
                "{replicas: 2}",
                "extauth: {kill: 0}\n    request: {path: /}",
            ),
            "t.yaml: step 1 (\"s\"): expected exactly one of `request`, `login`, `redis`, `extauth`, `idp_admin`, `idp_logout`, `pause_ms`",
        ),
        (
            "an unknown action",
            with("{replicas: 2}", "extauth: {stop: 0}"),
            "unknown field `stop`, expected `kill` or `restart`",
        ),
        (
            "kill and restart at once",
            with("{replicas: 2}", "extauth: {kill: 0, restart: 0}"),
            "t.yaml: step 1 (\"s\"): extauth: expected exactly one of `kill: N`, `restart: N`",
        ),
        (
            "zero replicas",
            with("{replicas: 0}", "pause_ms: 1"),
            "t.yaml: stack.replicas: expected 1 to 16, got 0",
        ),
        (
            "replicas over the memory store",
            with("{replicas: 2, redis: [process, memory]}", "pause_ms: 1"),
            "t.yaml: stack.replicas: 2 replicas share sessions through Redis; `redis: memory` keeps them per process",
        ),
    ];
    for (label, text, want) in cases {
        let err = parse(&text).expect_err(label).to_string();
        assert!(err.contains(want), "{label}: {err}");
    }
}

#[test]
fn callback_rejected_with_a_status_implies_the_outcome() {
    let scenario = parse(
        r#"
name: t
steps:
  - name: exact
    login: {user: user1, password: password}
    expect: {callback_rejected: {status: 403, body_contains: "did not pass validation"}}
  - name: short
    login: {user: user1, password: password}
    expect: callback_rejected
"#,
    )
    .unwrap();
    let Action::Login(_, exact) = &scenario.steps[0].action else {
        panic!("not a login step");
    };
    assert_eq!(exact.outcome, LoginResult::CallbackRejected);
    assert_eq!(
        exact.callback_rejected,
        Some(model::RejectionExpect {
            status: 403,
            body_contains: Some("did not pass validation".into()),
        })
    );
    let Action::Login(_, short) = &scenario.steps[1].action else {
        panic!("not a login step");
    };
    assert_eq!(short.outcome, LoginResult::CallbackRejected);
    assert_eq!(short.callback_rejected, None);

    let contradiction = parse(
        "name: t\nsteps:\n  - name: x\n    login: {user: u, password: p}\n    expect: {outcome: success, callback_rejected: {status: 403}}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        contradiction.contains("`callback_rejected` goes with `outcome: callback_rejected`"),
        "{contradiction}"
    );
    let no_status = parse(
        "name: t\nsteps:\n  - name: x\n    login: {user: u, password: p}\n    expect: {callback_rejected: {}}\n",
    );
    assert!(no_status.is_err(), "a status is required");
}

#[test]
fn a_rejection_must_have_the_stated_status_and_body() {
    use super::runner::rejection_problems;
    use crate::login::LoginError;
    let rejected = |status: u16| -> Result<crate::login::LoginOutcome, LoginError> {
        Err(LoginError::CallbackRejected {
            status,
            body_excerpt: "Login refused: the ID token did not pass validation.".into(),
            set_cookie: false,
            cookie_names: Vec::new(),
        })
    };
    let want = |status: u16, body: Option<&str>| model::RejectionExpect {
        status,
        body_contains: body.map(str::to_owned),
    };
    let cases: [(&str, u16, model::RejectionExpect, &[&str]); 4] = [
        ("as stated", 403, want(403, Some("did not pass")), &[]),
        (
            "another status",
            503,
            want(403, None),
            &["callback_rejected: expected status 403, actual 503 (body \"Login refused"],
        ),
        (
            "another body",
            403,
            want(403, Some("unavailable")),
            &[
                "callback_rejected: expected a body containing \"unavailable\", actual \"Login refused",
            ],
        ),
        (
            "both wrong",
            401,
            want(403, Some("unavailable")),
            &[
                "expected status 403, actual 401",
                "expected a body containing",
            ],
        ),
    ];
    for (label, status, expect, wanted) in cases {
        let problems = rejection_problems(&rejected(status), Some(&expect));
        assert_eq!(problems.len(), wanted.len(), "{label}: {problems:?}");
        for (p, w) in problems.iter().zip(wanted) {
            assert!(p.contains(w), "{label}: {p}");
        }
    }
    assert!(
        rejection_problems(&rejected(503), None).is_empty(),
        "no status stated"
    );
}

/// The conformance suite states the status of every rejection it expects, so that a change
/// of answer (a 503 for an invalid ID token) cannot pass unnoticed.
#[test]
fn every_conformance_rejection_states_its_status() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/conformance");
    let files = expand_paths(&[dir]).unwrap();
    assert!(files.len() > 20, "{files:?}");
    let mut rejections = 0;
    for file in files {
        let scenario = Scenario::from_file(&file).unwrap();
        for step in &scenario.steps {
            if let Action::Login(_, expect) = &step.action
                && expect.outcome == LoginResult::CallbackRejected
            {
                rejections += 1;
                assert!(
                    expect.callback_rejected.is_some(),
                    "{}: step {:?} expects a rejection without its status: write `expect: {{callback_rejected: {{status: N}}}}`",
                    file.display(),
                    step.name
                );
            }
        }
    }
    assert!(rejections > 10, "{rejections}");
}

#[test]
fn redis_failover_and_kill_master_steps_parse_on_the_new_backends() {
    use super::model::RedisBackend;
    let scenario = parse(
        "name: x\nstack: {redis: [sentinel, cluster, tls]}\nsteps:\n  - {name: a, redis: failover}\n  - {name: b, redis: kill-master}\n",
    )
    .expect("parses");
    assert_eq!(
        scenario.stack.redis.0,
        vec![
            RedisBackend::Sentinel,
            RedisBackend::Cluster,
            RedisBackend::Tls
        ]
    );
    assert!(matches!(
        scenario.steps[0].action,
        Action::Redis(RedisAction::Failover)
    ));
    assert!(matches!(
        scenario.steps[1].action,
        Action::Redis(RedisAction::KillMaster)
    ));
}
