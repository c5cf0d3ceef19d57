//! Approvals with an injected clock: a production deployment needing one approval waits; the
//! author's own approval does not count; someone not named is refused (403, audited); an
//! approval by another named person — through the Approve button on the deployment's Discord
//! message, a signed interaction as Discord sends it — starts it; a rejection and the timeout
//! each end one without starting.

use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};

use crate::chatops::{button, Signer2};
use crate::fakes::Fake;
use crate::support::{app_manifest, wait_for, GitRepo, ManualClock, TestApp};

async fn wait_state(app: &TestApp, id: &Value, want: &str) -> Value {
    let path = format!("/api/v1/deployments/{id}");
    wait_for(
        Duration::from_secs(30),
        &format!("deployment {id} {want}"),
        || async { app.api(&path).await["state"] == want },
    )
    .await;
    app.api(&path).await
}

async fn deploy(app: &TestApp, actor: &str) -> Value {
    let (status, r) = app
        .post("/api/v1/apps/web/deploy", json!({"actor": actor}))
        .await;
    assert_eq!(status, 202, "{r}");
    r["id"].clone()
}

#[tokio::test]
async fn a_production_deployment_waits_for_an_approval_that_is_not_its_authors() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    repo.commit(&[("a", "1")], "first");
    let mut m = app_manifest("web", "acme/web", &repo.path, "main", &["true"]);
    m.push_str(
        "  environment: production\n  approvals:\n    required: 1\n    from: [\"cli:alice\", \"cli:bob\", \"discord:1090000000000000777\"]\n    timeout: 1h\n  notifications:\n    discord:\n      channel: \"1090000000000000111\"\n",
    );
    let signer = Signer2::new();
    let public = signer.public_hex();
    let discord = Fake::start().await;
    // Timeouts count from when a deployment was queued (the store's time): start the clock now.
    let clock = ManualClock::at(Utc::now());
    let app = TestApp::start_with_clock(
        tempfile::tempdir().unwrap(),
        &[("web.yaml", m)],
        &[
            ("GANTRY_DISCORD_PUBLIC_KEY", public.as_str()),
            ("GANTRY_DISCORD_APPLICATION_ID", "1090000000000000999"),
            ("GANTRY_DISCORD_API_URL", discord.url.as_str()),
            ("GANTRY_DISCORD_BOT_TOKEN", "c4n4ry-bot-token-0123"),
        ],
        clock.clone(),
    )
    .await;

    // Alice deploys: it waits, and her own approval does not count.
    let id = deploy(&app, "cli:alice").await;
    let d = wait_state(&app, &id, "awaiting_approval").await;
    assert!(d["reason"].as_str().unwrap().contains("0 of 1"), "{d:#}");
    let (status, r) = app
        .post("/api/v1/apps/web/approve", json!({"actor": "cli:alice"}))
        .await;
    assert_eq!((status, r["counted"].clone()), (200, json!(false)), "{r}");
    app.wake_queue();
    wait_for(Duration::from_secs(10), "the reason to say why", || async {
        let d = app.api(&format!("/api/v1/deployments/{id}")).await;
        d["reason"]
            .as_str()
            .unwrap_or("")
            .contains("own approval does not count")
    })
    .await;
    assert_eq!(
        app.api(&format!("/api/v1/deployments/{id}")).await["state"],
        "awaiting_approval"
    );
    let (status, _) = app
        .post("/api/v1/apps/web/approve", json!({"actor": "cli:mallory"}))
        .await;
    assert_eq!(status, 403);

    // The deployment's Discord message carries the buttons; a named user's click approves.
    wait_for(Duration::from_secs(20), "the message with buttons", || {
        let found = discord
            .matching("POST", "/api/v10/channels/1090000000000000111/messages")
            .iter()
            .any(|r| {
                r.body["components"][0]["components"][0]["custom_id"]
                    == format!("gantry:approve:{id}")
            });
        async move { found }
    })
    .await;
    let click = button(&format!("gantry:approve:{id}"), "1090000000000000777", &[]);
    let body = serde_json::to_vec(&click).unwrap();
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = signer.sign(&ts, &body);
    let r = app
        .http
        .post(app.url("/hooks/discord"))
        .header("content-type", "application/json")
        .header("x-signature-timestamp", &ts)
        .header("x-signature-ed25519", &sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let reply: Value = r.json().await.unwrap();
    assert!(
        reply["data"]["content"]
            .as_str()
            .unwrap()
            .contains("approved"),
        "{reply}"
    );
    let d = wait_state(&app, &id, "succeeded").await;
    assert!(d["reason"].is_null(), "{d:#}");
    let audit = app.api("/api/v1/audit?target=web").await;
    let actions: Vec<(String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "approve")
        .map(|a| {
            (
                a["actor"].as_str().unwrap().to_owned(),
                a["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(actions.len(), 3, "{audit:#}");
    assert_eq!(
        actions[2],
        (
            "cli:alice".into(),
            "approved by the author: does not count".into()
        )
    );
    assert_eq!(actions[1], ("cli:mallory".into(), "denied".into()));
    assert!(actions[0].0.starts_with("discord:mason"), "{actions:?}");
    assert_eq!(actions[0].1, "approved");

    // A rejection ends the next one without starting it.
    let id = deploy(&app, "cli:alice").await;
    wait_state(&app, &id, "awaiting_approval").await;
    let (status, _) = app
        .post("/api/v1/apps/web/reject", json!({"actor": "cli:bob"}))
        .await;
    assert_eq!(status, 200);
    let d = wait_state(&app, &id, "failed").await;
    assert_eq!(d["reason"], "rejected by cli:bob", "{d:#}");
    assert!(d["started_at"].is_null());

    // Nobody approves the third within the hour: it is cancelled.
    let id = deploy(&app, "cli:alice").await;
    wait_state(&app, &id, "awaiting_approval").await;
    clock.set(Utc::now() + chrono::Duration::hours(2));
    app.wake_queue();
    let d = wait_state(&app, &id, "failed").await;
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .starts_with("not approved in time: 0 of 1"),
        "{d:#}"
    );
    app.finish().await;
}
