use std::path::Path;

use super::*;

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn started_server_answers_ping_and_leaves_no_process_after_drop() {
    let server = process::start(None).expect("redis-server starts");
    let pid = server.pid().expect("running");
    assert!(process_exists(pid));
    assert_eq!(ping(server.port()), Ok(()));
    assert_eq!(server.url(), format!("redis://127.0.0.1:{}", server.port()));
    drop(server);
    assert!(!process_exists(pid), "redis-server {pid} survived the drop");
}

#[test]
fn stopped_server_refuses_connections_and_starts_again_on_the_same_port() {
    let mut server = process::start(None).expect("redis-server starts");
    let port = server.port();
    let first_pid = server.pid().expect("running");
    server.stop();
    assert!(!server.is_running());
    assert!(!process_exists(first_pid));
    assert!(ping(port).is_err(), "a stopped Redis still answers");
    server.start_again().expect("restarts");
    assert_eq!(server.port(), port);
    assert!(server.is_running());
    assert_eq!(ping(port), Ok(()));
}

#[test]
fn a_missing_binary_is_reported_with_the_install_hint() {
    let err = RedisError::from(
        RedisServer::start_with_binary(Path::new("/nonexistent/redis-server"))
            .expect_err("no binary"),
    );
    assert!(matches!(err, RedisError::NotFound));
    assert_eq!(
        err.to_string(),
        "redis-server not found: install it (apt-get install redis-server)"
    );
}

#[test]
fn a_password_protected_server_counts_as_up_and_records_its_pid() {
    let server = process::start(Some("pw-for-the-test")).expect("redis-server starts");
    assert_eq!(ping(server.port()), Ok(()));
    let pid = server.pid().expect("running");
    assert!(
        crate::cleanup::recorded_pids()
            .iter()
            .any(|(_, p)| *p == pid),
        "the spawn hook did not record {pid}"
    );
}

#[test]
fn topology_options_replace_the_seed_host_line_at_its_indentation() {
    let manifest = "x:\n  options:\n    host: ${REDIS_HOST}:${REDIS_PORT}\n  y: 1\n";
    let out = with_options(
        manifest,
        &[
            "topology: cluster".to_owned(),
            "cluster: {nodes: [a]}".to_owned(),
        ],
        "cluster",
    )
    .unwrap();
    assert_eq!(
        out,
        "x:\n  options:\n    topology: cluster\n    cluster: {nodes: [a]}\n  y: 1\n"
    );
    let err = with_options("host: r:6379\n", &[], "sentinel").unwrap_err();
    assert!(
        err.to_string()
            .contains("no `host: ${REDIS_HOST}:${REDIS_PORT}` line"),
        "{err}"
    );
}

#[tokio::test]
async fn a_container_answers_ping_and_is_gone_after_remove_when_an_engine_holds_the_image() {
    // Needs a Docker engine and the local image: `just test` starts and builds them
    // (`just docker-up images` by hand); without them this fails and says which is missing.
    if let Err(e) = crate::docker::image("redis:7", "just images") {
        panic!("this test runs the redis:7 container: {e}");
    }
    let mut redis = container::RedisContainer::start(None)
        .await
        .expect("container starts");
    assert_eq!(ping(redis.port()), Ok(()));
    redis.stop().await.expect("stops");
    assert!(ping(redis.port()).is_err(), "still answering after stop");
    redis.start_again().await.expect("starts again");
    assert_eq!(ping(redis.port()), Ok(()));
    let id = redis.id().to_owned();
    redis.remove().await;
    assert_eq!(crate::docker::container_exists(&id), Ok(false));
}
