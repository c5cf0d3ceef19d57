//! Crash safety with the real binary: SIGKILL during a build step, restart, and the
//! deployment finishes exactly once; no accepted delivery is lost.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{app_manifest, push_body, wait_for, GitRepo, SECRET, TOKEN};

pub struct Daemon {
    pub child: Child,
    base: String,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(data: &std::path::Path, manifests: &std::path::Path, port: u16) -> Daemon {
    // The builds here write markers outside their workspace for the test to watch.
    spawn_with(data, manifests, port, &[("GANTRY_BUILD_ISOLATION", "none")])
}

/// The real binary as a daemon, with extra environment.
pub fn spawn_with(
    data: &std::path::Path,
    manifests: &std::path::Path,
    port: u16,
    env: &[(&str, &str)],
) -> Daemon {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data.with_extension("log"))
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .arg("serve")
        .env_remove("GANTRY_CONFIG")
        .env("GANTRY_LISTEN", format!("127.0.0.1:{port}"))
        .env("GANTRY_DATA_DIR", data)
        .env("GANTRY_MANIFESTS", manifests)
        .env("GANTRY_GITHUB_WEBHOOK_SECRET", SECRET)
        .env("GANTRY_API_TOKEN", TOKEN)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Daemon {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

impl Daemon {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Resident memory, in bytes.
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap()
            * 1024
    }
}

impl Daemon {
    pub async fn ready(&self, http: &reqwest::Client) {
        let url = format!("{}/readyz", self.base);
        wait_for(Duration::from_secs(20), "the daemon to be ready", || {
            let http = http.clone();
            let url = url.clone();
            async move { http.get(&url).send().await.is_ok_and(|r| r.status() == 200) }
        })
        .await;
    }

    pub async fn deployment(&self, http: &reqwest::Client, id: i64) -> Value {
        http.get(format!("{}/api/v1/deployments/{id}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn push(&self, http: &reqwest::Client, delivery: &str, body: &[u8]) -> Value {
        let r = http
            .post(format!("{}/hooks/github", self.base))
            .header("x-github-event", "push")
            .header("x-github-delivery", delivery)
            .header(
                "x-hub-signature-256",
                gantry::http::hooks::sign(SECRET, body),
            )
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        r.json().await.unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn sigkill_mid_step_then_restart_finishes_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    let sha = repo.commit(&[("a", "1")], "init");
    let runs = tmp.path().join("runs.txt");
    let manifests = tmp.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    // The build appends a line when it starts and one when it completes.
    let cmd = format!(
        "echo start-$GANTRY_DEPLOYMENT_ID >> {0}; sleep 5; echo done-$GANTRY_DEPLOYMENT_ID >> {0}",
        runs.display()
    );
    std::fs::write(
        manifests.join("web.yaml"),
        app_manifest("web", "acme/web", &repo.path, "main", &[&cmd]),
    )
    .unwrap();
    let data = tmp.path().join("data");
    let http = reqwest::Client::new();
    let port = free_port();

    let mut first = spawn(&data, &manifests, port);
    first.ready(&http).await;
    let a = first
        .push(
            &http,
            "crash-a",
            &push_body("acme/web", "refs/heads/main", &sha),
        )
        .await;
    let a_id = a["deployments"][0].as_i64().unwrap();
    wait_for(Duration::from_secs(20), "the build step to run", || {
        let runs = runs.clone();
        async move { std::fs::read_to_string(&runs).is_ok_and(|s| s.contains(&format!("start-{a_id}"))) }
    })
    .await;
    // Accepted while the first deployment runs: must survive the crash.
    let b = first
        .push(
            &http,
            "crash-b",
            &push_body("acme/web", "refs/heads/main", &sha),
        )
        .await;
    let b_id = b["deployments"][0].as_i64().unwrap();
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();

    let second = spawn(&data, &manifests, port);
    second.ready(&http).await;
    wait_for(
        Duration::from_secs(60),
        "both deployments to finish",
        || {
            let (http, second) = (&http, &second);
            async move {
                let a = second.deployment(http, a_id).await;
                let b = second.deployment(http, b_id).await;
                a["state"] == "succeeded" && b["state"] == "succeeded"
            }
        },
    )
    .await;
    let a = second.deployment(&http, a_id).await;
    let steps = a["steps"].as_array().unwrap();
    assert_eq!(steps[0]["kind"], "fetch_source");
    assert_eq!(steps[0]["attempts"], 1, "a finished step is not run again");
    assert_eq!(
        steps[1]["attempts"], 2,
        "the interrupted build resumed: {a:#}"
    );
    assert!(steps[1]["log"]
        .as_str()
        .unwrap()
        .contains("resuming build: attempt 2"));
    assert_eq!(steps[2]["attempts"], 1);
    // Exactly two deployments, each completed exactly once.
    let list: Value = http
        .get(format!("{}/api/v1/deployments?app=web", second.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    // The build orphaned by the SIGKILL was killed on resume: each build completed once.
    let log = std::fs::read_to_string(&runs).unwrap();
    assert_eq!(log.matches(&format!("start-{a_id}")).count(), 2, "{log}");
    assert_eq!(log.matches(&format!("done-{a_id}")).count(), 1, "{log}");
    assert_eq!(log.matches(&format!("done-{b_id}")).count(), 1, "{log}");
    // Its process group is gone, so nothing can append later.
    assert!(!tmp
        .path()
        .join(format!("data/work/{a_id}/build.pgid"))
        .exists());
}

#[tokio::test]
async fn graceful_shutdown_leaves_the_running_step_resumable() {
    use crate::support::TestApp;
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    let sha = repo.commit(&[("a", "1")], "init");
    let marker = tmp.path().join("started");
    // The first attempt marks that it started and runs long; a resumed attempt is quick.
    let cmd = format!(
        "if [ -e {0} ]; then echo resumed; else touch {0}; sleep 30; fi",
        marker.display()
    );
    let manifests = [(
        "web.yaml",
        app_manifest("web", "acme/web", &repo.path, "main", &[&cmd]),
    )];
    // The build writes a marker outside its workspace for the test to watch.
    let unsandboxed = [("GANTRY_BUILD_ISOLATION", "none")];
    let app = TestApp::start_with(&manifests, &unsandboxed).await;
    let (_, r) = app
        .hook(
            "push",
            "term-1",
            &push_body("acme/web", "refs/heads/main", &sha),
        )
        .await;
    let id = r["deployments"][0].as_i64().unwrap();
    wait_for(Duration::from_secs(20), "the build to start", || {
        let marker = marker.clone();
        async move { marker.exists() }
    })
    .await;
    // Shutdown: no new work, the build gets the 1 s grace, then is killed and left running.
    let started = std::time::Instant::now();
    let dir = app.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );
    // A new daemon on the same data resumes the build step and finishes.
    let app = TestApp::start_in(dir, &manifests, &unsandboxed).await;
    app.wait_idle(Duration::from_secs(30)).await;
    let d = app.api(&format!("/api/v1/deployments/{id}")).await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    assert_eq!(d["steps"][0]["attempts"], 1, "{d:#}");
    assert_eq!(d["steps"][1]["attempts"], 2, "{d:#}");
    assert!(
        d["steps"][1]["log"]
            .as_str()
            .unwrap()
            .contains("resuming build"),
        "{d:#}"
    );
    app.finish().await;
}
