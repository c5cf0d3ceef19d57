//! Test helpers: a daemon per test on port 0 with its own temp dir, signed webhook posting,
//! real git repositories, and polling with deadlines (never bare sleeps).

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use gantry::app::Running;
use gantry::config::Config;
use gantry::http::hooks::sign;
use serde_json::Value;

/// Secrets carry the leak scan's canary (tests/it/leaks.rs).
pub const SECRET: &str = "c4n4ry-webhook-secret";
pub const TOKEN: &str = "c4n4ry-api-token-0123";

/// A real git repository with commits made by the test.
pub struct GitRepo {
    pub path: PathBuf,
}

impl GitRepo {
    pub fn new(path: &Path) -> Self {
        std::fs::create_dir_all(path).unwrap();
        git(path, &["init", "-q", "-b", "main"]);
        git(path, &["config", "user.email", "dev@example.com"]);
        git(path, &["config", "user.name", "Dev Eloper"]);
        Self {
            path: path.to_path_buf(),
        }
    }

    /// Writes files and commits them; returns the new commit's sha.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        for (name, body) in files {
            let p = self.path.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        git(&self.path, &["add", "-A"]);
        git(&self.path, &["commit", "-q", "-m", message]);
        git(&self.path, &["rev-parse", "HEAD"])
    }
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git is installed (scripts/setup.sh)");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// An App manifest tracking a local repository.
pub fn app_manifest(name: &str, repo: &str, url: &Path, branch: &str, build: &[&str]) -> String {
    let mut s = format!(
        "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: {name}\nspec:\n  source:\n    repo: {repo}\n    url: {}\n    branch: {branch}\n",
        url.display()
    );
    if !build.is_empty() {
        s.push_str("  build:\n    commands:\n");
        for c in build {
            s.push_str(&format!("      - {}\n", serde_json::to_string(c).unwrap()));
        }
    }
    s
}

/// A push payload as GitHub sends it (fields Gantry reads, shape from GitHub's docs).
pub fn push_body(repo: &str, git_ref: &str, sha: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "ref": git_ref,
        "before": "0000000000000000000000000000000000000000",
        "after": sha,
        "created": false,
        "deleted": false,
        "forced": false,
        "repository": { "full_name": repo, "name": repo.split('/').nth(1).unwrap() },
        "pusher": { "name": "octocat", "email": "octocat@github.com" },
        "sender": { "login": "octocat" },
        "commits": [],
        "head_commit": null
    }))
    .unwrap()
}

pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    running: Option<Running>,
}

pub struct Options {
    pub env: HashMap<String, String>,
}

impl TestApp {
    /// Starts a daemon with these manifests (file name -> YAML) and extra env settings.
    pub async fn start(manifests: &[(&str, String)]) -> Self {
        Self::start_with(manifests, &[]).await
    }

    pub async fn start_with(manifests: &[(&str, String)], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, manifests, env).await
    }

    pub async fn start_in(
        dir: tempfile::TempDir,
        manifests: &[(&str, String)],
        env: &[(&str, &str)],
    ) -> Self {
        Self::start_with_clock(
            dir,
            manifests,
            env,
            std::sync::Arc::new(gantry::ports::SystemClock),
        )
        .await
    }

    /// Starts a daemon whose deploy windows are judged at `clock`'s time.
    pub async fn start_with_clock(
        dir: tempfile::TempDir,
        manifests: &[(&str, String)],
        env: &[(&str, &str)],
        clock: std::sync::Arc<dyn gantry::ports::Clock>,
    ) -> Self {
        let mdir = dir.path().join("manifests");
        std::fs::create_dir_all(&mdir).unwrap();
        for (name, text) in manifests {
            std::fs::write(mdir.join(name), text).unwrap();
        }
        let mut vars: HashMap<String, String> = [
            ("GANTRY_LISTEN", "127.0.0.1:0".to_string()),
            (
                "GANTRY_DATA_DIR",
                dir.path().join("data").display().to_string(),
            ),
            ("GANTRY_MANIFESTS", mdir.display().to_string()),
            ("GANTRY_GITHUB_WEBHOOK_SECRET", SECRET.to_string()),
            ("GANTRY_API_TOKEN", TOKEN.to_string()),
            ("GANTRY_SHUTDOWN_GRACE", "1s".to_string()),
            // Deployments come from the pushes a test delivers; tests of polling turn it on.
            ("GANTRY_POLL_INTERVAL", "0".to_string()),
            // Drift is checked when a test asks (`POST /apps/APP/drift`) or turns it on.
            ("GANTRY_DRIFT_INTERVAL", "0".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in env {
            vars.insert(k.to_string(), v.to_string());
        }
        crate::leaks::scan_logs();
        let config =
            Config::load_with(None, &|k| vars.get(k).cloned()).expect("test config is valid");
        let running = gantry::app::start_with_clock(config, clock)
            .await
            .expect("daemon starts");
        Self {
            addr: running.addr,
            dir,
            http: reqwest::Client::new(),
            running: Some(running),
        }
    }

    /// POSTs `body` as JSON to the API with the token; the status and the JSON answer.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Lets the queue look at its deployments now (after a test moved its clock).
    pub fn wake_queue(&self) {
        self.running.as_ref().expect("daemon running").wake_queue();
    }

    /// Reloads the manifests directory, as SIGHUP does; true when the reload took.
    pub fn reload(&self) -> bool {
        self.running.as_ref().expect("daemon running").reload()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn store(&self) -> &std::sync::Arc<dyn gantry::store::Store> {
        &self.running.as_ref().expect("running").store
    }

    /// Posts a webhook signed with the test secret.
    pub async fn hook(&self, event: &str, delivery: &str, body: &[u8]) -> (u16, Value) {
        self.hook_signed(event, delivery, body, Some(&sign(SECRET, body)))
            .await
    }

    pub async fn hook_signed(
        &self,
        event: &str,
        delivery: &str,
        body: &[u8],
        signature: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .post(self.url("/hooks/github"))
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .header("user-agent", "GitHub-Hookshot/044aadd")
            .body(body.to_vec());
        if let Some(sig) = signature {
            req = req.header("x-hub-signature-256", sig);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        crate::leaks::scan("a webhook answer", &text);
        let body = serde_json::from_str::<Value>(&text).unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn api(&self, path: &str) -> Value {
        let resp = self
            .http
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        let text = resp.text().await.unwrap();
        crate::leaks::scan(&format!("GET {path}"), &text);
        serde_json::from_str(&text).unwrap()
    }

    /// Delivers a signed push of `sha` to `repo`'s main branch, waits until nothing runs, and
    /// returns the deployment it queued, with its step logs.
    pub async fn push_and_wait(&self, delivery: &str, repo: &str, sha: &str) -> Value {
        let (status, r) = self
            .hook("push", delivery, &push_body(repo, "refs/heads/main", sha))
            .await;
        assert_eq!(status, 202, "{r}");
        self.wait_idle(Duration::from_secs(120)).await;
        self.api(&format!("/api/v1/deployments/{}", r["deployments"][0]))
            .await
    }

    pub async fn deployments(&self, app: &str) -> Vec<Value> {
        self.api(&format!("/api/v1/deployments?app={app}&limit=500"))
            .await
            .as_array()
            .unwrap()
            .clone()
    }

    /// Waits until no deployment is queued or running.
    pub async fn wait_idle(&self, timeout: Duration) {
        let store = self.store().clone();
        wait_for(timeout, "all deployments to finish", || {
            let store = store.clone();
            async move {
                let all = store.deployments(None, 10_000).await.unwrap();
                all.iter().all(|d| d.state.is_terminal())
            }
        })
        .await;
    }

    /// Shuts the daemon down as SIGTERM does, whatever is still running; returns the temp dir
    /// so a new daemon can start on the same data.
    pub async fn stop(mut self) -> tempfile::TempDir {
        let running = self.running.take().expect("running");
        running.shutdown().await;
        crate::leaks::scan_dir(self.dir.path());
        crate::leaks::assert_none();
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    /// Checks that no work is left queued or running, then shuts the daemon down.
    pub async fn finish(mut self) {
        let running = self.running.take().expect("running");
        let left: Vec<_> = running
            .store
            .deployments(None, 10_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|d| !d.state.is_terminal())
            .map(|d| (d.id, d.app, d.state))
            .collect();
        running.shutdown().await;
        assert!(left.is_empty(), "work left queued or running: {left:?}");
        crate::leaks::scan_dir(self.dir.path());
        crate::leaks::assert_none();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if self.running.is_some() && !std::thread::panicking() {
            panic!("TestApp dropped without finish(): call it so leftover work fails the test");
        }
    }
}

/// Polls `cond` until it holds or `timeout` passes (then panics naming `what`).
pub async fn wait_for<F, Fut>(timeout: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A deployment's step of `kind` (as `GET /api/v1/deployments/{id}` shows it).
pub fn step<'a>(deployment: &'a Value, kind: &str) -> &'a Value {
    deployment["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["kind"] == kind))
        .unwrap_or_else(|| panic!("no {kind} step in {deployment:#}"))
}

/// That step's log.
pub fn step_log(deployment: &Value, kind: &str) -> String {
    step(deployment, kind)["log"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The repository's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `gantry` binary, run without blocking the test's runtime, with no config file and the
/// test credentials for the local AWS emulators.
pub fn gantry_cli() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_gantry"));
    cmd.env_remove("GANTRY_CONFIG")
        .env("GANTRY_POLL_INTERVAL", "0")
        .env("GANTRY_DRIFT_INTERVAL", "0")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "c4n4ry-aws-secret")
        .env("AWS_REGION", "us-east-1");
    cmd
}

/// A clock a test sets: deploy windows are judged at its time.
pub struct ManualClock(std::sync::Mutex<chrono::DateTime<chrono::Utc>>);

impl ManualClock {
    pub fn at(t: chrono::DateTime<chrono::Utc>) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self(std::sync::Mutex::new(t)))
    }

    pub fn set(&self, t: chrono::DateTime<chrono::Utc>) {
        *self.0.lock().unwrap() = t;
    }
}

impl gantry::ports::Clock for ManualClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        *self.0.lock().unwrap()
    }
}
