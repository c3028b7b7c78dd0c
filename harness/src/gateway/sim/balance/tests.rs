//! The pool against fake ext_authz servers on port 0. Each fake runs on its own runtime in
//! its own thread, so killing it (dropping that runtime) closes every socket it holds, as
//! the death of a process does.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use tokio::io::AsyncReadExt as _;

use super::*;

const CONNECT: Duration = Duration::from_secs(2);
const CALL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// An OK `CheckResponse`.
    Allow,
    /// The gRPC status `UNAVAILABLE`, sent by the server (an answer).
    AnswerUnavailable,
    /// No answer for this long.
    Slow(Duration),
    /// Accept the connection, read a little, close it: a reset before any answer.
    Reset,
}

#[derive(Clone)]
struct Counting {
    calls: Arc<AtomicUsize>,
    behaviour: Behaviour,
}

#[tonic::async_trait]
impl Authorization for Counting {
    async fn check(
        &self,
        _request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.behaviour {
            Behaviour::AnswerUnavailable => Err(tonic::Status::unavailable("busy")),
            Behaviour::Slow(wait) => {
                tokio::time::sleep(wait).await;
                Ok(tonic::Response::new(CheckResponse::default()))
            }
            Behaviour::Allow | Behaviour::Reset => {
                Ok(tonic::Response::new(CheckResponse::default()))
            }
        }
    }
}

/// A fake ext_authz server; [`Fake::kill`] (or drop) ends it like a killed process.
struct Fake {
    addr: SocketAddr,
    calls: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Fake {
    fn start(behaviour: Behaviour) -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), behaviour)
    }

    fn start_on(addr: SocketAddr, behaviour: Behaviour) -> Self {
        let calls = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let counting = Counting {
            calls: Arc::clone(&calls),
            behaviour,
        };
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
                bound_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                let serve = async move {
                    if matches!(counting.behaviour, Behaviour::Reset) {
                        loop {
                            let Ok((mut socket, _)) = listener.accept().await else {
                                return;
                            };
                            counting.calls.fetch_add(1, Ordering::SeqCst);
                            let mut buf = [0u8; 64];
                            let _ = socket.read(&mut buf).await;
                            drop(socket);
                        }
                    }
                    let incoming = tonic::transport::server::TcpIncoming::from(listener);
                    let _ = tonic::transport::Server::builder()
                        .add_service(AuthorizationServer::new(counting))
                        .serve_with_incoming(incoming)
                        .await;
                };
                tokio::select! {
                    () = serve => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime drops every connection task: all sockets close.
            drop(runtime);
        });
        let addr = bound_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("fake bound");
        Self {
            addr,
            calls,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn kill(mut self) {
        self.end();
    }

    fn end(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.end();
    }
}

/// A loopback address nobody listens on.
fn dead_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

fn pool(addrs: &[SocketAddr]) -> Pool {
    Pool::new(addrs, CONNECT, CALL).expect("pool")
}

#[tokio::test]
async fn checks_take_turns_over_the_endpoints() {
    let fakes = [
        Fake::start(Behaviour::Allow),
        Fake::start(Behaviour::Allow),
        Fake::start(Behaviour::Allow),
    ];
    let pool = pool(&fakes.iter().map(|f| f.addr).collect::<Vec<_>>());
    for round in 1..=2 {
        for (i, fake) in fakes.iter().enumerate() {
            pool.check(CheckRequest::default()).await.expect("answer");
            assert_eq!(fake.calls(), round, "round {round}, endpoint {i}");
        }
    }
}

#[tokio::test]
async fn a_refused_connection_is_retried_once_on_another_endpoint_and_then_skipped() {
    let alive = Fake::start(Behaviour::Allow);
    let pool = pool(&[dead_addr(), alive.addr]);
    for _ in 0..6 {
        pool.check(CheckRequest::default())
            .await
            .expect("served by the live endpoint");
    }
    assert_eq!(alive.calls(), 6);
    assert!(
        pool.is_down(0, Instant::now()),
        "the dead endpoint is skipped"
    );
    assert!(!pool.is_down(1, Instant::now()));
}

#[tokio::test]
async fn a_killed_endpoint_with_open_connections_is_retried_elsewhere() {
    let first = Fake::start(Behaviour::Allow);
    let second = Fake::start(Behaviour::Allow);
    let pool = pool(&[first.addr, second.addr]);
    // Both connections are open and used.
    for _ in 0..4 {
        pool.check(CheckRequest::default()).await.expect("answer");
    }
    assert_eq!((first.calls(), second.calls()), (2, 2));
    first.kill();
    for i in 0..6 {
        pool.check(CheckRequest::default())
            .await
            .unwrap_or_else(|e| panic!("check {i} after the kill failed: {e:?}"));
    }
    assert_eq!(second.calls(), 8);
}

#[tokio::test]
async fn a_reset_before_the_answer_is_retried_on_another_endpoint() {
    let resetting = Fake::start(Behaviour::Reset);
    let alive = Fake::start(Behaviour::Allow);
    let pool = pool(&[resetting.addr, alive.addr]);
    let answer = pool.check(CheckRequest::default()).await;
    assert!(answer.is_ok(), "{answer:?}");
    assert!(
        resetting.calls() >= 1,
        "the first attempt went to the reset"
    );
    assert_eq!(alive.calls(), 1);
    assert!(pool.is_down(0, Instant::now()));
}

#[tokio::test]
async fn a_check_that_got_an_answer_is_never_retried() {
    let answering = Fake::start(Behaviour::AnswerUnavailable);
    let other = Fake::start(Behaviour::Allow);
    let pool = pool(&[answering.addr, other.addr]);
    let status = pool
        .check(CheckRequest::default())
        .await
        .expect_err("the server's answer is an error status");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(status.message(), "busy");
    assert_eq!(classify(&status), Failure::Answered);
    assert_eq!((answering.calls(), other.calls()), (1, 0));
    assert!(
        !pool.is_down(0, Instant::now()),
        "an answer means the endpoint is up"
    );
}

#[tokio::test]
async fn a_check_that_timed_out_is_not_retried() {
    let slow = Fake::start(Behaviour::Slow(Duration::from_secs(3)));
    let other = Fake::start(Behaviour::Allow);
    let pool = Pool::new(
        &[slow.addr, other.addr],
        CONNECT,
        Duration::from_millis(300),
    )
    .expect("pool");
    let status = pool
        .check(CheckRequest::default())
        .await
        .expect_err("timed out");
    assert_eq!(classify(&status), Failure::Timeout, "{status:?}");
    assert_eq!((slow.calls(), other.calls()), (1, 0));
}

#[tokio::test]
async fn a_down_endpoint_is_tried_again_after_its_backoff_and_is_back_once_it_answers() {
    let dead = dead_addr();
    let alive = Fake::start(Behaviour::Allow);
    let pool = pool(&[dead, alive.addr]);
    pool.check(CheckRequest::default())
        .await
        .expect("retried on the live one");
    assert!(pool.is_down(0, Instant::now()));
    // The endpoint comes back on the same address.
    let back = Fake::start_on(dead, Behaviour::Allow);
    let deadline = Instant::now() + Duration::from_secs(10);
    while back.calls() == 0 {
        assert!(
            Instant::now() < deadline,
            "the recovered endpoint got no check within 10 s"
        );
        pool.check(CheckRequest::default()).await.expect("answer");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!pool.is_down(0, Instant::now()));
    // And takes its turns again.
    let before = back.calls();
    for _ in 0..4 {
        pool.check(CheckRequest::default()).await.expect("answer");
    }
    assert_eq!(back.calls() - before, 2);
}

#[tokio::test]
async fn with_every_endpoint_down_they_are_still_tried_so_a_recovery_is_seen_at_once() {
    let (a, b) = (dead_addr(), dead_addr());
    let pool = pool(&[a, b]);
    let status = pool
        .check(CheckRequest::default())
        .await
        .expect_err("none up");
    assert_eq!(classify(&status), Failure::Connection, "{status:?}");
    assert!(pool.is_down(0, Instant::now()) && pool.is_down(1, Instant::now()));
    let back = Fake::start_on(b, Behaviour::Allow);
    pool.check(CheckRequest::default())
        .await
        .expect("the recovered endpoint serves at once");
    assert_eq!(back.calls(), 1);
}

#[test]
fn the_backoff_doubles_from_100_ms_and_stops_at_2_s() {
    let cases = [
        (1, 100),
        (2, 200),
        (3, 400),
        (5, 1600),
        (6, 2000),
        (40, 2000),
    ];
    for (failures, ms) in cases {
        assert_eq!(
            backoff(failures),
            Duration::from_millis(ms),
            "{failures} failures"
        );
    }
}

#[test]
fn a_pool_needs_an_endpoint() {
    let err = Pool::new(&[], CONNECT, CALL).expect_err("empty");
    assert!(matches!(err, GatewayError::NoEndpoints), "{err}");
}
