//! The `buildah` builder: a real Dockerfile build (RUN steps included) on a host that has
//! buildah, through the `CommandRunner` port. Credentials reach buildah in an auth file (mode
//! 0600, removed afterwards), never on a command line. The pushed digest comes from
//! `buildah push --digestfile`.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use tokio_util::sync::CancellationToken;

use super::{BuildError, BuildRequest, Builder, BuiltImage, ImageRef, Registry};
use crate::ports::StepLog;
use crate::ports::{CommandError, CommandRunner, CommandSpec, Sandbox};

pub struct Buildah {
    registry: Arc<dyn Registry>,
    runner: Arc<dyn CommandRunner>,
    /// The buildah executable.
    bin: String,
    /// Gantry's data dir, hidden from buildah (and from the Dockerfile's `RUN` steps).
    hidden: Vec<std::path::PathBuf>,
}

/// Where buildah keeps images and its run state as root (containers-storage defaults).
const STORAGE_DIRS: &[&str] = &[
    "/var/lib/containers",
    "/run/containers",
    "/run/libpod",
    "/var/tmp",
];

/// Variables passed through to buildah from Gantry's environment (storage and isolation
/// settings, proxies); everything else is a clean environment.
const PASS_ENV: &[&str] = &[
    "PATH",
    "STORAGE_DRIVER",
    "STORAGE_OPTS",
    "BUILDAH_ISOLATION",
    "CONTAINERS_STORAGE_CONF",
    "CONTAINERS_REGISTRIES_CONF",
    "TMPDIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
];

impl Buildah {
    pub fn new(registry: Arc<dyn Registry>, runner: Arc<dyn CommandRunner>, bin: String) -> Self {
        Self {
            registry,
            runner,
            bin,
            hidden: Vec::new(),
        }
    }

    /// Hides `dirs` (Gantry's data dir) from buildah when the runner sandboxes.
    pub fn hiding(mut self, dirs: Vec<std::path::PathBuf>) -> Self {
        self.hidden = dirs;
        self
    }

    /// buildah's sandbox: root (its storage and chroot isolation need it), its own PID
    /// namespace, the scratch dir and its storage writable, Gantry's data dir hidden. The
    /// checkout (the context) is read through the scratch's parent workspace.
    fn sandbox(&self, req: &BuildRequest) -> Sandbox {
        let writable = req
            .scratch
            .ancestors()
            .find(|a| req.context.starts_with(a))
            .unwrap_or(&req.scratch)
            .to_path_buf();
        let also_writable: Vec<std::path::PathBuf> =
            STORAGE_DIRS.iter().map(std::path::PathBuf::from).collect();
        for dir in &also_writable {
            // buildah would make them; the sandbox binds only what exists.
            let _ = std::fs::create_dir_all(dir);
        }
        Sandbox {
            writable,
            hidden: self.hidden.clone(),
            also_writable,
            privileged: true,
        }
    }

    async fn auth_file(
        &self,
        req: &BuildRequest,
    ) -> Result<(std::path::PathBuf, Vec<String>), BuildError> {
        // The target, and every registry a FROM line names that Gantry has credentials for.
        let mut hosts = vec![req.target.registry.clone()];
        if let Some(text) = super::read_dockerfile(&req.context, &req.spec) {
            for from in crate::plan::dockerfile::base_images(&text, &req.spec.build_args) {
                if let Ok(r) = ImageRef::parse(&from) {
                    hosts.push(r.registry);
                }
            }
        }
        hosts.sort();
        hosts.dedup();
        let mut auths = serde_json::Map::new();
        let mut secrets = Vec::new();
        for host in hosts {
            if let Some(login) = self.registry.login(&host).await? {
                let endpoint = self.registry.endpoint(&host)?;
                let token = base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    login.username,
                    login.password.expose()
                ));
                secrets.push(login.password.expose().to_owned());
                secrets.push(token.clone());
                auths.insert(endpoint.host, serde_json::json!({ "auth": token }));
            }
        }
        let path = req.scratch.join("buildah-auth.json");
        let body = serde_json::to_vec(&serde_json::json!({ "auths": auths })).expect("JSON");
        write_private(&path, &body)
            .map_err(|e| BuildError::Invalid(format!("cannot write {}: {e}", path.display())))?;
        Ok((path, secrets))
    }
}

fn write_private(path: &std::path::Path, body: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(body)
}

fn quote(s: &str) -> String {
    shlex::try_quote(s)
        .map(|c| c.into_owned())
        .unwrap_or_else(|_| "''".into())
}

#[async_trait]
impl Builder for Buildah {
    fn kind(&self) -> &'static str {
        "buildah"
    }

    #[tracing::instrument(skip_all, fields(image = %req.target))]
    async fn build(
        &self,
        req: &BuildRequest,
        log: &StepLog,
        abort: &CancellationToken,
    ) -> Result<BuiltImage, BuildError> {
        let endpoint = self.registry.endpoint(&req.target.registry)?;
        let (auth, secrets) = self.auth_file(req).await?;
        let log = log.scrubbing(secrets);
        let local = format!(
            "localhost/gantry-build/{}:{}",
            req.target.repository.replace('/', "-"),
            req.target.reference()
        );
        let tls = if endpoint.insecure {
            " --tls-verify=false"
        } else {
            ""
        };
        let mut bud = format!(
            "{} bud --file {} --tag {} --authfile {} --timestamp {}{tls}",
            quote(&self.bin),
            quote(
                &req.context
                    .join(req.spec.dockerfile_path())
                    .display()
                    .to_string()
            ),
            quote(&local),
            quote(&auth.display().to_string()),
            req.epoch.max(0)
        );
        for (k, v) in &req.labels {
            bud.push_str(&format!(" --label {}", quote(&format!("{k}={v}"))));
        }
        for (k, v) in &req.spec.build_args {
            bud.push_str(&format!(" --build-arg {}", quote(&format!("{k}={v}"))));
        }
        bud.push(' ');
        bud.push_str(&quote(&req.context.display().to_string()));
        let digest_file = req.scratch.join("buildah.digest");
        let _ = std::fs::remove_file(&digest_file);
        let dest = format!(
            "docker://{}/{}:{}",
            endpoint.host,
            req.target.repository,
            req.target.reference()
        );
        let push = format!(
            "{} push --authfile {} --digestfile {}{tls} {} {}",
            quote(&self.bin),
            quote(&auth.display().to_string()),
            quote(&digest_file.display().to_string()),
            quote(&local),
            quote(&dest)
        );
        let rmi = format!(
            "{} rmi {} >/dev/null 2>&1 || true",
            quote(&self.bin),
            quote(&local)
        );
        let home = req.scratch.join("home");
        std::fs::create_dir_all(&home)
            .map_err(|e| BuildError::Invalid(format!("cannot create {}: {e}", home.display())))?;
        let mut env: BTreeMap<String, String> = PASS_ENV
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| ((*k).to_owned(), v)))
            .collect();
        env.entry("PATH".into())
            .or_insert_with(|| "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into());
        env.insert("HOME".into(), home.display().to_string());
        env.insert("SOURCE_DATE_EPOCH".into(), req.epoch.to_string());
        let deadline = std::time::Instant::now() + req.timeout;
        let result = async {
            for command in [&bud, &push] {
                log.line(format!("$ {command}"));
                let spec = CommandSpec {
                    command: command.clone(),
                    cwd: req.context.clone(),
                    env: env.clone().into_iter().collect(),
                    timeout: deadline.saturating_duration_since(std::time::Instant::now()),
                    pid_file: Some(req.scratch.join("buildah.pgid")),
                    sandbox: Some(self.sandbox(req)),
                };
                match self.runner.run(&spec, &log, abort).await {
                    Ok(()) => {}
                    Err(CommandError::Cancelled) => return Err(BuildError::Cancelled),
                    Err(e) => {
                        let verb = if command == &bud { "bud" } else { "push" };
                        return Err(BuildError::Failed {
                            message: format!("buildah {verb} {e}"),
                            tail: log.tail(20),
                        });
                    }
                }
            }
            Ok(())
        }
        .await;
        // Best effort: the local copy is only a by-product of the push.
        let cleanup = CommandSpec {
            command: rmi,
            cwd: req.scratch.clone(),
            env: env.into_iter().collect(),
            timeout: std::time::Duration::from_secs(60),
            pid_file: None,
            sandbox: Some(self.sandbox(req)),
        };
        let _ = self
            .runner
            .run(&cleanup, &StepLog::new(4096, Default::default()), abort)
            .await;
        let _ = std::fs::remove_file(&auth);
        result?;
        let digest = std::fs::read_to_string(&digest_file)
            .map_err(|e| BuildError::Invalid(format!("buildah wrote no digest file: {e}")))?
            .trim()
            .to_owned();
        if !digest.starts_with("sha256:") {
            return Err(BuildError::Invalid(format!(
                "buildah wrote `{digest}` as the digest"
            )));
        }
        log.line(format!("pushed {}@{digest}", req.target));
        Ok(BuiltImage {
            digest,
            uploaded: None,
        })
    }
}
