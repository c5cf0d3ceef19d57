//! Reporting and ChatOps against Discord and GitHub faked at the wire (tests/it/fakes.rs):
//! one Discord message per deployment, edited in place, never posted twice; GitHub commit
//! statuses and deployments in order; Discord interactions signed with a real Ed25519 key
//! exactly as Discord signs them (timestamp + body); command registration.

use std::time::Duration;

use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};

use crate::fakes::Fake;
use crate::support::{gantry_cli, push_body, wait_for, GitRepo, TestApp, TOKEN};

fn manifest(
    app: &str,
    repo: &std::path::Path,
    environment: &str,
    extra: &str,
    build: &str,
) -> String {
    format!(
        "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: {app}\nspec:\n  environment: {environment}\n  source:\n    repo: acme/{app}\n    url: {}\n  build:\n    commands: [{}]\n{extra}",
        repo.display(),
        serde_json::to_string(build).unwrap()
    )
}

const BOT_TOKEN: &str = "c4n4ry-bot-token-0123";

fn discord_env(fake: &Fake) -> Vec<(String, String)> {
    vec![
        ("GANTRY_DISCORD_API_URL".into(), fake.url.clone()),
        ("GANTRY_DISCORD_BOT_TOKEN".into(), BOT_TOKEN.into()),
    ]
}

fn as_refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

async fn wait_for_requests(
    fake: &Fake,
    what: &str,
    cond: impl Fn(&[crate::fakes::Request]) -> bool,
) {
    wait_for(Duration::from_secs(20), what, || {
        let seen = fake.requests();
        let ok = cond(&seen);
        async move { ok }
    })
    .await;
}

fn embed_title(r: &crate::fakes::Request) -> String {
    r.body["embeds"][0]["title"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn one_discord_message_per_deployment_created_then_only_edited() {
    let fake = Fake::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    let sha = repo.commit(&[("a", "1")], "Add the projects page");
    let m = manifest(
        "web",
        &repo.path,
        "staging",
        "  notifications:\n    discord:\n      channel: \"1090000000000000111\"\n",
        "echo built",
    );
    let env = discord_env(&fake);
    let app = TestApp::start_with(&[("web.yaml", m)], &as_refs(&env)).await;
    // Discord rate-limits the first call: serenity waits Retry-After and retries; no duplicate.
    fake.throttle_next(1);
    let (status, _) = app
        .hook(
            "push",
            "discord-1",
            &push_body("acme/web", "refs/heads/main", &sha),
        )
        .await;
    assert_eq!(status, 202);
    app.wait_idle(Duration::from_secs(30)).await;
    wait_for_requests(&fake, "the final edit", |seen| {
        seen.iter()
            .any(|r| r.method == "PATCH" && embed_title(r).contains("succeeded"))
    })
    .await;
    let seen = fake.requests();
    let posts: Vec<_> = seen
        .iter()
        .filter(|r| {
            r.method == "POST" && r.path == "/api/v10/channels/1090000000000000111/messages"
        })
        .collect();
    // The throttled attempt and its retry are one POST each; only one was answered with a message.
    assert_eq!(posts.len(), 2, "{seen:#?}");
    assert_eq!(
        posts[0].body, posts[1].body,
        "the retry resends the same message"
    );
    // Discord de-duplicates on the nonce: a post repeated after a crash returns the message.
    let nonce = posts[0].body["nonce"].as_str().unwrap();
    assert!(nonce.len() <= 25 && !nonce.is_empty(), "{nonce}");
    assert_eq!(posts[0].body["enforce_nonce"], true);
    let edits: Vec<_> = seen.iter().filter(|r| r.method == "PATCH").collect();
    assert!(!edits.is_empty());
    // While it runs the message is edited at most once every 3 s; the final state at once.
    let writes: Vec<_> = seen
        .iter()
        .filter(|r| matches!(r.method.as_str(), "POST" | "PATCH") && r.status == 200)
        .collect();
    for pair in writes.windows(2) {
        if !embed_title(pair[1]).contains("succeeded") {
            let gap = pair[1].at - pair[0].at;
            assert!(
                gap >= Duration::from_millis(2900),
                "edits {gap:?} apart: {writes:#?}"
            );
        }
    }
    let message_path = &edits[0].path;
    assert!(
        message_path.starts_with("/api/v10/channels/1090000000000000111/messages/"),
        "{message_path}"
    );
    assert!(
        edits.iter().all(|e| &e.path == message_path),
        "every edit is of the one message: {edits:#?}"
    );
    assert!(seen
        .iter()
        .all(|r| r.authorization == format!("Bot {BOT_TOKEN}")));
    let first = &posts[0].body["embeds"][0];
    assert!(
        first["title"]
            .as_str()
            .unwrap()
            .starts_with("web → staging: running"),
        "{first:#}"
    );
    let last = &edits.last().unwrap().body["embeds"][0];
    assert_eq!(last["title"], "web → staging: succeeded (#1)");
    assert_eq!(last["color"], 0x22c55e);
    assert_eq!(
        last["url"],
        format!("https://github.com/acme/web/commit/{sha}")
    );
    assert!(
        last["description"]
            .as_str()
            .unwrap()
            .contains("Add the projects page"),
        "{last:#}"
    );
    let steps = last["fields"][0]["value"].as_str().unwrap();
    assert!(
        steps.contains("✅ fetch_source")
            && steps.contains("✅ build")
            && steps.contains("✅ report"),
        "{steps}"
    );
    let logs = app.api("/api/v1/deployments/1").await.to_string();
    assert!(
        !logs.contains(BOT_TOKEN),
        "the bot token never reaches the API"
    );
    app.finish().await;
}

#[tokio::test]
async fn reports_that_fail_in_an_outage_are_retried_shown_and_delivered_once_after_a_restart() {
    let fake = Fake::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    let sha = repo.commit(&[("a", "1")], "Add the outage page");
    let m = manifest(
        "web",
        &repo.path,
        "staging",
        "  notifications:\n    discord:\n      channel: \"1090000000000000111\"\n    github:\n      statuses: true\n",
        "echo built",
    );
    let mut env = discord_env(&fake);
    env.extend([
        ("GANTRY_GITHUB_API_URL".to_string(), fake.url.clone()),
        (
            "GANTRY_GITHUB_TOKEN".to_string(),
            "c4n4ry-outage-github-token".to_string(),
        ),
        ("GANTRY_REPORT_RETRY_BASE".to_string(), "200ms".to_string()),
        ("GANTRY_REPORT_RETRY_CAP".to_string(), "400ms".to_string()),
    ]);
    let manifests = [("web.yaml", m)];
    let app = TestApp::start_with(&manifests, &as_refs(&env)).await;
    fake.outage(true);
    let (status, r) = app
        .hook(
            "push",
            "outage-1",
            &push_body("acme/web", "refs/heads/main", &sha),
        )
        .await;
    assert_eq!(status, 202);
    let id = r["deployments"][0].as_i64().unwrap();
    app.wait_idle(Duration::from_secs(30)).await;
    // The deployment itself is not held up; its reports fail, are kept and retried.
    async fn failing(app: &TestApp) -> Vec<Value> {
        app.api("/api/v1/reports?failing=true")
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
    wait_for(
        Duration::from_secs(20),
        "both reports to fail twice",
        || async {
            let f = failing(&app).await;
            f.len() == 2 && f.iter().all(|r| r["attempts"].as_u64() >= Some(2))
        },
    )
    .await;
    let f = failing(&app).await;
    let reporters: Vec<&str> = f.iter().map(|r| r["reporter"].as_str().unwrap()).collect();
    assert_eq!(reporters, vec!["discord", "github"], "{f:#?}");
    for r in &f {
        assert_eq!(r["deploymentId"], id);
        assert_eq!(r["app"], "web");
        assert!(r["nextAt"].is_string(), "{r}");
        let error = r["error"].as_str().unwrap();
        assert!(
            error.contains("503") || error.contains("Service Unavailable"),
            "{error}"
        );
        assert!(!error.contains(BOT_TOKEN) && !error.contains("c4n4ry-outage-github-token"));
    }
    let detail = app.api(&format!("/api/v1/deployments/{id}")).await;
    assert_eq!(detail["state"], "succeeded");
    assert_eq!(detail["reports"].as_array().unwrap().len(), 2, "{detail:#}");
    // `gantry status` warns about them.
    let out = gantry_cli()
        .args(["status", "--server", &app.url("")])
        .env("GANTRY_API_TOKEN", TOKEN)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("WARNING: 2 report(s) failing"), "{stdout}");
    assert!(stdout.contains("discord of web deployment #"), "{stdout}");
    // The daemon stops mid-outage; the outage ends; after the restart every report is
    // delivered as the deployment ended, once.
    let dir = app.stop().await;
    let before = fake.requests().len();
    fake.outage(false);
    let app = TestApp::start_in(dir, &manifests, &as_refs(&env)).await;
    wait_for(
        Duration::from_secs(20),
        "the reports to be delivered",
        || async { failing(&app).await.is_empty() },
    )
    .await;
    let after: Vec<_> = fake.requests().split_off(before);
    let posts: Vec<_> = after
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/messages"))
        .collect();
    assert_eq!(posts.len(), 1, "{after:#?}");
    assert_eq!(posts[0].status, 200);
    assert_eq!(
        embed_title(posts[0]),
        format!("web → staging: succeeded (#{id})")
    );
    assert!(
        !after.iter().any(|r| r.method == "PATCH"),
        "nothing to edit: {after:#?}"
    );
    let statuses: Vec<&str> = after
        .iter()
        .filter(|r| r.path.contains("/statuses/"))
        .map(|r| r.body["state"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["pending", "success"], "{after:#?}");
    // And nothing more, however long it runs.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(fake.requests().len(), before + after.len());
    app.finish().await;
}

#[tokio::test]
async fn a_resumed_deployment_edits_its_message_instead_of_posting_again() {
    let fake = Fake::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    let sha = repo.commit(&[("a", "1")], "init");
    let marker = tmp.path().join("started");
    let build = format!(
        "if [ -e {0} ]; then echo resumed; else touch {0}; echo failing-once; sleep 30; fi",
        marker.display()
    );
    // The shape of serenity's documented example (ids of 17-20 digits, tokens of 60-68 chars).
    let token = "c4n4ry-wdVWpCBtUUMxmgsWryqgsW3DChbKYOINftJ4DCrUbnkedoYZD0VOH1QLr-S3sV";
    let hook_url = format!("https://discord.com/api/webhooks/1090000000000000333/{token}");
    let var = format!("GANTRY_TEST_DEPLOY_WEBHOOK_{}", std::process::id());
    let m = manifest(
        "web",
        &repo.path,
        "staging",
        &format!("  notifications:\n    discord:\n      webhookEnv: {var}\n"),
        &build,
    );
    // The reporter reads the webhook URL from Gantry's environment, as on Fargate.
    std::env::set_var(&var, &hook_url);
    // The build writes a marker outside its workspace for the test to watch.
    let env = vec![
        ("GANTRY_DISCORD_API_URL".to_string(), fake.url.clone()),
        ("GANTRY_BUILD_ISOLATION".to_string(), "none".to_string()),
    ];
    let manifests = [("web.yaml", m)];
    let app = TestApp::start_with(&manifests, &as_refs(&env)).await;
    let (_, r) = app
        .hook(
            "push",
            "resume-1",
            &push_body("acme/web", "refs/heads/main", &sha),
        )
        .await;
    let id = r["deployments"][0].as_i64().unwrap();
    wait_for(Duration::from_secs(20), "the build to start", || {
        let marker = marker.clone();
        async move { marker.exists() }
    })
    .await;
    wait_for_requests(&fake, "the message", |seen| {
        seen.iter().any(|r| r.method == "POST")
    })
    .await;
    let dir = app.stop().await;
    let app = TestApp::start_in(dir, &manifests, &as_refs(&env)).await;
    app.wait_idle(Duration::from_secs(30)).await;
    let d = app.api(&format!("/api/v1/deployments/{id}")).await;
    assert_eq!(d["state"], "succeeded");
    assert_eq!(d["steps"][1]["attempts"], 2, "the build step was retried");
    wait_for_requests(&fake, "the final edit", |seen| {
        seen.iter()
            .any(|r| r.method == "PATCH" && embed_title(r).contains("succeeded"))
    })
    .await;
    let seen = fake.requests();
    let posts: Vec<_> = seen.iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.len(), 1, "one message, whatever restarts: {seen:#?}");
    assert_eq!(
        posts[0].path,
        format!("/api/v10/webhooks/1090000000000000333/{token}")
    );
    // serenity writes `?&wait=true`; Discord reads `wait` either way.
    assert!(
        posts[0].query.split('&').any(|p| p == "wait=true"),
        "{}",
        posts[0].query
    );
    let edits: Vec<_> = seen.iter().filter(|r| r.method == "PATCH").collect();
    assert!(!edits.is_empty());
    let prefix = format!("/api/v10/webhooks/1090000000000000333/{token}/messages/");
    assert!(
        edits.iter().all(|r| r.path.starts_with(&prefix)),
        "{edits:#?}"
    );
    let logs = app
        .api(&format!("/api/v1/deployments/{id}"))
        .await
        .to_string();
    assert!(
        !logs.contains(token),
        "the webhook token never reaches the API"
    );
    app.finish().await;
    std::env::remove_var(&var);
}

#[tokio::test]
async fn github_statuses_and_deployments_transition_in_order() {
    let fake = Fake::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("api"));
    let good = repo.commit(&[("a", "1")], "good");
    let gh = "  notifications:\n    github:\n      statuses: true\n      deployments: true\n";
    let m = manifest("api", &repo.path, "production", gh, "test -e a");
    let app = TestApp::start_with(
        &[("api.yaml", m)],
        &[
            ("GANTRY_GITHUB_API_URL", fake.url.as_str()),
            ("GANTRY_GITHUB_TOKEN", "ghp_test_token_never_logged"),
            ("GANTRY_PUBLIC_URL", "https://gantry.example.com"),
        ],
    )
    .await;
    app.hook(
        "push",
        "gh-1",
        &push_body("acme/api", "refs/heads/main", &good),
    )
    .await;
    app.wait_idle(Duration::from_secs(30)).await;
    wait_for_requests(&fake, "the final statuses", |seen| {
        seen.iter().filter(|r| r.body["state"] == "success").count() >= 2
    })
    .await;
    let statuses = fake.matching("POST", &format!("/repos/acme/api/statuses/{good}"));
    let states: Vec<&str> = statuses
        .iter()
        .map(|r| r.body["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, vec!["pending", "success"]);
    assert_eq!(statuses[1].body["context"], "gantry/api");
    assert_eq!(
        statuses[1].body["target_url"],
        "https://gantry.example.com/api/v1/deployments/1"
    );
    assert!(statuses
        .iter()
        .all(|r| r.authorization == "Bearer ghp_test_token_never_logged"));
    let created = fake.matching("POST", "/repos/acme/api/deployments");
    let creations: Vec<_> = created
        .iter()
        .filter(|r| r.path == "/repos/acme/api/deployments")
        .collect();
    assert_eq!(creations.len(), 1);
    assert_eq!(creations[0].body["ref"], good.as_str());
    assert_eq!(creations[0].body["environment"], "production");
    let dstates: Vec<&str> = created
        .iter()
        .filter(|r| r.path.ends_with("/statuses"))
        .map(|r| r.body["state"].as_str().unwrap())
        .collect();
    // `queued` comes first only when the reporter saw the deployment before it started.
    let started = dstates.strip_prefix(&["queued"][..]).unwrap_or(&dstates);
    assert_eq!(started, ["in_progress", "success"], "{dstates:?}");

    // A failing commit: pending, then failure, on its own sha.
    std::fs::remove_file(repo.path.join("a")).unwrap();
    crate::support::git(&repo.path, &["commit", "-qam", "break it"]);
    let bad = crate::support::git(&repo.path, &["rev-parse", "HEAD"]);
    app.hook(
        "push",
        "gh-2",
        &push_body("acme/api", "refs/heads/main", &bad),
    )
    .await;
    app.wait_idle(Duration::from_secs(30)).await;
    wait_for_requests(&fake, "the failure status", |seen| {
        seen.iter()
            .any(|r| r.body["state"] == "failure" && r.path.contains("/statuses/"))
    })
    .await;
    let states: Vec<String> = fake
        .matching("POST", &format!("/repos/acme/api/statuses/{bad}"))
        .iter()
        .map(|r| r.body["state"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(states, vec!["pending", "failure"]);
    app.finish().await;
}

/// Discord's signing: Ed25519 over `timestamp + body`, hex in `X-Signature-Ed25519`.
pub(crate) struct Signer2 {
    key: SigningKey,
}

impl Signer2 {
    pub(crate) fn new() -> Self {
        Self {
            key: SigningKey::from_bytes(&[7u8; 32]),
        }
    }

    pub(crate) fn public_hex(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }

    pub(crate) fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        let mut msg = timestamp.as_bytes().to_vec();
        msg.extend_from_slice(body);
        hex::encode(self.key.sign(&msg).to_bytes())
    }
}

/// An APPLICATION_COMMAND interaction shaped like the example in Discord's docs, with an
/// id of its own (snowflakes are unique per interaction).
fn command(name: &str, options: &[(&str, &str)], user: &str, roles: &[&str]) -> Value {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = 786008729715212338 + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    json!({
        "type": 2,
        "token": "A_UNIQUE_TOKEN",
        "member": {
            "user": {"id": user, "username": "mason", "avatar": "a_d5efa99b3eeaa7dd43acca82f5692432", "discriminator": "1337", "public_flags": 131141},
            "roles": roles,
            "premium_since": null, "permissions": "2147483647", "pending": false, "nick": null,
            "mute": false, "joined_at": "2017-03-13T19:19:14.040000+00:00", "is_pending": false, "deaf": false
        },
        "id": id.to_string(),
        "application_id": "1090000000000000999",
        "guild_id": "290926798626357999",
        "app_permissions": "442368",
        "guild_locale": "en-US",
        "locale": "en-US",
        "version": 1,
        "data": {
            "options": options.iter().map(|(n, v)| json!({"type": 3, "name": n, "value": v})).collect::<Vec<_>>(),
            "type": 1,
            "name": name,
            "id": "771825006014889984"
        },
        "channel_id": "645027906669510667"
    })
}

pub(crate) fn button(custom_id: &str, user: &str, roles: &[&str]) -> Value {
    let mut v = command("x", &[], user, roles);
    v["type"] = json!(3);
    v["data"] = json!({"custom_id": custom_id, "component_type": 2});
    v
}

struct Chat {
    app: TestApp,
    signer: Signer2,
    discord: Fake,
}

impl Chat {
    async fn start(tmp: &std::path::Path) -> Self {
        let signer = Signer2::new();
        let web = GitRepo::new(&tmp.join("web"));
        web.commit(&[("a", "1")], "init");
        let permissions = json!([
            {"apps": ["web", "shop"], "environments": ["staging", "production"], "roles": ["ops-role"]},
            {"users": ["42"], "commands": ["pause"]}
        ]);
        let public = signer.public_hex();
        let perms = permissions.to_string();
        let discord = Fake::start().await;
        let app = TestApp::start_with(
            &[
                (
                    "web.yaml",
                    manifest("web", &web.path, "staging", "", "true"),
                ),
                (
                    "shop.yaml",
                    manifest("shop", &web.path, "production", "", "true"),
                ),
            ],
            &[
                ("GANTRY_DISCORD_PUBLIC_KEY", public.as_str()),
                ("GANTRY_DISCORD_PERMISSIONS", perms.as_str()),
                ("GANTRY_DISCORD_APPLICATION_ID", "1090000000000000999"),
                ("GANTRY_DISCORD_API_URL", discord.url.as_str()),
            ],
        )
        .await;
        Self {
            app,
            signer,
            discord,
        }
    }

    async fn post_raw(
        &self,
        body: &[u8],
        timestamp: &str,
        signature: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self
            .app
            .http
            .post(self.app.url("/hooks/discord"))
            .header("content-type", "application/json")
            .header("x-signature-timestamp", timestamp)
            .body(body.to_vec());
        if let Some(sig) = signature {
            req = req.header("x-signature-ed25519", sig);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, v: &Value) -> Value {
        let body = serde_json::to_vec(v).unwrap();
        let ts = chrono::Utc::now().timestamp().to_string();
        let sig = self.signer.sign(&ts, &body);
        let (status, r) = self.post_raw(&body, &ts, Some(&sig)).await;
        assert_eq!(status, 200, "{r}");
        r
    }

    async fn audit(&self, app: &str) -> Vec<Value> {
        self.app
            .api(&format!("/api/v1/audit?target={app}"))
            .await
            .as_array()
            .unwrap()
            .clone()
    }
}

#[tokio::test]
async fn interactions_are_verified_before_anything_else() {
    let tmp = tempfile::tempdir().unwrap();
    let chat = Chat::start(tmp.path()).await;
    let ping = serde_json::to_vec(
        &json!({"type": 1, "id": "1", "application_id": "1", "token": "t", "version": 1}),
    )
    .unwrap();
    let now = chrono::Utc::now().timestamp().to_string();
    let good = chat.signer.sign(&now, &ping);
    let (status, r) = chat.post_raw(&ping, &now, Some(&good)).await;
    assert_eq!((status, r), (200, json!({"type": 1})), "PING -> PONG");

    // A wrong signature, a body that is not the one signed, a missing signature, another key.
    let mut wrong = good.clone().into_bytes();
    wrong[10] = if wrong[10] == b'0' { b'1' } else { b'0' };
    let wrong = String::from_utf8(wrong).unwrap();
    assert_eq!(chat.post_raw(&ping, &now, Some(&wrong)).await.0, 401);
    let deploy =
        serde_json::to_vec(&command("deploy", &[("app", "web")], "7", &["ops-role"])).unwrap();
    assert_eq!(
        chat.post_raw(&deploy, &now, Some(&good)).await.0,
        401,
        "signature of another body"
    );
    assert_eq!(chat.post_raw(&deploy, &now, None).await.0, 401);
    let other = SigningKey::from_bytes(&[9u8; 32]);
    let mut msg = now.clone().into_bytes();
    msg.extend_from_slice(&deploy);
    assert_eq!(
        chat.post_raw(
            &deploy,
            &now,
            Some(&hex::encode(other.sign(&msg).to_bytes()))
        )
        .await
        .0,
        401
    );
    // Correctly signed but stale: a captured request replayed ten minutes later.
    let stale = (chrono::Utc::now().timestamp() - 600).to_string();
    let stale_sig = chat.signer.sign(&stale, &deploy);
    assert_eq!(
        chat.post_raw(&deploy, &stale, Some(&stale_sig)).await.0,
        401
    );
    // None of it reached the app.
    assert!(chat.app.deployments("web").await.is_empty());
    assert!(chat.audit("web").await.is_empty());
    chat.app.finish().await;
}

#[tokio::test]
async fn an_unauthorised_rollback_changes_nothing_and_is_audited_as_denied() {
    let tmp = tempfile::tempdir().unwrap();
    let chat = Chat::start(tmp.path()).await;
    let r = chat
        .post(&command(
            "rollback",
            &[("app", "web")],
            "555",
            &["someone-else"],
        ))
        .await;
    assert_eq!(r["type"], 4);
    assert_eq!(r["data"]["flags"], 64, "the refusal is ephemeral");
    assert!(
        r["data"]["content"]
            .as_str()
            .unwrap()
            .contains("you may not /rollback `web`"),
        "{r}"
    );
    assert!(chat.app.deployments("web").await.is_empty());
    let apps = chat.app.api("/api/v1/apps").await;
    assert!(
        apps.as_array()
            .unwrap()
            .iter()
            .all(|a| a["paused"].is_null()),
        "nothing paused: {apps}"
    );
    let audit = chat.audit("web").await;
    assert_eq!(audit.len(), 1, "{audit:#?}");
    assert_eq!(audit[0]["action"], "rollback");
    assert_eq!(audit[0]["outcome"], "denied");
    assert_eq!(audit[0]["actor"], "discord:mason (555)");
    // A user allowed only to pause may pause, not deploy.
    let r = chat
        .post(&command("pause", &[("app", "web")], "42", &[]))
        .await;
    assert!(
        r["data"]["content"].as_str().unwrap().contains("paused"),
        "{r}"
    );
    let r = chat
        .post(&command("deploy", &[("app", "web")], "42", &[]))
        .await;
    assert!(
        r["data"]["content"]
            .as_str()
            .unwrap()
            .contains("may not /deploy"),
        "{r}"
    );
    // Read-only commands answer anyone.
    let r = chat.post(&command("status", &[], "555", &[])).await;
    let text = r["data"]["content"].as_str().unwrap();
    assert!(
        text.contains("**web** (staging)") && text.contains("paused by discord:mason (42)"),
        "{text}"
    );
    chat.app.finish().await;
}

#[tokio::test]
async fn an_authorised_deploy_is_queued_and_production_asks_for_confirmation() {
    let tmp = tempfile::tempdir().unwrap();
    let chat = Chat::start(tmp.path()).await;
    let r = chat
        .post(&command("deploy", &[("app", "web")], "7", &["ops-role"]))
        .await;
    assert_eq!(r["type"], 4);
    let text = r["data"]["content"].as_str().unwrap();
    assert!(
        text.contains("Deployment #1 of `web` (refs/heads/main) queued by discord:mason (7)"),
        "{text}"
    );
    chat.app.wait_idle(Duration::from_secs(30)).await;
    let deps = chat.app.deployments("web").await;
    assert_eq!(deps.len(), 1);
    assert_eq!(deps[0]["trigger"], "discord");
    assert_eq!(deps[0]["actor"], "discord:mason (7)");
    assert_eq!(deps[0]["state"], "succeeded");

    // Production: a confirmation button first, nothing queued until it is clicked.
    let r = chat
        .post(&command("deploy", &[("app", "shop")], "7", &["ops-role"]))
        .await;
    assert_eq!(r["data"]["flags"], 64);
    let id = r["data"]["components"][0]["components"][0]["custom_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        r["data"]["content"]
            .as_str()
            .unwrap()
            .contains("production"),
        "{r}"
    );
    assert!(chat.app.deployments("shop").await.is_empty());
    // Someone without the permission clicks: refused.
    let r = chat.post(&button(&id, "555", &[])).await;
    assert!(
        r["data"]["content"].as_str().unwrap().contains("may not"),
        "{r}"
    );
    assert!(chat.app.deployments("shop").await.is_empty());
    let r = chat.post(&button(&id, "7", &["ops-role"])).await;
    assert_eq!(r["type"], 7, "the button's message is updated");
    assert!(
        r["data"]["content"].as_str().unwrap().contains("queued"),
        "{r}"
    );
    assert_eq!(r["data"]["components"], json!([]));
    chat.app.wait_idle(Duration::from_secs(30)).await;
    assert_eq!(chat.app.deployments("shop").await.len(), 1);
    let outcomes: Vec<String> = chat
        .audit("shop")
        .await
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                a["action"].as_str().unwrap(),
                a["outcome"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            "deploy queued",
            "deploy denied",
            "deploy confirmation asked"
        ],
        "newest first"
    );
    // The audit is in `gantry history`.
    let out = gantry_cli()
        .args([
            "history",
            "shop",
            "--server",
            &chat.app.url(""),
            "--token",
            TOKEN,
        ])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("confirmation asked") && text.contains("discord:mason (7)"),
        "{text}"
    );
    chat.app.finish().await;
}

#[tokio::test]
async fn register_commands_overwrites_the_whole_set_idempotently() {
    let fake = Fake::start().await;
    for _ in 0..2 {
        let out = gantry_cli()
            .args(["discord", "register-commands"])
            .env("GANTRY_DISCORD_API_URL", &fake.url)
            .env("GANTRY_DISCORD_APPLICATION_ID", "1090000000000000999")
            .env("GANTRY_DISCORD_BOT_TOKEN", BOT_TOKEN)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("registered 9 global commands"));
    }
    let puts = fake.matching("PUT", "/api/v10/applications/1090000000000000999/commands");
    assert_eq!(puts.len(), 2);
    assert_eq!(
        puts[0].body, puts[1].body,
        "the same bulk overwrite both times"
    );
    let names: Vec<&str> = puts[0]
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "deploy",
            "rollback",
            "status",
            "history",
            "diff",
            "pause",
            "resume",
            "promote",
            "release-hold"
        ]
    );
    let deploy = &puts[0].body[0];
    let app = &deploy["options"][0];
    assert_eq!(
        (&app["type"], &app["name"], &app["required"]),
        (&json!(3), &json!("app"), &json!(true))
    );
    assert_eq!(deploy["options"][1]["name"], "ref");
    assert_eq!(deploy["options"][1]["required"], false);
    assert_eq!(puts[0].authorization, format!("Bot {BOT_TOKEN}"));
}

#[tokio::test]
async fn diff_answers_deferred_then_edits_the_answer_in() {
    let tmp = tempfile::tempdir().unwrap();
    let chat = Chat::start(tmp.path()).await;
    let r = chat
        .post(&command("diff", &[("app", "web")], "555", &[]))
        .await;
    assert_eq!(
        r,
        json!({"type": 5, "data": {"flags": 64}}),
        "deferred at once"
    );
    wait_for_requests(&chat.discord, "the follow-up edit", |seen| !seen.is_empty()).await;
    let edits = chat.discord.requests();
    assert_eq!(edits.len(), 1);
    assert_eq!(edits[0].method, "PATCH");
    assert_eq!(
        edits[0].path,
        "/api/v10/webhooks/1090000000000000999/A_UNIQUE_TOKEN/messages/@original"
    );
    assert_eq!(edits[0].body["content"], "`web` declares no ECS services");
    chat.app.finish().await;
}

#[tokio::test]
async fn github_app_auth_mints_an_installation_token_from_a_signed_jwt() {
    let fake = Fake::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("app.pem");
    let public = tmp.path().join("app.pub.pem");
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl (scripts/setup.sh installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "genrsa",
        "-traditional",
        "-out",
        key.to_str().unwrap(),
        "2048",
    ]);
    run(&[
        "rsa",
        "-in",
        key.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    let pem = std::fs::read_to_string(&key).unwrap();
    let repo = GitRepo::new(&tmp.path().join("api"));
    let sha = repo.commit(&[("a", "1")], "init");
    let gh = "  notifications:\n    github:\n      statuses: true\n";
    let m = manifest("api", &repo.path, "staging", gh, "true");
    let app = TestApp::start_with(
        &[("api.yaml", m)],
        &[
            ("GANTRY_GITHUB_API_URL", fake.url.as_str()),
            ("GANTRY_GITHUB_APP_ID", "424242"),
            ("GANTRY_GITHUB_INSTALLATION_ID", "777"),
            ("GANTRY_GITHUB_APP_PRIVATE_KEY", pem.as_str()),
        ],
    )
    .await;
    app.hook(
        "push",
        "app-1",
        &push_body("acme/api", "refs/heads/main", &sha),
    )
    .await;
    app.wait_idle(Duration::from_secs(30)).await;
    wait_for_requests(&fake, "the success status", |seen| {
        seen.iter().any(|r| r.body["state"] == "success")
    })
    .await;
    let minted = fake.matching("POST", "/app/installations/777/access_tokens");
    assert!(!minted.is_empty());
    let jwt = minted[0].authorization.strip_prefix("Bearer ").unwrap();
    let decoding =
        octocrab::jsonwebtoken::DecodingKey::from_rsa_pem(&std::fs::read(&public).unwrap())
            .unwrap();
    let claims = octocrab::jsonwebtoken::decode::<Value>(
        jwt,
        &decoding,
        &octocrab::jsonwebtoken::Validation::new(octocrab::jsonwebtoken::Algorithm::RS256),
    )
    .expect("an RS256 JWT signed with the app's key");
    assert_eq!(claims.claims["iss"].to_string().trim_matches('"'), "424242");
    let statuses = fake.matching("POST", &format!("/repos/acme/api/statuses/{sha}"));
    assert_eq!(statuses.len(), 2);
    assert!(
        statuses.iter().all(|r| r
            .authorization
            .starts_with("Bearer ghs_c4n4ry_installation_")),
        "{statuses:#?}"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_replayed_interaction_is_answered_without_acting_again() {
    let tmp = tempfile::tempdir().unwrap();
    let chat = Chat::start(tmp.path()).await;
    // The same signed request, byte for byte, twice within the timestamp window.
    let body =
        serde_json::to_vec(&command("deploy", &[("app", "web")], "7", &["ops-role"])).unwrap();
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = chat.signer.sign(&ts, &body);
    let (status, first) = chat.post_raw(&body, &ts, Some(&sig)).await;
    assert_eq!(status, 200, "{first}");
    assert!(
        first["data"]["content"]
            .as_str()
            .unwrap()
            .contains("queued"),
        "{first}"
    );
    let (status, again) = chat.post_raw(&body, &ts, Some(&sig)).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["data"]["flags"], 64, "{again}");
    assert!(
        again["data"]["content"]
            .as_str()
            .unwrap()
            .contains("already handled"),
        "{again}"
    );
    chat.app.wait_idle(Duration::from_secs(30)).await;
    assert_eq!(chat.app.deployments("web").await.len(), 1, "deployed once");
    let deploys = chat
        .audit("web")
        .await
        .into_iter()
        .filter(|a| a["action"] == "deploy")
        .count();
    assert_eq!(deploys, 1, "audited once");
    chat.app.finish().await;
}
