//! `--log-format json` as the binary configures it ([`extauth::cli::log_subscriber`]),
//! captured in-process: one JSON line per decision, and no secret anywhere in the log.
//!
//! The subscriber is process-wide (the server logs from its own tasks), so this file holds a
//! single test.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use extauth::cli::{LogFormat, log_subscriber};
use extauth::server::OpsOptions;
use support::*;

/// A `MakeWriter` appending to a shared buffer.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_have_one_line_per_decision_and_no_secrets() {
    let buffer = Buffer::default();
    let filter = tracing_subscriber::EnvFilter::new("debug");
    tracing::subscriber::set_global_default(log_subscriber(
        LogFormat::Json,
        filter,
        buffer.clone(),
    ))
    .expect("the only subscriber of this test binary");

    let stack = stack(Store::Redis, OpsOptions::default()).await;
    let (cookie, callback) = forward_auth_login(&stack).await;
    let params: std::collections::HashMap<_, _> = callback.query_pairs().into_owned().collect();
    let (code, state) = (params["code"].clone(), params["state"].clone());
    let session_id = cookie
        .strip_prefix(&format!("{COOKIE}="))
        .unwrap()
        .to_owned();

    let bearer = "Bearer an-access-token-that-must-not-be-logged";
    let ok = forward_auth(
        &stack,
        "POST",
        "/openai?api_key=query-secret",
        &[("cookie", cookie.as_str()), ("authorization", bearer)],
    )
    .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let id_token = ok.header("jwt").unwrap().to_owned();
    // A replayed callback: the IdP refuses the spent code and the login starts again once
    // (a 302); that is logged too.
    let replay = forward_auth(&stack, "GET", &path_and_query(&callback), &[]).await;
    assert_eq!(replay.status, 302, "{replay:?}");
    stack.server.shutdown().await;

    let log = buffer.text();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let decisions: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["target"] == "extauth::decision")
        .collect();
    assert_eq!(decisions.len(), 4, "login, callback, allow, replay:\n{log}");
    let allow = decisions[2];
    assert_eq!(allow["message"], "decision");
    assert_eq!(allow["method"], "POST");
    assert_eq!(allow["host"], APP_HOST);
    assert_eq!(allow["path"], "/openai", "the path without its query");
    assert_eq!(allow["outcome"], "allow");
    assert_eq!(allow["status"], 200);
    assert_eq!(allow["config"], CONFIG_ID);
    assert_eq!(allow["transport"], "http");
    assert!(allow["latency_ms"].as_f64().is_some(), "{allow}");
    assert_eq!(decisions[1]["outcome"], "redirect");
    assert_eq!(decisions[1]["path"], "/openai");
    assert_eq!(decisions[3]["outcome"], "redirect");
    assert!(
        lines.iter().any(|l| l["level"] == "WARN"
            && l["fields"]["message"]
                .as_str()
                .or(l["message"].as_str())
                .is_some_and(|m| m.contains("starting the login again once"))),
        "the restarted login is logged as a warning:\n{log}"
    );

    let secrets = [
        ("session cookie value", session_id.as_str()),
        ("authorization code", code.as_str()),
        ("state", state.as_str()),
        ("ID token", id_token.as_str()),
        (
            "Authorization header",
            "an-access-token-that-must-not-be-logged",
        ),
        ("query", "query-secret"),
    ];
    for (what, secret) in secrets {
        assert!(
            !log.contains(secret),
            "the {what} appears in the log:\n{log}"
        );
    }
    // Parts of a token are as bad as the whole: no JWT segment either.
    for segment in id_token.split('.') {
        assert!(
            !log.contains(segment),
            "an ID token segment appears in the log"
        );
    }
}
