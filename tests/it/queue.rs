//! The durable queue: supersession under a burst, per-app serialisation.

use std::time::Duration;

use crate::support::{app_manifest, push_body, GitRepo, TestApp};

#[tokio::test]
async fn a_burst_of_fifty_pushes_runs_at_most_two_deployments() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    let sha = repo.commit(&[("a", "1")], "init");
    // The first deployment builds for a while, so the burst lands while it runs.
    let app = TestApp::start(&[(
        "web.yaml",
        app_manifest("web", "acme/web", &repo.path, "main", &["sleep 2"]),
    )])
    .await;
    let body = push_body("acme/web", "refs/heads/main", &sha);
    let started = std::time::Instant::now();
    let sends = (0..50).map(|i| {
        let app = &app;
        let body = body.clone();
        async move { app.hook("push", &format!("burst-{i}"), &body).await }
    });
    let results = futures::future::join_all(sends).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "burst took {:?}",
        started.elapsed()
    );
    assert!(results.iter().all(|(s, _)| *s == 202), "{results:?}");
    app.wait_idle(Duration::from_secs(60)).await;
    let deps = app.deployments("web").await;
    assert_eq!(deps.len(), 50);
    let ran: Vec<_> = deps.iter().filter(|d| !d["started_at"].is_null()).collect();
    let superseded = deps.iter().filter(|d| d["state"] == "superseded").count();
    assert!(ran.len() <= 2, "{} deployments ran", ran.len());
    assert_eq!(superseded + ran.len(), 50);
    assert!(ran.iter().all(|d| d["state"] == "succeeded"), "{ran:?}");
    // The newest push is among those that ran.
    let newest = deps
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .max()
        .unwrap();
    assert!(ran.iter().any(|d| d["id"].as_i64() == Some(newest)));
    app.finish().await;
}
