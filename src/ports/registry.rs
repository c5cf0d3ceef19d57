//! What image builds need from the outside: a registry (the Distribution API, with the
//! credentials for it). `adapters::registry::HttpRegistry` implements [`Registry`].

use async_trait::async_trait;

use crate::domain::ImageRef;
use crate::secret::Secret;

/// A manifest as the registry serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry {registry}: {message}")]
    Http {
        registry: String,
        message: String,
        /// A dropped connection, a timeout, a 5xx or 429: worth trying again.
        transient: bool,
    },
    #[error(
        "registry {registry}: authentication failed ({message}); check the credentials for it"
    )]
    Auth { registry: String, message: String },
    #[error("registry {registry}: blob {digest} does not match its digest")]
    Corrupt { registry: String, digest: String },
    #[error("registry endpoint for {registry}: {message}")]
    Endpoint { registry: String, message: String },
    #[error("ECR {operation}: {message}")]
    Ecr {
        operation: &'static str,
        message: String,
        transient: bool,
    },
}

impl RegistryError {
    /// Whether trying again later can succeed (the step is then retried with backoff).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Http { transient, .. } | Self::Ecr { transient, .. } => *transient,
            _ => false,
        }
    }
}

/// Credentials for one registry.
#[derive(Debug, Clone)]
pub struct Login {
    pub username: String,
    pub password: Secret,
}

/// Where and how a registry is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]` actually connected to (differs from the logical host when configured).
    pub host: String,
    /// Plain HTTP (loopback registries only).
    pub insecure: bool,
}

#[async_trait]
pub trait Registry: Send + Sync {
    /// The manifest at a tag or digest, `None` when there is none.
    async fn manifest(&self, r: &ImageRef) -> Result<Option<Manifest>, RegistryError>;
    /// A blob's bytes, verified against its digest.
    async fn blob(&self, r: &ImageRef, digest: &str) -> Result<Vec<u8>, RegistryError>;
    async fn has_blob(&self, r: &ImageRef, digest: &str) -> Result<bool, RegistryError>;
    /// Cross-repository mount within one registry; `false` when the registry declined.
    async fn mount_blob(
        &self,
        r: &ImageRef,
        from: &ImageRef,
        digest: &str,
    ) -> Result<bool, RegistryError>;
    async fn put_blob(
        &self,
        r: &ImageRef,
        digest: &str,
        data: Vec<u8>,
    ) -> Result<(), RegistryError>;
    /// Puts `m` at `r`'s tag.
    async fn put_manifest(&self, r: &ImageRef, m: &Manifest) -> Result<(), RegistryError>;
    /// Creates the repository if the registry needs that (ECR) and it is missing; `true` when
    /// it was created.
    async fn ensure_repository(&self, r: &ImageRef) -> Result<bool, RegistryError>;
    /// Credentials for a registry host, if any are known (ECR token, auth file).
    async fn login(&self, registry: &str) -> Result<Option<Login>, RegistryError>;
    fn endpoint(&self, registry: &str) -> Result<Endpoint, RegistryError>;
}
