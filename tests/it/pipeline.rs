//! The pipeline with real parts: git fetch of an exact commit, build commands, failures and
//! timeouts reported with their reason, secrets kept out of logs, the store and git config.

use std::time::Duration;

use serde_json::Value;

use crate::support::{app_manifest, git, push_body, GitRepo, TestApp, TOKEN};

#[tokio::test]
async fn push_fetches_the_exact_commit_and_runs_the_build() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    let first = repo.commit(&[("version.txt", "one")], "first");
    let _second = repo.commit(&[("version.txt", "two")], "second");
    let manifest = app_manifest(
        "web",
        "acme/web",
        &repo.path,
        "main",
        &[
            "cat version.txt",
            "test \"$GANTRY_SHA\" = \"$(git rev-parse HEAD)\"",
            "env | sort",
        ],
    );
    let app = TestApp::start(&[("web.yaml", manifest)]).await;
    // Deploy the older commit, not the branch tip.
    let (status, resp) = app
        .hook(
            "push",
            "d1",
            &push_body("acme/web", "refs/heads/main", &first),
        )
        .await;
    assert_eq!(status, 202, "{resp}");
    let id = resp["deployments"][0].as_i64().unwrap();
    app.wait_idle(Duration::from_secs(30)).await;
    let d = app.api(&format!("/api/v1/deployments/{id}")).await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    assert_eq!(d["sha"], first.as_str());
    assert_eq!(d["trigger"], "push");
    assert_eq!(d["actor"], "octocat");
    let steps: Vec<&str> = d["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["fetch_source", "build", "report"]);
    let build_log = d["steps"][1]["log"].as_str().unwrap();
    assert!(
        build_log.contains("$ cat version.txt\none\n"),
        "{build_log}"
    );
    // A clean environment: only what Gantry sets.
    assert!(
        build_log.contains(&format!("GANTRY_SHA={first}")),
        "{build_log}"
    );
    assert!(!build_log.contains("GANTRY_API_TOKEN"), "{build_log}");
    assert!(!build_log.contains(TOKEN));
    let releases = app.store().releases("web", 10).await.unwrap();
    assert_eq!(releases.len(), 1);
    assert_eq!(releases[0].sha, first);
    // The list view is newest first and carries the steps.
    let list = app.deployments("web").await;
    assert_eq!(list[0]["id"], id);
    assert_eq!(list[0]["steps"].as_array().unwrap().len(), 3);
    app.finish().await;
}

#[tokio::test]
async fn failures_stop_the_pipeline_with_the_reason_and_last_output() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("api"));
    let sha = repo.commit(&[("a", "1")], "init");
    let failing = app_manifest(
        "api",
        "acme/api",
        &repo.path,
        "main",
        &[
            "echo compiling",
            "echo 'error: boom' >&2; exit 3",
            "echo never",
        ],
    );
    let slow = app_manifest("slow", "acme/slow", &repo.path, "main", &["sleep 30"])
        .replace("    commands:", "    timeout: 1s\n    commands:");
    let app = TestApp::start(&[("api.yaml", failing), ("slow.yaml", slow)]).await;
    let (_, r1) = app
        .hook(
            "push",
            "f1",
            &push_body("acme/api", "refs/heads/main", &sha),
        )
        .await;
    let (_, r2) = app
        .hook(
            "push",
            "f2",
            &push_body("acme/slow", "refs/heads/main", &sha),
        )
        .await;
    // A commit that does not exist.
    let (_, r3) = app
        .hook(
            "push",
            "f3",
            &push_body("acme/api", "refs/heads/main", &"f".repeat(40)),
        )
        .await;
    app.wait_idle(Duration::from_secs(30)).await;
    let d1 = app
        .api(&format!("/api/v1/deployments/{}", r1["deployments"][0]))
        .await;
    let d2 = app
        .api(&format!("/api/v1/deployments/{}", r2["deployments"][0]))
        .await;
    let d3 = app
        .api(&format!("/api/v1/deployments/{}", r3["deployments"][0]))
        .await;
    // d1 may have been superseded by d3 if it had not started yet; both end terminal.
    for d in [&d1, &d2, &d3] {
        assert_ne!(d["state"], "succeeded", "{d:#}");
    }
    if d1["state"] == "failed" {
        let reason = d1["reason"].as_str().unwrap();
        assert!(reason.contains("step build failed"), "{reason}");
        assert!(reason.contains("exited with status 3"), "{reason}");
        assert!(
            reason.contains("error: boom"),
            "last output is in the reason: {reason}"
        );
        assert!(!d1["steps"][1]["log"].as_str().unwrap().contains("never"));
        assert_eq!(d1["steps"][2]["state"], "pending", "report never ran");
    }
    assert_eq!(d2["state"], "failed");
    assert!(
        d2["reason"]
            .as_str()
            .unwrap()
            .contains("timed out after 1s"),
        "{}",
        d2["reason"]
    );
    assert_eq!(d3["state"], "failed");
    assert!(
        d3["reason"]
            .as_str()
            .unwrap()
            .contains("step fetch_source failed"),
        "{}",
        d3["reason"]
    );
    assert!(app.store().releases("api", 10).await.unwrap().is_empty());
    app.finish().await;
}

#[tokio::test]
async fn api_deploys_a_ref_and_audits_it() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    let sha = repo.commit(&[("a", "1")], "init");
    let app = TestApp::start(&[(
        "web.yaml",
        app_manifest("web", "acme/web", &repo.path, "main", &["true"]),
    )])
    .await;
    // No token -> 401; unknown app -> 404; both ref and sha -> 400.
    let r = app
        .http
        .post(app.url("/api/v1/apps/web/deploy"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .http
        .get(app.url("/api/v1/apps"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .http
        .post(app.url("/api/v1/apps/web/deploy"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{\"rev\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let err = r.json::<Value>().await.unwrap();
    assert!(
        err["error"].as_str().unwrap().contains("unknown field"),
        "{err}"
    );
    let r = app
        .http
        .post(app.url("/api/v1/apps/nope/deploy"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = app
        .http
        .post(app.url("/api/v1/apps/web/deploy"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"ref": "main", "sha": sha}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = app
        .http
        .post(app.url("/api/v1/apps/web/deploy"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"actor": "cli:alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    app.wait_idle(Duration::from_secs(30)).await;
    let d = app.api(&format!("/api/v1/deployments/{id}")).await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    assert_eq!(
        d["sha"],
        sha.as_str(),
        "the branch was resolved to its commit"
    );
    assert_eq!(d["trigger"], "api");
    let audit = app.api("/api/v1/audit?target=web").await;
    assert_eq!(audit[0]["actor"], "cli:alice");
    assert_eq!(audit[0]["action"], "deploy");
    let apps = app.api("/api/v1/apps").await;
    assert_eq!(apps[0]["name"], "web");
    assert_eq!(apps[0]["last_deployment"]["id"], id);
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    app.finish().await;
}

#[tokio::test]
async fn secrets_stay_out_of_logs_store_and_git_config() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    let sha = repo.commit(&[("a", "1")], "init");
    let github_token = "ghs_c4n4ry0123456789abcdef";
    let build_secret = "c4n4ry-npm-token-98765";
    std::env::set_var("GANTRY_IT_NPM_TOKEN", build_secret);
    let manifest = app_manifest(
        "web",
        "acme/web",
        &repo.path,
        "main",
        &["echo token is $NPM_TOKEN"],
    )
    .replace("    commands:", "    passEnv: [NPM_TOKEN]\n    commands:")
    .replace("NPM_TOKEN]", "GANTRY_IT_NPM_TOKEN]")
    .replace("$NPM_TOKEN", "$GANTRY_IT_NPM_TOKEN");
    let app = TestApp::start_with(
        &[("web.yaml", manifest)],
        &[("GANTRY_GITHUB_TOKEN", github_token)],
    )
    .await;
    let (_, r) = app
        .hook(
            "push",
            "s1",
            &push_body("acme/web", "refs/heads/main", &sha),
        )
        .await;
    app.wait_idle(Duration::from_secs(30)).await;
    let d = app
        .api(&format!("/api/v1/deployments/{}", r["deployments"][0]))
        .await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    let text = d.to_string();
    assert!(text.contains("token is [redacted]"), "{text}");
    assert!(!text.contains(build_secret) && !text.contains(github_token));
    // Nothing on disk holds either secret: the database and every git config.
    let data = app.dir.path().join("data");
    let mut files = vec![];
    collect(&data, &mut files);
    for f in files {
        let bytes = std::fs::read(&f).unwrap_or_default();
        let hay = String::from_utf8_lossy(&bytes);
        assert!(
            !hay.contains(github_token) && !hay.contains(build_secret),
            "secret found in {}",
            f.display()
        );
    }
    let mirror = data.join("mirrors/acme_web.git");
    assert!(git(&mirror, &["config", "--list"])
        .lines()
        .all(|l| !l.contains("extraheader")));
    app.finish().await;
}

fn collect(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else {
            out.push(p);
        }
    }
}
