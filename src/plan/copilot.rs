//! `gantry import copilot`: an AWS Copilot service manifest (`copilot/NAME/manifest.yml`) as a
//! Gantry App manifest built from charts. Copilot kept the infrastructure (cluster, subnets,
//! load balancer) to itself; what it does not say comes from the importer's options, and what
//! Gantry cannot say yet is refused or listed as a note, never silently dropped.
//!
//! | Copilot type | Gantry |
//! | --- | --- |
//! | Load Balanced Web Service | an image + chart `web-service` |
//! | Backend Service | an image + chart `backend-service` |
//! | Worker Service | an image + chart `worker` (the SNS/SQS subscriptions are a note) |
//! | Static Site | chart `static-site` |
//! | Scheduled Job | an image + chart `scheduled-task` (`on.schedule` as an EventBridge expression) |
//!
//! `network.connect` becomes the chart's `serviceConnect` in the namespace given with
//! `--namespace` (a Backend Service offers its port, a web service joins as a client).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

/// What the Copilot manifest does not say.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `owner/name` of the repository whose pushes deploy the app.
    pub repo: String,
    pub branch: String,
    pub cluster: String,
    pub region: String,
    /// The AWS account (for SSM parameter ARNs).
    pub account: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub execution_role: String,
    /// The ALB target group of a Load Balanced Web Service.
    pub target_group: Option<String>,
    /// ECR registry host the image goes to (`ACCOUNT.dkr.ecr.REGION.amazonaws.com`).
    pub registry: String,
    /// The bucket of a Static Site.
    pub bucket: Option<String>,
    /// Apply this Copilot environment's overrides (`environments.NAME`).
    pub environment: Option<String>,
    /// The role EventBridge assumes to run a Scheduled Job's task.
    pub events_role: Option<String>,
    /// The Cloud Map namespace ARN for services with `network.connect` (Copilot used its
    /// environment's namespace).
    pub namespace: Option<String>,
}

/// The converted manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub name: String,
    /// The App manifest, as YAML.
    pub manifest: String,
    /// What could not be carried over, or needs checking.
    pub notes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Copilot {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    image: Option<Value>,
    #[serde(default)]
    cpu: Option<u64>,
    #[serde(default)]
    memory: Option<u64>,
    #[serde(default)]
    count: Option<Value>,
    #[serde(default)]
    exec: Option<bool>,
    #[serde(default)]
    command: Option<Value>,
    #[serde(default)]
    variables: BTreeMap<String, Value>,
    #[serde(default)]
    secrets: BTreeMap<String, Value>,
    #[serde(default)]
    http: Option<Value>,
    #[serde(default)]
    network: Option<Value>,
    #[serde(default)]
    subscribe: Option<Value>,
    #[serde(default)]
    files: Vec<Value>,
    #[serde(default)]
    environments: BTreeMap<String, Value>,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

/// Converts one Copilot manifest.
pub fn convert(text: &str, o: &Options) -> Result<Imported, String> {
    let mut raw: Value =
        serde_yaml::from_str(text).map_err(|e| format!("not a Copilot manifest: {e}"))?;
    let mut notes = Vec::new();
    if let Some(env) = &o.environment {
        let overrides = raw
            .get("environments")
            .and_then(|e| e.get(env))
            .cloned()
            .ok_or_else(|| format!("the manifest has no environment `{env}`"))?;
        merge(&mut raw, &overrides);
    }
    let c: Copilot =
        serde_json::from_value(raw).map_err(|e| format!("not a Copilot manifest: {e}"))?;
    if o.environment.is_none() && !c.environments.is_empty() {
        notes.push(format!(
            "environment overrides ({}) were not applied: import each with --environment NAME",
            c.environments
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for key in c.rest.keys() {
        if key == "on" && c.kind == "Scheduled Job" {
            continue;
        }
        notes.push(format!("`{key}` has no Gantry equivalent and was left out"));
    }
    let name = c.name.clone();
    // The name becomes the app's and the output file's (`NAME.yaml`): never a path.
    if !crate::domain::is_dns_label(&name) {
        return Err(format!(
            "`{name}` is not a valid app name (lower-case letters, digits and `-`, at most 63 characters)"
        ));
    }
    let chart = match c.kind.as_str() {
        "Load Balanced Web Service" => "web-service",
        "Backend Service" => "backend-service",
        "Worker Service" => "worker",
        "Static Site" => "static-site",
        "Scheduled Job" => "scheduled-task",
        other => return Err(format!("`{name}`: unknown Copilot service type `{other}`")),
    };
    let mut spec = Map::new();
    spec.insert(
        "source".into(),
        json!({"repo": o.repo, "branch": if o.branch.is_empty() { "main" } else { o.branch.as_str() }}),
    );
    let values = if chart == "static-site" {
        static_site(&c, o, &mut notes)?
    } else {
        let (image, port) = image(&c, o, &mut notes)?;
        spec.insert("images".into(), json!([image]));
        let mut v = service(&c, chart, port, o, &mut notes)?;
        if chart == "scheduled-task" {
            let on = c
                .rest
                .get("on")
                .and_then(|on| on.get("schedule"))
                .and_then(Value::as_str)
                .ok_or_else(|| format!("`{name}`: a Scheduled Job needs `on.schedule`"))?;
            v["schedule"] = json!(schedule(on).map_err(|e| format!("`{name}`: {e}"))?);
            v["roleArn"] = match &o.events_role {
                Some(role) => json!(role),
                None => {
                    notes.push("Copilot owned the role EventBridge runs the task with: set `roleArn` (--events-role)".into());
                    json!(format!(
                        "arn:aws:iam::{}:role/CHANGE-ME-events-run-task",
                        o.account
                    ))
                }
            };
        }
        v
    };
    spec.insert("charts".into(), json!([{"chart": chart, "values": values}]));
    let doc = json!({
        "apiVersion": crate::domain::API_VERSION,
        "kind": crate::domain::KIND_APP,
        "metadata": {"name": name},
        "spec": spec,
    });
    let body = serde_yaml::to_string(&doc).map_err(|e| e.to_string())?;
    let mut manifest = format!(
        "# Imported from the AWS Copilot manifest of `{name}` ({}) by `gantry import copilot`.\n",
        c.kind
    );
    for n in &notes {
        manifest.push_str(&format!("# note: {n}\n"));
    }
    manifest.push_str(&body);
    Ok(Imported {
        name,
        manifest,
        notes,
    })
}

/// Copilot's environment overrides: mappings merged key by key.
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

fn image(
    c: &Copilot,
    o: &Options,
    notes: &mut Vec<String>,
) -> Result<(Value, Option<u64>), String> {
    let img = c
        .image
        .as_ref()
        .ok_or_else(|| format!("`{}` has no `image`", c.name))?;
    let port = img.get("port").and_then(Value::as_u64);
    let mut out = json!({"name": c.name, "repository": format!("{}/{}", o.registry, c.name)});
    match img.get("build") {
        Some(Value::String(dockerfile)) => {
            let (context, file) = match dockerfile.rsplit_once('/') {
                Some((dir, _)) => (dir.to_owned(), dockerfile.clone()),
                None => (".".to_owned(), dockerfile.clone()),
            };
            out["context"] = json!(context);
            out["dockerfile"] = json!(file);
        }
        Some(Value::Object(b)) => {
            out["context"] = json!(b.get("context").and_then(Value::as_str).unwrap_or("."));
            if let Some(d) = b.get("dockerfile").and_then(Value::as_str) {
                out["dockerfile"] = json!(d);
            }
            if let Some(args) = b.get("args") {
                out["buildArgs"] = args.clone();
            }
        }
        _ => match img.get("location").and_then(Value::as_str) {
            Some(location) => {
                return Err(format!(
                    "`{}` runs the prebuilt image `{location}`: Gantry deploys images it builds from the repository",
                    c.name
                ))
            }
            None => return Err(format!("`{}`: `image` has neither `build` nor `location`", c.name)),
        },
    }
    if c.exec == Some(true) {
        notes.push("`exec: true` (ECS Exec) is not set by the charts: add `enableExecuteCommand: true` after rendering if you need it".into());
    }
    Ok((out, port))
}

fn service(
    c: &Copilot,
    chart: &str,
    port: Option<u64>,
    o: &Options,
    notes: &mut Vec<String>,
) -> Result<Value, String> {
    let mut v = json!({
        "name": c.name,
        "cluster": o.cluster,
        "image": c.name,
        "subnets": o.subnets,
        "securityGroups": o.security_groups,
        "region": o.region,
        "executionRoleArn": o.execution_role,
    });
    if let Some(cpu) = c.cpu {
        v["cpu"] = json!(cpu);
    }
    if let Some(memory) = c.memory {
        v["memory"] = json!(memory);
    }
    match &c.count {
        _ if chart == "scheduled-task" => {}
        Some(Value::Number(n)) => v["desiredCount"] = json!(n),
        Some(Value::Object(range)) => {
            let min = range
                .get("range")
                .and_then(|r| r.as_str())
                .and_then(|r| r.split('-').next())
                .and_then(|m| m.trim().parse::<u64>().ok());
            v["desiredCount"] = json!(min.unwrap_or(1));
            notes.push("`count` autoscales in Copilot: Gantry sends the range's low end; mark the service `autoscaled` and keep the scaling policy".into());
        }
        _ => {}
    }
    if let Some(cmd) = &c.command {
        v["command"] = match cmd {
            Value::String(s) => json!(s.split_whitespace().collect::<Vec<_>>()),
            other => other.clone(),
        };
    }
    if !matches!(chart, "worker" | "scheduled-task") {
        v["port"] = json!(port.unwrap_or(8080));
    } else if port.is_some() {
        notes.push(format!("`image.port` is not used by a {}", c.kind));
    }
    if !c.variables.is_empty() {
        let env: Map<String, Value> = c
            .variables
            .iter()
            .map(|(k, val)| (k.clone(), json!(scalar(val))))
            .collect();
        v["env"] = Value::Object(env);
    }
    if !c.secrets.is_empty() {
        let mut secrets = Map::new();
        for (k, val) in &c.secrets {
            secrets.insert(k.clone(), json!(secret_arn(k, val, o, notes)?));
        }
        v["secrets"] = Value::Object(secrets);
    }
    if chart == "web-service" {
        match &o.target_group {
            Some(tg) => v["targetGroupArn"] = json!(tg),
            None => {
                v["targetGroupArn"] = json!(format!(
                    "arn:aws:elasticloadbalancing:{}:{}:targetgroup/{}/CHANGE-ME",
                    o.region, o.account, c.name
                ));
                notes.push("Copilot owned the load balancer: set `targetGroupArn` to the service's target group (--target-group)".into());
            }
        }
        if let Some(path) = c
            .http
            .as_ref()
            .and_then(|h| h.get("path"))
            .and_then(Value::as_str)
        {
            notes.push(format!(
                "the ALB listener rule for path `{path}` stays as it is: Gantry registers tasks with the target group, it does not manage listener rules"
            ));
        }
    }
    let connect = c.network.as_ref().and_then(|n| n.get("connect"));
    if connect.is_some_and(|v| v != &Value::Bool(false)) {
        match (&o.namespace, chart) {
            (None, _) => notes.push(
                "Service Connect (`network.connect`): give the namespace's ARN with --namespace"
                    .into(),
            ),
            (Some(_), "worker") => notes.push(
                "the worker chart does not join Service Connect: add `serviceConnect.namespace` to the rendered service if it calls others".into(),
            ),
            (Some(ns), _) => {
                let mut sc = json!({"namespace": ns});
                if chart == "backend-service" {
                    if let Some(alias) = connect
                        .and_then(|v| v.get("alias"))
                        .and_then(Value::as_str)
                    {
                        sc["dnsName"] = json!(alias);
                    }
                }
                v["serviceConnect"] = sc;
            }
        }
    }
    if c.subscribe.is_some() {
        notes.push("the worker's SNS/SQS subscriptions (`subscribe`) stay as they are: Gantry does not manage queues".into());
    }
    Ok(v)
}

/// A Copilot schedule (`@daily`, `@every 2h30m`, a five-field cron in UTC) as an EventBridge
/// schedule expression.
fn schedule(s: &str) -> Result<String, String> {
    let s = s.trim();
    let fixed = match s {
        "@yearly" | "@annually" => Some("cron(0 0 1 1 ? *)"),
        "@monthly" => Some("cron(0 0 1 * ? *)"),
        "@weekly" => Some("cron(0 0 ? * SUN *)"),
        "@daily" | "@midnight" => Some("cron(0 0 * * ? *)"),
        "@hourly" => Some("cron(0 * * * ? *)"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Ok(f.to_owned());
    }
    if let Some(every) = s.strip_prefix("@every ") {
        let d =
            humantime::parse_duration(every.trim()).map_err(|e| format!("schedule `{s}`: {e}"))?;
        let minutes = d.as_secs() / 60;
        if minutes == 0 || d.as_secs() % 60 != 0 {
            return Err(format!(
                "schedule `{s}`: EventBridge runs at most once a minute, in whole minutes"
            ));
        }
        let (n, unit) = if minutes % 1440 == 0 {
            (minutes / 1440, "day")
        } else if minutes % 60 == 0 {
            (minutes / 60, "hour")
        } else {
            (minutes, "minute")
        };
        return Ok(format!("rate({n} {unit}{})", if n == 1 { "" } else { "s" }));
    }
    let f: Vec<&str> = s.split_whitespace().collect();
    if f.len() != 5 {
        return Err(format!(
            "schedule `{s}`: not a Copilot schedule (@daily, @every 1h, or a five-field cron)"
        ));
    }
    // EventBridge: one of day-of-month and day-of-week is `?`; days of the week are 1-7
    // (SUN-SAT) where cron has 0-6.
    let dow = |d: &str| -> String {
        d.split(',')
            .map(|part| {
                part.split('-')
                    .map(|x| match x.parse::<u8>() {
                        Ok(n) if n <= 7 => ((n % 7) + 1).to_string(),
                        _ => x.to_owned(),
                    })
                    .collect::<Vec<_>>()
                    .join("-")
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    let expr = match (f[2], f[4]) {
        (_, "*") => format!("cron({} {} {} {} ? *)", f[0], f[1], f[2], f[3]),
        ("*", d) => format!("cron({} {} ? {} {} *)", f[0], f[1], f[3], dow(d)),
        _ => {
            return Err(format!(
                "schedule `{s}`: EventBridge cannot run on both a day of the month and a day of the week"
            ))
        }
    };
    super::jobs::check_schedule(&expr).map_err(|e| format!("schedule `{s}` -> `{expr}`: {e}"))?;
    Ok(expr)
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Copilot secrets: an SSM parameter name, an ARN, or `{secretsmanager: NAME}`.
fn secret_arn(
    key: &str,
    v: &Value,
    o: &Options,
    notes: &mut Vec<String>,
) -> Result<String, String> {
    match v {
        Value::String(s) if s.starts_with("arn:") => Ok(s.clone()),
        Value::String(s) => {
            let name = if s.starts_with('/') {
                s.clone()
            } else {
                format!("/{s}")
            };
            Ok(format!(
                "arn:aws:ssm:{}:{}:parameter{name}",
                o.region, o.account
            ))
        }
        Value::Object(m) => match m.get("secretsmanager").and_then(Value::as_str) {
            Some(s) if s.starts_with("arn:") => Ok(s.to_owned()),
            Some(s) => {
                notes.push(format!(
                    "secret `{key}`: check the Secrets Manager ARN (the real one ends in a 6-character suffix)"
                ));
                Ok(format!(
                    "arn:aws:secretsmanager:{}:{}:secret:{s}",
                    o.region, o.account
                ))
            }
            None => Err(format!(
                "secret `{key}`: only SSM parameters and `secretsmanager` are supported"
            )),
        },
        _ => Err(format!(
            "secret `{key}` is not a name, an ARN or `{{secretsmanager: NAME}}`"
        )),
    }
}

fn static_site(c: &Copilot, o: &Options, notes: &mut Vec<String>) -> Result<Value, String> {
    let first = c
        .files
        .first()
        .ok_or_else(|| format!("`{}` lists no `files`", c.name))?;
    let dir = first
        .get("source")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("`{}`: `files[0].source` is missing", c.name))?;
    if c.files.len() > 1 {
        notes.push("only the first `files` entry became the site's directory".into());
    }
    if first.get("destination").is_some() {
        notes.push(
            "`files[0].destination`: use the site's `prefix` if the files went under a path".into(),
        );
    }
    let bucket = match &o.bucket {
        Some(b) => b.clone(),
        None => {
            notes.push("Copilot owned the bucket: set `bucket` (--bucket)".into());
            format!("change-me-{}", c.name.to_ascii_lowercase())
        }
    };
    Ok(json!({"name": c.name.to_ascii_lowercase(), "dir": dir, "bucket": bucket}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Options {
        Options {
            repo: "acme/shop".into(),
            branch: "main".into(),
            cluster: "shop".into(),
            region: "us-east-1".into(),
            account: "123456789012".into(),
            subnets: vec!["subnet-0a".into()],
            security_groups: vec!["sg-0a".into()],
            execution_role: "arn:aws:iam::123456789012:role/exec".into(),
            target_group: None,
            registry: "123456789012.dkr.ecr.us-east-1.amazonaws.com".into(),
            bucket: None,
            environment: None,
            namespace: None,
            events_role: None,
        }
    }

    #[test]
    fn a_load_balanced_web_service_becomes_the_web_service_chart() {
        let m = "name: frontend\ntype: Load Balanced Web Service\nhttp:\n  path: '/'\nimage:\n  build: frontend/Dockerfile\n  port: 80\ncpu: 512\nmemory: 1024\ncount: 2\nvariables:\n  LOG_LEVEL: info\nsecrets:\n  DB_URL: /copilot/shop/prod/secrets/db\n  TOKEN:\n    secretsmanager: shop/token\nenvironments:\n  prod:\n    count: 4\n";
        let out = convert(m, &opts()).unwrap();
        assert_eq!(out.name, "frontend");
        let doc: Value = serde_yaml::from_str(&out.manifest).unwrap();
        let v = &doc["spec"]["charts"][0]["values"];
        assert_eq!(doc["spec"]["charts"][0]["chart"], "web-service");
        assert_eq!(v["port"], 80);
        assert_eq!(v["desiredCount"], 2);
        assert_eq!(
            v["secrets"]["DB_URL"],
            "arn:aws:ssm:us-east-1:123456789012:parameter/copilot/shop/prod/secrets/db"
        );
        assert_eq!(doc["spec"]["images"][0]["context"], "frontend");
        assert!(
            out.notes.iter().any(|n| n.contains("targetGroupArn")),
            "{:?}",
            out.notes
        );
        assert!(
            out.notes.iter().any(|n| n.contains("prod")),
            "{:?}",
            out.notes
        );
        // An environment's overrides, when asked for.
        let out = convert(
            m,
            &Options {
                environment: Some("prod".into()),
                ..opts()
            },
        )
        .unwrap();
        let doc: Value = serde_yaml::from_str(&out.manifest).unwrap();
        assert_eq!(doc["spec"]["charts"][0]["values"]["desiredCount"], 4);
    }

    #[test]
    fn other_types_map_to_their_charts_and_unknown_ones_are_refused() {
        let worker = "name: mailer\ntype: Worker Service\nimage:\n  build: Dockerfile\nsubscribe:\n  topics: [{name: orders, service: api}]\n";
        let out = convert(worker, &opts()).unwrap();
        assert!(out.manifest.contains("chart: worker"), "{}", out.manifest);
        assert!(out.notes.iter().any(|n| n.contains("subscribe")));
        let site = "name: web\ntype: Static Site\nfiles:\n  - source: dist\n    recursive: true\n";
        let out = convert(
            site,
            &Options {
                bucket: Some("acme-web".into()),
                ..opts()
            },
        )
        .unwrap();
        assert!(
            out.manifest.contains("chart: static-site"),
            "{}",
            out.manifest
        );
        let job = "name: nightly\ntype: Scheduled Job\non:\n  schedule: '@daily'\nimage:\n  build: Dockerfile\ncommand: python nightly.py\n";
        let out = convert(
            job,
            &Options {
                events_role: Some("arn:aws:iam::123456789012:role/run".into()),
                ..opts()
            },
        )
        .unwrap();
        let doc: Value = serde_yaml::from_str(&out.manifest).unwrap();
        let v = &doc["spec"]["charts"][0]["values"];
        assert_eq!(doc["spec"]["charts"][0]["chart"], "scheduled-task");
        assert_eq!(v["schedule"], "cron(0 0 * * ? *)");
        assert_eq!(v["roleArn"], "arn:aws:iam::123456789012:role/run");
        assert!(v.get("port").is_none());
        assert!(out.notes.is_empty(), "{:?}", out.notes);
        assert!(convert("name: x\ntype: Request-Driven Web Service\n", &opts()).is_err());
        // A name is never a path.
        let escape =
            "name: ../../etc/cron.d/x\ntype: Backend Service\nimage:\n  build: Dockerfile\n";
        assert!(convert(escape, &opts())
            .unwrap_err()
            .contains("not a valid app name"));
    }

    #[test]
    fn copilot_schedules_become_eventbridge_expressions() {
        for (copilot, eventbridge) in [
            ("@hourly", "cron(0 * * * ? *)"),
            ("@every 30m", "rate(30 minutes)"),
            ("@every 1h", "rate(1 hour)"),
            ("@every 48h", "rate(2 days)"),
            ("0 3 * * *", "cron(0 3 * * ? *)"),
            ("30 9 * * 1-5", "cron(30 9 ? * 2-6 *)"),
            ("0 0 1 * *", "cron(0 0 1 * ? *)"),
        ] {
            assert_eq!(schedule(copilot).as_deref(), Ok(eventbridge), "{copilot}");
        }
        for bad in ["@every 30s", "0 0 1 * 1", "every day", "@every soon"] {
            assert!(schedule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn service_connect_joins_the_namespace_given() {
        let backend = "name: orders\ntype: Backend Service\nimage:\n  build: Dockerfile\n  port: 8080\nnetwork:\n  connect:\n    alias: orders.shop\n";
        let out = convert(backend, &opts()).unwrap();
        assert!(
            out.notes.iter().any(|n| n.contains("--namespace")),
            "{:?}",
            out.notes
        );
        let ns = "arn:aws:servicediscovery:us-east-1:123456789012:namespace/ns-shop";
        let out = convert(
            backend,
            &Options {
                namespace: Some(ns.into()),
                ..opts()
            },
        )
        .unwrap();
        let doc: Value = serde_yaml::from_str(&out.manifest).unwrap();
        let sc = &doc["spec"]["charts"][0]["values"]["serviceConnect"];
        assert_eq!(sc["namespace"], ns);
        assert_eq!(sc["dnsName"], "orders.shop");
        assert!(
            !out.notes.iter().any(|n| n.contains("connect")),
            "{:?}",
            out.notes
        );
    }
}
