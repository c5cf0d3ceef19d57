//! GitHub webhook intake: conformance with every example payload GitHub publishes
//! (`@octokit/webhooks-examples`), signatures, redelivery, limits and malformed bodies.

use std::time::Duration;

use serde_json::Value;

use crate::support::{app_manifest, push_body, GitRepo, TestApp, SECRET};

fn examples_path() -> std::path::PathBuf {
    if let Ok(p) = std::env::var("GANTRY_TEST_WEBHOOK_EXAMPLES") {
        return p.into();
    }
    crate::support::root()
        .join(".stack/node/node_modules/@octokit/webhooks-examples/api.github.com/index.json")
}

pub(crate) fn examples() -> Vec<(String, Value)> {
    let path = examples_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; run scripts/setup.sh (it installs @octokit/webhooks-examples)",
            path.display()
        )
    });
    let index: Vec<Value> = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for event in index {
        let name = event["name"].as_str().unwrap().to_owned();
        for ex in event["examples"].as_array().unwrap() {
            out.push((name.clone(), ex.clone()));
        }
    }
    out
}

#[tokio::test]
async fn every_published_example_gets_the_right_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("hello"));
    repo.commit(&[("README", "hi")], "init");
    // Track the repository and branch the examples push to.
    let app = TestApp::start(&[(
        "hello.yaml",
        app_manifest("hello", "Codertocat/Hello-World", &repo.path, "master", &[]),
    )])
    .await;
    let all = examples();
    assert!(
        all.len() > 100,
        "expected the full example set, got {}",
        all.len()
    );
    let mut queued = 0;
    for (i, (event, payload)) in all.iter().enumerate() {
        let body = serde_json::to_vec(payload).unwrap();
        let delivery = format!("conformance-{i}");
        let (status, resp) = app.hook(event, &delivery, &body).await;
        let branch_push = event == "push"
            && !payload["deleted"].as_bool().unwrap_or(false)
            && payload["ref"] == "refs/heads/master";
        if branch_push {
            assert_eq!(status, 202, "{event} #{i}: {resp}");
            assert_eq!(
                resp["deployments"].as_array().map(Vec::len),
                Some(1),
                "{resp}"
            );
            queued += 1;
        } else if event == "ping" {
            assert_eq!(status, 200, "ping #{i}: {resp}");
        } else {
            assert!(
                (200..300).contains(&status),
                "{event} #{i}: {status} {resp}"
            );
            // A pull request on the app's repository queues a plan preview, never a deployment.
            assert!(
                resp.get("deployments")
                    .is_none_or(|d| d.as_array().is_some_and(Vec::is_empty)),
                "{event} #{i} must not deploy: {resp}"
            );
            let rec = app
                .store()
                .delivery(&delivery)
                .await
                .unwrap()
                .expect("delivery recorded");
            let previewed = event == "pull_request"
                && resp["manifests"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("plan preview of #"));
            let want = if previewed { "queued" } else { "ignored" };
            assert_eq!(rec.outcome.as_str(), want, "{event} #{i}");
            assert!(
                rec.reason.as_deref().is_some_and(|r| !r.is_empty()),
                "ignored with a reason"
            );
        }
    }
    assert!(queued >= 2, "the examples hold branch pushes");
    // Deletions and the untracked tag push created nothing.
    let deployments = app.store().deployments(Some("hello"), 1000).await.unwrap();
    assert_eq!(deployments.len(), queued);
    assert_eq!(
        app.store().deliveries_count().await.unwrap() as usize,
        all.len()
    );
    app.wait_idle(Duration::from_secs(30)).await;
    app.finish().await;
}

#[tokio::test]
async fn bad_signatures_are_rejected_and_leave_no_trace() {
    let app = TestApp::start(&[]).await;
    let body = push_body("acme/web", "refs/heads/main", &"a".repeat(40));
    let (status, _) = app.hook_signed("push", "no-sig", &body, None).await;
    assert_eq!(status, 401);
    let wrong = gantry::http::hooks::sign("not-the-secret", &body);
    let (status, _) = app
        .hook_signed("push", "wrong-sig", &body, Some(&wrong))
        .await;
    assert_eq!(status, 401);
    let (status, _) = app
        .hook_signed("push", "garbage-sig", &body, Some("sha256=nothex"))
        .await;
    assert_eq!(status, 401);
    // A signature of a different body (tampering).
    let other = gantry::http::hooks::sign(SECRET, b"{}");
    let (status, _) = app
        .hook_signed("push", "tampered", &body, Some(&other))
        .await;
    assert_eq!(status, 401);
    assert_eq!(app.store().deliveries_count().await.unwrap(), 0);
    app.finish().await;
}

#[tokio::test]
async fn githubs_published_test_vector_is_accepted() {
    // docs.github.com "Validating webhook deliveries": secret and body give this signature.
    let app = TestApp::start_with(
        &[],
        &[(
            "GANTRY_GITHUB_WEBHOOK_SECRET",
            "rotated-old,It's a Secret to Everybody",
        )],
    )
    .await;
    let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let (status, resp) = app
        .hook_signed("push", "vector", b"Hello, World!", Some(sig))
        .await;
    // Accepted as authentic; the body is not a push payload, so it is a 400 after verification.
    assert_eq!(status, 400, "{resp}");
    assert!(resp["error"]
        .as_str()
        .unwrap()
        .contains("malformed push payload"));
    let (status, _) = app
        .hook_signed("zen", "vector-2", b"Hello, World!", Some(sig))
        .await;
    assert_eq!(status, 400, "not JSON");
    app.finish().await;
}

#[tokio::test]
async fn redelivery_creates_one_deployment() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    let sha = repo.commit(&[("index.html", "<h1>hi</h1>")], "init");
    let app = TestApp::start(&[(
        "web.yaml",
        app_manifest("web", "acme/web", &repo.path, "main", &[]),
    )])
    .await;
    let body = push_body("acme/web", "refs/heads/main", &sha);
    let (s1, r1) = app.hook("push", "same-id", &body).await;
    let (s2, r2) = app.hook("push", "same-id", &body).await;
    assert_eq!(s1, 202, "{r1}");
    assert_eq!(s2, 200, "{r2}");
    assert_eq!(r2["duplicate"], true);
    app.wait_idle(Duration::from_secs(30)).await;
    let deps = app.deployments("web").await;
    assert_eq!(deps.len(), 1);
    assert_eq!(deps[0]["state"], "succeeded", "{}", deps[0]);
    app.finish().await;
}

#[tokio::test]
async fn oversized_and_malformed_bodies_are_client_errors() {
    let app = TestApp::start(&[]).await;
    let big = vec![b' '; 5 * 1024 * 1024 + 1];
    let (status, resp) = app.hook("push", "big", &big).await;
    assert_eq!(status, 413);
    assert!(
        resp["error"].as_str().unwrap().contains("length limit"),
        "{resp}"
    );
    let (status, resp) = app.hook("push", "bad-json", b"{\"ref\": ").await;
    assert_eq!(status, 400, "{resp}");
    let (status, _) = app.hook("push", "not-a-push", b"{\"ref\": 3}").await;
    assert_eq!(status, 400);
    assert_eq!(app.store().deliveries_count().await.unwrap(), 0);
    app.finish().await;

    let small = TestApp::start_with(&[], &[("GANTRY_MAX_BODY_BYTES", "1024")]).await;
    let body = push_body("acme/web", "refs/heads/main", &"b".repeat(40));
    let mut padded = body.clone();
    padded.extend(std::iter::repeat_n(b' ', 2048));
    let (status, _) = small.hook("push", "padded", &padded).await;
    assert_eq!(status, 413);
    small.finish().await;
}

#[tokio::test]
async fn deletions_never_deploy_and_tags_only_for_tag_tracking_apps() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    let sha = repo.commit(&[("a", "1")], "init");
    let mut tagged = app_manifest("tagged", "acme/web", &repo.path, "release", &[]);
    tagged = tagged.replace(
        "    branch: release\n",
        "    branch: release\n    tags: \"v*\"\n",
    );
    let app = TestApp::start(&[
        (
            "web.yaml",
            app_manifest("web", "acme/web", &repo.path, "main", &[]),
        ),
        ("tagged.yaml", tagged),
    ])
    .await;
    let mut deleted: Value =
        serde_json::from_slice(&push_body("acme/web", "refs/heads/main", &"0".repeat(40))).unwrap();
    deleted["deleted"] = Value::Bool(true);
    let (status, resp) = app
        .hook("push", "del", &serde_json::to_vec(&deleted).unwrap())
        .await;
    assert_eq!(status, 200, "{resp}");
    assert!(resp["ignored"].as_str().unwrap().contains("deleted"));
    let (status, resp) = app
        .hook(
            "push",
            "tag",
            &push_body("acme/web", "refs/tags/v1.2.0", &sha),
        )
        .await;
    assert_eq!(status, 202, "{resp}");
    app.wait_idle(Duration::from_secs(30)).await;
    assert_eq!(app.deployments("web").await.len(), 0);
    let tagged = app.deployments("tagged").await;
    assert_eq!(tagged.len(), 1);
    assert_eq!(tagged[0]["ref"], "refs/tags/v1.2.0");
    app.finish().await;
}
