//! Image builds with real parts: buildah, a docker-registry with htpasswd standing in for ECR
//! (user `AWS`, password = the token moto's ECR hands out, reached through
//! `GANTRY_REGISTRY_ENDPOINTS`), moto ECR/ECS/S3, and skopeo to pull results back. The base
//! image is made locally by scripts/base-image.sh (no public registry is reachable).

use std::time::Duration;

use serde_json::{json, Value};

use crate::s3proxy::S3Proxy;
use crate::sites::{aws_config, moto_url};
use crate::support::{gantry_cli, push_body, root, GitRepo, TestApp, TOKEN};
use base64::Engine as _;

pub(crate) const ECR: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const REG_CREDS: &str = "AWS:123456789012-auth-token";
const REVISION: &str = "4f3c2b1a00998877665544332211ffeeddccbbaa";

pub(crate) fn registry() -> String {
    std::env::var("GANTRY_TEST_REGISTRY").unwrap_or_else(|_| {
        panic!("GANTRY_TEST_REGISTRY is not set: run `scripts/stack.sh start` and `source .stack/env` (scripts/test.sh does both)")
    })
}

/// The local base image under its ECR name (the mapping sends it to the local registry).
pub(crate) fn base_image() -> String {
    let local = std::env::var("GANTRY_TEST_BASE_IMAGE").unwrap_or_else(|_| {
        panic!("GANTRY_TEST_BASE_IMAGE is not set: `scripts/stack.sh start` builds it (scripts/base-image.sh)")
    });
    local.replacen(&registry(), ECR, 1)
}

pub(crate) fn endpoints() -> String {
    format!("{ECR}=http://{}", registry())
}

/// A repository name no other test or run uses.
pub(crate) fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("it/{name}-{}-{nanos}", std::process::id())
}

fn cli() -> tokio::process::Command {
    let mut cmd = gantry_cli();
    cmd.env("GANTRY_AWS_ENDPOINT_URL", moto_url())
        .env("GANTRY_REGISTRY_ENDPOINTS", endpoints())
        .env("SOURCE_DATE_EPOCH", "1700000000");
    cmd
}

async fn run(cmd: &mut tokio::process::Command) -> (bool, String, String) {
    let out = cmd.output().await.expect("gantry runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("skopeo")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("skopeo not runnable ({e}): run scripts/setup.sh"));
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The image config of `repo:tag`, pulled back from the registry with skopeo.
fn pulled_config(repo: &str, tag: &str) -> Value {
    let at = format!("docker://{}/{repo}:{tag}", registry());
    serde_json::from_slice(&skopeo(&[
        "inspect",
        "--config",
        "--tls-verify=false",
        "--creds",
        REG_CREDS,
        &at,
    ]))
    .unwrap()
}

fn pulled_digest(repo: &str, tag: &str) -> String {
    let at = format!("docker://{}/{repo}:{tag}", registry());
    let v: Value = serde_json::from_slice(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        REG_CREDS,
        &at,
    ]))
    .unwrap();
    v["Digest"].as_str().unwrap().to_owned()
}

fn app_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

/// The registry's log (`GANTRY_TEST_REGISTRY_LOG`, written by scripts/stack.sh).
fn registry_log() -> std::path::PathBuf {
    std::env::var("GANTRY_TEST_REGISTRY_LOG")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root().join(".stack/registry.log"))
}

/// Registry access-log lines (`"METHOD /v2/REPO/... HTTP/1.1" STATUS`) after `from` bytes.
pub(crate) fn registry_requests(repo: &str, from: usize) -> Vec<String> {
    let path = registry_log();
    let log = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("the registry's log {}: {e}", path.display()));
    let needle = format!(" /v2/{repo}/");
    String::from_utf8_lossy(&log[from.min(log.len())..])
        .lines()
        .filter(|l| l.contains(&needle) && l.contains(" HTTP/1.1\" "))
        .map(str::to_owned)
        .collect()
}

pub(crate) fn registry_log_len() -> usize {
    std::fs::metadata(registry_log()).map_or(0, |m| m.len() as usize)
}

pub(crate) fn blob_uploads(lines: &[String]) -> Vec<&String> {
    lines
        .iter()
        .filter(|l| {
            ["\"POST ", "\"PUT ", "\"PATCH "]
                .iter()
                .any(|m| l.contains(m))
                && l.contains("/blobs/uploads/")
        })
        .collect()
}

const FASTAPI_MAIN: &str = "from fastapi import FastAPI\napp = FastAPI()\n\n@app.get('/health')\ndef health():\n    return {'ok': True}\n";

async fn buildah_build(
    context: &std::path::Path,
    repo: &str,
    extra: &[&str],
) -> (bool, String, String) {
    run(cli()
        .args(["image", "build", "--builder", "buildah", "--context"])
        .arg(context)
        .args([
            "--tag",
            &format!("{ECR}/{repo}:{REVISION}"),
            "--revision",
            REVISION,
        ])
        .args(extra))
    .await
}

#[tokio::test]
async fn buildah_builds_a_dockerfile_with_a_run_step_and_pushes_it() {
    let local_base = std::env::var("GANTRY_TEST_BASE_IMAGE")
        .expect("GANTRY_TEST_BASE_IMAGE (scripts/stack.sh start)");
    let dockerfile = format!(
        "FROM {local_base}\nRUN echo built-by-run > /built.txt && mkdir -p /app\nCOPY main.py /app/main.py\nENV PORT=8000\nCMD [\"cat\", \"/built.txt\"]\n"
    );
    let app = app_dir(&[("Dockerfile", &dockerfile), ("main.py", FASTAPI_MAIN)]);
    let repo = unique("buildah");
    let (ok, stdout, stderr) = buildah_build(
        app.path(),
        &repo,
        &["--source", "https://github.com/acme/api"],
    )
    .await;
    assert!(ok, "{stderr}");
    let digest = stdout.trim();
    assert!(digest.starts_with("sha256:"), "{stdout}");
    assert!(
        stderr.contains("buildah bud"),
        "the build output is shown: {stderr}"
    );
    assert_eq!(pulled_digest(&repo, REVISION), digest);
    let cfg = pulled_config(&repo, REVISION);
    assert_eq!(cfg["config"]["Cmd"], json!(["cat", "/built.txt"]));
    assert!(cfg["config"]["Env"]
        .as_array()
        .unwrap()
        .contains(&json!("PORT=8000")));
    let labels = &cfg["config"]["Labels"];
    // Content-addressed: the commit is the tag, not a label (which would make every commit a
    // new image).
    assert!(
        labels["org.opencontainers.image.revision"].is_null(),
        "{labels}"
    );
    assert_eq!(
        labels["org.opencontainers.image.source"],
        "https://github.com/acme/api"
    );
    assert!(labels["dev.gantry.inputs"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    // The RUN step ran: its history entry is there, and its file is in a layer.
    let history = cfg["history"].to_string();
    assert!(history.contains("built-by-run"), "{history}");
    let out = tempfile::tempdir().unwrap();
    let dest = format!("dir:{}", out.path().display());
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        REG_CREDS,
        &format!("docker://{}/{repo}:{REVISION}", registry()),
        &dest,
    ]);
    let found = std::fs::read_dir(out.path()).unwrap().any(|e| {
        let p = e.unwrap().path();
        std::process::Command::new("tar")
            .arg("tzf")
            .arg(&p)
            .output()
            .is_ok_and(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l.trim_start_matches("./") == "built.txt")
            })
    });
    assert!(found, "no layer holds /built.txt");
}

/// buildah runs in the daemon's sandbox: a Dockerfile's `RUN` sees its own processes only, so
/// not the daemon's environment (this test process's: AWS keys, tokens).
#[tokio::test]
async fn a_dockerfile_run_step_cannot_see_the_daemon_or_its_environment() {
    if gantry::adapters::process::Isolation::detect() == gantry::adapters::process::Isolation::None
    {
        panic!("this test needs root, bwrap and setpriv (scripts/setup.sh installs them)");
    }
    let local_base = std::env::var("GANTRY_TEST_BASE_IMAGE").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("api"));
    let dockerfile = format!(
        "FROM {local_base}\nRUN echo \"environs with AWS_SECRET: $(grep -l AWS_SECRET /proc/[0-9]*/environ 2>/dev/null | wc -l)\"; echo \"processes: $(ls -d /proc/[0-9]* | wc -l)\"\n"
    );
    let sha = repo.commit(&[("Dockerfile", &dockerfile)], "api");
    let image_repo = unique("sandboxed");
    let manifest = format!(
        "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: api\nspec:\n  source:\n    repo: acme/api\n    url: {}\n  images:\n    - name: api\n      repository: {ECR}/{image_repo}\n      builder: buildah\n      createRepository: true\n",
        repo.path.display(),
    );
    let eps = endpoints();
    let app = TestApp::start_with(
        &[("api.yaml", manifest)],
        &[
            ("GANTRY_AWS_ENDPOINT_URL", moto_url().as_str()),
            ("GANTRY_REGISTRY_ENDPOINTS", eps.as_str()),
            ("GANTRY_BUILD_ISOLATION", "bubblewrap"),
        ],
    )
    .await;
    let d = deploy_commit(&app, "sandboxed-1", &sha).await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    let log = publish_log(&d);
    assert!(
        log.lines().any(|l| l == "environs with AWS_SECRET: 0"),
        "{log}"
    );
    let processes: usize = log
        .lines()
        .find_map(|l| l.strip_prefix("processes: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{log}"));
    assert!(processes < 10, "only the sandbox's own processes: {log}");
    app.finish().await;
}

#[tokio::test]
async fn a_failing_run_step_fails_the_build_with_its_output() {
    let local_base = std::env::var("GANTRY_TEST_BASE_IMAGE").unwrap();
    let app = app_dir(&[(
        "Dockerfile",
        &format!("FROM {local_base}\nRUN echo about-to-fail && exit 7\n"),
    )]);
    let repo = unique("buildah-fail");
    let (ok, _, stderr) = buildah_build(app.path(), &repo, &[]).await;
    assert!(!ok);
    let err = stderr
        .lines()
        .skip_while(|l| !l.starts_with("error:"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(err.contains("buildah bud exited with status"), "{err}");
    assert!(
        err.contains("about-to-fail"),
        "the last build lines are in the error: {err}"
    );
    assert!(
        !stderr.contains("123456789012-auth-token"),
        "credentials never printed"
    );
}

async fn layer_build(context: &std::path::Path, repo: &str) -> Value {
    let (ok, stdout, stderr) = run(cli()
        .args(["image", "build", "--context"])
        .arg(context)
        .args([
            "--base",
            &base_image(),
            "--tag",
            &format!("{ECR}/{repo}:{REVISION}"),
            "--revision",
            REVISION,
            "--source",
            "https://github.com/acme/api",
            "--entrypoint",
            r#"["python3","-m","uvicorn","main:app"]"#,
            "--env",
            "PORT=8000",
            "--create-repository",
            "--json",
        ]))
    .await;
    assert!(ok, "{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[tokio::test]
async fn layer_builds_onto_a_base_reproducibly() {
    let app = app_dir(&[
        ("main.py", FASTAPI_MAIN),
        ("pkg/util.py", "X = 1\n"),
        (".dockerignore", "tests\n"),
        ("tests/test_x.py", ""),
    ]);
    let (first, second) = (unique("layer-a"), unique("layer-b"));
    let a = layer_build(app.path(), &first).await;
    assert_eq!(a["builder"], "layer");
    assert_eq!(a["skipped"], false);
    // Touch every file: mtimes must not matter, only content.
    for f in ["main.py", "pkg/util.py"] {
        let p = app.path().join(f);
        let t = std::fs::read(&p).unwrap();
        std::fs::write(&p, t).unwrap();
    }
    let b = layer_build(app.path(), &second).await;
    assert_eq!(
        a["digest"], b["digest"],
        "same commit, same inputs -> same digest"
    );
    assert_eq!(
        pulled_digest(&first, REVISION),
        a["digest"].as_str().unwrap()
    );

    let cfg = pulled_config(&first, REVISION);
    assert_eq!(
        cfg["config"]["Entrypoint"],
        json!(["python3", "-m", "uvicorn", "main:app"])
    );
    assert_eq!(cfg["config"]["WorkingDir"], "/app");
    assert!(cfg["config"]["Env"]
        .as_array()
        .unwrap()
        .contains(&json!("PORT=8000")));
    assert!(
        cfg["config"]["Env"].to_string().contains("PATH="),
        "the base's env is kept"
    );
    assert!(cfg["config"]["Labels"]["org.opencontainers.image.revision"].is_null());
    assert_eq!(
        cfg["config"]["Labels"]["org.opencontainers.image.source"],
        "https://github.com/acme/api"
    );
    assert_eq!(cfg["created"], "2023-11-14T22:13:20Z", "SOURCE_DATE_EPOCH");
    assert_eq!(
        cfg["rootfs"]["diff_ids"].as_array().unwrap().len(),
        2,
        "base layer + app layer"
    );

    // The app layer: files under /app, .dockerignore honoured, fixed times.
    let out = tempfile::tempdir().unwrap();
    let dest = format!("dir:{}", out.path().display());
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        REG_CREDS,
        &format!("docker://{}/{first}:{REVISION}", registry()),
        &dest,
    ]);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("manifest.json")).unwrap()).unwrap();
    let last = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    let listing = std::process::Command::new("tar")
        .arg("tzvf")
        .arg(out.path().join(&last))
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("app/main.py"), "{listing}");
    assert!(listing.contains("app/pkg/util.py"), "{listing}");
    assert!(
        !listing.contains("tests/"),
        "excluded by .dockerignore: {listing}"
    );
    assert!(
        listing.lines().all(|l| l.contains("2023-11-14")),
        "{listing}"
    );
}

/// A registry answering 503 to manifest PUTs for a while: the publish step fails transiently,
/// is retried with backoff, and the image lands once it recovers.
#[tokio::test]
async fn a_registry_failing_for_a_while_is_retried_by_the_publish_step() {
    use crate::s3proxy::Fault;
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("api"));
    let sha = repo.commit(&[("main.py", FASTAPI_MAIN)], "api");
    let image_repo = unique("flaky");
    let manifest = format!(
        "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: api\nspec:\n  source:\n    repo: acme/api\n    url: {}\n  images:\n    - name: api\n      repository: {ECR}/{image_repo}\n      base: {}\n      entrypoint: [python3, main.py]\n      createRepository: true\n",
        repo.path.display(),
        base_image()
    );
    let proxy = S3Proxy::start(&format!("http://{}", registry())).await;
    // The adapter tries each request four times; five 503s outlast one step attempt.
    proxy.inject(Fault::unavailable("PUT /manifests/", 5));
    let eps = format!("{ECR}={}", proxy.url);
    let app = TestApp::start_with(
        &[("api.yaml", manifest)],
        &[
            ("GANTRY_AWS_ENDPOINT_URL", moto_url().as_str()),
            ("GANTRY_REGISTRY_ENDPOINTS", eps.as_str()),
            ("GANTRY_RETRY_BASE", "50ms"),
            ("GANTRY_RETRY_CAP", "200ms"),
        ],
    )
    .await;
    let d = deploy_commit(&app, "flaky-1", &sha).await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    let step = crate::support::step(&d, "publish_images");
    assert_eq!(step["attempts"], 2, "{step:#}");
    let failed = proxy.take().iter().filter(|s| s.status == 503).count();
    assert_eq!(failed, 5);
    let log = step["log"].as_str().unwrap();
    assert!(log.contains("failed with a transient error"), "{log}");
    assert!(log.contains("503"), "{log}");
    assert_eq!(
        pulled_digest(&image_repo, &sha),
        app.api("/api/v1/releases?app=api").await[0]["images"]["api"]
            .as_str()
            .unwrap()
            .rsplit('@')
            .next()
            .unwrap()
    );
    app.finish().await;
}

#[tokio::test]
async fn a_second_deployment_of_the_same_sha_builds_nothing_and_uploads_no_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("api"));
    let sha = repo.commit(
        &[("main.py", FASTAPI_MAIN), ("requirements.txt", "fastapi\n")],
        "api",
    );
    let image_repo = unique("deploy");
    let manifest = format!(
        "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: api\nspec:\n  source:\n    repo: acme/api\n    url: {}\n  images:\n    - name: api\n      repository: {ECR}/{image_repo}\n      base: {}\n      entrypoint: [python3, -m, uvicorn, main:app]\n      tag: latest\n      createRepository: true\n",
        repo.path.display(),
        base_image()
    );
    // ECR behind the fault proxy: throttled and dropped calls are absorbed by the retries.
    let proxy = S3Proxy::start(&moto_url()).await;
    use crate::s3proxy::Fault;
    proxy.inject(Fault::throttling("GetAuthorizationToken", 2));
    proxy.inject(Fault::reset_before("GetAuthorizationToken", 1));
    proxy.inject(Fault::unavailable("DescribeRepositories", 1));
    proxy.inject(Fault::reset_after("CreateRepository", 1));
    let eps = endpoints();
    let app = TestApp::start_with(
        &[("api.yaml", manifest)],
        &[
            ("GANTRY_AWS_ENDPOINT_URL", proxy.url.as_str()),
            ("GANTRY_REGISTRY_ENDPOINTS", eps.as_str()),
            ("GANTRY_RETRY_BASE", "50ms"),
        ],
    )
    .await;
    let (status, r) = app
        .hook(
            "push",
            "img-1",
            &push_body("acme/api", "refs/heads/main", &sha),
        )
        .await;
    assert_eq!(status, 202, "{r}");
    app.wait_idle(Duration::from_secs(60)).await;
    let first = app
        .api(&format!("/api/v1/deployments/{}", r["deployments"][0]))
        .await;
    assert_eq!(first["state"], "succeeded", "{first:#}");
    let ecr: Vec<_> = proxy
        .take()
        .into_iter()
        .filter(|r| r.target.starts_with("AmazonEC2ContainerRegistry"))
        .map(|r| (r.target.rsplit('.').next().unwrap().to_owned(), r.status))
        .collect();
    for (op, status) in [
        ("GetAuthorizationToken", 400),
        ("GetAuthorizationToken", 0),
        ("DescribeRepositories", 503),
    ] {
        assert!(
            ecr.iter().any(|(o, s)| o == op && *s == status),
            "{op} {status}: {ecr:?}"
        );
    }
    let releases = app.api("/api/v1/releases?app=api").await;
    let reference = releases[0]["images"]["api"].as_str().unwrap().to_owned();
    let digest = pulled_digest(&image_repo, &sha);
    assert_eq!(
        reference,
        format!("{ECR}/{image_repo}@{digest}"),
        "recorded by digest"
    );
    assert_eq!(
        pulled_digest(&image_repo, "latest"),
        digest,
        "the moving tag follows"
    );

    let before = registry_log_len();
    let resp = app
        .http
        .post(app.url("/api/v1/apps/api/deploy"))
        .bearer_auth(TOKEN)
        .json(&json!({"sha": sha}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let id = resp.json::<Value>().await.unwrap()["id"].clone();
    app.wait_idle(Duration::from_secs(60)).await;
    let second = app.api(&format!("/api/v1/deployments/{id}")).await;
    assert_eq!(second["state"], "succeeded", "{second:#}");
    let step = second["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "publish_images")
        .unwrap();
    assert!(
        step["log"]
            .as_str()
            .unwrap()
            .contains("nothing built, nothing uploaded"),
        "{step:#}"
    );
    // Give the registry a moment to write its access log, then read what it was asked.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let requests = registry_requests(&image_repo, before);
    assert!(!requests.is_empty(), "the registry's log shows the check");
    assert!(
        blob_uploads(&requests).is_empty(),
        "no blob uploaded: {requests:#?}"
    );
    assert!(
        !requests.iter().any(|l| l.contains("\"PUT ")),
        "nothing written: {requests:#?}"
    );
    let releases = app.api("/api/v1/releases?app=api").await;
    assert_eq!(releases[0]["images"]["api"], reference);
    app.finish().await;
}

/// moto ECS + S3 behind a recording proxy: the kaniko builder's RunTask and context object.
struct Kaniko {
    /// The registered kaniko task definition and the gantry.yaml naming it.
    td: String,
    config: std::path::PathBuf,
    _config_dir: tempfile::TempDir,
    proxy: S3Proxy,
    s3: aws_sdk_s3::Client,
    ecs: aws_sdk_ecs::Client,
    cluster: String,
    bucket: String,
    subnet: String,
}

impl Kaniko {
    /// A cluster, a bucket and a kaniko task definition whose task exits with `exit_code`.
    async fn new(name: &str, exit_code: &str) -> Self {
        let config = aws_config(&moto_url()).await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        );
        let ecs = aws_sdk_ecs::Client::new(&config);
        let suffix = format!(
            "{}-{}",
            std::process::id(),
            unique("x").rsplit('-').next().unwrap()
        );
        let cluster = format!("builds-{name}-{suffix}");
        let bucket = format!("ctx-{name}-{suffix}");
        ecs.create_cluster()
            .cluster_name(&cluster)
            .send()
            .await
            .unwrap();
        s3.create_bucket().bucket(&bucket).send().await.unwrap();
        let config_dir = tempfile::tempdir().unwrap();
        let mut k = Self {
            td: String::new(),
            config: config_dir.path().join("gantry.yaml"),
            _config_dir: config_dir,
            proxy: S3Proxy::start(&moto_url()).await,
            s3,
            ecs,
            cluster,
            bucket,
            subnet: crate::services::default_subnet(),
        };
        k.td = k
            .task_definition(&format!("kaniko-{name}-{}", std::process::id()), exit_code)
            .await;
        k.write_config();
        k
    }

    async fn task_definition(&self, family: &str, exit_code: &str) -> String {
        let td = json!({
            "family": family,
            "requiresCompatibilities": ["FARGATE"],
            "networkMode": "awsvpc",
            "cpu": "1024",
            "memory": "2048",
            "executionRoleArn": "arn:aws:iam::123456789012:role/ecsTaskExecutionRole",
            "taskRoleArn": "arn:aws:iam::123456789012:role/gantry-kaniko",
            "containerDefinitions": [{
                "name": "kaniko",
                "image": "gcr.io/kaniko-project/executor:v1.23.2",
                "essential": true,
                "memory": 2048,
                "environment": [{"name": "GANTRY_TEST_EXIT_CODE", "value": exit_code}]
            }]
        });
        let out = self
            .ecs
            .register_task_definition()
            .family(family)
            .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
            .network_mode(aws_sdk_ecs::types::NetworkMode::Awsvpc)
            .cpu("1024")
            .memory("2048")
            .execution_role_arn(td["executionRoleArn"].as_str().unwrap())
            .container_definitions(
                aws_sdk_ecs::types::ContainerDefinition::builder()
                    .name("kaniko")
                    .image(td["containerDefinitions"][0]["image"].as_str().unwrap())
                    .essential(true)
                    .memory(2048)
                    .environment(
                        aws_sdk_ecs::types::KeyValuePair::builder()
                            .name("GANTRY_TEST_EXIT_CODE")
                            .value(exit_code)
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
        out.task_definition()
            .unwrap()
            .task_definition_arn()
            .unwrap()
            .to_owned()
    }

    fn write_config(&self) {
        std::fs::write(
            &self.config,
            format!(
                "images:\n  kaniko:\n    cluster: {}\n    taskDefinition: {}\n    bucket: {}\n    subnets: [{}]\n    securityGroups: [sg-0123456789abcdef0]\n",
                self.cluster, self.td, self.bucket, self.subnet
            ),
        )
        .unwrap();
    }

    async fn build(&self, context: &std::path::Path, target: &str) -> (bool, String, String) {
        run(cli()
            .env("GANTRY_AWS_ENDPOINT_URL", &self.proxy.url)
            .env("GANTRY_ECS_POLL", "20ms")
            .arg("image")
            .arg("build")
            .arg("--config")
            .arg(&self.config)
            .args(["--builder", "kaniko", "--context"])
            .arg(context)
            .args([
                "--tag",
                target,
                "--revision",
                REVISION,
                "--source",
                "https://github.com/acme/api",
            ]))
        .await
    }

    fn run_tasks(&self) -> Vec<Value> {
        self.proxy
            .take()
            .into_iter()
            .filter(|s| s.target.ends_with(".RunTask"))
            .map(|s| serde_json::from_slice(&s.body).unwrap())
            .collect()
    }
}

#[tokio::test]
async fn kaniko_runs_one_ecs_task_with_the_context_in_s3() {
    let k = Kaniko::new("ok", "0").await;
    let td = k.td.clone();
    let context = app_dir(&[
        (
            "Dockerfile",
            "FROM python:3.12-slim\nCOPY . /app\nRUN pip install -r /app/requirements.txt\n",
        ),
        ("main.py", FASTAPI_MAIN),
        ("requirements.txt", "fastapi\n"),
    ]);
    let repo = unique("kaniko");
    let target = format!("{ECR}/{repo}:{REVISION}");
    // kaniko (in the real task) pushes the image; moto's task does not, so push one first,
    // exactly where kaniko would, and expect Gantry to read its digest back.
    let pushed = layer_build(app_dir(&[("x", "y")]).path(), &repo).await;

    let (ok, stdout, stderr) = k.build(context.path(), &target).await;
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout.trim(),
        pushed["digest"].as_str().unwrap(),
        "the digest comes from the registry"
    );

    let calls = k.run_tasks();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    let mut call = calls[0].clone();
    // Gantry's own idempotency token (the SDK's would be random per call): one per build, so
    // a retried or resumed step gets the same kaniko task back, never a second build.
    let token = call
        .as_object_mut()
        .unwrap()
        .remove("clientToken")
        .expect("a client token");
    let call = &call;
    let command = call["overrides"]["containerOverrides"][0]["command"]
        .as_array()
        .unwrap()
        .clone();
    let context_arg = command[0].as_str().unwrap().to_owned();
    let key = context_arg
        .strip_prefix(&format!("--context=s3://{}/", k.bucket))
        .unwrap_or_else(|| panic!("{context_arg}"))
        .to_owned();
    assert!(
        key.starts_with(&format!("gantry/kaniko/{repo}/{REVISION}-")) && key.ends_with(".tar.gz"),
        "{key}"
    );
    let label_of = |name: &str| {
        command
            .iter()
            .filter_map(|c| c.as_str())
            .find(|c| c.starts_with(&format!("--label={name}=")))
            .map(str::to_owned)
    };
    let inputs_label = label_of("dev.gantry.inputs").expect("inputs label");
    let inputs = inputs_label.trim_start_matches("--label=dev.gantry.inputs=");
    assert_eq!(
        token,
        gantry::plan::rollout::client_token(&[
            "kaniko",
            &format!("{ECR}/{repo}:{REVISION}"),
            inputs
        ])
    );
    assert_eq!(
        *call,
        json!({
            "cluster": k.cluster,
            "taskDefinition": td,
            "launchType": "FARGATE",
            "count": 1,
            "startedBy": "gantry",
            "networkConfiguration": {"awsvpcConfiguration": {
                "subnets": [k.subnet],
                "securityGroups": ["sg-0123456789abcdef0"],
                "assignPublicIp": "DISABLED"
            }},
            "overrides": {"containerOverrides": [{
                "name": "kaniko",
                "command": [
                    context_arg,
                    "--dockerfile=Dockerfile",
                    format!("--destination={target}"),
                    inputs_label,
                    "--label=org.opencontainers.image.source=https://github.com/acme/api",
                    "--digest-file=/dev/termination-log"
                ]
            }]}
        })
    );

    // The context object: the context as a tar.gz, Dockerfile included.
    let obj =
        k.s3.get_object()
            .bucket(&k.bucket)
            .key(&key)
            .send()
            .await
            .unwrap();
    assert_eq!(obj.content_type(), Some("application/gzip"));
    let body = obj.body.collect().await.unwrap().into_bytes();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&body[..]));
    let mut names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    names.sort();
    assert_eq!(names, vec!["Dockerfile", "main.py", "requirements.txt"]);
}

#[tokio::test]
async fn a_kaniko_task_that_exits_non_zero_fails_the_build_with_its_reason() {
    let k = Kaniko::new("fail", "3").await;
    let context = app_dir(&[("Dockerfile", "FROM scratch\nCOPY . /\n"), ("a.txt", "a")]);
    let repo = unique("kaniko-fail");
    let (ok, stdout, stderr) = k
        .build(context.path(), &format!("{ECR}/{repo}:{REVISION}"))
        .await;
    assert!(!ok, "{stdout}");
    let err = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert!(err.contains("kaniko task arn:aws:ecs:"), "{stderr}");
    assert!(err.contains("stopped with exit code 3"), "{stderr}");
    assert!(
        err.contains("Essential container in task exited"),
        "ECS's reason is reported: {stderr}"
    );
    assert_eq!(k.run_tasks().len(), 1);
}

/// A docker config.json with credentials for the local registry under its own name, so its
/// images resolve to digests (for the daemon and the CLI alike); returns its path.
fn local_auth_file(dir: &std::path::Path) -> String {
    let auth = dir.join("auth.json");
    let token = base64::engine::general_purpose::STANDARD.encode(REG_CREDS);
    std::fs::write(
        &auth,
        json!({"auths": {registry(): {"auth": token}}}).to_string(),
    )
    .unwrap();
    auth.display().to_string()
}

/// Pushes a commit to `app` and waits for its deployment; returns it.
async fn deploy_commit(app: &TestApp, delivery: &str, sha: &str) -> Value {
    app.push_and_wait(delivery, "acme/api", sha).await
}

fn publish_log(d: &Value) -> String {
    crate::support::step_log(d, "publish_images")
}

/// Content addressing with the layer builder: a commit that leaves the image's context alone
/// builds nothing and uploads nothing; the image it had is re-tagged with the new sha (the
/// same digest, so its services see no change); a commit that changes the context builds.
#[tokio::test]
async fn an_unchanged_image_is_reused_at_a_new_commit_with_the_same_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("api"));
    let a = repo.commit(
        &[
            ("api/main.py", FASTAPI_MAIN),
            ("site/index.html", "<p>v1</p>"),
        ],
        "api and site",
    );
    let image_repo = unique("content");
    let manifest = format!(
        "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: api\nspec:\n  source:\n    repo: acme/api\n    url: {}\n  images:\n    - name: api\n      repository: {ECR}/{image_repo}\n      context: api\n      base: {}\n      entrypoint: [python3, main.py]\n      createRepository: true\n",
        repo.path.display(),
        base_image()
    );
    let app = TestApp::start_with(
        &[("api.yaml", manifest)],
        &[
            ("GANTRY_AWS_ENDPOINT_URL", moto_url().as_str()),
            ("GANTRY_REGISTRY_ENDPOINTS", endpoints().as_str()),
        ],
    )
    .await;
    let first = deploy_commit(&app, "content-1", &a).await;
    assert_eq!(first["state"], "succeeded", "{first:#}");
    let digest_a = pulled_digest(&image_repo, &a);
    // Only the site changes: the image is the same content.
    let b = repo.commit(&[("site/index.html", "<p>v2</p>")], "one page");
    let before = registry_log_len();
    let second = deploy_commit(&app, "content-2", &b).await;
    assert_eq!(second["state"], "succeeded", "{second:#}");
    let log = publish_log(&second);
    assert!(log.contains("inputs unchanged since"), "{log}");
    assert!(!log.contains("building"), "{log}");
    assert_eq!(
        pulled_digest(&image_repo, &b),
        digest_a,
        "re-tagged, same digest"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let requests = registry_requests(&image_repo, before);
    assert!(blob_uploads(&requests).is_empty(), "{requests:#?}");
    let puts: Vec<_> = requests.iter().filter(|l| l.contains("\"PUT ")).collect();
    assert_eq!(puts.len(), 1, "only the new tag: {puts:#?}");
    assert!(puts[0].contains(&format!("/manifests/{b}")), "{puts:#?}");
    let releases = app.api("/api/v1/releases?app=api").await;
    assert_eq!(releases[0]["images"]["api"], releases[1]["images"]["api"]);
    // The context changes: a new image.
    let c = repo.commit(&[("api/main.py", "print('v3')\n")], "api change");
    let third = deploy_commit(&app, "content-3", &c).await;
    assert!(publish_log(&third).contains("building"), "{third:#}");
    assert_ne!(pulled_digest(&image_repo, &c), digest_a);
    app.finish().await;
}

/// A Dockerfile's base is an input: `FROM ${BASE}` (a build arg) is resolved, with credentials
/// for its registry, and a new image under the same base tag makes the same commit build again.
#[tokio::test]
async fn a_new_base_under_the_same_tag_rebuilds_a_dockerfile_image() {
    let base_repo = unique("base");
    let base_tag = format!("{}/{base_repo}:1", registry());
    let local_base = std::env::var("GANTRY_TEST_BASE_IMAGE").unwrap();
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--src-creds",
        REG_CREDS,
        "--dest-creds",
        REG_CREDS,
        &format!("docker://{local_base}"),
        &format!("docker://{base_tag}"),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("api"));
    let sha = repo.commit(
        &[(
            "Dockerfile",
            "ARG BASE=nowhere.invalid/none:0\nFROM ${BASE}\nRUN echo built > /built.txt\n",
        )],
        "api",
    );
    let auth = local_auth_file(tmp.path());
    let image_repo = unique("rebased");
    let manifest = format!(
        "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: api\nspec:\n  source:\n    repo: acme/api\n    url: {}\n  images:\n    - name: api\n      repository: {ECR}/{image_repo}\n      builder: buildah\n      buildArgs:\n        BASE: {base_tag}\n      createRepository: true\n",
        repo.path.display(),
    );
    let app = TestApp::start_with(
        &[("api.yaml", manifest)],
        &[
            ("GANTRY_AWS_ENDPOINT_URL", moto_url().as_str()),
            ("GANTRY_REGISTRY_ENDPOINTS", endpoints().as_str()),
            ("GANTRY_REGISTRY_AUTH_FILE", auth.as_str()),
        ],
    )
    .await;
    let first = deploy_commit(&app, "rebase-1", &sha).await;
    assert_eq!(first["state"], "succeeded", "{first:#}");
    let redeploy = || async {
        let resp = app
            .http
            .post(app.url("/api/v1/apps/api/deploy"))
            .bearer_auth(TOKEN)
            .json(&json!({ "sha": sha }))
            .send()
            .await
            .unwrap();
        let id = resp.json::<Value>().await.unwrap()["id"].clone();
        app.wait_idle(Duration::from_secs(120)).await;
        app.api(&format!("/api/v1/deployments/{id}")).await
    };
    let same = redeploy().await;
    assert!(
        publish_log(&same).contains("already has these inputs"),
        "{same:#}"
    );
    // A new image under the base's tag (a layer on top of the old one).
    let ctx = app_dir(&[("extra.txt", "new base")]);
    let (ok, _, stderr) = run(cli()
        .args(["image", "build", "--builder", "layer", "--base", &base_tag])
        .arg("--context")
        .arg(ctx.path())
        .args(["--tag", &base_tag, "--revision", REVISION])
        .env("GANTRY_REGISTRY_AUTH_FILE", &auth))
    .await;
    assert!(ok, "{stderr}");
    let rebased = redeploy().await;
    assert_eq!(rebased["state"], "succeeded", "{rebased:#}");
    let log = publish_log(&rebased);
    assert!(log.contains("building"), "a new base is a new input: {log}");
    app.finish().await;
}

/// The same Dockerfile and context built at two commits (into two repositories) is the same
/// image, digest included: no commit sha or time goes into it.
#[tokio::test]
async fn buildah_builds_the_same_inputs_at_two_commits_to_one_digest() {
    let local_base = std::env::var("GANTRY_TEST_BASE_IMAGE").unwrap();
    let dockerfile =
        format!("FROM {local_base}\nRUN mkdir -p /app && echo fixed > /app/built.txt\nCOPY main.py /app/main.py\n");
    let app = app_dir(&[("Dockerfile", &dockerfile), ("main.py", FASTAPI_MAIN)]);
    // The base must resolve to a digest for the key to be trusted (else it never matches).
    let creds = tempfile::tempdir().unwrap();
    let auth = local_auth_file(creds.path());
    let (mut digests, mut configs) = (Vec::new(), Vec::new());
    for revision in [REVISION, "0123456789abcdef0123456789abcdef01234567"] {
        let repo = unique("twice");
        let (ok, stdout, stderr) = run(cli()
            .env_remove("SOURCE_DATE_EPOCH")
            .env("GANTRY_REGISTRY_AUTH_FILE", &auth)
            .args(["image", "build", "--builder", "buildah", "--context"])
            .arg(app.path())
            .args([
                "--tag",
                &format!("{ECR}/{repo}:{revision}"),
                "--revision",
                revision,
            ]))
        .await;
        assert!(ok, "{stderr}");
        digests.push(stdout.trim().to_owned());
        configs.push(pulled_config(&repo, revision));
    }
    assert_eq!(digests[0], digests[1], "{:#}\n{:#}", configs[0], configs[1]);
}

/// A sandboxed build's output is kept for the next steps (the checkout is not made again),
/// and the daemon runs no git in a tree the build could change: a build that plants an
/// fsmonitor command in `.git/config` gets it run by nobody.
#[tokio::test]
async fn a_build_output_survives_to_the_image_and_a_planted_git_hook_never_runs() {
    if gantry::adapters::process::Isolation::detect() == gantry::adapters::process::Isolation::None
    {
        panic!("this test needs root, bwrap and setpriv (scripts/setup.sh installs them)");
    }
    let tmp = tempfile::tempdir().unwrap();
    let pwned = tmp.path().join("pwned");
    let repo = GitRepo::new(&tmp.path().join("api"));
    let build = format!(
        "mkdir -p out && cp main.py out/ && printf '[core]\\n\\tfsmonitor = touch {}\\n' >> .git/config",
        pwned.display()
    );
    let sha = repo.commit(&[("main.py", FASTAPI_MAIN)], "api");
    let image_repo = unique("built-output");
    let manifest = format!(
        "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: api\nspec:\n  source:\n    repo: acme/api\n    url: {}\n  build:\n    commands: [{}]\n  images:\n    - name: api\n      repository: {ECR}/{image_repo}\n      context: out\n      base: {}\n      entrypoint: [python3, main.py]\n      createRepository: true\n",
        repo.path.display(),
        serde_json::to_string(&build).unwrap(),
        base_image()
    );
    let app = TestApp::start_with(
        &[("api.yaml", manifest)],
        &[
            ("GANTRY_AWS_ENDPOINT_URL", moto_url().as_str()),
            ("GANTRY_REGISTRY_ENDPOINTS", endpoints().as_str()),
            ("GANTRY_BUILD_ISOLATION", "bubblewrap"),
        ],
    )
    .await;
    let d = deploy_commit(&app, "output-1", &sha).await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    let log = publish_log(&d);
    assert!(log.contains("checkout already at"), "{log}");
    assert!(!pwned.exists(), "the planted fsmonitor ran as the daemon");
    app.finish().await;
}

/// `gantry image build` works as ko does from any CI: a relative `--context` (also with
/// buildah, which runs elsewhere) and no git repository, no `--revision`: the tag names it.
#[tokio::test]
async fn standalone_build_takes_a_relative_context_outside_git() {
    let local_base = std::env::var("GANTRY_TEST_BASE_IMAGE").unwrap();
    let work = app_dir(&[(
        "ctx/Dockerfile",
        &format!("FROM {local_base}\nCOPY main.py /app/main.py\n"),
    )]);
    std::fs::write(work.path().join("ctx/main.py"), FASTAPI_MAIN).unwrap();
    let creds = tempfile::tempdir().unwrap();
    let auth = local_auth_file(creds.path());
    let repo = unique("standalone");
    let (ok, stdout, stderr) = run(cli()
        .current_dir(work.path())
        .env("GANTRY_REGISTRY_AUTH_FILE", &auth)
        .args(["image", "build", "--builder", "buildah", "--context", "ctx"])
        .args(["--tag", &format!("{ECR}/{repo}:v1")]))
    .await;
    assert!(ok, "{stderr}");
    assert_eq!(pulled_digest(&repo, "v1"), stdout.trim());
}
