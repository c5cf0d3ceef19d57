//! The use-cases under load from two sides at once: a rollback (enqueue + pause + audit, one
//! transaction) racing a push (whose intake sees pauses inside its own transaction).

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{app_manifest, push_body, wait_for, GitRepo, TestApp, TOKEN};

#[tokio::test]
async fn a_rollback_racing_a_push_keeps_its_pause_and_is_never_superseded() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    // Each deployment takes a moment, so what the race queues waits behind a running one.
    let manifest = app_manifest("web", "acme/web", &repo.path, "main", &["sleep 0.3"]);
    let app = TestApp::start(&[("web.yaml", manifest)]).await;
    let push = |n: u32| {
        let sha = repo.commit(&[("n.txt", &n.to_string())], &format!("change {n}"));
        push_body("acme/web", "refs/heads/main", &sha)
    };
    let (_, first) = app.hook("push", "race-first", &push(0)).await;
    let first = first["deployments"][0].as_i64().unwrap();
    app.wait_idle(Duration::from_secs(30)).await;
    let post = |path: &str, body: Value| {
        app.http
            .post(app.url(path))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
    };
    for round in 1..=8u32 {
        let r = post("/api/v1/apps/web/resume", json!({"actor": "test"}))
            .await
            .unwrap();
        assert!(r.status().is_success());
        // A deployment that is running, so the two racing ones are both queued.
        let (status, blocker) = app
            .hook("push", &format!("race-{round}-a"), &push(round * 10))
            .await;
        assert_eq!(status, 202, "{blocker}");
        let blocker = blocker["deployments"][0].as_i64().unwrap();
        let store = app.store().clone();
        wait_for(Duration::from_secs(10), "the blocker to run", || {
            let store = store.clone();
            async move {
                let d = store.deployment(blocker, false).await.unwrap().unwrap();
                d.started_at.is_some()
            }
        })
        .await;
        let body = push(round * 10 + 1);
        let delivery = format!("race-{round}-b");
        let (rollback, (push_status, pushed)) = tokio::join!(
            post(
                "/api/v1/apps/web/rollback",
                json!({"to": first, "actor": "test"})
            ),
            app.hook("push", &delivery, &body),
        );
        let rollback = rollback.unwrap();
        assert_eq!(rollback.status(), 202, "round {round}");
        let rollback: Value = rollback.json().await.unwrap();
        app.wait_idle(Duration::from_secs(30)).await;
        let d = app
            .api(&format!("/api/v1/deployments/{}", rollback["id"]))
            .await;
        assert_eq!(
            d["state"], "succeeded",
            "round {round}: the rollback ran (push answered {push_status}: {pushed}): {d:#}"
        );
        let apps = app.api("/api/v1/apps").await;
        assert!(
            apps[0]["paused"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("rolled back")),
            "round {round}: the pause holds: {apps:#}"
        );
        // The push either came first (and was superseded by the rollback, never run) or was
        // held by the pause; it never ran after the rollback.
        if let Some(id) = pushed["deployments"][0].as_i64() {
            let p = app.api(&format!("/api/v1/deployments/{id}")).await;
            assert!(
                id < rollback["id"].as_i64().unwrap(),
                "round {round}: a push queued after the rollback: {p:#}"
            );
            assert_eq!(p["state"], "superseded", "round {round}: {p:#}");
        } else {
            assert!(
                pushed["ignored"]
                    .as_str()
                    .is_some_and(|r| r.contains("is held")),
                "round {round}: {pushed}"
            );
        }
    }
    // Nothing superseded ever started.
    for d in app.deployments("web").await {
        if d["state"] == "superseded" {
            assert!(d["started_at"].is_null(), "{d:#}");
        }
    }
    app.finish().await;
}
