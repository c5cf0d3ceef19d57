//! The port `gantry verify` (and a deployment's first step) reads the live account through:
//! one read-only lookup per resource a manifest names. Metadata only: a secret or parameter is
//! described, never read.

use async_trait::async_trait;

pub use crate::domain::inventory::{Fact, Lookup, TargetGroupFacts};

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The credentials may not look (`AccessDenied`): the check is skipped, with a warning.
    #[error("not allowed to look: {0}")]
    Denied(String),
    /// Throttling, 5xx, a dropped connection: worth asking again.
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Failed(String),
}

#[async_trait]
pub trait Inventory: Send + Sync {
    async fn look(&self, lookup: &Lookup) -> Result<Fact, LookupError>;
}
