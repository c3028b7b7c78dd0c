use std::net::TcpListener;

use super::*;

#[test]
fn a_binary_is_found_on_path_or_in_the_extra_folders() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("harness-test-gateway"), "").expect("file");
    assert_eq!(
        find_on_path("harness-test-gateway", &[dir.path()]),
        Some(dir.path().join("harness-test-gateway"))
    );
    assert_eq!(find_on_path("harness-test-gateway", &[]), None);
    assert!(find_on_path("sh", &[]).is_some(), "sh is on PATH");
}

#[test]
fn a_process_that_exits_is_reported_at_once_with_its_log_tail() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new("sh");
    command.args([
        "-c",
        "echo 'bind() failed (98: Address already in use)' >&2; exit 3",
    ]);
    let listen = SocketAddr::from(([127, 0, 0, 1], 9));
    let started = Instant::now();
    let err = GatewayProcess::start(
        "test-gateway",
        command,
        listen,
        dir.path().join("out.log"),
        &Readiness::Listening,
    )
    .expect_err("it exits");
    assert!(started.elapsed() < READY_TIMEOUT, "not waited out: {err}");
    let ProcessError::NotReady {
        what,
        reason,
        log_tail,
        ..
    } = err
    else {
        panic!("{err}");
    };
    assert_eq!(what, "test-gateway");
    assert!(reason.contains("exited"), "{reason}");
    assert!(log_tail.contains("Address already in use"), "{log_tail}");
}

#[test]
fn a_readiness_url_must_answer_200_before_the_gateway_counts_as_ready() {
    let server = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = server.local_addr().expect("addr");
    let answer = |status: &'static str| {
        let server = server.try_clone().expect("clone");
        std::thread::spawn(move || {
            use std::io::{Read as _, Write as _};
            let (mut conn, _) = server.accept().expect("accept");
            let mut buf = [0u8; 256];
            let _ = conn.read(&mut buf);
            let _ = conn
                .write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes());
        })
    };
    let url = format!("http://{addr}/healthz/ready");
    let t = answer("503 Service Unavailable");
    assert_eq!(http_status(&url), Ok(503));
    t.join().expect("server");
    let t = answer("200 OK");
    assert_eq!(is_ready(addr, &Readiness::Http(url.clone())), Ok(()));
    t.join().expect("server");
    drop(server);
    assert!(
        is_ready(addr, &Readiness::Http(url)).is_err(),
        "nothing listens"
    );
}
