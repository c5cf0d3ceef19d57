//! Deployment lifecycle events published to EventBridge (moto), routed by a rule to an SQS
//! queue, read back with the documented schema.

use std::time::Duration;

use serde_json::Value;

use crate::sites::{aws_config, moto_url};
use crate::support::{app_manifest, push_body, wait_for, GitRepo, TestApp};

#[tokio::test]
async fn every_transition_reaches_the_bus_with_the_documented_schema() {
    let config = aws_config(&moto_url()).await;
    let eb = aws_sdk_eventbridge::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let name = format!("gantry-events-{}", std::process::id());
    eb.create_event_bus().name(&name).send().await.unwrap();
    let queue = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let queue_arn =
        attrs.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
    eb.put_rule()
        .name(&name)
        .event_bus_name(&name)
        .event_pattern(r#"{"source": ["gantry"]}"#)
        .send()
        .await
        .unwrap();
    eb.put_targets()
        .rule(&name)
        .event_bus_name(&name)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(&queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    let sha = repo.commit(&[("a", "1")], "init");
    let moto = moto_url();
    let app = TestApp::start_with(
        &[(
            "web.yaml",
            app_manifest("web", "acme/web", &repo.path, "main", &["true"]),
        )],
        &[
            ("GANTRY_AWS_ENDPOINT_URL", moto.as_str()),
            ("GANTRY_EVENTBRIDGE_BUS", name.as_str()),
        ],
    )
    .await;
    let (_, r) = app
        .hook(
            "push",
            "events-1",
            &push_body("acme/web", "refs/heads/main", &sha),
        )
        .await;
    let id = r["deployments"][0].as_i64().unwrap();
    app.wait_idle(Duration::from_secs(30)).await;

    // running, one per step (fetch_source, build, report), succeeded.
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    wait_for(Duration::from_secs(20), "five events on the queue", || {
        let (sqs, queue, received) = (sqs.clone(), queue.clone(), received.clone());
        async move {
            let out = sqs
                .receive_message()
                .queue_url(&queue)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
            let mut all = received.lock().unwrap();
            for m in out.messages() {
                all.push(serde_json::from_str(m.body().unwrap()).unwrap());
            }
            all.len() >= 5
        }
    })
    .await;
    let events = received.lock().unwrap().clone();
    assert_eq!(events.len(), 5, "{events:#?}");
    for e in &events {
        assert_eq!(e["source"], "gantry");
        assert_eq!(e["detail-type"], "Gantry Deployment State Change");
        let d = &e["detail"];
        assert_eq!(d["deploymentId"], id);
        assert_eq!(d["app"], "web");
        assert_eq!(d["environment"], "production");
        assert_eq!(d["trigger"], "push");
        assert_eq!(d["actor"], "octocat");
        assert_eq!(d["ref"], "refs/heads/main");
        assert!(d["at"].is_string());
    }
    let states: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["detail"]["state"].as_str().unwrap().to_owned(),
                e["detail"]["step"]["kind"]
                    .as_str()
                    .unwrap_or("-")
                    .to_owned(),
            )
        })
        .collect();
    let want = [
        ("running", "-"),
        ("running", "fetch_source"),
        ("running", "build"),
        ("running", "report"),
        ("succeeded", "-"),
    ];
    let mut sorted = states.clone();
    sorted.sort();
    let mut want_sorted: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    want_sorted.sort();
    assert_eq!(sorted, want_sorted, "{states:?}");
    assert!(events.iter().any(|e| e["detail"]["sha"] == sha.as_str()));
    app.finish().await;
}

#[tokio::test]
async fn eventbridge_setup_run_twice_creates_each_resource_once() {
    let name = format!("gantry-setup-{}", std::process::id());
    let run = || {
        crate::support::gantry_cli()
            .args([
                "eventbridge",
                "setup",
                "--endpoint",
                "https://gantry.example.com",
                "--name",
                &name,
            ])
            .env("GANTRY_AWS_ENDPOINT_URL", moto_url())
            .env("GANTRY_EVENTBRIDGE_API_KEY", "c4n4ry-eb-key-1")
            .output()
    };
    let first = run().await.unwrap();
    let out1 = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(
        first.status.success(),
        "{out1}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(out1.matches("created").count(), 4, "{out1}");
    let second = run().await.unwrap();
    let out2 = String::from_utf8_lossy(&second.stdout).into_owned();
    assert!(second.status.success(), "{out2}");
    assert_eq!(out2.matches("exists").count(), 4, "{out2}");
    assert!(!out1.contains("c4n4ry-eb-key-1") && !out2.contains("c4n4ry-eb-key-1"));
    let config = aws_config(&moto_url()).await;
    let eb = aws_sdk_eventbridge::Client::new(&config);
    let connections = eb
        .list_connections()
        .name_prefix(&name)
        .send()
        .await
        .unwrap();
    // moto ignores NamePrefix: count by exact name.
    let mine = |n: Option<&str>, want: &str| n == Some(want);
    assert_eq!(
        connections
            .connections()
            .iter()
            .filter(|c| mine(c.name(), &format!("{name}-connection")))
            .count(),
        1
    );
    let destinations = eb
        .list_api_destinations()
        .name_prefix(&name)
        .send()
        .await
        .unwrap();
    let dests: Vec<_> = destinations
        .api_destinations()
        .iter()
        .filter(|d| mine(d.name(), &format!("{name}-ecs-events")))
        .collect();
    assert_eq!(dests.len(), 1);
    assert_eq!(
        dests[0].invocation_endpoint(),
        Some("https://gantry.example.com/hooks/eventbridge")
    );
    let targets = eb
        .list_targets_by_rule()
        .rule(format!("{name}-ecs-events"))
        .send()
        .await
        .unwrap();
    assert_eq!(targets.targets().len(), 1);
}
