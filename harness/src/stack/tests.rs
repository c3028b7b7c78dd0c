use super::*;
use crate::login::{self, Credentials, Driver};

fn quiet(redis: RedisMode) -> StackOptions {
    StackOptions {
        redis,
        announce: false,
        ..StackOptions::default()
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn first_location(stack: &RunningStack) -> Url {
    let response = client()
        .post(format!("{}/openai", stack.gateway_url()))
        .header("content-type", "application/json")
        .body(r#"{"model":"gpt-3.5-turbo"}"#)
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(response.status(), 302);
    Url::parse(
        response.headers()["location"]
            .to_str()
            .expect("ascii location"),
    )
    .expect("location is a URL")
}

#[tokio::test]
async fn unauthenticated_post_is_redirected_to_the_idp_and_stop_leaves_no_redis() {
    let stack = Stack::up(quiet(RedisMode::Process))
        .await
        .expect("stack up");
    let location = first_location(&stack).await;
    assert!(
        location.as_str().starts_with(&format!(
            "{}/realms/master/protocol/openid-connect/auth?",
            stack.idp_url()
        )),
        "{location}"
    );
    assert!(stack.idp_url().starts_with("http://localhost:"));
    assert!(stack.redis_url().starts_with("redis://127.0.0.1:"));
    let rendered = std::fs::read_to_string(stack.manifest_path()).expect("rendered manifest");
    let unrendered: Vec<&str> = rendered
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains("${"))
        .collect();
    assert!(
        unrendered.is_empty(),
        "unrendered variables left: {unrendered:?}"
    );
    let pid = {
        let mut stack = stack;
        let pid = stack.redis_mut().and_then(|r| r.pid()).expect("redis pid");
        stack.stop().await;
        pid
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(stat.is_empty(), "redis {pid} left: {stat}");
}

#[tokio::test]
async fn http_login_through_the_memory_store_stack_reaches_the_upstream_with_the_id_token() {
    let stack = Stack::up(quiet(RedisMode::Memory)).await.expect("stack up");
    assert_eq!(stack.redis_url(), "memory");
    let location = first_location(&stack).await;
    let outcome = login::login(
        Driver::Http,
        &location,
        &Credentials::new("user1", "password"),
        login::DEFAULT_TIMEOUT,
    )
    .await
    .expect("login");
    assert_eq!(outcome.final_status, Some(200), "{}", outcome.page_text);
    let cookie = outcome.cookie("keycloak-session").expect("session cookie");
    let response = client()
        .post(format!("{}/openai", stack.gateway_url()))
        .header("cookie", cookie.pair())
        .body(r#"{"model":"m"}"#)
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(response.status(), 200);
    let received = stack.upstream_requests().await;
    let last = received.last().expect("upstream saw the POST");
    assert_eq!(last.method, "POST");
    assert_eq!(last.header_values("jwt").len(), 1);
    stack.stop().await;
}

#[test]
fn render_fills_known_variables_and_keeps_unknown_ones() {
    let env: BTreeMap<String, String> = [("A".to_owned(), "1".to_owned())].into_iter().collect();
    let cases = [
        ("known", "x ${A} y", "x 1 y"),
        ("unknown", "${B}", "${B}"),
        ("unclosed", "a ${A", "a ${A"),
        ("adjacent", "${A}${A}:80", "11:80"),
    ];
    for (label, input, want) in cases {
        assert_eq!(render(input, &env), want, "{label}");
    }
}

#[tokio::test]
async fn without_port_80_the_gateway_takes_an_ephemeral_port_and_app_url_drops_80() {
    let options = StackOptions {
        prefer_port_80: false,
        ..quiet(RedisMode::Memory)
    };
    app_url_follows_the_gateway(options, "http://127.0.0.1:").await;
}

#[tokio::test]
async fn a_given_gateway_address_is_used_as_the_guides_port_forward_tab_wants() {
    let port = extauth::testing::free_port().expect("a free port");
    let options = StackOptions {
        gateway_listen: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
        ..quiet(RedisMode::Memory)
    };
    app_url_follows_the_gateway(options, &format!("http://127.0.0.1:{port}")).await;
}

/// The stack's gateway URL starts with `prefix`, extauth's `appUrl` is that URL, and a login
/// through it comes back to it.
async fn app_url_follows_the_gateway(options: StackOptions, prefix: &str) {
    let stack = Stack::up(options).await.expect("stack up");
    assert!(
        stack.gateway_url().starts_with(prefix),
        "{}",
        stack.gateway_url()
    );
    assert_eq!(stack.app_url(), stack.gateway_url());
    let location = first_location(&stack).await;
    let redirect_uri = location
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned());
    assert_eq!(
        redirect_uri,
        Some(format!("{}/openai", stack.gateway_url()))
    );
    let outcome = login::login(
        Driver::Http,
        &location,
        &Credentials::new("user1", "password"),
        login::DEFAULT_TIMEOUT,
    )
    .await
    .expect("login");
    assert_eq!(outcome.final_status, Some(200));
    stack.stop().await;
}

#[tokio::test]
async fn an_external_target_starts_nothing_and_keeps_the_seeds_port_80() {
    let options = StackOptions {
        external: Some(ExternalTarget {
            gateway_url: "http://127.0.0.9/".to_owned(),
            idp_url: "http://localhost:8080".to_owned(),
            realm: REALM.to_owned(),
            client_id: DEFAULT_CLIENT.to_owned(),
            app_url: None,
        }),
        ..quiet(RedisMode::Memory)
    };
    let mut stack = Stack::up(options).await.expect("external stack");
    assert!(stack.is_external());
    assert!(stack.pids().is_empty());
    assert_eq!(stack.gateway_url(), "http://127.0.0.9");
    assert_eq!(stack.app_url(), "http://127.0.0.9:80");
    assert_eq!(stack.issuer(), "http://localhost:8080/realms/master");
    assert!(stack.upstream_requests().await.is_empty());
    let refused = stack.redis_stop().await.expect_err("not ours to stop");
    assert!(
        refused.contains("not checkable against a URL target"),
        "{refused}"
    );
    stack.stop().await;
}

/// Each gateway that runs as a child process: the stack's first request is sent to the IdP
/// through it, its PID is known, and nothing of it is left after stop.
async fn a_process_gateway_redirects_to_the_idp_and_is_gone_after_stop(
    gateway: GatewayMode,
    what: &str,
) -> RunningStack {
    let options = StackOptions {
        gateway,
        ..quiet(RedisMode::Memory)
    };
    let stack = Stack::up(options)
        .await
        .unwrap_or_else(|e| panic!("{what} stack up: {e}"));
    let location = first_location(&stack).await;
    assert!(
        location
            .as_str()
            .starts_with(&format!("{}/realms/master/", stack.idp_url())),
        "{what}: {location}"
    );
    let pids = stack.pids();
    assert!(pids.iter().any(|(w, _)| w == what), "{pids:?}");
    assert_eq!(stack.backends()["gateway"], what);
    stack
}

async fn stopped_without_leftovers(stack: RunningStack) {
    let pids = stack.pids();
    stack.stop().await;
    for (what, pid) in pids {
        assert!(!crate::cleanup::process_alive(pid), "{what} {pid} survived");
    }
}

#[tokio::test]
async fn the_caddy_gateway_redirects_to_the_idp_and_its_process_is_gone_after_stop() {
    let stack =
        a_process_gateway_redirects_to_the_idp_and_is_gone_after_stop(GatewayMode::Caddy, "caddy")
            .await;
    stopped_without_leftovers(stack).await;
}

#[tokio::test]
async fn the_nginx_gateway_signs_in_through_extauth_and_its_process_is_gone_after_stop() {
    let stack =
        a_process_gateway_redirects_to_the_idp_and_is_gone_after_stop(GatewayMode::Nginx, "nginx")
            .await;
    assert!(stack.vars().contains_key("EXTAUTH_HTTP_NGINX"));
    stopped_without_leftovers(stack).await;
}

/// agentgateway's binds take no address: a free port of every address, `appUrl` without
/// `:80`, and the stack reaches it on loopback.
#[tokio::test]
async fn the_agentgateway_gateway_takes_a_free_port_and_its_process_is_gone_after_stop() {
    let stack = a_process_gateway_redirects_to_the_idp_and_is_gone_after_stop(
        GatewayMode::Agentgateway,
        "agentgateway",
    )
    .await;
    let url = Url::parse(stack.gateway_url()).expect("gateway URL");
    assert_eq!(url.host_str(), Some("127.0.0.1"));
    assert_ne!(url.port(), None, "{url}");
    assert_eq!(stack.app_url(), stack.gateway_url());
    stopped_without_leftovers(stack).await;
}

#[tokio::test]
async fn without_an_agentgateway_binary_the_stack_is_a_skip_with_one_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = StackOptions {
        gateway: GatewayMode::Agentgateway,
        agentgateway: Some(dir.path().join("agentgateway")),
        ..quiet(RedisMode::Memory)
    };
    let err = Stack::up(options).await.expect_err("no binary there");
    let reason = err.skip_reason().expect("a skip, not a failure");
    assert!(reason.contains("--agentgateway"), "{reason}");
    assert_eq!(reason.lines().count(), 1, "{reason}");
}

/// A held address is refused without touching the holder's reservation, and taking it
/// again never blocks (an eager `then_some(Self(n))` deadlocked here under the lock).
#[test]
fn a_held_gateway_address_is_refused_and_stays_held() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let first = GatewayReservation::take(1);
        let second = GatewayReservation::take(1);
        let still_held = RESERVED_GATEWAYS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&1);
        let outcome = (first.is_some(), second.is_some(), still_held);
        drop(first);
        let _ = tx.send(outcome);
    });
    let outcome = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("taking a held gateway address must return, not deadlock");
    assert_eq!(outcome, (true, false, true));
    assert!(
        !RESERVED_GATEWAYS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&1),
        "dropping the holder frees the address"
    );
}

#[tokio::test]
async fn a_sentinel_stack_configures_extauth_through_the_manifest_and_fails_over() {
    let mut stack = Stack::up(StackOptions {
        redis_password: Some("stack-redis-pw".into()),
        prefer_port_80: false,
        ..quiet(RedisMode::Sentinel)
    })
    .await
    .expect("stack up");
    let vars = stack.vars().clone();
    assert_eq!(vars["REDIS_TOPOLOGY"], "sentinel");
    assert_eq!(vars["REDIS_MASTER_NAME"], "mymaster");
    assert_eq!(vars["REDIS_SENTINELS"].split(',').count(), 3);
    // The rendered manifest holds the topology, and never the password (extauth got it as
    // REDIS_PASSWORD through its env map).
    let rendered = std::fs::read_to_string(stack.manifest_path()).expect("rendered manifest");
    assert!(rendered.contains("topology: sentinel"), "{rendered}");
    assert!(
        rendered.contains(&vars["REDIS_SENTINELS"].replace(',', ", ")),
        "{rendered}"
    );
    assert!(!rendered.contains("stack-redis-pw"));
    assert!(stack.secrets().iter().any(|s| s == "stack-redis-pw"));
    assert_eq!(
        stack
            .pids()
            .iter()
            .filter(|(w, _)| w.starts_with("redis"))
            .count(),
        5
    );
    let took = stack.redis_failover().await.expect("failover");
    assert!(took < std::time::Duration::from_secs(30), "{took:?}");
    // extauth still answers through the gateway (its Redis calls go to the new master).
    let location = first_location(&stack).await;
    assert!(location.as_str().starts_with(stack.idp_url()), "{location}");
    stack.stop().await;
}

#[tokio::test]
async fn a_failover_on_a_single_server_is_a_clear_error() {
    let mut stack = Stack::up(StackOptions {
        prefer_port_80: false,
        ..quiet(RedisMode::Process)
    })
    .await
    .expect("stack up");
    let err = stack.redis_kill_master().await.expect_err("no replica");
    assert_eq!(
        err,
        "Redis `process` is one server without replicas: a failover needs stack.redis `sentinel` or `cluster`"
    );
    stack.stop().await;
}

#[test]
fn a_realm_naming_the_gateway_is_rendered_and_any_other_is_read_as_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vars = [
        ("APP_URL", "http://127.0.0.9:80"),
        ("GATEWAY_URL", "http://127.0.0.9"),
    ];
    let plain = dir.path().join("plain.json");
    std::fs::write(&plain, r#"{"realm": "master", "note": "${OTHER}"}"#).expect("write");
    assert_eq!(
        render_realm(&plain, dir.path(), &vars).expect("plain"),
        plain,
        "no variable of ours: the file itself"
    );
    let templated = dir.path().join("templated.json");
    std::fs::write(
        &templated,
        r#"{"url": "${APP_URL}/backchannel-logout", "other": "${GATEWAY_URL}", "kept": "${OTHER}"}"#,
    )
    .expect("write");
    let rendered = render_realm(&templated, dir.path(), &vars).expect("templated");
    assert_ne!(rendered, templated);
    assert_eq!(
        std::fs::read_to_string(rendered).expect("read"),
        r#"{"url": "http://127.0.0.9:80/backchannel-logout", "other": "http://127.0.0.9", "kept": "${OTHER}"}"#
    );
    let missing = render_realm(&dir.path().join("absent.json"), dir.path(), &vars);
    assert!(
        matches!(missing, Err(StackError::Realm { .. })),
        "{missing:?}"
    );
}
