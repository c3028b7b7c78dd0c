//! `envoy.service.auth.v3.Authorization/Check`, as agentgateway and Envoy call it.
//!
//! Denied → `DeniedHttpResponse` (status, headers, body), every `set-cookie` with
//! `append: true` (agentgateway treats an unset `append` as overwrite, which would drop all
//! but one cookie). Allowed → `OkHttpResponse` with the identity headers `append: false`
//! (overwrite) and `headers_to_remove`.

use std::sync::Arc;
use std::time::Instant;

use envoy_types::ext_authz::v3::pb::{
    Authorization, CheckRequest as PbCheckRequest, CheckResponse, DeniedHttpResponse,
    HeaderAppendAction, HeaderValue, HeaderValueOption, HttpResponse, HttpStatus, OkHttpResponse,
};
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::pb::google::rpc::Status;
use http::HeaderName;
use tonic::{Request, Response};

use super::observe;
use crate::flow::{CheckRequest, Decision, Flow};
use crate::metrics::Transport;

/// gRPC status codes used in `CheckResponse.status`.
const GRPC_OK: i32 = 0;
const GRPC_PERMISSION_DENIED: i32 = 7;

/// The gRPC service.
#[derive(Debug, Clone)]
pub struct AuthorizationService {
    flow: Arc<Flow>,
}

impl AuthorizationService {
    /// A service deciding with `flow`.
    pub fn new(flow: Arc<Flow>) -> Self {
        Self { flow }
    }
}

#[tonic::async_trait]
impl Authorization for AuthorizationService {
    async fn check(
        &self,
        request: Request<PbCheckRequest>,
    ) -> Result<Response<CheckResponse>, tonic::Status> {
        let started = Instant::now();
        let check = to_check(request.into_inner());
        let (decision, config) = self.flow.decide_labelled(&check).await;
        observe::decided(Transport::Grpc, config, &check, &decision, started);
        Ok(Response::new(to_response(decision)))
    }
}

/// Envoy's attributes to our request. Missing parts become empty strings: the flow then
/// answers with a login or a clear error rather than the transport failing.
pub fn to_check(pb: PbCheckRequest) -> CheckRequest {
    let attributes = pb.attributes.unwrap_or_default();
    let http = attributes.request.and_then(|r| r.http).unwrap_or_default();
    let target = if http.query.is_empty() || http.path.contains('?') {
        http.path.clone()
    } else {
        format!("{}?{}", http.path, http.query)
    };
    let scheme = if http.scheme.is_empty() {
        "http"
    } else {
        http.scheme.as_str()
    };
    let mut check = CheckRequest::new(&http.method, scheme, &http.host, &target);
    // `header_map` (raw values) is used by newer Envoys when `encode_raw_headers` is set.
    let mut headers: Vec<(String, String)> = http
        .headers
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    if let Some(map) = http.header_map {
        headers.extend(map.headers.into_iter().map(|h| {
            let value = if h.raw_value.is_empty() {
                h.value
            } else {
                String::from_utf8_lossy(&h.raw_value).into_owned()
            };
            (h.key.to_ascii_lowercase(), value)
        }));
    }
    headers.sort();
    headers.dedup();
    check.headers = headers
        .into_iter()
        .filter(|(k, _)| !k.starts_with(':'))
        .collect();
    check.context = attributes.context_extensions.into_iter().collect();
    check.metadata = attributes
        .metadata_context
        .map(|m| {
            m.filter_metadata
                .iter()
                .map(|(ns, s)| (ns.clone(), super::pb_struct::to_json(s)))
                .collect()
        })
        .unwrap_or_default();
    // Envoy sends the body (`with_request_body`) as `body`, or as `raw_body` with
    // `pack_as_bytes`.
    let body = if http.raw_body.is_empty() {
        http.body.into_bytes()
    } else {
        http.raw_body
    };
    if !body.is_empty() && body.len() <= crate::flow::check::MAX_CHECK_BODY {
        check.body = Some(body);
    }
    check
}

#[allow(deprecated)] // `append` is deprecated in Envoy but is what agentgateway reads.
fn header(name: &HeaderName, value: String, append: bool) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name.as_str().to_owned(),
            value,
            raw_value: Vec::new(),
        }),
        append: Some(BoolValue { value: append }),
        append_action: if append {
            HeaderAppendAction::AppendIfExistsOrAdd
        } else {
            HeaderAppendAction::OverwriteIfExistsOrAdd
        } as i32,
        keep_empty_value: false,
    }
}

/// Our decision to Envoy's response.
pub fn to_response(decision: Decision) -> CheckResponse {
    match decision {
        Decision::Allow(allow) => CheckResponse {
            status: Some(Status {
                code: GRPC_OK,
                ..Status::default()
            }),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers: allow
                    .upstream_headers
                    .into_iter()
                    .map(|(n, v)| header(&n, v, false))
                    .collect(),
                headers_to_remove: allow.remove_headers,
                response_headers_to_add: allow
                    .response_headers
                    .into_iter()
                    .map(|(n, v)| header(&n, v, true))
                    .collect(),
                ..OkHttpResponse::default()
            })),
            // Envoy files it under the filter's name, `envoy.filters.http.ext_authz`.
            dynamic_metadata: (!allow.dynamic_metadata.is_empty())
                .then(|| super::pb_struct::from_json(&allow.dynamic_metadata)),
        },
        Decision::Deny(deny) => CheckResponse {
            status: Some(Status {
                code: GRPC_PERMISSION_DENIED,
                ..Status::default()
            }),
            http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                status: Some(HttpStatus {
                    code: i32::from(deny.status.as_u16()),
                }),
                headers: deny
                    .headers
                    .into_iter()
                    .map(|(n, v)| {
                        let append = n == http::header::SET_COOKIE;
                        header(&n, v, append)
                    })
                    .collect(),
                body: deny.body,
            })),
            ..CheckResponse::default()
        },
    }
}
