//! Desired state from git: a config repository (a real bare repository Gantry fetches itself)
//! holds an app's manifest and task definition; the app's code is in its own repository. A
//! push that changes only a manifest value deploys that app without building or pushing
//! anything; an invalid revision is refused with file:line, reported on its commit, and the
//! revision before it stays in force.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::fakes::Fake;
use crate::services::{task_definition, Ecs};
use crate::sites::moto_url;
use crate::support::{git, push_body, GitRepo, TestApp};

/// A bare repository and a working clone that pushes to it.
struct ConfigRepo {
    bare: PathBuf,
    work: GitRepo,
}

impl ConfigRepo {
    fn new(root: &Path) -> Self {
        let bare = root.join("config.git");
        std::fs::create_dir_all(&bare).unwrap();
        git(&bare, &["init", "-q", "--bare", "-b", "main"]);
        let work = GitRepo::new(&root.join("config"));
        git(
            &work.path,
            &["remote", "add", "origin", bare.to_str().unwrap()],
        );
        Self { bare, work }
    }

    /// Commits the files and pushes them to the bare repository; the new sha.
    fn push(&self, files: &[(&str, &str)], message: &str) -> String {
        let sha = self.work.commit(files, message);
        git(&self.work.path, &["push", "-q", "origin", "main"]);
        sha
    }
}

fn app_yaml(app_repo: &Path, ecs: &Ecs, service: &str, count: &str) -> String {
    format!(
        "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: api\nspec:\n  rolloutTimeout: 5s\n  source:\n    repo: acme/api\n    url: {}\n  build:\n    commands: [\"echo built > built.txt\"]\n  services:\n    - name: {service}\n      cluster: {}\n      taskDefinition: td.json\n      desiredCount: {count}\n      network:\n        subnets: [{}]\n  notifications:\n    discord:\n      channel: \"1090000000000000111\"\n",
        app_repo.display(),
        ecs.cluster,
        ecs.subnet
    )
}

async fn deployment(app: &TestApp, id: &Value) -> Value {
    app.api(&format!("/api/v1/deployments/{id}")).await
}

/// Waits until the app has `n` deployments and none runs; the newest, with its steps.
async fn settled(app: &TestApp, name: &str, n: usize) -> Value {
    crate::support::wait_for(Duration::from_secs(30), "the deployment", || async {
        app.deployments(name).await.len() == n
    })
    .await;
    app.wait_idle(Duration::from_secs(60)).await;
    let newest = app.deployments(name).await[0].clone();
    deployment(app, &newest["id"]).await
}

fn kinds(d: &Value) -> Vec<String> {
    d["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_config_repository_drives_deploys_and_a_bad_revision_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let ecs = Ecs::new("gitops").await;
    let service = format!("svc-gitops-{}", std::process::id());
    let family = format!("gitops-{}", std::process::id());
    let code = GitRepo::new(&tmp.path().join("api"));
    let code_sha = code.commit(&[("main.py", "print(1)")], "init");
    let config = ConfigRepo::new(tmp.path());
    let td = task_definition(&family, "512", json!([]));
    let first = config.push(
        &[
            ("apps/api.yaml", &app_yaml(&code.path, &ecs, &service, "1")),
            ("apps/td.json", &td),
            ("README.md", "deploy config"),
        ],
        "api: first",
    );
    let fake = Fake::start().await;
    let moto = moto_url();
    let bare = config.bare.display().to_string();
    let env = [
        ("GANTRY_AWS_ENDPOINT_URL", moto.as_str()),
        ("GANTRY_ECS_POLL", "20ms"),
        ("GANTRY_SOURCE_REPO", "acme/config"),
        ("GANTRY_SOURCE_URL", bare.as_str()),
        ("GANTRY_SOURCE_PATH", "apps"),
        ("GANTRY_GITHUB_API_URL", fake.url.as_str()),
        ("GANTRY_GITHUB_TOKEN", "c4n4ry-gitops-github-token"),
        ("GANTRY_DISCORD_API_URL", fake.url.as_str()),
        ("GANTRY_DISCORD_BOT_TOKEN", "c4n4ry-gitops-bot-token"),
    ];
    let app = TestApp::start_with(&[], &env).await;
    // Adopting the config repository's head deploys nothing by itself.
    let apps = app.api("/api/v1/apps").await;
    assert!(apps.to_string().contains("\"api\""), "{apps}");
    assert!(app.deployments("api").await.is_empty());

    // A push of the app's code deploys it with the manifests in force, recorded beside it.
    let (status, r) = app
        .hook(
            "push",
            "code-1",
            &push_body("acme/api", "refs/heads/main", &code_sha),
        )
        .await;
    assert_eq!(status, 202, "{r}");
    app.wait_idle(Duration::from_secs(60)).await;
    let d1 = deployment(&app, &r["deployments"][0]).await;
    assert_eq!(d1["state"], "succeeded", "{d1:#}");
    assert_eq!(
        d1["manifests"],
        json!({"repo": "acme/config", "sha": first, "file": "apps/api.yaml"})
    );
    assert!(kinds(&d1).contains(&"build".to_string()));
    assert_eq!(ecs.service(&service).await.desired_count(), 1);

    // Only a manifest value changes: that app deploys, nothing is built or fetched.
    let second = config.push(
        &[("apps/api.yaml", &app_yaml(&code.path, &ecs, &service, "2"))],
        "api: two tasks",
    );
    let (status, r) = app
        .hook(
            "push",
            "config-2",
            &push_body("acme/config", "refs/heads/main", &second),
        )
        .await;
    assert_eq!(status, 202, "{r}");
    let d2 = settled(&app, "api", 2).await;
    assert_eq!(d2["state"], "succeeded", "{d2:#}");
    assert_eq!(d2["trigger"], "manifests");
    assert_eq!(
        d2["sha"], code_sha,
        "the released code, not the config commit"
    );
    assert_eq!(
        d2["manifests"],
        json!({"repo": "acme/config", "sha": second, "file": "apps/api.yaml"})
    );
    assert_eq!(d2["images_from"], d1["id"]);
    let k = kinds(&d2);
    for absent in ["fetch_source", "build", "publish_images"] {
        assert!(!k.contains(&absent.to_string()), "{absent} ran: {k:?}");
    }
    assert_eq!(ecs.service(&service).await.desired_count(), 2);
    // A commit status on the config commit says what came of it.
    let on_config = |sha: &str| {
        fake.requests()
            .into_iter()
            .filter(|r| r.path == format!("/repos/acme/config/statuses/{sha}"))
            .map(|r| r.body)
            .collect::<Vec<_>>()
    };
    crate::support::wait_for(
        Duration::from_secs(10),
        "the config commit's status",
        || async {
            on_config(&second)
                .last()
                .is_some_and(|b| b["state"] == "success")
        },
    )
    .await;
    // The same push delivered again changes nothing.
    let (status, _) = app
        .hook(
            "push",
            "config-2",
            &push_body("acme/config", "refs/heads/main", &second),
        )
        .await;
    assert_eq!(status, 200);

    // An invalid revision is refused with file:line and the field, reported on its commit.
    let third = config.push(
        &[(
            "apps/api.yaml",
            &app_yaml(&code.path, &ecs, &service, "many"),
        )],
        "api: broken",
    );
    let (status, _) = app
        .hook(
            "push",
            "config-3",
            &push_body("acme/config", "refs/heads/main", &third),
        )
        .await;
    assert_eq!(status, 202);
    crate::support::wait_for(Duration::from_secs(30), "the refusal", || async {
        app.deployments("api").await.len() == 3
    })
    .await;
    let refused = app.deployments("api").await[0].clone();
    assert_eq!(refused["state"], "failed", "{refused:#}");
    assert_eq!(refused["trigger"], "manifests");
    let reason = refused["reason"].as_str().unwrap();
    assert!(
        reason.contains("apps/api.yaml:") && reason.contains("desiredCount"),
        "{reason}"
    );
    assert!(
        reason.contains(&format!("acme/config@{}", &second[..7])),
        "{reason}"
    );
    crate::support::wait_for(Duration::from_secs(10), "the failure status", || async {
        on_config(&third)
            .last()
            .is_some_and(|b| b["state"] == "failure")
    })
    .await;
    // And a Discord message for the app says it failed, with the problem.
    let refused_id = refused["id"].as_i64().unwrap();
    crate::support::wait_for(Duration::from_secs(10), "the Discord message", || async {
        fake.requests().iter().any(|r| {
            r.method == "POST"
                && r.path.ends_with("/messages")
                && r.body["embeds"][0]["title"]
                    .as_str()
                    .is_some_and(|t| t.ends_with(&format!("failed (#{refused_id})")))
                && r.body.to_string().contains("apps/api.yaml:")
        })
    })
    .await;
    let status_body = on_config(&third).last().cloned().unwrap();
    assert!(
        status_body["description"]
            .as_str()
            .unwrap()
            .starts_with("apps/api.yaml:"),
        "{status_body}"
    );
    // The revision before stays in force: the next code push runs its manifests.
    let code_sha2 = code.commit(&[("main.py", "print(2)")], "two");
    let (status, r) = app
        .hook(
            "push",
            "code-2",
            &push_body("acme/api", "refs/heads/main", &code_sha2),
        )
        .await;
    assert_eq!(status, 202, "{r}");
    app.wait_idle(Duration::from_secs(60)).await;
    let d4 = deployment(&app, &r["deployments"][0]).await;
    assert_eq!(d4["state"], "succeeded", "{d4:#}");
    assert_eq!(d4["manifests"]["sha"], second);
    assert_eq!(ecs.service(&service).await.desired_count(), 2);

    // After a restart, the revision in force is the one applied last, not the refused head.
    let dir = app.stop().await;
    let app = TestApp::start_in(dir, &[], &env).await;
    let d5 = {
        let (status, r) = app
            .hook(
                "push",
                "code-2b",
                &push_body(
                    "acme/api",
                    "refs/heads/main",
                    &code.commit(&[("main.py", "print(3)")], "three"),
                ),
            )
            .await;
        assert_eq!(status, 202, "{r}");
        app.wait_idle(Duration::from_secs(60)).await;
        deployment(&app, &r["deployments"][0]).await
    };
    assert_eq!(d5["manifests"]["sha"], second, "{d5:#}");
    app.finish().await;
}

fn site_yaml(code: &Path, bucket: &str, html_cache: &str) -> String {
    format!(
        "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: web\nspec:\n  source:\n    repo: acme/web\n    url: {}\n  build:\n    commands: [\"mkdir -p out && cp index.html out/ && echo built >> build.log\"]\n  sites:\n    - name: www\n      dir: out\n      bucket: {bucket}\n      prefix: live\n      cacheControl:\n        - glob: \"*.html\"\n          value: \"{html_cache}\"\n",
        code.display()
    )
}

/// A cache rule changed in the config repository: the site's release is put in place again
/// with the new header, by copying in place; nothing is fetched, built or uploaded.
#[tokio::test]
async fn a_cache_rule_change_re_applies_the_site_without_building() {
    let env = crate::sites::Env::new("gitops-site").await;
    let tmp = tempfile::tempdir().unwrap();
    let code = GitRepo::new(&tmp.path().join("web"));
    let sha = code.commit(&[("index.html", "<h1>hi</h1>")], "page");
    let config = ConfigRepo::new(tmp.path());
    config.push(
        &[(
            "apps/web.yaml",
            &site_yaml(&code.path, &env.bucket, "public, max-age=60"),
        )],
        "web",
    );
    let bare = config.bare.display().to_string();
    let app = TestApp::start_with(
        &[],
        &[
            ("GANTRY_AWS_ENDPOINT_URL", env.proxy.url.as_str()),
            ("GANTRY_SOURCE_REPO", "acme/config"),
            ("GANTRY_SOURCE_URL", bare.as_str()),
            ("GANTRY_SOURCE_PATH", "apps"),
        ],
    )
    .await;
    let (status, r) = app
        .hook(
            "push",
            "web-1",
            &push_body("acme/web", "refs/heads/main", &sha),
        )
        .await;
    assert_eq!(status, 202, "{r}");
    app.wait_idle(Duration::from_secs(60)).await;
    let d1 = deployment(&app, &r["deployments"][0]).await;
    assert_eq!(d1["state"], "succeeded", "{d1:#}");
    let cache = |_: ()| async {
        env.s3
            .head_object()
            .bucket(&env.bucket)
            .key("live/index.html")
            .send()
            .await
            .unwrap()
            .cache_control()
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(cache(()).await, "public, max-age=60");
    env.proxy.take();

    let second = config.push(
        &[(
            "apps/web.yaml",
            &site_yaml(&code.path, &env.bucket, "public, max-age=300"),
        )],
        "web: longer html cache",
    );
    let (status, _) = app
        .hook(
            "push",
            "config-2",
            &push_body("acme/config", "refs/heads/main", &second),
        )
        .await;
    assert_eq!(status, 202);
    let d2 = settled(&app, "web", 2).await;
    assert_eq!(d2["state"], "succeeded", "{d2:#}");
    assert_eq!(kinds(&d2), ["verify", "sync_sites", "report"]);
    assert_eq!(cache(()).await, "public, max-age=300");
    // Only copies in place and Gantry's own manifest object were written.
    let uploads: Vec<String> = env
        .proxy
        .take()
        .into_iter()
        .filter(|s| s.method == "PUT" && !s.copy && !s.path.contains("/.gantry/"))
        .map(|s| s.path)
        .collect();
    assert!(uploads.is_empty(), "uploaded: {uploads:?}");
    let releases = app.store().releases("web", 5).await.unwrap();
    assert_eq!(releases[0].sha, sha);
    app.finish().await;
}

/// Manifests in the app's own repository (`.gantry/`), with no webhook at all: polling finds
/// the commit, and the app deploys that commit with the manifest it carries, once.
#[tokio::test]
async fn manifests_in_the_app_repository_deploy_with_their_commit_found_by_polling() {
    let tmp = tempfile::tempdir().unwrap();
    let code = GitRepo::new(&tmp.path().join("web"));
    let manifest = |marker: &str| {
        format!(
            "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: web\nspec:\n  source:\n    repo: acme/web\n    url: {}\n  build:\n    commands: [\"echo {marker}\"]\n",
            code.path.display()
        )
    };
    let first = code.commit(
        &[(".gantry/web.yaml", &manifest("one")), ("a", "1")],
        "init",
    );
    let url = code.path.display().to_string();
    let app = TestApp::start_with(
        &[],
        &[
            ("GANTRY_SOURCE_REPO", "acme/web"),
            ("GANTRY_SOURCE_URL", url.as_str()),
            ("GANTRY_SOURCE_PATH", ".gantry"),
            ("GANTRY_POLL_INTERVAL", "200ms"),
        ],
    )
    .await;
    // The head is adopted at start; its first poll deploys nothing either.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(app.deployments("web").await.is_empty());

    let second = code.commit(
        &[(".gantry/web.yaml", &manifest("two")), ("a", "2")],
        "second",
    );
    crate::support::wait_for(Duration::from_secs(30), "polling deploys it", || async {
        app.deployments("web")
            .await
            .iter()
            .any(|d| d["sha"] == second && d["state"] == "succeeded")
    })
    .await;
    let ds = app.deployments("web").await;
    assert_eq!(ds.len(), 1, "{ds:#?}");
    let d = deployment(&app, &ds[0]["id"]).await;
    assert_eq!(d["trigger"], "poll");
    assert_eq!(
        d["manifests"],
        json!({"repo": "acme/web", "sha": second, "file": ".gantry/web.yaml"})
    );
    let build = crate::support::step_log(&d, "build");
    assert!(
        build.contains("two"),
        "the new manifest's build ran: {build}"
    );
    // The webhook arriving late deploys nothing more.
    let (status, _) = app
        .hook(
            "push",
            "late",
            &push_body("acme/web", "refs/heads/main", &second),
        )
        .await;
    assert_eq!(status, 200);
    app.wait_idle(Duration::from_secs(30)).await;
    assert_eq!(app.deployments("web").await.len(), 1);
    let _ = first;
    app.finish().await;
}

/// An app building one image from a code repository, its manifest in a bare config
/// repository with `writeBack: MODE`, and Gantry polling both.
struct WriteBackSetup {
    app: TestApp,
    code: GitRepo,
    code_sha: String,
    config: ConfigRepo,
    /// The config repository's first commit.
    first: String,
    _tmp: tempfile::TempDir,
}

impl WriteBackSetup {
    async fn start(mode: &str, env: &[(&str, &str)]) -> Self {
        use crate::images::{base_image, endpoints, unique, ECR};
        let tmp = tempfile::tempdir().unwrap();
        let code = GitRepo::new(&tmp.path().join("api"));
        let code_sha = code.commit(&[("app/main.py", "print('hi')\n")], "init");
        let image_repo = unique("writeback");
        let manifest = format!(
            "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: api\nspec:\n  writeBack: {mode}\n  source:\n    repo: acme/api\n    url: {}\n  images:\n    - name: api\n      repository: {ECR}/{image_repo}\n      context: app\n      base: {}\n      entrypoint: [python3, main.py]\n      createRepository: true\n",
            code.path.display(),
            base_image()
        );
        let config = ConfigRepo::new(tmp.path());
        let first = config.push(&[("apps/api.yaml", &manifest)], "api");
        let bare = config.bare.display().to_string();
        let moto = moto_url();
        let eps = endpoints();
        let mut vars = vec![
            ("GANTRY_AWS_ENDPOINT_URL", moto.as_str()),
            ("GANTRY_REGISTRY_ENDPOINTS", eps.as_str()),
            ("GANTRY_SOURCE_REPO", "acme/config"),
            ("GANTRY_SOURCE_URL", bare.as_str()),
            ("GANTRY_SOURCE_PATH", "apps"),
            ("GANTRY_POLL_INTERVAL", "200ms"),
        ];
        vars.extend_from_slice(env);
        let app = TestApp::start_with(&[], &vars).await;
        Self {
            app,
            code,
            code_sha,
            config,
            first,
            _tmp: tmp,
        }
    }
}

/// Write-back: after a successful deployment the released digest lands in the bare config
/// repository as `gantry.lock.yaml` beside the manifest, with trailers naming the deployment;
/// its push (poll and webhook) starts nothing, and a redeploy with the same digest commits
/// nothing.
#[tokio::test]
async fn released_digests_are_written_back_once_and_start_nothing() {
    let w = WriteBackSetup::start("commit", &[]).await;
    let (app, config, first, code_sha) = (&w.app, &w.config, w.first.clone(), w.code_sha.clone());
    // Polling finds the app's branch head (no webhook) and deploys it.
    crate::support::wait_for(Duration::from_secs(60), "the first deployment", || async {
        app.deployments("api")
            .await
            .iter()
            .any(|d| d["sha"] == code_sha && d["state"] == "succeeded")
    })
    .await;
    let d = app.deployments("api").await[0].clone();
    let releases = app.api("/api/v1/releases?app=api").await;
    let digest = releases[0]["images"]["api"].as_str().unwrap().to_owned();
    assert!(digest.contains("@sha256:"), "{digest}");
    let head = || git(&config.bare, &["rev-parse", "main"]);
    crate::support::wait_for(Duration::from_secs(30), "the write-back commit", || async {
        head() != first
    })
    .await;
    let written = head();
    let lock = git(&config.bare, &["show", "main:apps/gantry.lock.yaml"]);
    assert!(lock.contains(&format!("api: {digest}")), "{lock}");
    let message = git(&config.bare, &["log", "-1", "--format=%an%n%B", "main"]);
    assert!(message.starts_with("Gantry\n"), "{message}");
    assert!(
        message.contains(&format!("Gantry-Deployment: {}", d["id"])),
        "{message}"
    );
    assert_eq!(
        git(&config.bare, &["diff", "--name-only", &first, &written]),
        "apps/gantry.lock.yaml",
        "only the lock file changes"
    );
    // Its webhook starts nothing; neither do the polls that see it.
    let (status, r) = app
        .hook(
            "push",
            "writeback",
            &push_body("acme/config", "refs/heads/main", &written),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    app.wait_idle(Duration::from_secs(30)).await;
    assert_eq!(app.deployments("api").await.len(), 1);
    let revisions = app.store().revisions("acme/config", 10).await.unwrap();
    assert_eq!(revisions[0].sha, written);
    assert_eq!(revisions[0].state.as_str(), "applied", "{revisions:?}");

    // A redeploy with the same digest: nothing to commit.
    let r = app
        .http
        .post(app.url("/api/v1/apps/api/deploy"))
        .bearer_auth(crate::support::TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    crate::support::wait_for(Duration::from_secs(60), "the redeploy", || async {
        let ds = app.deployments("api").await;
        ds.len() == 2 && ds[0]["state"] == "succeeded"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(head(), written, "an unchanged lock makes no commit");
    w.app.finish().await;
}

/// `writeBack: pullRequest`: the released digests go to Gantry's branch `gantry/lock/api`,
/// proposed to the config branch as one pull request (faked at the wire); the config branch
/// itself is untouched, and the next release moves the branch under the same pull request.
#[tokio::test]
async fn released_digests_can_be_proposed_as_one_pull_request() {
    let fake = Fake::start().await;
    let w = WriteBackSetup::start(
        "pullRequest",
        &[
            ("GANTRY_GITHUB_API_URL", fake.url.as_str()),
            ("GANTRY_GITHUB_TOKEN", "c4n4ry-writeback-github-token"),
        ],
    )
    .await;
    let (app, code, config, first) = (&w.app, &w.code, &w.config, w.first.clone());
    let code_sha = w.code_sha.clone();
    let released = |sha: String| {
        let app = &app;
        async move {
            crate::support::wait_for(Duration::from_secs(90), "the deployment", || async {
                app.deployments("api")
                    .await
                    .iter()
                    .any(|d| d["sha"] == sha.as_str() && d["state"] == "succeeded")
            })
            .await;
            let releases = app.api("/api/v1/releases?app=api").await;
            releases[0]["images"]["api"].as_str().unwrap().to_owned()
        }
    };
    let digest = released(code_sha).await;
    let opened = || fake.matching("POST", "/repos/acme/config/pulls");
    crate::support::wait_for(Duration::from_secs(30), "the pull request", || async {
        !opened().is_empty()
    })
    .await;
    let pr = &opened()[0].body;
    assert_eq!(pr["head"], "gantry/lock/api", "{pr}");
    assert_eq!(pr["base"], "main", "{pr}");
    assert!(
        pr["title"]
            .as_str()
            .unwrap()
            .starts_with("gantry: api released deployment #"),
        "{pr}"
    );
    let lock = git(
        &config.bare,
        &["show", "gantry/lock/api:apps/gantry.lock.yaml"],
    );
    assert!(lock.contains(&format!("api: {digest}")), "{lock}");
    assert_eq!(
        git(&config.bare, &["rev-parse", "main"]),
        first,
        "main is untouched"
    );

    // The next release (new code, new digest) moves the branch; the pull request stays one.
    let proposed = git(&config.bare, &["rev-parse", "gantry/lock/api"]);
    let next_sha = code.commit(&[("app/main.py", "print('hello')\n")], "hello");
    let next = released(next_sha).await;
    assert_ne!(next, digest);
    crate::support::wait_for(Duration::from_secs(30), "the branch to move", || async {
        git(&config.bare, &["rev-parse", "gantry/lock/api"]) != proposed
    })
    .await;
    let lock = git(
        &config.bare,
        &["show", "gantry/lock/api:apps/gantry.lock.yaml"],
    );
    assert!(lock.contains(&format!("api: {next}")), "{lock}");
    assert_eq!(opened().len(), 1, "one pull request, updated");
    assert!(!fake.matching("GET", "/repos/acme/config/pulls").is_empty());
    assert_eq!(git(&config.bare, &["rev-parse", "main"]), first);
    w.app.finish().await;
}

/// GitHub's published `pull_request` example, as a pull request `number` of `repo` into
/// `main`: `(action, head sha)` -> the delivery body.
fn pr_payload(repo: &'static str, number: u64) -> impl Fn(&str, &str) -> Vec<u8> {
    let example = crate::webhooks::examples()
        .into_iter()
        .find(|(name, ex)| name == "pull_request" && ex["action"] == "opened")
        .expect("a pull_request opened example")
        .1;
    move |action, sha| {
        let mut p = example.clone();
        p["action"] = json!(action);
        p["number"] = json!(number);
        p["repository"]["full_name"] = json!(repo);
        p["pull_request"]["number"] = json!(number);
        p["pull_request"]["head"]["sha"] = json!(sha);
        p["pull_request"]["base"]["ref"] = json!("main");
        serde_json::to_vec(&p).unwrap()
    }
}

/// A pull request on the config repository (payload as GitHub sends it): one comment saying
/// what merging would do, edited in place on the next push to it, and a commit status on the
/// head; a broken manifest in it is reported as a refusal.
#[tokio::test]
async fn a_pull_request_gets_one_plan_comment_edited_in_place_and_a_status() {
    let tmp = tempfile::tempdir().unwrap();
    let code = GitRepo::new(&tmp.path().join("web"));
    code.commit(&[("a", "1")], "init");
    let manifest = |timeout: &str| {
        format!(
            "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: web\nspec:\n  rolloutTimeout: {timeout}\n  source:\n    repo: acme/web\n    url: {}\n  build:\n    commands: [\"true\"]\n",
            code.path.display()
        )
    };
    let config = ConfigRepo::new(tmp.path());
    config.push(&[("apps/web.yaml", &manifest("5m"))], "web");
    let fake = Fake::start().await;
    let bare = config.bare.display().to_string();
    let app = TestApp::start_with(
        &[],
        &[
            ("GANTRY_SOURCE_REPO", "acme/config"),
            ("GANTRY_SOURCE_URL", bare.as_str()),
            ("GANTRY_SOURCE_PATH", "apps"),
            ("GANTRY_GITHUB_API_URL", fake.url.as_str()),
            ("GANTRY_GITHUB_TOKEN", "c4n4ry-preview-github-token"),
        ],
    )
    .await;
    // A branch with a change, pushed to the config repository (GitHub keeps PR heads there).
    git(
        &config.work.path,
        &["checkout", "-q", "-b", "longer-timeout"],
    );
    let head = config
        .work
        .commit(&[("apps/web.yaml", &manifest("9m"))], "longer");
    git(
        &config.work.path,
        &["push", "-q", "origin", "longer-timeout"],
    );
    let payload = pr_payload("acme/config", 7);
    let (status, r) = app
        .hook("pull_request", "pr-1", &payload("opened", &head))
        .await;
    assert_eq!(status, 202, "{r}");
    let comments = || fake.matching("POST", "/repos/acme/config/issues/7/comments");
    let edits = || fake.matching("PATCH", "/repos/acme/config/issues/comments/");
    let statuses = |sha: &str| fake.matching("POST", &format!("/repos/acme/config/statuses/{sha}"));
    crate::support::wait_for(Duration::from_secs(20), "the plan comment", || async {
        !comments().is_empty()
    })
    .await;
    let body = comments()[0].body["body"].as_str().unwrap().to_owned();
    assert!(
        body.contains("| `web` | `apps/web.yaml` | settings only"),
        "{body}"
    );
    assert!(
        body.contains("+    rolloutTimeout: 9m") || body.contains("+  rolloutTimeout: 9m"),
        "{body}"
    );
    let st = statuses(&head);
    assert_eq!(st[0].body["state"], "success", "{st:?}");
    assert_eq!(st[0].body["context"], "gantry/plan");
    // Nothing is deployed by a pull request.
    assert!(app.deployments("web").await.is_empty());

    // The next push to the pull request breaks the manifest: the same comment is edited.
    let broken = config
        .work
        .commit(&[("apps/web.yaml", &manifest("soon"))], "oops");
    git(
        &config.work.path,
        &["push", "-q", "origin", "longer-timeout"],
    );
    let (status, _) = app
        .hook("pull_request", "pr-2", &payload("synchronize", &broken))
        .await;
    assert_eq!(status, 202);
    crate::support::wait_for(Duration::from_secs(20), "the edited comment", || async {
        !edits().is_empty()
    })
    .await;
    assert_eq!(comments().len(), 1, "one comment, edited in place");
    let edited = edits()[0].body["body"].as_str().unwrap().to_owned();
    assert!(edited.contains("would be refused"), "{edited}");
    assert!(
        edited.contains("apps/web.yaml:6: spec.rolloutTimeout"),
        "{edited}"
    );
    crate::support::wait_for(Duration::from_secs(10), "the failure status", || async {
        statuses(&broken)
            .last()
            .is_some_and(|s| s.body["state"] == "failure")
    })
    .await;
    // Closing it plans nothing.
    let (status, r) = app
        .hook("pull_request", "pr-3", &payload("closed", &broken))
        .await;
    assert_eq!(status, 200, "{r}");
    app.finish().await;
}

/// A pull request on an app's own repository (its manifest kept elsewhere): one comment per
/// app saying what merging deploys, from the files GitHub lists (faked at the wire): the image
/// whose context changed is built, the other reuses its digest; a change outside
/// `source.paths` deploys nothing, and the same comment says so.
#[tokio::test]
async fn a_pull_request_on_an_app_repository_says_what_merging_builds_and_rolls() {
    let td = task_definition("shop-preview", "512", json!([]));
    let manifest = "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: shop\nspec:\n  source:\n    repo: acme/shop\n    paths: [\"api/**\", \"worker/**\", \"web/**\"]\n  images:\n    - {name: api, repository: 123456789012.dkr.ecr.us-east-1.amazonaws.com/api, context: api, base: \"python:3.12\"}\n    - {name: worker, repository: 123456789012.dkr.ecr.us-east-1.amazonaws.com/worker, context: worker, base: \"python:3.12\"}\n  services:\n    - name: shop-api\n      cluster: shop\n      taskDefinition: td.json\n      containers: {app: api}\n    - name: shop-worker\n      cluster: shop\n      taskDefinition: td.json\n      containers: {app: worker}\n".to_string();
    let fake = Fake::start().await;
    let app = TestApp::start_with(
        &[("shop.yaml", manifest), ("td.json", td)],
        &[
            ("GANTRY_GITHUB_API_URL", fake.url.as_str()),
            ("GANTRY_GITHUB_TOKEN", "c4n4ry-app-preview-github-token"),
        ],
    )
    .await;
    let payload = pr_payload("acme/shop", 9);
    let head = "1".repeat(40);
    fake.set_pull_files("acme/shop", 9, &["api/app/main.py", "README.md"]);
    let (status, r) = app
        .hook("pull_request", "app-pr-1", &payload("opened", &head))
        .await;
    assert_eq!(status, 202, "{r}");
    let comments = || fake.matching("POST", "/repos/acme/shop/issues/9/comments");
    crate::support::wait_for(Duration::from_secs(20), "the plan comment", || async {
        !comments().is_empty()
    })
    .await;
    let body = comments()[0].body["body"].as_str().unwrap().to_owned();
    for want in [
        "Merging into `main` deploys **shop**",
        "image `api`: its context `api` changed",
        "image `worker`: nothing in `worker` changed: the last digest is reused",
        "service `shop-api`: rolls to the new image `api`",
        "service `shop-worker`: unchanged by this pull request",
    ] {
        assert!(body.contains(want), "{want} in {body}");
    }
    let st = fake.matching("POST", &format!("/repos/acme/shop/statuses/{head}"));
    assert_eq!(st[0].body["context"], "gantry/plan/shop", "{st:?}");
    assert_eq!(st[0].body["state"], "success");
    assert!(
        app.deployments("shop").await.is_empty(),
        "a preview deploys nothing"
    );

    // Pushed again, now touching only documentation: the same comment, edited.
    let next = "2".repeat(40);
    fake.set_pull_files("acme/shop", 9, &["docs/guide.md"]);
    let (status, _) = app
        .hook("pull_request", "app-pr-2", &payload("synchronize", &next))
        .await;
    assert_eq!(status, 202);
    let edits = || fake.matching("PATCH", "/repos/acme/shop/issues/comments/");
    crate::support::wait_for(Duration::from_secs(20), "the edited comment", || async {
        !edits().is_empty()
    })
    .await;
    assert_eq!(comments().len(), 1, "one comment, edited in place");
    let edited = edits()[0].body["body"].as_str().unwrap().to_owned();
    assert!(
        edited.contains("Merging deploys nothing: no changed file matches `spec.source.paths`"),
        "{edited}"
    );
    app.finish().await;
}
