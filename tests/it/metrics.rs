//! `/metrics` scraped and parsed as Prometheus text by a Prometheus exposition parser: the
//! deployments, webhook deliveries and steps the daemon counted, and gauges read from the store.

use std::time::Duration;

use prometheus_parse::{Scrape, Value};

use crate::support::{app_manifest, push_body, GitRepo, TestApp};

fn sample(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Value::Summary(_) => f64::NAN,
        })
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_count_what_happened() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    let sha = repo.commit(&[("a", "1")], "first");
    let m = app_manifest(
        "metricsweb",
        "acme/metricsweb",
        &repo.path,
        "main",
        &["true"],
    );
    let app = TestApp::start(&[("metricsweb.yaml", m)]).await;
    let d = app
        .push_and_wait("metrics-1", "acme/metricsweb", &sha)
        .await;
    assert_eq!(d["state"], "succeeded");
    app.wait_idle(Duration::from_secs(10)).await;
    // A delivery with no signature is counted too.
    let r = app
        .http
        .post(app.url("/hooks/github"))
        .header("x-github-event", "push")
        .header("x-github-delivery", "metrics-2")
        .body(push_body("acme/metricsweb", "refs/heads/main", &sha))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // An unsigned sender's made-up event names all share one label (bounded label set).
    for name in ["made_up_one", "made_up_two"] {
        let r = app
            .http
            .post(app.url("/hooks/github"))
            .header("x-github-event", name)
            .header("x-github-delivery", name)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
    }

    let r = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "no token needed");
    assert!(r
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = r.text().await.unwrap();
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("not Prometheus text ({e}):\n{text}"));
    let app_labels = [("app", "metricsweb"), ("environment", "production")];
    assert_eq!(
        sample(
            &scrape,
            "gantry_deployments_total",
            &[app_labels[0], app_labels[1], ("result", "succeeded")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&scrape, "gantry_deployment_duration_seconds", &app_labels),
        Some(1.0),
        "one observation: {text}"
    );
    assert_eq!(
        sample(
            &scrape,
            "gantry_webhook_deliveries_total",
            &[("event", "push"), ("outcome", "accepted")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &scrape,
            "gantry_webhook_deliveries_total",
            &[("event", "push"), ("outcome", "unauthorized")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &scrape,
            "gantry_webhook_deliveries_total",
            &[("event", "other"), ("outcome", "unauthorized")]
        ),
        Some(2.0),
        "{text}"
    );
    assert!(!text.contains("made_up"), "{text}");
    assert!(
        sample(
            &scrape,
            "gantry_step_duration_seconds",
            &[("step", "build"), ("result", "succeeded")]
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert_eq!(
        sample(&scrape, "gantry_drift", &app_labels),
        Some(0.0),
        "{text}"
    );
    assert_eq!(sample(&scrape, "gantry_leader", &[]), Some(1.0), "{text}");
    app.finish().await;
}
