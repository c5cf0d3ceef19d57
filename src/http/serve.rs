//! The HTTP server loop with bounds a hostile client cannot get around: at most
//! `max_connections` connections (the rest wait in the kernel's backlog), a connection that
//! has not sent its request headers within `header_timeout` is closed, and request bodies are
//! read under a byte budget shared by all requests (`body_budget`), within `body_timeout`, so
//! held or slow uploads cannot grow memory past the budget. Shutdown closes idle connections
//! and lets requests in flight finish.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::error::ApiError;

/// `http.*` in gantry.yaml.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    /// Bytes of request bodies held in memory at once, over all requests.
    pub body_budget: usize,
    /// The largest body any one request may send.
    pub max_body: usize,
}

/// Accepts connections until `shutdown` fires, then waits for open ones to finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = shutdown.cancelled() => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let _permit = permit;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            let conn = http.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    connections.close();
    connections.wait().await;
}

/// The shared body budget, in KiB permits.
#[derive(Clone)]
pub struct BodyBudget {
    permits: Arc<Semaphore>,
    total: u32,
    limits: Limits,
}

impl BodyBudget {
    pub fn new(limits: Limits) -> Self {
        let total = u32::try_from(limits.body_budget.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .max(1);
        Self {
            permits: Arc::new(Semaphore::new(total as usize)),
            total,
            limits,
        }
    }
}

/// Reads the request body before the handler runs: bounded in size (413), and in time (408)
/// counting the wait for its share of the budget all requests' bodies draw from.
pub async fn buffer_body(State(budget): State<BodyBudget>, req: Request, next: Next) -> Response {
    let limits = budget.limits;
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limits.max_body) {
        return too_large(limits.max_body);
    }
    // A body of unknown length may use the whole per-request allowance.
    let want = declared.unwrap_or(limits.max_body).max(1).div_ceil(1024);
    let want = u32::try_from(want).unwrap_or(u32::MAX).min(budget.total);
    let (parts, body) = req.into_parts();
    let read = async {
        let permit = budget
            .permits
            .clone()
            .acquire_many_owned(want)
            .await
            .expect("the semaphore is never closed");
        let bytes = axum::body::to_bytes(body, limits.max_body).await;
        (permit, bytes)
    };
    let (permit, bytes) = match tokio::time::timeout(limits.body_timeout, read).await {
        Ok((permit, Ok(bytes))) => (permit, bytes),
        Ok((_, Err(_))) => return too_large(limits.max_body),
        Err(_) => {
            return ApiError::Rejected {
                status: StatusCode::REQUEST_TIMEOUT,
                message: format!(
                    "the request body did not arrive within {:?}",
                    limits.body_timeout
                ),
            }
            .into_response()
        }
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    drop(permit);
    response
}

fn too_large(max: usize) -> Response {
    ApiError::Rejected {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: format!("the request body exceeds the length limit of {max} bytes"),
    }
    .into_response()
}
