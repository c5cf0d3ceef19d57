//! Deploy windows with an injected clock: a push inside a deny window waits, visibly, and
//! starts when the window ends; an override by someone the windows name starts it at once;
//! one by anyone else changes nothing and is audited.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::{json, Value};

use crate::support::{app_manifest, push_body, wait_for, GitRepo, ManualClock, TestApp};

async fn state_of(app: &TestApp, id: &Value) -> Value {
    app.api(&format!("/api/v1/deployments/{id}")).await
}

async fn wait_state(app: &TestApp, id: &Value, want: &str) -> Value {
    wait_for(
        Duration::from_secs(30),
        &format!("deployment {id} {want}"),
        || async { state_of(app, id).await["state"] == want },
    )
    .await;
    state_of(app, id).await
}

#[tokio::test]
async fn a_push_in_a_deny_window_waits_until_it_ends_or_an_allowed_override() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    let first = repo.commit(&[("a", "1")], "first");
    let mut m = app_manifest("web", "acme/web", &repo.path, "main", &["true"]);
    // Mondays 09:00-11:00 in Seoul (00:00-02:00 UTC) are closed for deploys.
    m.push_str(
        "  windows:\n    timeZone: Asia/Seoul\n    deny:\n      - {schedule: \"0 9 * * 1\", duration: 2h}\n    overrideBy: [\"cli:alice\"]\n",
    );
    // Monday 2026-12-07 01:00 UTC: inside the deny window.
    let clock = ManualClock::at(Utc.with_ymd_and_hms(2026, 12, 7, 1, 0, 0).unwrap());
    let app = TestApp::start_with_clock(
        tempfile::tempdir().unwrap(),
        &[("web.yaml", m)],
        &[],
        clock.clone(),
    )
    .await;

    let (status, r) = app
        .hook(
            "push",
            "w-1",
            &push_body("acme/web", "refs/heads/main", &first),
        )
        .await;
    assert_eq!(status, 202, "{r}");
    let id = r["deployments"][0].clone();
    let d = wait_state(&app, &id, "waiting").await;
    let reason = d["reason"].as_str().unwrap();
    assert!(
        reason.contains("inside deny window `0 9 * * 1` for 2h (Asia/Seoul)")
            && reason.contains("opens at 2026-12-07 02:00 UTC"),
        "{reason}"
    );
    assert!(d["started_at"].is_null(), "{d:#}");
    let apps = app.api("/api/v1/apps").await;
    assert_eq!(apps[0]["last_deployment"]["state"], "waiting", "{apps:#}");

    // Someone the windows do not name: refused, audited, nothing moves.
    let (status, r) = app
        .post(
            "/api/v1/apps/web/window/override",
            json!({"actor": "cli:mallory"}),
        )
        .await;
    assert_eq!(status, 403, "{r}");
    app.wake_queue();
    assert_eq!(state_of(&app, &id).await["state"], "waiting");
    let audit = app.api("/api/v1/audit?target=web").await;
    assert_eq!(audit[0]["action"], "window.override", "{audit:#}");
    assert_eq!(audit[0]["actor"], "cli:mallory");
    assert_eq!(audit[0]["outcome"], "denied");

    // The window ends: it starts by itself.
    clock.set(Utc.with_ymd_and_hms(2026, 12, 7, 2, 0, 0).unwrap());
    app.wake_queue();
    let d = wait_state(&app, &id, "succeeded").await;
    assert!(d["reason"].is_null(), "{d:#}");
    assert!(d["window_override"].is_null(), "{d:#}");

    // Next Monday, inside the window again: an allowed override starts it now.
    clock.set(Utc.with_ymd_and_hms(2026, 12, 14, 0, 30, 0).unwrap());
    let second = repo.commit(&[("a", "2")], "second");
    let (_, r) = app
        .hook(
            "push",
            "w-2",
            &push_body("acme/web", "refs/heads/main", &second),
        )
        .await;
    let id = r["deployments"][0].clone();
    wait_state(&app, &id, "waiting").await;
    let (status, r) = app
        .post(
            "/api/v1/apps/web/window/override",
            json!({"actor": "cli:alice"}),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["started"], id);
    let d = wait_state(&app, &id, "succeeded").await;
    assert_eq!(d["window_override"], "cli:alice", "{d:#}");
    let audit = app.api("/api/v1/audit?target=web").await;
    assert_eq!(
        (audit[0]["action"].clone(), audit[0]["outcome"].clone()),
        (json!("window.override"), json!("started")),
        "{audit:#}"
    );
    // Nothing left to override.
    let (status, _) = app
        .post(
            "/api/v1/apps/web/window/override",
            json!({"actor": "cli:alice"}),
        )
        .await;
    assert_eq!(status, 404);
    app.finish().await;
}
