//! The admin listener:
//! - `/healthz`: liveness (the process serves);
//! - `/readyz`: readiness: 200 when every loaded AuthConfig's session store answers a ping
//!   and its discovery document is fetched (or cached), else 503; the JSON body names each
//!   AuthConfig with `redis: ok|error: ...` and `discovery: ok|error: ...`;
//! - `/metrics`: Prometheus text format ([`crate::metrics`]).
//!
//! Keep this listener off the public network: readiness errors name internal hosts.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::flow::{Flow, Route};
use crate::metrics;

/// How long one readiness probe (a ping, a discovery fetch) may take. Kubernetes' default
/// probe timeout is 1 s; a slow answer counts as an error rather than hanging the probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(900);

/// The admin router.
pub fn router(flow: Arc<Flow>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(flow)
        .layer(axum::middleware::map_response(super::nosniff))
}

async fn metrics_text() -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::render(),
    )
        .into_response()
}

/// The `/readyz` body.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Readiness {
    /// `true` when every AuthConfig is ready.
    pub ready: bool,
    /// One entry per AuthConfig, in config order.
    pub configs: Vec<ConfigReadiness>,
}

/// The readiness of one AuthConfig.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConfigReadiness {
    /// `namespace/name`.
    pub config: String,
    /// `ok`, or `error: <reason>` (the session store's ping).
    pub redis: String,
    /// `ok`, or `error: <reason>` (discovery and JWKS fetched or cached).
    pub discovery: String,
}

impl ConfigReadiness {
    fn ready(&self) -> bool {
        self.redis == "ok" && self.discovery == "ok"
    }
}

/// Probes every route concurrently.
pub async fn readiness(flow: &Flow) -> Readiness {
    let configs = futures::future::join_all(flow.routes().iter().map(probe)).await;
    Readiness {
        ready: configs.iter().all(ConfigReadiness::ready),
        configs,
    }
}

async fn probe(route: &Route) -> ConfigReadiness {
    let (redis, discovery) = tokio::join!(
        tokio::time::timeout(PROBE_TIMEOUT, route.store.ping()),
        tokio::time::timeout(PROBE_TIMEOUT, route.provider.discovered()),
    );
    let verdict = |r: Result<Result<(), String>, tokio::time::error::Elapsed>| match r {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => format!("error: no answer within {} ms", PROBE_TIMEOUT.as_millis()),
    };
    ConfigReadiness {
        config: route.config.id.clone(),
        redis: verdict(redis.map(|r| r.map_err(|e| e.to_string()))),
        discovery: verdict(discovery.map(|r| r.map(|_| ()).map_err(|e| e.to_string()))),
    }
}

async fn readyz(State(flow): State<Arc<Flow>>) -> Response {
    let readiness = readiness(&flow).await;
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(readiness)).into_response()
}
