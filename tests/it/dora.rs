//! DORA's figures over a scripted history through the daemon: good pushes, a failing build,
//! and the push that restores it; commit times come from the real commits the fetch reads.

use std::time::Duration;

use serde_json::Value;

use crate::support::{app_manifest, GitRepo, TestApp};

#[tokio::test]
async fn dora_counts_changes_failures_restores_and_lead_time() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    let m = app_manifest("doraweb", "acme/doraweb", &repo.path, "main", &["sh ok.sh"]);
    let app = TestApp::start(&[("doraweb.yaml", m)]).await;
    let mut states = Vec::new();
    for (i, script) in ["exit 0", "exit 0", "exit 3", "exit 0"].iter().enumerate() {
        let body = format!("{script} # change {i}\n");
        let sha = repo.commit(&[("ok.sh", &body)], &format!("change {i}"));
        let d = app
            .push_and_wait(&format!("dora-{i}"), "acme/doraweb", &sha)
            .await;
        states.push(d["state"].as_str().unwrap().to_owned());
    }
    assert_eq!(states, ["succeeded", "succeeded", "failed", "succeeded"]);
    app.wait_idle(Duration::from_secs(10)).await;
    let dora = app.api("/api/v1/dora?days=7").await;
    let f: &Value = dora["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["app"] == "doraweb")
        .unwrap_or_else(|| panic!("{dora:#}"));
    assert_eq!(f["environment"], "production", "{f:#}");
    assert_eq!(f["deployments"], 3, "{f:#}");
    assert_eq!(f["failures"], 1, "{f:#}");
    assert_eq!(f["change_failure_rate"], 0.25, "{f:#}");
    assert_eq!(f["unrestored"], 0, "{f:#}");
    assert!(f["time_to_restore_seconds"].as_i64().unwrap() >= 0, "{f:#}");
    // Commits made just now: lead time is seconds, and known.
    let lead = f["lead_time_seconds"]
        .as_i64()
        .expect("lead time from commit times");
    assert!((0..600).contains(&lead), "{f:#}");
    let (status, _) = {
        let r = app
            .http
            .get(app.url("/api/v1/dora?days=0"))
            .bearer_auth(crate::support::TOKEN)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), ())
    };
    assert_eq!(status, 400);
    app.finish().await;
}
