//! Environments and promotion against moto and the local registry: one App declaring
//! `staging` (follows main) and `production` (takes releases by promotion), each with its own
//! cluster, desired count, task definition values and bucket.

use std::time::Duration;

use serde_json::json;

use crate::images::{
    base_image, blob_uploads, endpoints, registry_log_len, registry_requests, unique, ECR,
};
use crate::services::{task_definition, Ecs};
use crate::sites::{aws_config, moto_url};
use crate::support::{push_body, GitRepo, TestApp};

async fn s3() -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&aws_config(&moto_url()).await)
            .force_path_style(true)
            .build(),
    )
}

async fn body(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> (String, String) {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let ct = out.content_type().unwrap_or("").to_owned();
    let bytes = out.body.collect().await.unwrap().into_bytes();
    (String::from_utf8_lossy(&bytes).into_owned(), ct)
}

/// The container image and environment of the task definition a service runs.
async fn running(ecs: &Ecs, service: &str) -> (String, Vec<(String, String)>, i32) {
    let svc = ecs.service(service).await;
    let td = ecs
        .client
        .describe_task_definition()
        .task_definition(svc.task_definition().unwrap())
        .send()
        .await
        .unwrap();
    let c = &td.task_definition().unwrap().container_definitions()[0];
    let env = c
        .environment()
        .iter()
        .map(|kv| {
            (
                kv.name().unwrap_or("").to_owned(),
                kv.value().unwrap_or("").to_owned(),
            )
        })
        .collect();
    (c.image().unwrap_or("").to_owned(), env, svc.desired_count())
}

#[tokio::test]
async fn promotion_deploys_stagings_digests_and_site_content_with_productions_values() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("shop"));
    let first = repo.commit(
        &[
            ("api/main.py", "print('api 1')\n"),
            ("site/index.html", "<p>shop 1</p>"),
            ("site/about.html", "<p>about</p>"),
        ],
        "shop",
    );
    let (stg, prd) = (Ecs::new("stg").await, Ecs::new("prd").await);
    let pid = std::process::id();
    let image_repo = unique("shop-api");
    let (stg_bucket, prd_bucket) = (format!("shop-stg-{pid}"), format!("shop-prd-{pid}"));
    let s3 = s3().await;
    for b in [&stg_bucket, &prd_bucket] {
        s3.create_bucket().bucket(b).send().await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
    for (file, family, env) in [
        ("stg.json", format!("shop-stg-{pid}"), "staging"),
        ("prd.json", format!("shop-prd-{pid}"), "production"),
    ] {
        std::fs::write(
            dir.path().join("manifests").join(file),
            task_definition(&family, "512", json!([{"name": "APP_ENV", "value": env}])),
        )
        .unwrap();
    }
    let service = format!("shop-api-{pid}");
    let m = format!(
        "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: shop\nspec:\n  rolloutTimeout: 30s\n  source:\n    repo: acme/shop\n    url: {url}\n  images:\n    - name: api\n      repository: {ECR}/{image_repo}\n      context: api\n      base: {base}\n      entrypoint: [python3, main.py]\n      createRepository: true\n  services:\n    - name: {service}\n      cluster: {stg_cluster}\n      taskDefinition: stg.json\n      containers:\n        app: api\n      desiredCount: 1\n      network:\n        subnets: [{subnet}]\n  sites:\n    - name: web\n      dir: site\n      bucket: {stg_bucket}\n      preset: plain\n  environments:\n    - name: staging\n    - name: production\n      promotion:\n        from: staging\n      overrides:\n        services:\n          - name: {service}\n            cluster: {prd_cluster}\n            taskDefinition: prd.json\n            desiredCount: 2\n        sites:\n          - name: web\n            bucket: {prd_bucket}\n",
        url = repo.path.display(),
        base = base_image(),
        stg_cluster = stg.cluster,
        prd_cluster = prd.cluster,
        subnet = stg.subnet,
    );
    let moto = moto_url();
    let eps = endpoints();
    let app = TestApp::start_in(
        dir,
        &[("shop.yaml", m)],
        &[
            ("GANTRY_AWS_ENDPOINT_URL", moto.as_str()),
            ("GANTRY_REGISTRY_ENDPOINTS", eps.as_str()),
            ("GANTRY_ECS_POLL", "20ms"),
        ],
    )
    .await;

    // Both environments are apps of their own; a push deploys staging only.
    let apps = app.api("/api/v1/apps").await;
    let names: Vec<&str> = apps
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["shop-staging", "shop-production"], "{apps:#}");
    assert_eq!(apps[1]["promotion"]["from"], "staging");
    let (status, r) = app
        .hook(
            "push",
            "shop-1",
            &push_body("acme/shop", "refs/heads/main", &first),
        )
        .await;
    assert_eq!(status, 202, "{r}");
    assert_eq!(r["deployments"].as_array().unwrap().len(), 1, "{r}");
    app.wait_idle(Duration::from_secs(120)).await;
    let staged = app
        .api(&format!("/api/v1/deployments/{}", r["deployments"][0]))
        .await;
    assert_eq!(staged["app"], "shop-staging");
    assert_eq!(staged["state"], "succeeded", "{staged:#}");
    assert!(app.deployments("shop-production").await.is_empty());
    let (stg_image, stg_env, stg_count) = running(&stg, &service).await;
    assert!(stg_image.contains("@sha256:"), "{stg_image}");
    assert_eq!(stg_env, [("APP_ENV".to_owned(), "staging".to_owned())]);
    assert_eq!(stg_count, 1);

    // Production cannot be deployed from a branch.
    let (status, r) = app
        .post("/api/v1/apps/shop-production/deploy", json!({}))
        .await;
    assert_eq!(status, 400, "{r}");

    // Promote: same digest and content, production's values, nothing built or uploaded.
    let before = registry_log_len();
    let (status, r) = app
        .post(
            "/api/v1/apps/shop/promote",
            json!({"from": "staging", "to": "production", "actor": "cli:alice"}),
        )
        .await;
    assert_eq!(status, 202, "{r}");
    assert_eq!(r["release"], staged["id"]);
    assert!(r["held"].is_null(), "the newest release holds nothing: {r}");
    app.wait_idle(Duration::from_secs(120)).await;
    let promoted = app.api(&format!("/api/v1/deployments/{}", r["id"])).await;
    assert_eq!(promoted["state"], "succeeded", "{promoted:#}");
    assert_eq!(promoted["trigger"], "promotion");
    assert_eq!(promoted["sha"], staged["sha"]);
    let kinds: Vec<&str> = promoted["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["verify", "roll_services", "sync_sites", "report"]);
    let (prd_image, prd_env, prd_count) = running(&prd, &service).await;
    assert_eq!(prd_image, stg_image, "the same digest");
    assert_eq!(prd_env, [("APP_ENV".to_owned(), "production".to_owned())]);
    assert_eq!(prd_count, 2);
    let releases = app.api("/api/v1/releases?app=shop-production").await;
    let staged_release = app.api("/api/v1/releases?app=shop-staging").await;
    assert_eq!(releases[0]["images"], staged_release[0]["images"]);
    for key in ["index.html", "about.html"] {
        assert_eq!(
            body(&s3, &prd_bucket, key).await,
            body(&s3, &stg_bucket, key).await,
            "{key}"
        );
    }
    let sync = crate::support::step_log(&promoted, "sync_sites");
    assert!(sync.contains("copied to"), "{sync}");
    assert!(sync.contains("upload 2 "), "two files copied in: {sync}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let requests = registry_requests(&image_repo, before);
    assert!(
        blob_uploads(&requests).is_empty(),
        "no blob uploaded: {requests:#?}"
    );
    assert!(
        !requests.iter().any(|l| l.contains("\"PUT ")),
        "nothing written: {requests:#?}"
    );

    // A newer staging release; promoting the older one holds production.
    let second = repo.commit(&[("api/main.py", "print('api 2')\n")], "api 2");
    let staged2 = app.push_and_wait("shop-2", "acme/shop", &second).await;
    assert_eq!(staged2["state"], "succeeded", "{staged2:#}");
    assert_ne!(running(&stg, &service).await.0, stg_image);
    let (status, r) = app.post("/api/v1/apps/shop/promote",
        json!({"from": "staging", "to": "production", "release": staged["id"], "actor": "cli:bob"}),
    )
    .await;
    assert_eq!(status, 202, "{r}");
    assert!(
        r["held"]
            .as_str()
            .unwrap()
            .contains("older than its newest"),
        "{r}"
    );
    app.wait_idle(Duration::from_secs(120)).await;
    let apps = app.api("/api/v1/apps").await;
    assert_eq!(apps[1]["paused"]["kind"], "hold", "{apps:#}");
    assert_eq!(running(&prd, &service).await.0, stg_image);
    let (status, r) = app
        .post(
            "/api/v1/apps/shop/hold/release",
            json!({"env": "production", "actor": "cli:bob"}),
        )
        .await;
    assert_eq!((status, r["released"].clone()), (200, json!(true)), "{r}");
    let audit = app.api("/api/v1/audit?target=shop-production").await;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["hold.release", "promote", "promote"], "{audit:#}");
    // Unknown environments and apps are the caller's to fix.
    let (status, _) = app
        .post(
            "/api/v1/apps/shop/promote",
            json!({"from": "staging", "to": "qa"}),
        )
        .await;
    assert_eq!(status, 404);
    app.finish().await;
}

/// Production takes staging's release by itself once it has soaked (an injected clock), once;
/// not while production is held.
#[tokio::test]
async fn a_release_that_soaked_in_staging_is_promoted_once_and_never_into_a_hold() {
    use chrono::Utc;
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("shop"));
    let first = repo.commit(&[("a", "1")], "first");
    let m = format!(
        "{}  environments:\n    - name: staging\n    - name: production\n      promotion: {{from: staging, after: 30m}}\n",
        crate::support::app_manifest("shop", "acme/shop", &repo.path, "main", &["true"])
    );
    let clock = crate::support::ManualClock::at(Utc::now());
    let app = TestApp::start_with_clock(
        tempfile::tempdir().unwrap(),
        &[("shop.yaml", m)],
        &[],
        clock.clone(),
    )
    .await;
    let staged = app.push_and_wait("auto-1", "acme/shop", &first).await;
    assert_eq!(staged["state"], "succeeded", "{staged:#}");
    app.wake_queue();
    // Not soaked yet: a few rounds (woken, 20 ms apart) promote nothing.
    for _ in 0..10 {
        app.wake_queue();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(app.deployments("shop-production").await.is_empty());

    clock.set(Utc::now() + chrono::Duration::minutes(31));
    app.wake_queue();
    crate::support::wait_for(
        Duration::from_secs(20),
        "the automatic promotion",
        || async { !app.deployments("shop-production").await.is_empty() },
    )
    .await;
    app.wait_idle(Duration::from_secs(30)).await;
    let promoted = app.deployments("shop-production").await;
    assert_eq!(promoted.len(), 1, "{promoted:#?}");
    assert_eq!(promoted[0]["trigger"], "promotion");
    assert_eq!(promoted[0]["actor"], "gantry (auto-promotion)");
    assert_eq!(promoted[0]["images_from"], staged["id"]);
    assert_eq!(promoted[0]["state"], "succeeded", "{:#}", promoted[0]);
    for _ in 0..10 {
        app.wake_queue();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        app.deployments("shop-production").await.len(),
        1,
        "promoted once"
    );

    // A rollback holds production: the next soaked staging release waits for the release.
    let (status, r) = app
        .post(
            "/api/v1/apps/shop/rollback",
            json!({"env": "production", "to": promoted[0]["id"]}),
        )
        .await;
    assert_eq!(status, 202, "{r}");
    app.wait_idle(Duration::from_secs(30)).await;
    let second = repo.commit(&[("a", "2")], "second");
    let staged2 = app.push_and_wait("auto-2", "acme/shop", &second).await;
    assert_eq!(staged2["state"], "succeeded");
    clock.set(Utc::now() + chrono::Duration::hours(2));
    for _ in 0..10 {
        app.wake_queue();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = app.deployments("shop-production").await.len();
    assert!(app
        .deployments("shop-production")
        .await
        .iter()
        .all(|d| d["images_from"] != staged2["id"]));
    let (status, _) = app
        .post(
            "/api/v1/apps/shop/hold/release",
            json!({"env": "production"}),
        )
        .await;
    assert_eq!(status, 200);
    app.wake_queue();
    crate::support::wait_for(
        Duration::from_secs(20),
        "the promotion after the release",
        || async { app.deployments("shop-production").await.len() > before },
    )
    .await;
    app.wait_idle(Duration::from_secs(30)).await;
    let newest = &app.deployments("shop-production").await[0];
    assert_eq!(newest["images_from"], staged2["id"], "{newest:#}");
    app.finish().await;
}
