//! Commands that talk to a running daemon through its JSON API.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

use super::ServerArgs;
use crate::adapters::api_client::ApiClient;
use crate::secret::Secret;

/// The daemon's API, with `anyhow` errors for the commands below.
struct Client(ApiClient);

impl Client {
    fn new(args: &ServerArgs) -> Self {
        Self(ApiClient::new(
            &args.server,
            args.token.clone().map(Secret::new),
        ))
    }

    /// POSTs a request that queues a deployment; returns its id and the whole answer.
    async fn queue(&self, path: &str, body: &Value) -> anyhow::Result<(i64, Value)> {
        let out = self.post(path, body).await?;
        let id = out["id"]
            .as_i64()
            .context("the daemon did not return a deployment id")?;
        Ok((id, out))
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        Ok(self.0.post(path, body).await?)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self.0.get(path).await?)
    }
}

pub async fn deploy(
    args: &ServerArgs,
    app: &str,
    git_ref: Option<String>,
    sha: Option<String>,
    wait: bool,
) -> anyhow::Result<ExitCode> {
    let c = Client::new(args);
    let body = json!({ "ref": git_ref, "sha": sha, "actor": actor() });
    let (id, out) = c
        .queue(&format!("/api/v1/apps/{app}/deploy"), &body)
        .await?;
    println!(
        "queued deployment #{id} of {app} ({})",
        out["ref"].as_str().unwrap_or("")
    );
    if wait {
        return show(args, id, true, false).await;
    }
    Ok(ExitCode::SUCCESS)
}

fn actor() -> String {
    std::env::var("USER")
        .map(|u| format!("cli:{u}"))
        .unwrap_or_else(|_| "cli".into())
}

/// The image references the daemon recorded for `app` at commit `sha`.
pub async fn release_images(
    args: &ServerArgs,
    app: &str,
    sha: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let c = Client::new(args);
    let list = c
        .get(&format!("/api/v1/releases?app={app}&limit=500"))
        .await?;
    let release = list
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["sha"].as_str().is_some_and(|s| s.starts_with(sha)))
        .with_context(|| format!("no release of {app} at {sha} is recorded"))?;
    Ok(serde_json::from_value(release["images"].clone()).unwrap_or_default())
}

pub async fn rollback(
    args: &ServerArgs,
    app: &str,
    to: Option<i64>,
    env: Option<&str>,
    wait: bool,
) -> anyhow::Result<ExitCode> {
    let c = Client::new(args);
    let body = json!({ "to": to, "env": env, "actor": actor() });
    let (id, out) = c
        .queue(&format!("/api/v1/apps/{app}/rollback"), &body)
        .await?;
    let app = out["app"].as_str().unwrap_or(app);
    println!(
        "queued rollback deployment #{id} of {app}, restoring deployment #{}",
        out["restores"]
    );
    println!(
        "{app} is held: {} (`gantry hold release {app}` releases it)",
        out["held"].as_str().unwrap_or("")
    );
    if wait {
        return show(args, id, true, false).await;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn promote(
    args: &ServerArgs,
    app: &str,
    from: &str,
    to: &str,
    release: Option<i64>,
    wait: bool,
) -> anyhow::Result<ExitCode> {
    let c = Client::new(args);
    let body = json!({ "from": from, "to": to, "release": release, "actor": actor() });
    let (id, out) = c
        .queue(&format!("/api/v1/apps/{app}/promote"), &body)
        .await?;
    println!(
        "queued promotion #{id} of {app} to {to}: the release of {} deployment #{} ({})",
        out["from"].as_str().unwrap_or(from),
        out["release"],
        short(out["sha"].as_str().unwrap_or("")),
    );
    if let Some(held) = out["held"].as_str() {
        println!("{to} is held: {held}");
    }
    if wait {
        return show(args, id, true, false).await;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn release_hold(
    args: &ServerArgs,
    app: &str,
    env: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let c = Client::new(args);
    let out = c
        .post(
            &format!("/api/v1/apps/{app}/hold/release"),
            &json!({ "env": env, "actor": actor() }),
        )
        .await?;
    let app = out["app"].as_str().unwrap_or(app);
    if out["released"].as_bool() == Some(true) {
        println!("{app}: hold released; automatic deploys resume");
    } else {
        println!("{app} was not held");
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether the daemon at `server` answers `/healthz` within 5 s.
pub async fn health(server: &str) -> ExitCode {
    let c = crate::adapters::api_client::ApiClient::new(server, None);
    match tokio::time::timeout(std::time::Duration::from_secs(5), c.get("/healthz")).await {
        Ok(Ok(v)) if v["status"] == "ok" => ExitCode::SUCCESS,
        Ok(Ok(v)) => {
            eprintln!("{server}/healthz answered {v}");
            ExitCode::from(1)
        }
        Ok(Err(e)) => {
            eprintln!("{server}/healthz: {e}");
            ExitCode::from(1)
        }
        Err(_) => {
            eprintln!("{server}/healthz did not answer within 5 s");
            ExitCode::from(1)
        }
    }
}

/// Starts APP's deployment waiting for its window now.
pub async fn override_window(
    args: &ServerArgs,
    app: &str,
    env: Option<&str>,
    deployment: Option<i64>,
) -> anyhow::Result<ExitCode> {
    let c = Client::new(args);
    let out = c
        .post(
            &format!("/api/v1/apps/{app}/window/override"),
            &json!({ "env": env, "actor": actor(), "deployment": deployment }),
        )
        .await?;
    println!(
        "{}: deployment #{} starts now, outside its deploy windows (audited)",
        out["app"].as_str().unwrap_or(app),
        out["started"]
    );
    Ok(ExitCode::SUCCESS)
}

/// Approves or rejects APP's deployment awaiting approval.
pub async fn judge(
    args: &ServerArgs,
    app: &str,
    env: Option<&str>,
    deployment: Option<i64>,
    approve: bool,
) -> anyhow::Result<ExitCode> {
    let c = Client::new(args);
    let verb = if approve { "approve" } else { "reject" };
    let out = c
        .post(
            &format!("/api/v1/apps/{app}/{verb}"),
            &json!({ "env": env, "actor": actor(), "deployment": deployment }),
        )
        .await?;
    let app = out["app"].as_str().unwrap_or(app);
    let id = &out["deployment"];
    match (approve, out["recorded"].as_bool(), out["counted"].as_bool()) {
        (_, Some(false), _) => println!("{app}: you had already given your verdict on #{id}"),
        (false, _, _) => println!("{app}: deployment #{id} rejected; it will not start"),
        (true, _, Some(false)) => println!(
            "{app}: approval of #{id} recorded, but it does not count: it is your own change"
        ),
        (true, _, _) => println!("{app}: deployment #{id} approved"),
    }
    Ok(ExitCode::SUCCESS)
}

/// DORA's four keys per app and environment.
pub async fn dora(
    args: &ServerArgs,
    app: Option<&str>,
    as_json: bool,
    days: u32,
) -> anyhow::Result<ExitCode> {
    let c = Client::new(args);
    let mut path = format!("/api/v1/dora?days={days}");
    if let Some(a) = app {
        path.push_str(&format!("&app={a}"));
    }
    let out = c.get(&path).await?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    let hours = |v: &Value| {
        v.as_i64()
            .map(|s| format!("{:.1}h", s as f64 / 3600.0))
            .unwrap_or_else(|| "-".into())
    };
    println!("DORA over the last {days} days");
    println!(
        "{:<24} {:<12} {:>8} {:>9} {:>10} {:>8} {:>10}",
        "APP", "ENV", "DEPLOYS", "PER DAY", "LEAD TIME", "FAILURE", "RESTORE"
    );
    for a in out["apps"].as_array().into_iter().flatten() {
        println!(
            "{:<24} {:<12} {:>8} {:>9.2} {:>10} {:>8} {:>10}",
            a["app"].as_str().unwrap_or(""),
            a["environment"].as_str().unwrap_or(""),
            a["deployments"],
            a["deployments_per_day"].as_f64().unwrap_or(0.0),
            hours(&a["lead_time_seconds"]),
            a["change_failure_rate"]
                .as_f64()
                .map(|r| format!("{:.0}%", r * 100.0))
                .unwrap_or_else(|| "-".into()),
            hours(&a["time_to_restore_seconds"]),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Checks APP's drift now; exit 1 when the live state differs from the release.
pub async fn drift(args: &ServerArgs, app: &str, env: Option<&str>) -> anyhow::Result<ExitCode> {
    let c = Client::new(args);
    let out = c
        .post(&format!("/api/v1/apps/{app}/drift"), &json!({ "env": env }))
        .await?;
    let app = out["app"].as_str().unwrap_or(app);
    if out["change"].is_null() {
        println!(
            "{app}: not compared: {}",
            out["note"].as_str().unwrap_or("?")
        );
        return Ok(ExitCode::SUCCESS);
    }
    let Some(diff) = out["drift"]["diff"].as_str() else {
        println!("{app}: no drift: the live state matches the last release");
        return Ok(ExitCode::SUCCESS);
    };
    println!(
        "{app}: drifted from deployment #{} since {}",
        out["drift"]["release"],
        out["drift"]["since"].as_str().unwrap_or("?")
    );
    print!("{diff}");
    match (out["healed_by"].as_i64(), out["note"].as_str()) {
        (Some(id), _) => println!("self-heal: deployment #{id} redeploys the release"),
        (None, Some(note)) => println!("not healed: {note}"),
        (None, None) => {}
    }
    Ok(ExitCode::from(1))
}

pub async fn resume(args: &ServerArgs, app: &str) -> anyhow::Result<ExitCode> {
    let c = Client::new(args);
    let out = c
        .post(
            &format!("/api/v1/apps/{app}/resume"),
            &json!({ "actor": actor() }),
        )
        .await?;
    if out["resumed"].as_bool() == Some(true) {
        println!("{app}: automatic deploys resumed");
    } else {
        println!("{app} was not paused");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn status(
    args: &ServerArgs,
    app: Option<&str>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let c = Client::new(args);
    let apps = c.get("/api/v1/apps").await?;
    let list: Vec<&Value> = apps
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|x| app.is_none_or(|n| x["name"] == n || x["app"] == n))
                .collect()
        })
        .unwrap_or_default();
    if let Some(name) = app {
        if list.is_empty() {
            bail!("no app named `{name}`");
        }
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<24} {:<12} {:<10} {:<8} {:<12} FINISHED",
        "APP", "ENV", "STATE", "SHA", "ID"
    );
    for a in list {
        let d = &a["last_deployment"];
        println!(
            "{:<24} {:<12} {:<10} {:<8} {:<12} {}",
            a["name"].as_str().unwrap_or(""),
            a["environment"].as_str().unwrap_or(""),
            d["state"].as_str().unwrap_or("-"),
            short(d["sha"].as_str().unwrap_or("-")),
            d["id"]
                .as_i64()
                .map(|i| format!("#{i}"))
                .unwrap_or_else(|| "-".into()),
            d["finished_at"].as_str().unwrap_or("-"),
        );
        if matches!(d["state"].as_str(), Some("waiting" | "awaiting_approval")) {
            println!("{:<24} WAITS: {}", "", d["reason"].as_str().unwrap_or(""));
        }
        if let Some(r) = a["release"].as_object() {
            let images: Vec<String> = r
                .get("images")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(name, reference)| {
                    let digest = reference.as_str().unwrap_or("").rsplit('@').next();
                    format!("{name}@{}", digest.unwrap_or("").get(..19).unwrap_or(""))
                })
                .collect();
            println!(
                "{:<24} RUNS: #{} at {}{}",
                "",
                r.get("deployment_id").and_then(Value::as_i64).unwrap_or(0),
                short(r.get("sha").and_then(Value::as_str).unwrap_or("-")),
                if images.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", images.join(", "))
                }
            );
        }
        if let Some(p) = a["promotion"].as_object() {
            println!(
                "{:<24} RECEIVES: promotions from {}",
                "",
                p.get("from").and_then(Value::as_str).unwrap_or("?")
            );
        }
        if let Some(reason) = a["paused"]["reason"].as_str() {
            let what = if a["paused"]["kind"] == "hold" {
                "HELD"
            } else {
                "PAUSED"
            };
            println!("{:<24} {what}: {reason}", "");
        }
        if let Some(diff) = a["drift"]["diff"].as_str() {
            let heal = if a["self_heal"] == true {
                "self-heal on"
            } else {
                "reported only"
            };
            println!(
                "{:<24} DRIFT since {} ({heal}):",
                "",
                a["drift"]["since"].as_str().unwrap_or("?")
            );
            for line in diff.lines().take(12) {
                println!("{:<26}{line}", "");
            }
        }
    }
    let failing = c.get("/api/v1/reports?failing=true").await?;
    let failing: Vec<&Value> = failing
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| app.is_none_or(|n| r["app"] == n))
        .collect();
    if !failing.is_empty() {
        println!();
        println!("WARNING: {} report(s) failing:", failing.len());
        for r in failing {
            let next = match r["nextAt"].as_str() {
                Some(t) => format!("next try {t}"),
                None => "retries used up; the next change of the deployment tries again".into(),
            };
            println!(
                "  {} of {} deployment #{}: {} failed attempt(s), {next}: {}",
                r["reporter"].as_str().unwrap_or("?"),
                r["app"].as_str().unwrap_or("?"),
                r["deploymentId"],
                r["attempts"],
                r["error"].as_str().unwrap_or(""),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn history(
    args: &ServerArgs,
    app: &str,
    as_json: bool,
    limit: usize,
) -> anyhow::Result<ExitCode> {
    let c = Client::new(args);
    let list = c
        .get(&format!("/api/v1/deployments?app={app}&limit={limit}"))
        .await?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<6} {:<11} {:<8} {:<22} {:<8} {:<16} CREATED",
        "ID", "STATE", "SHA", "REF", "TRIGGER", "ACTOR"
    );
    for d in list.as_array().into_iter().flatten() {
        println!(
            "#{:<5} {:<11} {:<8} {:<22} {:<8} {:<16} {}",
            d["id"].as_i64().unwrap_or(0),
            d["state"].as_str().unwrap_or(""),
            short(d["sha"].as_str().unwrap_or("-")),
            d["ref"].as_str().unwrap_or(""),
            d["trigger"].as_str().unwrap_or(""),
            d["actor"].as_str().unwrap_or(""),
            d["created_at"].as_str().unwrap_or(""),
        );
        if let Some(reason) = d["reason"].as_str() {
            println!("       {reason}");
        }
    }
    // Who asked for what (API, CLI, Discord), with the outcome: denied requests too.
    let audit = c
        .get(&format!("/api/v1/audit?target={app}&limit={limit}"))
        .await?;
    let audit = audit.as_array().cloned().unwrap_or_default();
    if !audit.is_empty() {
        println!(
            "\n{:<25} {:<34} {:<10} {:<20} DETAIL",
            "AT", "ACTOR", "ACTION", "OUTCOME"
        );
        for a in &audit {
            println!(
                "{:<25} {:<34} {:<10} {:<20} {}",
                a["at"].as_str().unwrap_or(""),
                a["actor"].as_str().unwrap_or(""),
                a["action"].as_str().unwrap_or(""),
                a["outcome"].as_str().unwrap_or(""),
                a["detail"].as_str().unwrap_or(""),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn show(
    args: &ServerArgs,
    id: i64,
    wait: bool,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let c = Client::new(args);
    let mut printed = std::collections::HashSet::new();
    loop {
        let d = c.get(&format!("/api/v1/deployments/{id}")).await?;
        let state = d["state"].as_str().unwrap_or("").to_owned();
        let done = matches!(state.as_str(), "succeeded" | "failed" | "superseded");
        if wait && !as_json {
            for s in d["steps"].as_array().into_iter().flatten() {
                let st = s["state"].as_str().unwrap_or("");
                let key = format!("{}:{st}", s["index"]);
                if matches!(st, "succeeded" | "failed") && printed.insert(key) {
                    print_step(s);
                }
            }
        }
        if done || !wait {
            if as_json {
                println!("{}", serde_json::to_string_pretty(&d)?);
            } else {
                if !wait {
                    for s in d["steps"].as_array().into_iter().flatten() {
                        print_step(s);
                    }
                }
                println!(
                    "deployment #{id} of {} at {}: {state}{}",
                    d["app"].as_str().unwrap_or(""),
                    short(d["sha"].as_str().unwrap_or("-")),
                    d["reason"]
                        .as_str()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                );
                let m = &d["manifests"];
                match (m["repo"].as_str(), m["sha"].as_str()) {
                    (Some(repo), Some(sha)) => println!("manifests: {repo}@{}", short(sha)),
                    _ => println!("manifests: local directory"),
                }
            }
            return Ok(if state == "failed" {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn print_step(s: &Value) {
    println!(
        "[{}] {:<15} {:<10} {}",
        s["index"].as_u64().unwrap_or(0),
        s["kind"].as_str().unwrap_or(""),
        s["state"].as_str().unwrap_or(""),
        s["outcome"].as_str().unwrap_or("")
    );
    if let Some(log) = s["log"].as_str().filter(|l| !l.is_empty()) {
        for line in log.lines() {
            println!("      | {line}");
        }
    }
}

fn short(sha: &str) -> &str {
    crate::domain::short_sha(sha)
}
