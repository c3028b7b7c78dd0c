use std::sync::{Arc, Mutex};

use envoy_types::pb::envoy::config::core::v3::HeaderValue as PbHeaderValue;
use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::pb::google::rpc::Status;

use super::*;
use crate::upstream::Upstream;

mod agentgateway;

/// A fake ext_authz server: answers by path, remembers every `CheckRequest`.
#[derive(Clone, Default)]
struct FakeAuthz {
    seen: Arc<Mutex<Vec<CheckRequest>>>,
}

#[allow(deprecated)]
fn option(key: &str, value: &str, append: Option<bool>) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(PbHeaderValue {
            key: key.into(),
            value: value.into(),
            raw_value: Vec::new(),
        }),
        append: append.map(|value| BoolValue { value }),
        ..HeaderValueOption::default()
    }
}

fn status(code: i32) -> Option<Status> {
    Some(Status {
        code,
        ..Status::default()
    })
}

#[tonic::async_trait]
impl Authorization for FakeAuthz {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let request = request.into_inner();
        let path = request
            .attributes
            .as_ref()
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref())
            .map(|h| h.path.clone())
            .unwrap_or_default();
        self.seen.lock().expect("lock").push(request);
        let response = if path.starts_with("/deny") {
            CheckResponse {
                status: status(7),
                http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                    status: Some(HttpStatus { code: 302 }),
                    headers: vec![
                        option("location", "http://idp.example/auth", Some(false)),
                        option("set-cookie", "a=1; Path=/", Some(true)),
                        option("set-cookie", "b=2; Path=/", Some(true)),
                    ],
                    body: "redirecting".into(),
                })),
                ..CheckResponse::default()
            }
        } else if path.starts_with("/unset-append") {
            CheckResponse {
                status: status(7),
                http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                    status: None,
                    headers: vec![
                        option("set-cookie", "a=1", None),
                        option("set-cookie", "b=2", None),
                    ],
                    body: String::new(),
                })),
                ..CheckResponse::default()
            }
        } else if path.starts_with("/status-only") {
            CheckResponse {
                status: status(7),
                ..CheckResponse::default()
            }
        } else {
            CheckResponse {
                status: status(0),
                http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                    headers: vec![
                        option("jwt", "minted.by.authz", Some(false)),
                        option("x-added", "one", Some(true)),
                    ],
                    headers_to_remove: vec!["X-Remove-Me".into()],
                    response_headers_to_add: vec![option("x-authz", "yes", Some(true))],
                    ..OkHttpResponse::default()
                })),
                ..CheckResponse::default()
            }
        };
        Ok(tonic::Response::new(response))
    }
}

struct Fixture {
    gateway: RunningGateway,
    upstream: Upstream,
    authz: FakeAuthz,
    client: reqwest::Client,
}

async fn fixture() -> Fixture {
    let authz = FakeAuthz::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let grpc = listener.local_addr().expect("addr");
    let service = AuthorizationServer::new(authz.clone());
    tokio::spawn(async move {
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming)
            .await;
    });
    let upstream = Upstream::start().await;
    let gateway = GatewaySim::start(
        "127.0.0.1:0".parse().expect("addr"),
        grpc,
        Url::parse(&upstream.url()).expect("url"),
    )
    .await
    .expect("gateway starts");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    Fixture {
        gateway,
        upstream,
        authz,
        client,
    }
}

#[tokio::test]
async fn denied_response_reaches_the_client_with_every_set_cookie() {
    let f = fixture().await;
    let response = f
        .client
        .post(format!("{}/deny?x=1", f.gateway.url()))
        .body("{}")
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["location"], "http://idp.example/auth");
    let cookies: Vec<_> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect();
    assert_eq!(cookies, vec!["a=1; Path=/", "b=2; Path=/"]);
    assert_eq!(response.text().await.expect("body"), "redirecting");
    assert!(
        f.upstream.received().await.is_empty(),
        "a denied request reached the upstream"
    );
}

#[tokio::test]
async fn unset_append_overwrites_like_agentgateway_and_unset_status_is_403() {
    let f = fixture().await;
    let response = f
        .client
        .get(format!("{}/unset-append", f.gateway.url()))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(response.status(), 403);
    let cookies: Vec<_> = response.headers().get_all("set-cookie").iter().collect();
    assert_eq!(cookies, vec!["b=2"]);
}

#[tokio::test]
async fn non_ok_status_without_http_response_is_403() {
    let f = fixture().await;
    let response = f
        .client
        .get(format!("{}/status-only", f.gateway.url()))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn allowed_request_reaches_upstream_with_headers_set_and_removed() {
    let f = fixture().await;
    let response = f
        .client
        .post(format!("{}/openai?debug=1", f.gateway.url()))
        .header("content-type", "application/json")
        .header("jwt", "forged-by-client")
        .header("x-remove-me", "secret")
        .header("x-added", "zero")
        .body(r#"{"model":"m1"}"#)
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-authz"], "yes");
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["model"], "m1");

    let received = f.upstream.received().await;
    assert_eq!(received.len(), 1);
    let seen = &received[0];
    assert_eq!(seen.path, "/openai");
    assert_eq!(seen.query.as_deref(), Some("debug=1"));
    assert_eq!(seen.header_values("jwt"), vec!["minted.by.authz"]);
    assert!(seen.header_values("x-remove-me").is_empty());
    assert_eq!(seen.header_values("x-added"), vec!["zero", "one"]);
    assert_eq!(
        seen.header_values("host"),
        vec![f.gateway.addr().to_string()]
    );
    assert_eq!(seen.body, r#"{"model":"m1"}"#);
}

#[tokio::test]
async fn check_request_carries_method_path_authority_lowercase_joined_headers_and_the_body() {
    let f = fixture().await;
    f.client
        .post(format!("{}/openai?q=1", f.gateway.url()))
        .header("X-Multi", "a")
        .header("x-multi", "b")
        .header("Content-Type", "application/json")
        .body("hello")
        .send()
        .await
        .expect("gateway answers");
    let seen = f.authz.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1);
    let http = seen[0]
        .attributes
        .as_ref()
        .and_then(|a| a.request.as_ref())
        .and_then(|r| r.http.clone())
        .expect("http attributes");
    assert_eq!(http.method, "POST");
    assert_eq!(http.path, "/openai?q=1");
    assert_eq!(http.host, f.gateway.addr().to_string());
    assert_eq!(http.scheme, "http");
    assert_eq!(http.protocol, "HTTP/1.1");
    // As agentgateway with the harness's `includeRequestBody`: the body and its size.
    assert_eq!(http.body, "hello");
    assert_eq!(http.size, 5);
    assert_eq!(http.headers["x-multi"], "a,b");
    assert!(!http.headers.contains_key("host"), "{:?}", http.headers);
    assert_eq!(http.headers["content-type"], "application/json");
    assert_eq!(http.headers[":authority"], f.gateway.addr().to_string());
}

#[tokio::test]
async fn unreachable_ext_authz_is_403_external_authorization_failed() {
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let upstream = Upstream::start().await;
    let gateway = GatewaySim::start(
        "127.0.0.1:0".parse().expect("addr"),
        dead,
        Url::parse(&upstream.url()).expect("url"),
    )
    .await
    .expect("gateway starts");
    let response = reqwest::get(format!("{}/openai", gateway.url()))
        .await
        .expect("gateway answers");
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.text().await.expect("body"),
        "external authorization failed"
    );
    gateway.shutdown().await;
}

#[test]
fn envoy_semantics_read_append_action_when_append_is_unset() {
    let mut opt = option("x", "1", None);
    opt.append_action = HeaderAppendAction::AddIfAbsent as i32;
    assert_eq!(action_of(&opt, AppendSemantics::Envoy), Action::AddIfAbsent);
    assert_eq!(
        action_of(&opt, AppendSemantics::Agentgateway),
        Action::Overwrite
    );
    let explicit = option("x", "1", Some(true));
    assert_eq!(
        action_of(&explicit, AppendSemantics::Agentgateway),
        Action::Append
    );
}

/// The metadata log keeps the latest records and a count of all, so that a step's records
/// are those after the count at its start, and a long load run does not grow.
#[test]
fn the_metadata_log_keeps_the_latest_records_and_counts_all() {
    let mut log = super::Metadata::default();
    for i in 0..super::METADATA_KEPT + 10 {
        log.push(serde_json::json!(i));
    }
    assert_eq!(log.total, super::METADATA_KEPT + 10);
    assert_eq!(log.kept.len(), super::METADATA_KEPT);
    let all = log.since(0);
    assert_eq!(all.len(), super::METADATA_KEPT);
    assert_eq!(all[0], serde_json::json!(10));
    let mark = log.total;
    log.push(serde_json::json!("a"));
    log.push(serde_json::json!("b"));
    assert_eq!(
        log.since(mark),
        [serde_json::json!("a"), serde_json::json!("b")]
    );
    assert!(log.since(log.total).is_empty());
}
