//! Drift and self-heal against moto: an app with two environments (staging heals itself,
//! production only reports), changed behind Gantry's back with UpdateService and an S3 PUT;
//! the drift worker runs every 300 ms, and checks are also asked for through the API.

use std::time::Duration;

use serde_json::{json, Value};

use crate::fakes::Fake;
use crate::services::{task_definition, Ecs};
use crate::sites::{aws_config, moto_url};
use crate::support::{push_body, wait_for, GitRepo, TestApp};

/// What someone does in the console: another revision of the family, and another count.
async fn change_by_hand(ecs: &Ecs, service: &str, family: &str, count: i32) -> String {
    let registered = ecs
        .client
        .register_task_definition()
        .family(family)
        .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
        .network_mode(aws_sdk_ecs::types::NetworkMode::Awsvpc)
        .cpu("256")
        .memory("512")
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("app")
                .image("public.ecr.aws/nginx/nginx:1.27")
                .memory(512)
                .environment(
                    aws_sdk_ecs::types::KeyValuePair::builder()
                        .name("DEBUG")
                        .value("1")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let arn = registered
        .task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap()
        .to_owned();
    ecs.client
        .update_service()
        .cluster(&ecs.cluster)
        .service(service)
        .task_definition(&arn)
        .desired_count(count)
        .send()
        .await
        .unwrap();
    arn
}

async fn drift_of(app: &TestApp, name: &str) -> Option<Value> {
    app.api("/api/v1/drift")
        .await
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["app"] == name)
        .cloned()
}

/// The titles of the drift notices posted for `app`, in order.
fn titles(fake: &Fake, app: &str) -> Vec<String> {
    fake.matching("POST", "/api/v10/channels/")
        .iter()
        .map(|r| {
            r.body["embeds"][0]["title"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .filter(|t| {
            t.starts_with(&format!("{app} → ")) && (t.contains("drift") || t.contains("self-heal"))
        })
        .collect()
}

#[tokio::test]
async fn drift_is_reported_once_healed_only_where_asked_and_never_when_held() {
    let discord = Fake::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("shop"));
    let first = repo.commit(&[("site/index.html", "<p>shop 1</p>")], "shop");
    let (stg, prd) = (Ecs::new("dstg").await, Ecs::new("dprd").await);
    let pid = std::process::id();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&aws_config(&moto_url()).await)
            .force_path_style(true)
            .build(),
    );
    let (stg_bucket, prd_bucket) = (format!("drift-stg-{pid}"), format!("drift-prd-{pid}"));
    for b in [&stg_bucket, &prd_bucket] {
        s3.create_bucket().bucket(b).send().await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
    let (stg_family, prd_family) = (format!("drift-stg-{pid}"), format!("drift-prd-{pid}"));
    for (file, family) in [("stg.json", &stg_family), ("prd.json", &prd_family)] {
        std::fs::write(
            dir.path().join("manifests").join(file),
            task_definition(family, "512", json!([])),
        )
        .unwrap();
    }
    let service = format!("drift-api-{pid}");
    let m = format!(
        "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: shop\nspec:\n  rolloutTimeout: 30s\n  source:\n    repo: acme/shop\n    url: {url}\n  notifications:\n    discord:\n      channel: \"1090000000000000111\"\n  services:\n    - name: {service}\n      cluster: {stg_cluster}\n      taskDefinition: stg.json\n      desiredCount: 1\n      network:\n        subnets: [{subnet}]\n  sites:\n    - name: web\n      dir: site\n      bucket: {stg_bucket}\n      preset: plain\n  environments:\n    - name: staging\n      overrides:\n        selfHeal: true\n    - name: production\n      overrides:\n        services:\n          - name: {service}\n            cluster: {prd_cluster}\n            taskDefinition: prd.json\n        sites:\n          - name: web\n            bucket: {prd_bucket}\n",
        url = repo.path.display(),
        stg_cluster = stg.cluster,
        prd_cluster = prd.cluster,
        subnet = stg.subnet,
    );
    let moto = moto_url();
    let app = TestApp::start_in(
        dir,
        &[("shop.yaml", m)],
        &[
            ("GANTRY_AWS_ENDPOINT_URL", moto.as_str()),
            ("GANTRY_ECS_POLL", "20ms"),
            ("GANTRY_DRIFT_INTERVAL", "300ms"),
            ("GANTRY_DISCORD_API_URL", discord.url.as_str()),
            ("GANTRY_DISCORD_BOT_TOKEN", "c4n4ry-bot-token-0123"),
        ],
    )
    .await;
    let (status, r) = app
        .hook(
            "push",
            "drift-1",
            &push_body("acme/shop", "refs/heads/main", &first),
        )
        .await;
    assert_eq!(status, 202, "{r}");
    assert_eq!(r["deployments"].as_array().unwrap().len(), 2, "{r}");
    app.wait_idle(Duration::from_secs(60)).await;
    for env in ["staging", "production"] {
        let (status, c) = app
            .post("/api/v1/apps/shop/drift", json!({"env": env}))
            .await;
        assert_eq!(status, 200, "{c}");
        assert_eq!(c["change"], "none", "a fresh release has no drift: {c}");
    }

    // Someone changes both services by hand.
    let stg_released = stg
        .service(&service)
        .await
        .task_definition()
        .unwrap()
        .to_owned();
    let prd_released = prd
        .service(&service)
        .await
        .task_definition()
        .unwrap()
        .to_owned();
    change_by_hand(&stg, &service, &stg_family, 3).await;
    change_by_hand(&prd, &service, &prd_family, 3).await;

    // Production only reports it: once, with the diff.
    wait_for(
        Duration::from_secs(20),
        "production's drift recorded",
        || {
            let app = &app;
            async move { drift_of(app, "shop-production").await.is_some() }
        },
    )
    .await;
    let d = drift_of(&app, "shop-production").await.unwrap();
    let diff = d["diff"].as_str().unwrap();
    assert!(
        diff.contains(&format!(
            "service {service}: taskDefinition: live {prd_family}:2, released {prd_family}:1"
        )),
        "{diff}"
    );
    assert!(
        diff.contains(&format!(
            "service {service}: desiredCount: live 3, released 1"
        )),
        "{diff}"
    );
    assert!(diff.contains("DEBUG"), "the task definition diff: {diff}");
    for _ in 0..3 {
        let (_, c) = app
            .post("/api/v1/apps/shop-production/drift", json!({}))
            .await;
        assert_eq!(c["change"], "unchanged", "{c}");
        assert!(c["healed_by"].is_null(), "{c}");
        assert_eq!(c["note"], "selfHeal is off", "{c}");
    }
    let live = prd.service(&service).await;
    assert_eq!(
        live.desired_count(),
        3,
        "production is left as it was changed"
    );

    // Staging heals itself: its release is deployed again and the drift clears.
    wait_for(
        Duration::from_secs(30),
        "staging healed and its drift cleared",
        || {
            let app = &app;
            let stg = &stg;
            let service = &service;
            let released = &stg_released;
            async move {
                let live = stg.service(service).await;
                drift_of(app, "shop-staging").await.is_none()
                    && live.task_definition() == Some(released.as_str())
                    && live.desired_count() == 1
            }
        },
    )
    .await;
    app.wait_idle(Duration::from_secs(30)).await;
    let heals: Vec<Value> = app
        .deployments("shop-staging")
        .await
        .into_iter()
        .filter(|d| d["trigger"] == "self-heal")
        .collect();
    assert_eq!(heals.len(), 1, "one heal: {heals:#?}");
    assert_eq!(heals[0]["state"], "succeeded", "{:#}", heals[0]);
    assert!(app
        .deployments("shop-production")
        .await
        .iter()
        .all(|d| d["trigger"] != "self-heal"));
    let live = prd.service(&service).await;
    assert_eq!(live.desired_count(), 3, "production is not healed");
    assert_ne!(live.task_definition(), Some(prd_released.as_str()));

    // Each notice posted once: production's drift; staging's drift, heal, clearing.
    wait_for(Duration::from_secs(20), "drift notices posted", || {
        let ok = titles(&discord, "shop-staging").len() >= 3
            && !titles(&discord, "shop-production").is_empty();
        async move { ok }
    })
    .await;
    assert_eq!(
        titles(&discord, "shop-production"),
        ["shop-production → production: drift detected"]
    );
    assert_eq!(
        titles(&discord, "shop-staging"),
        [
            "shop-staging → staging: drift detected",
            "shop-staging → staging: self-heal started",
            "shop-staging → staging: drift cleared",
        ]
    );
    let audit = app.api("/api/v1/audit?target=shop-production").await;
    let drift_audits = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "drift")
        .count();
    assert_eq!(drift_audits, 1, "{audit:#}");

    // A site object changed by hand is drift too.
    s3.put_object()
        .bucket(&prd_bucket)
        .key("index.html")
        .body(b"<p>hotfix</p>".to_vec().into())
        .send()
        .await
        .unwrap();
    let (_, c) = app
        .post("/api/v1/apps/shop-production/drift", json!({}))
        .await;
    // The periodic check may have seen it first.
    assert!(
        c["change"] == "detected" || c["change"] == "unchanged",
        "{c}"
    );
    let diff = c["drift"]["diff"].as_str().unwrap();
    assert!(
        diff.contains("site web: objects: live 1 changed by hand")
            && diff.contains("changed: index.html"),
        "{diff}"
    );

    // A rollback holds staging: drift is reported, never healed, until the hold is released.
    let (status, r) = app
        .post("/api/v1/apps/shop/rollback", json!({"env": "staging"}))
        .await;
    assert_eq!(status, 202, "{r}");
    app.wait_idle(Duration::from_secs(60)).await;
    let deployments_before = app.deployments("shop-staging").await.len();
    change_by_hand(&stg, &service, &stg_family, 2).await;
    let (_, c) = app.post("/api/v1/apps/shop-staging/drift", json!({})).await;
    assert!(
        c["change"] == "detected" || c["change"] == "unchanged",
        "the periodic check may have seen it first: {c}"
    );
    assert!(c["healed_by"].is_null(), "{c}");
    assert!(c["note"].as_str().unwrap().starts_with("hold"), "{c}");
    for _ in 0..3 {
        let (_, c) = app.post("/api/v1/apps/shop-staging/drift", json!({})).await;
        assert!(c["healed_by"].is_null(), "{c}");
    }
    assert_eq!(
        app.deployments("shop-staging").await.len(),
        deployments_before
    );
    assert_eq!(stg.service(&service).await.desired_count(), 2);
    let apps = app.api("/api/v1/apps").await;
    let staging = apps
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "shop-staging")
        .unwrap();
    assert_eq!(staging["paused"]["kind"], "hold", "{staging:#}");
    assert!(staging["drift"]["diff"]
        .as_str()
        .unwrap()
        .contains("desiredCount"));
    app.finish().await;
}
