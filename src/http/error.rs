//! The HTTP error type: a status and a message safe to show (no secrets, no internals).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unsupported(String),
    /// This Gantry cannot serve the request as configured.
    #[error("{0}")]
    Unavailable(String),
    /// A request axum's extractors rejected (too large, malformed), with their status.
    #[error("{message}")]
    Rejected { status: StatusCode, message: String },
    #[error("internal error")]
    Store(#[from] crate::store::StoreError),
}

impl From<crate::control::ControlError> for ApiError {
    fn from(e: crate::control::ControlError) -> Self {
        use crate::control::ControlError;
        match e {
            ControlError::NotFound(m) => Self::NotFound(m),
            ControlError::Invalid(m) => Self::BadRequest(m),
            ControlError::Unavailable(m) => Self::Unavailable(m),
            ControlError::Forbidden(m) => Self::Forbidden(m),
            ControlError::Store(e) => Self::Store(e),
        }
    }
}

impl ApiError {
    /// Keeps an extractor rejection's status (413, 400, 415, 422) with a JSON body.
    pub fn from_rejection(r: impl IntoResponse + std::fmt::Display) -> Self {
        let message = r.to_string();
        let status = r.into_response().status();
        Self::Rejected { status, message }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Rejected { status, .. } => *status,
            Self::Store(e) => {
                tracing::error!(error = %e, "store error while serving a request");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}
