//! The `kaniko` builder: a Dockerfile build as a one-off ECS task running the kaniko
//! executor, for a Gantry that runs on Fargate (where buildah cannot). The context goes to S3
//! as a deterministic tar.gz; the task's command is kaniko's arguments; Gantry waits for the
//! task to stop, fails on a non-zero exit code with ECS's reason, and reads the pushed digest
//! from the registry.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::{BuildError, BuildRequest, Builder, BuiltImage, Registry};
use crate::domain::site::ObjectHeaders;
use crate::domain::NetworkSpec;
use crate::plan::oci;
use crate::ports::ObjectStore;
use crate::ports::ServiceDeployer;
use crate::ports::StepLog;

/// Where kaniko tasks run (`images.kaniko` in gantry.yaml).
#[derive(Debug, Clone, PartialEq)]
pub struct KanikoConfig {
    pub cluster: String,
    /// A task definition whose container runs the kaniko executor image, with a task role
    /// that can read the context bucket and push to the registry.
    pub task_definition: String,
    pub container: String,
    pub bucket: String,
    pub prefix: String,
    pub network: Option<NetworkSpec>,
    /// First wait between DescribeTasks polls (doubles up to 6x).
    pub poll: Duration,
}

pub struct Kaniko {
    pub config: KanikoConfig,
    objects: Arc<dyn ObjectStore>,
    ecs: Arc<dyn ServiceDeployer>,
    registry: Arc<dyn Registry>,
}

impl Kaniko {
    pub fn new(
        config: KanikoConfig,
        objects: Arc<dyn ObjectStore>,
        ecs: Arc<dyn ServiceDeployer>,
        registry: Arc<dyn Registry>,
    ) -> Self {
        Self {
            config,
            objects,
            ecs,
            registry,
        }
    }
}

/// The S3 key of a build's context: one per repository, sha and inputs.
pub fn context_key(prefix: &str, req: &BuildRequest) -> String {
    let inputs = req.inputs.trim_start_matches("sha256:");
    format!(
        "{}{}/{}-{}.tar.gz",
        prefix,
        req.target.repository,
        req.target.reference(),
        &inputs[..inputs.len().min(16)]
    )
}

/// kaniko's arguments for a build (the task's command override).
pub fn executor_args(bucket: &str, key: &str, req: &BuildRequest) -> Vec<String> {
    let mut args = vec![
        format!("--context=s3://{bucket}/{key}"),
        format!("--dockerfile={}", req.spec.dockerfile_path()),
        format!("--destination={}", req.target),
    ];
    for (k, v) in &req.labels {
        args.push(format!("--label={k}={v}"));
    }
    for (k, v) in &req.spec.build_args {
        args.push(format!("--build-arg={k}={v}"));
    }
    args.push("--digest-file=/dev/termination-log".into());
    args
}

#[async_trait]
impl Builder for Kaniko {
    fn kind(&self) -> &'static str {
        "kaniko"
    }

    #[tracing::instrument(skip_all, fields(image = %req.target))]
    async fn build(
        &self,
        req: &BuildRequest,
        log: &StepLog,
        abort: &CancellationToken,
    ) -> Result<BuiltImage, BuildError> {
        let c = &self.config;
        let key = context_key(&c.prefix, req);
        let tree = req.tree.clone();
        let epoch = req.epoch;
        let tarball = tokio::task::spawn_blocking(move || oci::layer(&tree, "", epoch).blob)
            .await
            .map_err(|e| BuildError::Invalid(format!("context archive panicked: {e}")))?;
        let size = tarball.len();
        self.objects
            .put_bytes(
                &c.bucket,
                &key,
                tarball,
                &ObjectHeaders {
                    content_type: "application/gzip".into(),
                    cache_control: "no-store".into(),
                },
            )
            .await
            .map_err(|e| BuildError::Invalid(format!("uploading the build context: {e}")))?;
        log.line(format!(
            "kaniko: context s3://{}/{key} ({size} bytes)",
            c.bucket
        ));
        let args = executor_args(&c.bucket, &key, req);
        let task = self
            .ecs
            .run_task(
                &c.cluster,
                &c.task_definition,
                c.network.as_ref(),
                &c.container,
                &args,
                // One task per build: the same target and inputs are the same kaniko run.
                &crate::plan::rollout::client_token(&[
                    "kaniko",
                    &req.target.to_string(),
                    &req.inputs,
                ]),
            )
            .await
            .map_err(|e| BuildError::Invalid(e.to_string()))?;
        log.line(format!("kaniko: task {task} started on {}", c.cluster));
        let deadline = tokio::time::Instant::now() + req.timeout;
        let mut wait = c.poll;
        let stop = loop {
            if let Some(stop) = self
                .ecs
                .task_stopped(&c.cluster, &task)
                .await
                .map_err(|e| BuildError::Invalid(e.to_string()))?
            {
                break stop;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BuildError::Failed {
                    message: format!("kaniko task {task} did not stop within {:?}", req.timeout),
                    tail: log.tail(10),
                });
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = abort.cancelled() => {
                    // Leave nothing running: a resumed step starts its own build.
                    if let Err(e) = self.ecs.stop_task(&c.cluster, &task, "gantry: build cancelled").await {
                        tracing::warn!(task = %task, error = %e, "could not stop the cancelled kaniko task");
                    }
                    return Err(BuildError::Cancelled);
                }
            }
            wait = (wait * 2).min(c.poll * 6);
        };
        match stop.exit_code {
            Some(0) => {}
            code => {
                let code =
                    code.map_or_else(|| "no exit code".to_owned(), |c| format!("exit code {c}"));
                log.line(format!(
                    "kaniko: task {task} stopped with {code}: {}",
                    stop.reason
                ));
                return Err(BuildError::Failed {
                    message: format!(
                        "kaniko task {task} stopped with {code}: {}",
                        if stop.reason.is_empty() {
                            "no reason given"
                        } else {
                            &stop.reason
                        }
                    ),
                    tail: log.tail(10),
                });
            }
        }
        let pushed = self.registry.manifest(&req.target).await?.ok_or_else(|| {
            BuildError::Invalid(format!(
                "kaniko task {task} exited 0 but {} is not in the registry",
                req.target
            ))
        })?;
        log.line(format!("kaniko: pushed {}@{}", req.target, pushed.digest));
        Ok(BuiltImage {
            digest: pushed.digest,
            uploaded: None,
        })
    }
}
