//! Liveness (`/healthz`: the process answers), readiness (`/readyz`: the store answers and
//! shutdown has not begun) and `/metrics` (Prometheus' text format; app names and counts
//! only, so like the health routes it needs no token).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::AppState;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(s): State<AppState>) -> (StatusCode, Json<Value>) {
    if s.shutting_down.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "shutting down" })),
        );
    }
    match s.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: store unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "store unreachable" })),
            )
        }
    }
}

/// `GET /metrics`: counters and histograms as recorded, gauges read from the store now.
pub async fn metrics(State(s): State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match s.control.gauges().await {
        Ok(g) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            s.metrics.render(&g),
        )
            .into_response(),
        Err(e) => super::error::ApiError::from(e).into_response(),
    }
}
