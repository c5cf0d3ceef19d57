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
        "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: api\nspec:\n  rolloutTimeout: 5s\n  source:\n    repo: acme/api\n    url: {}\n  build:\n    commands: [\"echo built > built.txt\"]\n  services:\n    - name: {service}\n      cluster: {}\n      taskDefinition: td.json\n      desiredCount: {count}\n      network:\n        subnets: [{}]\n",
        app_repo.display(),
        ecs.cluster,
        ecs.subnet
    )
}

async fn deployment(app: &TestApp, id: &Value) -> Value {
    app.api(&format!("/api/v1/deployments/{id}")).await
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
        json!({"repo": "acme/config", "sha": first})
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
    crate::support::wait_for(
        Duration::from_secs(30),
        "the manifest change deploys",
        || async { app.deployments("api").await.len() == 2 },
    )
    .await;
    app.wait_idle(Duration::from_secs(60)).await;
    let d2 = app.deployments("api").await[0].clone();
    let d2 = deployment(&app, &d2["id"]).await;
    assert_eq!(d2["state"], "succeeded", "{d2:#}");
    assert_eq!(d2["trigger"], "manifests");
    assert_eq!(
        d2["sha"], code_sha,
        "the released code, not the config commit"
    );
    assert_eq!(
        d2["manifests"],
        json!({"repo": "acme/config", "sha": second})
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
