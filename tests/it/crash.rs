//! Crash safety with the real binary: SIGKILL during a build step, restart, and the
//! deployment finishes exactly once; no accepted delivery is lost.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{app_manifest, push_body, wait_for, GitRepo, SECRET, TOKEN};

pub struct Daemon {
    pub child: Child,
    base: String,
    /// Its data dir (scanned for leaks, with the log beside it, when it is dropped).
    data: Option<std::path::PathBuf>,
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
        .env("GANTRY_POLL_INTERVAL", "0")
        .env("GANTRY_DRIFT_INTERVAL", "0")
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
        data: Some(data.to_path_buf()),
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
        let (status, v) = self.deliver(http, delivery, body).await;
        assert_eq!(status, 202, "{v}");
        v
    }

    /// Delivers a signed push; the status and the answer.
    pub async fn deliver(
        &self,
        http: &reqwest::Client,
        delivery: &str,
        body: &[u8],
    ) -> (u16, Value) {
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
        (r.status().as_u16(), r.json().await.unwrap())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(data) = &self.data {
            crate::leaks::scan_dir(data.parent().unwrap_or(data));
        }
        if !std::thread::panicking() {
            crate::leaks::assert_none();
        }
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

/// Per deployment, what the fake saw: Discord writes answered 200 (title, nonce, message path)
/// and GitHub commit states, in order.
fn reports_of(
    seen: &[crate::fakes::Request],
    id: i64,
    sha: &str,
) -> (Vec<crate::fakes::Request>, Vec<String>) {
    let tag = format!("(#{id})");
    let discord = seen
        .iter()
        .filter(|r| r.path.starts_with("/api/v10/channels/") && r.status == 200)
        .filter(|r| {
            r.body["embeds"][0]["title"]
                .as_str()
                .is_some_and(|t| t.ends_with(&tag))
        })
        .cloned()
        .collect();
    let statuses = seen
        .iter()
        .filter(|r| r.path.ends_with(&format!("/statuses/{sha}")) && r.status < 300)
        .map(|r| r.body["state"].as_str().unwrap_or("").to_owned())
        .collect();
    (discord, statuses)
}

/// The reliability sweep: SIGKILL the daemon at random points (fixed seed, printed; set
/// GANTRY_KILL_SEED to replay one) while pushes arrive for three apps, at least 30 deployments
/// in all. After the last restart: every accepted delivery has its deployment, a replayed one
/// none; every deployment has ended (none queued or running) and owes no report; the newest
/// push of each app succeeded; each deployment that started has one Discord message (the
/// nonce de-duplicates a post repeated across a kill) whose last state is how it ended, and its
/// GitHub status ends in the matching state, never two different verdicts.
#[tokio::test]
async fn kill_sweep_every_deployment_ends_once_and_no_delivery_is_lost() {
    let seed: u64 = std::env::var("GANTRY_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026);
    eprintln!("kill sweep seed: {seed} (GANTRY_KILL_SEED={seed} replays it)");
    let mut rng = fastrand::Rng::with_seed(seed);
    let fake = crate::fakes::Fake::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let manifests = tmp.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let apps = ["a", "b", "c"];
    let repos: Vec<GitRepo> = apps
        .iter()
        .map(|app| {
            let repo = GitRepo::new(&tmp.path().join(app));
            let mut m = app_manifest(
                app,
                &format!("acme/{app}"),
                &repo.path,
                "main",
                &["sleep 0.$(( GANTRY_DEPLOYMENT_ID % 6 )); echo built"],
            );
            m.push_str("  notifications:\n    discord:\n      channel: \"1090000000000000111\"\n    github:\n      statuses: true\n");
            std::fs::write(manifests.join(format!("{app}.yaml")), m).unwrap();
            repo
        })
        .collect();
    let env = [
        ("GANTRY_BUILD_ISOLATION", "none"),
        ("GANTRY_DISCORD_API_URL", fake.url.as_str()),
        ("GANTRY_DISCORD_BOT_TOKEN", "c4n4ry-sweep-bot-token"),
        ("GANTRY_GITHUB_API_URL", fake.url.as_str()),
        ("GANTRY_GITHUB_TOKEN", "c4n4ry-sweep-github-token"),
        ("GANTRY_REPORT_RETRY_BASE", "100ms"),
        ("GANTRY_REPORT_RETRY_CAP", "300ms"),
        ("GANTRY_DISCORD_EDIT_INTERVAL", "300ms"),
    ];
    let data = tmp.path().join("data");
    let http = reqwest::Client::new();
    let port = free_port();
    // (delivery id, body, app index, sha, deployment id)
    let mut accepted: Vec<Accepted> = Vec::new();
    let (mut kills, mut replays) = (0, 0);
    let mut commit = 0;
    while accepted.len() < 30 || kills < 12 {
        assert!(kills < 40, "the sweep does not converge");
        let daemon = spawn_with(&data, &manifests, port, &env);
        daemon.ready(&http).await;
        for _ in 0..rng.usize(1..=3) {
            let app = rng.usize(0..apps.len());
            commit += 1;
            let sha = repos[app].commit(&[("n", &commit.to_string())], &format!("change {commit}"));
            let delivery = format!("sweep-{commit}");
            let body = push_body(&format!("acme/{}", apps[app]), "refs/heads/main", &sha);
            let r = daemon.push(&http, &delivery, &body).await;
            let id = r["deployments"][0].as_i64().expect("a deployment");
            accepted.push((delivery, body, app, sha, id));
        }
        if rng.u8(0..4) == 0 {
            // GitHub redelivers one: it changes nothing.
            let (delivery, body, ..) = &accepted[rng.usize(0..accepted.len())];
            let (status, r) = daemon.deliver(&http, delivery, body).await;
            assert_eq!((status, &r["duplicate"]), (200, &Value::Bool(true)), "{r}");
            replays += 1;
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(0..1500))).await;
        let mut daemon = daemon;
        daemon.child.kill().unwrap(); // SIGKILL, wherever it is
        daemon.child.wait().unwrap();
        kills += 1;
    }
    let daemon = spawn_with(&data, &manifests, port, &env);
    daemon.ready(&http).await;
    let get = |path: String| {
        let http = http.clone();
        async move {
            http.get(path)
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    // Reporting is asynchronous: poll until the whole picture holds, then report what did not.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let (list, outcome) = loop {
        let list = get(daemon.url("/api/v1/deployments?limit=500")).await;
        let owed = get(daemon.url("/api/v1/reports")).await;
        let list = list.as_array().unwrap().clone();
        let outcome = sweep_outcome(&accepted, &list, &owed, &fake.requests(), &apps);
        if outcome.is_ok() || std::time::Instant::now() > deadline {
            break (list, outcome);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "kill sweep: {kills} kills, {} deliveries accepted ({replays} replayed), {} deployments",
        accepted.len(),
        list.len()
    );
    if let Err(e) = outcome {
        panic!("after {kills} kills (seed {seed}): {e}");
    }
}

type Accepted = (String, Vec<u8>, usize, String, i64);

/// Whether the sweep's end state holds; what does not, otherwise.
fn sweep_outcome(
    accepted: &[Accepted],
    list: &[Value],
    owed: &Value,
    seen: &[crate::fakes::Request],
    apps: &[&str],
) -> Result<(), String> {
    if list.len() != accepted.len() {
        return Err(format!(
            "{} deployments for {} deliveries",
            list.len(),
            accepted.len()
        ));
    }
    if let Some(d) = list
        .iter()
        .find(|d| matches!(d["state"].as_str(), Some("queued" | "running")))
    {
        return Err(format!("#{} is still {}", d["id"], d["state"]));
    }
    if owed.as_array().is_none_or(|o| !o.is_empty()) {
        return Err(format!("reports still owed: {owed}"));
    }
    for (delivery, _, app, sha, id) in accepted {
        let d = list
            .iter()
            .find(|d| d["id"] == *id)
            .ok_or(format!("no deployment #{id}"))?;
        if d["delivery_id"] != delivery.as_str() || d["app"] != apps[*app] {
            return Err(format!("#{id} is not of {delivery}: {d:#}"));
        }
        let state = d["state"].as_str().unwrap();
        let newest = accepted.iter().rev().find(|a| a.2 == *app).unwrap().4 == *id;
        if (newest && state != "succeeded") || !matches!(state, "succeeded" | "superseded") {
            return Err(format!(
                "#{id} (newest of its app: {newest}) ended {state}: {d:#}"
            ));
        }
        let (discord, statuses) = reports_of(seen, *id, sha);
        let verdict = if state == "succeeded" {
            "success"
        } else {
            "error"
        };
        if statuses.last().map(String::as_str) != Some(verdict)
            || !statuses.iter().all(|s| s == "pending" || s == verdict)
        {
            return Err(format!("#{id} {state}: GitHub statuses {statuses:?}"));
        }
        if d["started_at"].is_null() {
            if !discord.is_empty() {
                return Err(format!("#{id} never started: {discord:#?}"));
            }
            continue;
        }
        let nonces: std::collections::HashSet<&str> = discord
            .iter()
            .filter(|r| r.method == "POST")
            .map(|r| r.body["nonce"].as_str().unwrap_or(""))
            .collect();
        let paths: std::collections::HashSet<&str> = discord
            .iter()
            .filter(|r| r.method == "PATCH")
            .map(|r| r.path.as_str())
            .collect();
        if nonces.len() != 1 || paths.len() > 1 {
            return Err(format!("#{id}: not one message: {discord:#?}"));
        }
        let last = discord.last().unwrap().body["embeds"][0]["title"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        if !last.contains(": succeeded (#") {
            return Err(format!("#{id}'s message ends as {last}"));
        }
    }
    Ok(())
}
