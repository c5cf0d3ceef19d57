//! The HTTP surface (axum): GitHub webhooks, Discord interactions, EventBridge events, the JSON
//! API, health probes.
//!
//! Handlers verify, persist and answer; they never run deployment work themselves.

mod api;
pub mod discord;
mod error;
mod health;
pub mod hooks;
pub mod serve;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::control::Control;
use crate::secret::Secret;
use crate::store::Store;

/// What every handler may use.
#[derive(Clone)]
pub struct AppState {
    /// Read-only views (deployments, releases, audit) come straight from the store;
    /// everything that changes something goes through `control`.
    pub store: Arc<dyn Store>,
    pub control: Arc<Control>,
    pub webhook_secrets: Arc<Vec<Secret>>,
    pub api_token: Option<Secret>,
    /// Fired when shutdown begins: readiness turns false.
    pub shutting_down: CancellationToken,
    pub eventbridge_key: Option<Secret>,
    pub ecs_signals: Arc<crate::services::signals::EcsSignals>,
    /// Discord's interactions endpoint; `None`: `/hooks/discord` answers 401.
    pub discord: Option<Arc<discord::DiscordHook>>,
    /// What `/metrics` renders, and the webhook intake counts into.
    pub metrics: Arc<dyn crate::ports::Metrics>,
    /// Checks drift on demand (`POST /api/v1/apps/{app}/drift`).
    pub drift: Option<Arc<crate::control::drift::DriftWatcher>>,
}

pub fn router(state: AppState, limits: serve::Limits) -> Router {
    let max_body_bytes = limits.max_body;
    Router::new()
        .route(
            "/hooks/github",
            post(hooks::github).layer(DefaultBodyLimit::max(max_body_bytes)),
        )
        .route("/hooks/eventbridge", post(hooks::eventbridge))
        .route("/hooks/discord", post(discord::interactions))
        .route("/api/v1/apps", get(api::apps))
        .route("/api/v1/apps/{app}/deploy", post(api::deploy))
        .route("/api/v1/apps/{app}/rollback", post(api::rollback))
        .route("/api/v1/apps/{app}/resume", post(api::resume))
        .route("/api/v1/apps/{app}/promote", post(api::promote))
        .route("/api/v1/apps/{app}/hold/release", post(api::release_hold))
        .route("/api/v1/apps/{app}/drift", post(api::check_drift))
        .route(
            "/api/v1/apps/{app}/window/override",
            post(api::override_window),
        )
        .route("/api/v1/apps/{app}/approve", post(api::approve))
        .route("/api/v1/apps/{app}/reject", post(api::reject))
        .route("/api/v1/drift", get(api::drift))
        .route("/api/v1/dora", get(api::dora))
        .route("/api/v1/deployments", get(api::deployments))
        .route("/api/v1/deployments/{id}", get(api::deployment))
        .route("/api/v1/audit", get(api::audit))
        .route("/api/v1/reports", get(api::reports))
        .route("/api/v1/releases", get(api::releases))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .layer(DefaultBodyLimit::max(1024 * 1024))
        .layer(axum::middleware::from_fn_with_state(
            serve::BodyBudget::new(limits),
            serve::buffer_body,
        ))
        .with_state(state)
}
