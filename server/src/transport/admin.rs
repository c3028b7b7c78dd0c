//! The admin listener: `/healthz` (the process serves).

use axum::Router;
use axum::routing::get;

/// The admin router.
pub fn router() -> Router {
    Router::new().route("/healthz", get(|| async { "ok\n" }))
}
