//! The `layer` builder: in-process OCI image assembly, as ko and jib do it. The base image's
//! layers are reused as they are (never downloaded when the target repository has them or can
//! mount them), the context becomes one deterministic layer, the config and manifest are
//! written from the base's. No Docker, no privileges; the same inputs give the same digest.

use std::sync::Arc;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::{BuildError, BuildRequest, Builder, BuiltImage, Manifest, Registry};
use crate::plan::oci::{self, ImageSettings};
use crate::ports::StepLog;

pub const DEFAULT_WORKDIR: &str = "/app";

pub struct LayerBuilder {
    registry: Arc<dyn Registry>,
}

impl LayerBuilder {
    pub fn new(registry: Arc<dyn Registry>) -> Self {
        Self { registry }
    }
}

/// Blobs and bytes a push uploaded.
#[derive(Default)]
struct Uploads {
    blobs: usize,
    bytes: u64,
}

#[async_trait]
impl Builder for LayerBuilder {
    fn kind(&self) -> &'static str {
        "layer"
    }

    #[tracing::instrument(skip_all, fields(image = %req.target))]
    async fn build(
        &self,
        req: &BuildRequest,
        log: &StepLog,
        abort: &CancellationToken,
    ) -> Result<BuiltImage, BuildError> {
        let base = req
            .base
            .as_ref()
            .ok_or_else(|| BuildError::Invalid("the `layer` builder needs a base image".into()))?;
        let workdir = req
            .spec
            .workdir
            .clone()
            .unwrap_or_else(|| DEFAULT_WORKDIR.to_owned());
        let tree = req.tree.clone();
        let epoch = req.epoch;
        let dest = workdir.clone();
        let layer = tokio::task::spawn_blocking(move || oci::layer(&tree, &dest, epoch))
            .await
            .map_err(|e| BuildError::Invalid(format!("layer assembly panicked: {e}")))?;
        log.line(format!(
            "layer: {} entries into {workdir}, {} bytes compressed, {}",
            req.tree.len(),
            layer.blob.len(),
            layer.digest
        ));
        let settings = ImageSettings {
            entrypoint: req.spec.entrypoint.clone(),
            cmd: req.spec.cmd.clone(),
            env: req.spec.env.clone(),
            labels: req.labels.clone(),
            workdir: Some(workdir),
            user: req.spec.user.clone(),
            epoch,
        };
        let base_config: serde_json::Value = serde_json::from_slice(&base.config)
            .map_err(|e| BuildError::Invalid(format!("base image config is not JSON: {e}")))?;
        let config = oci::image_config(&base_config, &layer, &settings, &req.spec.context);
        let (media_type, manifest) = oci::manifest(
            &base.manifest.media_type,
            &base.parsed.layers,
            &config,
            &layer,
        );
        let digest = oci::sha256_digest(&manifest);

        let target = &req.target;
        let mut up = Uploads::default();
        let mut reused = 0usize;
        for l in &base.parsed.layers {
            if abort.is_cancelled() {
                return Err(BuildError::Cancelled);
            }
            if self.registry.has_blob(target, &l.digest).await? {
                reused += 1;
                continue;
            }
            if base.reference.registry == target.registry
                && self
                    .registry
                    .mount_blob(target, &base.reference, &l.digest)
                    .await?
            {
                reused += 1;
                continue;
            }
            let data = self.registry.blob(&base.reference, &l.digest).await?;
            self.upload(target, &l.digest, data, &mut up).await?;
        }
        let config_digest = oci::sha256_digest(&config);
        for (d, data) in [(layer.digest.clone(), layer.blob), (config_digest, config)] {
            if self.registry.has_blob(target, &d).await? {
                reused += 1;
            } else {
                self.upload(target, &d, data, &mut up).await?;
            }
        }
        self.registry
            .put_manifest(
                target,
                &Manifest {
                    media_type,
                    digest: digest.clone(),
                    bytes: manifest,
                },
            )
            .await?;
        log.line(format!(
            "pushed {target}@{digest}: {} blob(s) uploaded ({} bytes), {reused} already there",
            up.blobs, up.bytes
        ));
        Ok(BuiltImage {
            digest,
            uploaded: Some((up.blobs, up.bytes)),
        })
    }
}

impl LayerBuilder {
    async fn upload(
        &self,
        target: &super::ImageRef,
        digest: &str,
        data: Vec<u8>,
        up: &mut Uploads,
    ) -> Result<(), BuildError> {
        let n = data.len() as u64;
        self.registry.put_blob(target, digest, data).await?;
        up.blobs += 1;
        up.bytes += n;
        Ok(())
    }
}
