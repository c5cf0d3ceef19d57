//! Polling: a push whose webhook never came is deployed within one interval, and polls and
//! webhooks take each sha in once between them (real git repositories, `git ls-remote`).

use std::time::Duration;

use crate::support::{app_manifest, push_body, wait_for, GitRepo, TestApp};

/// The app's deployments at `sha`, as (trigger, state).
async fn at(app: &TestApp, sha: &str) -> Vec<(String, String)> {
    app.deployments("web")
        .await
        .iter()
        .filter(|d| d["sha"] == sha)
        .map(|d| {
            (
                d["trigger"].as_str().unwrap_or("").to_owned(),
                d["state"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

async fn wait_deployed(app: &TestApp, sha: &str) {
    wait_for(
        Duration::from_secs(30),
        "a deployment found by polling",
        || async { at(app, sha).await.iter().any(|(_, s)| s == "succeeded") },
    )
    .await;
}

#[tokio::test]
async fn a_push_without_a_webhook_is_deployed_once_and_webhooks_do_not_repeat_it() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    let first = repo.commit(&[("a", "1")], "init");
    // Another branch nothing tracks: never deployed.
    crate::support::git(&repo.path, &["branch", "other"]);
    let app = TestApp::start_with(
        &[(
            "web.yaml",
            app_manifest("web", "acme/web", &repo.path, "main", &["true"]),
        )],
        &[("GANTRY_POLL_INTERVAL", "200ms")],
    )
    .await;

    // The first look puts the tracked branch's head in place, with no webhook at all.
    wait_deployed(&app, &first).await;
    assert_eq!(
        at(&app, &first).await,
        vec![("poll".into(), "succeeded".into())]
    );

    // A push whose webhook was dropped: deployed within an interval or two.
    let second = repo.commit(&[("a", "2")], "second");
    wait_deployed(&app, &second).await;
    // Its webhook arriving late is recorded and deploys nothing.
    let (status, body) = app
        .hook(
            "push",
            "late-1",
            &push_body("acme/web", "refs/heads/main", &second),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.to_string().contains("already taken in by polling"),
        "{body}"
    );
    app.wait_idle(Duration::from_secs(30)).await;
    assert_eq!(at(&app, &second).await.len(), 1);

    // A webhook first: the poller sees the same sha and takes nothing in.
    let third = repo.commit(&[("a", "3")], "third");
    let (status, body) = app
        .hook(
            "push",
            "prompt-1",
            &push_body("acme/web", "refs/heads/main", &third),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    app.wait_idle(Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    app.wait_idle(Duration::from_secs(30)).await;
    assert_eq!(
        at(&app, &third).await,
        vec![("push".into(), "succeeded".into())]
    );

    // Every deployment of the app: one per sha, nothing from the untracked branch.
    let all = app.deployments("web").await;
    assert_eq!(all.len(), 3, "{all:?}");
    // The poller's deliveries are recorded like webhooks, under ids made from the sha.
    let db = rusqlite::Connection::open(app.dir.path().join("data/gantry.db")).unwrap();
    let polled: Vec<String> = db
        .prepare("SELECT id FROM deliveries WHERE event = 'poll' ORDER BY received_at")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        polled,
        vec![
            gantry::plan::poll::delivery_id("acme/web", "refs/heads/main", &first),
            gantry::plan::poll::delivery_id("acme/web", "refs/heads/main", &second),
        ]
    );
    app.finish().await;
}

#[tokio::test]
async fn a_daemon_restarted_on_the_same_data_does_not_deploy_a_polled_sha_again() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    let sha = repo.commit(&[("a", "1")], "init");
    let manifests = [(
        "web.yaml",
        app_manifest("web", "acme/web", &repo.path, "main", &["true"]),
    )];
    let env = [("GANTRY_POLL_INTERVAL", "200ms")];
    let app = TestApp::start_with(&manifests, &env).await;
    wait_deployed(&app, &sha).await;
    app.wait_idle(Duration::from_secs(30)).await;
    let dir = app.stop().await;
    // A new daemon's first look sees the same head: already taken in.
    let app = TestApp::start_in(dir, &manifests, &env).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    app.wait_idle(Duration::from_secs(30)).await;
    assert_eq!(at(&app, &sha).await.len(), 1);
    app.finish().await;
}
