//! A gateway simulator that behaves like agentgateway (v1.3.1, an `extAuthz` policy with its
//! defaults) in front of extauth; checked against the real one, request by request, in
//! `sim/tests/agentgateway.rs`.
//!
//! For every request it builds an `envoy.service.auth.v3.CheckRequest` (method, lowercase
//! headers with repeated values joined by `,` and the pseudo-headers, but no `host` header:
//! `:authority` and `host` carry it; path with query, scheme `http`, protocol; the body up
//! to [`MAX_CHECK_BODY`], as agentgateway with the harness's `includeRequestBody`), calls `Authorization/Check` over gRPC, and
//! then:
//! - denied (`DeniedResponse`/`ErrorResponse`) → the denied status, headers and body go to
//!   the client (403 when the status is unset);
//! - allowed → the request goes to the upstream, with the client's `Host`, minus
//!   `headers_to_remove`, plus `headers`, and the upstream's answer comes back plus
//!   `response_headers_to_add`;
//! - a non-OK status without a denied response, ext_authz unreachable, timing out or
//!   failing → `403 external authorization failed` (`text/plain`), agentgateway's
//!   `failureMode: deny` default.
//!
//! With several ext_authz endpoints (extauth replicas), [`balance`] picks one per check:
//! round robin, one retry on another endpoint when the connection fails before an answer,
//! and a failed endpoint skipped for a bounded backoff.
//!
//! The `dynamic_metadata` of the last [`METADATA_KEPT`] allowed checks is kept, as JSON, for
//! the scenario transcript ([`RunningGateway::dynamic_metadata_since`]; a count of all of them
//! marks where a step starts, and a long load run does not grow): Envoy would hand it to later filters
//! under `envoy.filters.http.ext_authz`; the simulator has none, so it shows it instead.
//!
//! Header options follow the `append` flag when it is set. When it is unset, the default is
//! agentgateway's (overwrite), which is stricter than Envoy's (`append_action`): a server
//! that forgets `append: true` on its second `Set-Cookie` loses the first here, as it would
//! behind agentgateway. [`AppendSemantics::Envoy`] switches to Envoy's reading.
//! This module owns no auth logic: it only transports decisions.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{
    Address, HeaderValueOption, SocketAddress, address, socket_address,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Peer, Request as AttrRequest,
};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use url::Url;

pub mod balance;

/// The upstream client: hyper's, pooled.
type UpstreamClient = Client<HttpConnector, Body>;
/// Time allowed for the upstream's answer, body included.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// Bodies up to this size are sent to ext_authz, as agentgateway does with the harness's
/// `includeRequestBody: {maxRequestBytes: 8192, allowPartialMessage: true}` (Envoy's
/// `with_request_body` default size): a back-channel logout token is a form POST.
pub const MAX_CHECK_BODY: usize = 8 * 1024;
/// agentgateway's body when ext_authz gives no usable decision.
pub const AUTHORIZATION_FAILED: &str = "external authorization failed";
/// Larger request bodies are refused with 413.
pub const MAX_REQUEST_BODY: usize = 10 * 1024 * 1024;
/// Time allowed for one `Check` call.
const CHECK_TIMEOUT: Duration = Duration::from_secs(15);
/// Time allowed for connecting to ext_authz.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// gRPC code `OK`.
const GRPC_OK: i32 = 0;

/// Hop-by-hop headers a proxy never forwards (RFC 9110 §7.6.1), plus the ones it recomputes.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "content-length",
];

/// How a header option with no `append` flag is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AppendSemantics {
    /// agentgateway: no `append` means overwrite.
    #[default]
    Agentgateway,
    /// Envoy: no `append` means `append_action` (whose zero value appends).
    Envoy,
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The listen address could not be bound.
    #[error("gateway simulator cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The ext_authz address does not make a gRPC endpoint.
    #[error("gateway simulator: bad ext_authz endpoint {addr}: {source}")]
    Endpoint {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: tonic::transport::Error,
    },
    /// No ext_authz endpoint was given.
    #[error("gateway simulator: no ext_authz endpoint")]
    NoEndpoints,
}

/// Builder-free entry point: see [`GatewaySim::start`].
#[derive(Debug)]
pub struct GatewaySim;

impl GatewaySim {
    /// Binds `listen` and serves, calling ext_authz at `extauth_grpc` and forwarding allowed
    /// requests to `upstream_base`.
    pub async fn start(
        listen: SocketAddr,
        extauth_grpc: SocketAddr,
        upstream_base: Url,
    ) -> Result<RunningGateway, GatewayError> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| GatewayError::Bind {
                addr: listen,
                source,
            })?;
        Self::serve(
            listener,
            extauth_grpc,
            upstream_base,
            AppendSemantics::default(),
        )
    }

    /// Serves on an already bound listener (the stack binds port 80 itself).
    pub fn serve(
        listener: TcpListener,
        extauth_grpc: SocketAddr,
        upstream_base: Url,
        semantics: AppendSemantics,
    ) -> Result<RunningGateway, GatewayError> {
        Self::serve_balanced(listener, &[extauth_grpc], upstream_base, semantics)
    }

    /// [`GatewaySim::serve`] over several ext_authz endpoints (see [`balance`]).
    pub fn serve_balanced(
        listener: TcpListener,
        extauth_grpc: &[SocketAddr],
        upstream_base: Url,
        semantics: AppendSemantics,
    ) -> Result<RunningGateway, GatewayError> {
        let addr = listener.local_addr().map_err(|source| GatewayError::Bind {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })?;
        let pool = balance::Pool::new(extauth_grpc, CONNECT_TIMEOUT, CHECK_TIMEOUT)?;
        // hyper's pooled client (keep-alive, `TCP_NODELAY`), no redirects followed: what a
        // proxy needs and no more (reqwest's URL parsing and extra layers cost more than the
        // hop to a trivial upstream).
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        let metadata = MetadataLog::default();
        let state = Sim {
            authz: std::sync::Arc::new(pool),
            upstream_base,
            client,
            local: addr,
            semantics,
            metadata: metadata.clone(),
        };
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state)
            .into_make_service_with_connect_info::<SocketAddr>();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let stopped = async move {
                let _ = rx.await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::error!(error = %e, "gateway simulator stopped with an error");
            }
        });
        Ok(RunningGateway {
            addr,
            stop: Some(tx),
            task: Some(task),
            metadata,
        })
    }
}

/// A running simulator; dropping it stops it.
#[derive(Debug)]
pub struct RunningGateway {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    metadata: MetadataLog,
}

/// How many allowed checks' `dynamic_metadata` the simulator keeps (the latest).
pub const METADATA_KEPT: usize = 4096;

/// The `dynamic_metadata` of allowed checks, in order, as JSON: how many there were, and the
/// latest [`METADATA_KEPT`].
#[derive(Debug, Default)]
struct Metadata {
    total: usize,
    kept: std::collections::VecDeque<serde_json::Value>,
}

impl Metadata {
    fn push(&mut self, json: serde_json::Value) {
        self.total += 1;
        if self.kept.len() == METADATA_KEPT {
            self.kept.pop_front();
        }
        self.kept.push_back(json);
    }

    fn since(&self, count: usize) -> Vec<serde_json::Value> {
        let first_kept = self.total - self.kept.len();
        self.kept
            .iter()
            .skip(count.saturating_sub(first_kept))
            .cloned()
            .collect()
    }
}

type MetadataLog = std::sync::Arc<std::sync::Mutex<Metadata>>;

fn metadata_of(log: &MetadataLog) -> std::sync::MutexGuard<'_, Metadata> {
    log.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl RunningGateway {
    /// How many allowed checks carried `dynamic_metadata` so far.
    pub fn dynamic_metadata_count(&self) -> usize {
        metadata_of(&self.metadata).total
    }

    /// The `dynamic_metadata` of the allowed checks after the first `count`, in order (of
    /// those still kept: the latest [`METADATA_KEPT`]).
    pub fn dynamic_metadata_since(&self, count: usize) -> Vec<serde_json::Value> {
        metadata_of(&self.metadata).since(count)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` with no trailing slash; the port is left out when it is 80, as a browser
    /// and the `Host` header would write it.
    pub fn url(&self) -> String {
        if self.addr.port() == 80 {
            format!("http://{}", self.addr.ip())
        } else {
            format!("http://{}", self.addr)
        }
    }

    /// Stops accepting, lets in-flight requests finish, and waits.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        // In-flight requests get a few seconds; a client holding its connection open
        // cannot keep the gateway alive.
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[derive(Clone)]
struct Sim {
    authz: std::sync::Arc<balance::Pool>,
    upstream_base: Url,
    client: UpstreamClient,
    local: SocketAddr,
    semantics: AppendSemantics,
    metadata: MetadataLog,
}

async fn handle(
    State(sim): State<Sim>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_REQUEST_BODY).await {
        Ok(body) => body,
        Err(e) => {
            tracing::warn!(error = %e, "request body refused");
            return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
        }
    };
    let check = check_request(&parts, &body, peer, sim.local);
    let response = match sim.authz.check(check).await {
        Ok(response) => response,
        Err(status) => return rpc_failure(&status),
    };
    if let Some(metadata) = &response.dynamic_metadata {
        let json = extauth::transport::pb_struct::to_json(metadata);
        metadata_of(&sim.metadata).push(json);
    }
    match verdict(response) {
        Verdict::Deny(denied) => denied_response(denied, sim.semantics),
        Verdict::Allow(ok) => forward(&sim, parts, body, ok).await,
        Verdict::Failed => authorization_failed(),
    }
}

/// What the gateway does with a `CheckResponse`.
#[derive(Debug)]
enum Verdict {
    Allow(OkHttpResponse),
    Deny(DeniedHttpResponse),
    /// No decision agentgateway can use: its `failureMode` (deny) answers.
    Failed,
}

/// Envoy's reading: the status decides, the http_response details it.
fn verdict(response: CheckResponse) -> Verdict {
    let code = response.status.as_ref().map_or(GRPC_OK, |s| s.code);
    match (code == GRPC_OK, response.http_response) {
        (true, Some(HttpResponse::OkResponse(ok))) => Verdict::Allow(ok),
        (true, None) => Verdict::Allow(OkHttpResponse::default()),
        (_, Some(HttpResponse::DeniedResponse(denied) | HttpResponse::ErrorResponse(denied))) => {
            Verdict::Deny(denied)
        }
        (false, Some(HttpResponse::OkResponse(_)) | None) => {
            let message = response.status.map(|s| s.message).unwrap_or_default();
            tracing::warn!(grpc_code = code, %message, "ext_authz denied with no http response: 403");
            Verdict::Failed
        }
    }
}

/// The `CheckRequest` Envoy would send for this request.
fn check_request(
    parts: &http::request::Parts,
    body: &[u8],
    peer: SocketAddr,
    local: SocketAddr,
) -> CheckRequest {
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_else(|| local.to_string());
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    // agentgateway passes the authority as `:authority` only.
    for (name, value) in parts
        .headers
        .iter()
        .filter(|(n, _)| *n != http::header::HOST)
    {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_ascii_lowercase())
            .and_modify(|joined| {
                joined.push(',');
                joined.push_str(&value);
            })
            .or_insert(value);
    }
    // Envoy puts the pseudo-headers in the map too.
    headers.insert(":authority".into(), host.clone());
    headers.insert(":method".into(), parts.method.as_str().to_owned());
    headers.insert(":path".into(), path.clone());
    headers.insert(":scheme".into(), "http".into());
    let protocol = match parts.version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    };
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(peer_of(peer)),
            destination: Some(peer_of(local)),
            request: Some(AttrRequest {
                time: None,
                http: Some(HttpRequest {
                    method: parts.method.as_str().to_owned(),
                    headers: headers.into_iter().collect(),
                    path,
                    host,
                    scheme: "http".into(),
                    protocol: protocol.into(),
                    // agentgateway sends the body with `includeRequestBody` (the harness
                    // sets it), cut to `maxRequestBytes` (`allowPartialMessage`).
                    body: String::from_utf8_lossy(&body[..body.len().min(MAX_CHECK_BODY)])
                        .into_owned(),
                    size: i64::try_from(body.len()).unwrap_or(i64::MAX),
                    ..HttpRequest::default()
                }),
            }),
            ..AttributeContext::default()
        }),
    }
}

fn peer_of(addr: SocketAddr) -> Peer {
    Peer {
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: addr.ip().to_string(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(
                    addr.port(),
                ))),
                ..SocketAddress::default()
            })),
        }),
        ..Peer::default()
    }
}

/// What one header option does to a header map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Append,
    AddIfAbsent,
    Overwrite,
    OverwriteIfExists,
}

#[allow(deprecated)] // `append` is deprecated in Envoy but is what agentgateway reads.
fn action_of(option: &HeaderValueOption, semantics: AppendSemantics) -> Action {
    match (option.append.as_ref(), semantics) {
        (Some(flag), _) if flag.value => Action::Append,
        (Some(_), _) | (None, AppendSemantics::Agentgateway) => Action::Overwrite,
        (None, AppendSemantics::Envoy) => {
            match HeaderAppendAction::try_from(option.append_action) {
                Ok(HeaderAppendAction::AppendIfExistsOrAdd) | Err(_) => Action::Append,
                Ok(HeaderAppendAction::AddIfAbsent) => Action::AddIfAbsent,
                Ok(HeaderAppendAction::OverwriteIfExistsOrAdd) => Action::Overwrite,
                Ok(HeaderAppendAction::OverwriteIfExists) => Action::OverwriteIfExists,
            }
        }
    }
}

/// Applies ext_authz header options to `map`; invalid names or values are logged and skipped.
fn apply_options(map: &mut HeaderMap, options: &[HeaderValueOption], semantics: AppendSemantics) {
    for option in options {
        let Some(header) = option.header.as_ref() else {
            continue;
        };
        let raw = if header.raw_value.is_empty() {
            header.value.as_bytes()
        } else {
            header.raw_value.as_slice()
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(header.key.to_ascii_lowercase().as_bytes()),
            HeaderValue::from_bytes(raw),
        ) else {
            tracing::warn!(key = %header.key, "ext_authz sent an invalid header; skipped");
            continue;
        };
        match action_of(option, semantics) {
            Action::Append => {
                map.append(name, value);
            }
            Action::AddIfAbsent => {
                if !map.contains_key(&name) {
                    map.insert(name, value);
                }
            }
            Action::Overwrite => {
                map.insert(name, value);
            }
            Action::OverwriteIfExists => {
                if map.contains_key(&name) {
                    map.insert(name, value);
                }
            }
        }
    }
}

fn denied_response(denied: DeniedHttpResponse, semantics: AppendSemantics) -> Response {
    let status = denied
        .status
        .and_then(|s| u16::try_from(s.code).ok())
        .filter(|code| *code != 0)
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(StatusCode::FORBIDDEN);
    let mut headers = HeaderMap::new();
    apply_options(&mut headers, &denied.headers, semantics);
    let mut response = Response::new(Body::from(denied.body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

async fn forward(
    sim: &Sim,
    parts: http::request::Parts,
    body: bytes::Bytes,
    ok: OkHttpResponse,
) -> Response {
    let mut headers = parts.headers;
    let host = headers.get(http::header::HOST).cloned();
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
    // agentgateway keeps the client's `Host` on the way to a `host:` backend.
    if let Some(host) = host {
        headers.insert(http::header::HOST, host);
    }
    for name in &ok.headers_to_remove {
        if let Ok(name) = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) {
            headers.remove(name);
        }
    }
    apply_options(&mut headers, &ok.headers, sim.semantics);
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let target = format!(
        "{}{}",
        sim.upstream_base.as_str().trim_end_matches('/'),
        path
    );
    let mut request = match http::Request::builder()
        .method(parts.method)
        .uri(&target)
        .body(Body::from(body))
    {
        Ok(request) => request,
        Err(e) => {
            tracing::warn!(error = %e, %target, "upstream URL refused");
            return plain(StatusCode::BAD_GATEWAY, "upstream URL refused\n");
        }
    };
    *request.headers_mut() = headers;
    // Reqwest's behaviour, kept: no answer (or none in time) is a 503, a body that fails
    // half-way a 502.
    let exchange = async {
        let response = sim
            .client
            .request(request)
            .await
            .map_err(|e| Upstream::Unreachable(e.to_string()))?;
        let (head, body) = response.into_parts();
        let bytes = body
            .collect()
            .await
            .map_err(|e| Upstream::Body(e.to_string()))?
            .to_bytes();
        Ok::<_, Upstream>((head, bytes))
    };
    let answer = tokio::time::timeout(UPSTREAM_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(Upstream::Unreachable(format!(
                "no answer within {UPSTREAM_TIMEOUT:?}"
            )))
        });
    let (head, bytes) = match answer {
        Ok(answer) => answer,
        Err(Upstream::Unreachable(e)) => {
            tracing::warn!(error = %e, %target, "upstream unreachable");
            return plain(StatusCode::SERVICE_UNAVAILABLE, "upstream unavailable\n");
        }
        Err(Upstream::Body(e)) => {
            tracing::warn!(error = %e, "upstream body failed");
            return plain(StatusCode::BAD_GATEWAY, "upstream body failed\n");
        }
    };
    let status = head.status;
    let mut response_headers = head.headers;
    for name in HOP_BY_HOP {
        response_headers.remove(*name);
    }
    apply_options(
        &mut response_headers,
        &ok.response_headers_to_add,
        sim.semantics,
    );
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    *response.headers_mut() = response_headers;
    response
}

/// How the hop to the upstream failed.
enum Upstream {
    /// No answer: refused, reset, or too slow.
    Unreachable(String),
    /// The answer's body failed half-way.
    Body(String),
}

fn rpc_failure(status: &tonic::Status) -> Response {
    tracing::warn!(code = ?status.code(), message = %status.message(), "ext_authz call failed: 403 (agentgateway's failureMode: deny)");
    authorization_failed()
}

/// agentgateway's answer when ext_authz gives no usable decision (unreachable, timed out,
/// an RPC error, a non-OK status without a denied response).
fn authorization_failed() -> Response {
    let mut response = Response::new(Body::from(AUTHORIZATION_FAILED));
    *response.status_mut() = StatusCode::FORBIDDEN;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    response
}

fn plain(status: StatusCode, body: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    if !body.is_empty() {
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    response
}

#[cfg(test)]
mod tests;
