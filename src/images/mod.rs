//! Container images: build an app's images from its checkout and push them, addressed by
//! digest from then on. The [`Builder`] trait is the core's; backends: [`layer::LayerBuilder`]
//! (in-process OCI assembly, no privileges, reproducible), [`buildah::Buildah`] (a Dockerfile
//! build through the `CommandRunner` port) and [`kaniko::Kaniko`] (a Dockerfile build as a
//! one-off ECS task, context in S3). [`publish`] decides whether anything needs building at
//! all: an image already in the registry at the commit's tag with the same inputs key is
//! reused, so a redeploy of a sha builds nothing and uploads nothing.
//!
//! This module never speaks HTTP or runs a process itself: the registry, S3, ECS and the
//! command runner are ports.

pub mod buildah;
pub mod context;
pub mod kaniko;
pub mod layer;
pub mod publish;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

pub use publish::{publish, publish_all, Commit, ImagePorts, PublishError, Published};

use crate::domain::{ImageRef, ImageSpec};
use crate::plan::oci::{ParsedManifest, TreeEntry};
use crate::ports::StepLog;
use crate::ports::{Manifest, Registry, RegistryError};

/// A base image resolved to one platform's manifest.
#[derive(Debug, Clone)]
pub struct ResolvedBase {
    pub reference: ImageRef,
    pub manifest: Manifest,
    pub parsed: ParsedManifest,
    pub config: Vec<u8>,
}

/// Everything a builder needs; `publish` has already decided that a build is needed.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub spec: ImageSpec,
    /// The context directory on disk.
    pub context: PathBuf,
    /// The context as read (`.dockerignore` and excludes applied).
    pub tree: Vec<TreeEntry>,
    /// Where the image goes, tagged with the git sha.
    pub target: ImageRef,
    /// All labels, `org.opencontainers.image.*` and the inputs key included.
    pub labels: BTreeMap<String, String>,
    /// SOURCE_DATE_EPOCH (the commit time).
    pub epoch: i64,
    /// The inputs key (also in `labels`).
    pub inputs: String,
    /// The `layer` builder's base.
    pub base: Option<ResolvedBase>,
    /// Scratch space for this build.
    pub scratch: PathBuf,
    pub timeout: Duration,
}

/// What a build pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    pub digest: String,
    /// Blobs and bytes uploaded, when the builder knows (`layer` does).
    pub uploaded: Option<(usize, u64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Context(#[from] context::ContextError),
    #[error("{0}")]
    Invalid(String),
    #[error("{message}\n--- last build output ---\n{tail}")]
    Failed { message: String, tail: String },
    #[error("the `{0}` builder is not configured on this Gantry ({1})")]
    Unavailable(&'static str, &'static str),
    #[error("cancelled")]
    Cancelled,
}

impl BuildError {
    /// A registry that throttled, failed or dropped the connection: trying again can work.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Registry(e) if e.is_transient())
    }
}

#[async_trait]
pub trait Builder: Send + Sync {
    fn kind(&self) -> &'static str;
    async fn build(
        &self,
        req: &BuildRequest,
        log: &StepLog,
        abort: &CancellationToken,
    ) -> Result<BuiltImage, BuildError>;
}

/// Resolves a base image to its linux/amd64 manifest and reads its config.
/// The largest Dockerfile Gantry reads itself (for its `FROM` lines).
pub const MAX_DOCKERFILE_BYTES: u64 = 1024 * 1024;
/// At most this many `FROM` images are resolved; beyond, the key is not trusted.
pub const MAX_BASES: usize = 16;

/// An image's Dockerfile as the repository has it, read by the daemon only when it is a
/// regular file inside the context (a symlink out of the checkout is not followed) and at most
/// [`MAX_DOCKERFILE_BYTES`]; `None` otherwise (the builder then says what is wrong).
pub fn read_dockerfile(context: &std::path::Path, spec: &ImageSpec) -> Option<String> {
    let root = std::fs::canonicalize(context).ok()?;
    let path = std::fs::canonicalize(context.join(spec.dockerfile_path())).ok()?;
    if !path.starts_with(&root) {
        return None;
    }
    context::read_bounded(&path, MAX_DOCKERFILE_BYTES).ok()
}

pub async fn resolve_base(
    registry: &dyn Registry,
    reference: &ImageRef,
) -> Result<ResolvedBase, BuildError> {
    use crate::plan::oci;
    let missing = || BuildError::Invalid(format!("base image {reference} does not exist"));
    let mut m = registry.manifest(reference).await?.ok_or_else(missing)?;
    let mut at = reference.clone();
    if oci::is_index(&m.media_type, &m.bytes) {
        let digest = oci::select_platform(&m.bytes, "linux", "amd64")
            .map_err(|e| BuildError::Invalid(format!("base image {reference}: {e}")))?;
        at = reference.with_digest(&digest);
        m = registry.manifest(&at).await?.ok_or_else(missing)?;
    }
    let parsed = oci::parse_manifest(&m.bytes)
        .map_err(|e| BuildError::Invalid(format!("base image {reference}: {e}")))?;
    let config = registry.blob(&at, &parsed.config.digest).await?;
    Ok(ResolvedBase {
        reference: at,
        manifest: m,
        parsed,
        config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dockerfile: &str) -> ImageSpec {
        serde_yaml::from_str(&format!(
            "name: api\nrepository: r.example/api\ndockerfile: {dockerfile}\n"
        ))
        .unwrap()
    }

    #[test]
    fn a_dockerfile_is_read_only_inside_the_context_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("Dockerfile"), "FROM alpine:3.20\n").unwrap();
        assert_eq!(
            read_dockerfile(&ctx, &spec("Dockerfile")).as_deref(),
            Some("FROM alpine:3.20\n")
        );
        // A symlink out of the checkout (a repository pointing at the daemon's files).
        std::fs::write(dir.path().join("secret"), "FROM x\n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), ctx.join("Escape")).unwrap();
        assert_eq!(read_dockerfile(&ctx, &spec("Escape")), None);
        assert_eq!(read_dockerfile(&ctx, &spec("../secret")), None);
        // A device and an oversized file.
        std::os::unix::fs::symlink("/dev/zero", ctx.join("Zero")).unwrap();
        assert_eq!(read_dockerfile(&ctx, &spec("Zero")), None);
        let big = "#".repeat(MAX_DOCKERFILE_BYTES as usize + 1);
        std::fs::write(ctx.join("Big"), big).unwrap();
        assert_eq!(read_dockerfile(&ctx, &spec("Big")), None);
    }
}
