//! The ports a site sync needs: an object store and a CDN. Adapters implement them for S3
//! and CloudFront; keys here are full object keys.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{ObjectHeaders, RemoteObject};

#[derive(Debug, thiserror::Error)]
pub enum ObjectStoreError {
    #[error("{operation} {key}: {message}")]
    Request {
        operation: &'static str,
        key: String,
        message: String,
        /// Throttling (`SlowDown`), 5xx, a dropped connection: it may succeed later.
        transient: bool,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

impl ObjectStoreError {
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Request {
                transient: true,
                ..
            }
        )
    }
}

impl CdnError {
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Request {
                transient: true,
                ..
            }
        )
    }
}

#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Every object under `prefix` (full keys), however many pages that takes.
    async fn list(&self, bucket: &str, prefix: &str)
        -> Result<Vec<RemoteObject>, ObjectStoreError>;
    /// An object's body, or `None` when it does not exist.
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, ObjectStoreError>;
    /// Uploads a file (multipart above the adapter's threshold); returns the new ETag.
    async fn put_file(
        &self,
        bucket: &str,
        key: &str,
        path: &Path,
        size: u64,
        headers: &ObjectHeaders,
    ) -> Result<String, ObjectStoreError>;
    async fn put_bytes(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        headers: &ObjectHeaders,
    ) -> Result<String, ObjectStoreError>;
    /// Server-side copy of `source` to `dest` with `headers` (`source == dest` replaces an
    /// object's headers without re-uploading its body); returns the ETag.
    async fn copy(
        &self,
        bucket: &str,
        source: &str,
        dest: &str,
        headers: &ObjectHeaders,
    ) -> Result<String, ObjectStoreError>;
    /// Server-side copy of `source` in bucket `from` to `dest` in `bucket` (another site
    /// target's object, promoted), with `headers`; returns the ETag.
    async fn copy_from(
        &self,
        from: &str,
        source: &str,
        bucket: &str,
        dest: &str,
        headers: &ObjectHeaders,
    ) -> Result<String, ObjectStoreError>;
    async fn delete(&self, bucket: &str, keys: &[String]) -> Result<(), ObjectStoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum CdnError {
    #[error("CloudFront {operation}: {message}")]
    Request {
        operation: &'static str,
        message: String,
        transient: bool,
    },
    #[error("invalidation {id} did not complete within {timeout:?}")]
    Timeout { id: String, timeout: Duration },
}

/// What ensuring the edge function did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeOutcome {
    Unchanged,
    Created,
    Updated,
}

#[async_trait]
pub trait Cdn: Send + Sync {
    /// Creates an invalidation for `paths`; returns its id. `reference` (CloudFront's
    /// CallerReference) names it: asked again with the same reference and paths (a retried
    /// step), CloudFront returns the invalidation it made instead of making another.
    async fn invalidate(
        &self,
        distribution: &str,
        paths: &[String],
        reference: &str,
    ) -> Result<String, CdnError>;
    async fn wait_invalidation(
        &self,
        distribution: &str,
        id: &str,
        timeout: Duration,
    ) -> Result<(), CdnError>;
    /// Makes the named viewer-request function hold `code`, published, and associated with
    /// the distribution's default behaviour. Changes nothing when all of that already holds.
    async fn ensure_edge_function(
        &self,
        distribution: &str,
        name: &str,
        code: &str,
    ) -> Result<EdgeOutcome, CdnError>;
}
