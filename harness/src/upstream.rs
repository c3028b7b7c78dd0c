//! The LLM upstream: an OpenAI-like mock (wiremock) that records what it received.
//!
//! `POST /openai` answers a chat completion (`object: "chat.completion"`, the request's
//! `model` echoed when the body parses); `GET /openai` answers a small JSON page saying this
//! is the LLM endpoint (where a browser lands after login). Everything else is a 404.
//! The mock owns no policy: assertions on what it received live in the scenario runner.

use std::net::SocketAddr;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// The text every completion answers with.
pub const COMPLETION_TEXT: &str =
    "Upon a function calling its own name, / the stack grows deep until the base case came.";

/// One request the upstream received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path (no query).
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// Headers in arrival order, names lowercase; repeated headers appear once per value.
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy UTF-8).
    pub body: String,
}

impl ReceivedRequest {
    /// Every value of header `name` (case-insensitive).
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// The running mock LLM. Dropping it stops the server.
#[derive(Debug)]
pub struct Upstream {
    server: MockServer,
}

impl Upstream {
    /// Starts on a fresh (not pooled) loopback port.
    pub async fn start() -> Self {
        let server = MockServer::builder().start().await;
        Mock::given(method("POST"))
            .and(path("/openai"))
            .respond_with(chat_completion)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/openai"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({
                    "object": "endpoint",
                    "endpoint": "/openai",
                    "message": "This is the LLM endpoint behind the gateway: POST a chat completion request here.",
                })),
            )
            .mount(&server)
            .await;
        Self { server }
    }

    /// `http://127.0.0.1:N`.
    pub fn url(&self) -> String {
        self.server.uri()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        *self.server.address()
    }

    /// Every request received so far, in order.
    pub async fn received(&self) -> Vec<ReceivedRequest> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(to_received)
            .collect()
    }
}

fn to_received(request: &Request) -> ReceivedRequest {
    ReceivedRequest {
        method: request.method.as_str().to_owned(),
        path: request.url.path().to_owned(),
        query: request.url.query().map(str::to_owned),
        headers: crate::header_pairs(&request.headers),
        body: String::from_utf8_lossy(&request.body).into_owned(),
    }
}

/// The chat-completion answer; deterministic (fixed id and time) so transcripts snapshot.
fn chat_completion(request: &Request) -> ResponseTemplate {
    let model = serde_json::from_slice::<Value>(&request.body)
        .ok()
        .and_then(|v| v.get("model").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| "mock-llm".to_owned());
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-harness-0001",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": COMPLETION_TEXT},
            "finish_reason": "stop",
        }],
        "usage": {"prompt_tokens": 42, "completion_tokens": 20, "total_tokens": 62},
    }))
}

#[cfg(test)]
mod tests;
