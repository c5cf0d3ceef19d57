//! Scheduled jobs: an ECS task run on a schedule by an EventBridge rule Gantry keeps, one
//! rule per job (`gantry-APP-JOB`, its description naming app and job so Gantry finds the
//! rules it owns), one target (`gantry`) running the release's task definition revision.
//! Pure: the desired rule from the manifest, and what differs from the live one.

use crate::domain::service::{Network, ScheduledTask};
use crate::domain::JobSpec;
use crate::plan::service_diff::Change;

/// The id of the one target on a job's rule.
pub const TARGET_ID: &str = "gantry";

/// EventBridge allows 64 characters: `[.\-_A-Za-z0-9]+`.
pub fn rule_name(app: &str, job: &str) -> String {
    format!("gantry-{app}-{job}")
}

/// The rule's description: marks it as Gantry's, for this app and job.
pub fn description(app: &str, job: &str) -> String {
    format!("Gantry scheduled job {job} of app {app}")
}

/// The (app, job) a rule's description names, when it is one of Gantry's.
pub fn owner(description: &str) -> Option<(&str, &str)> {
    let rest = description.strip_prefix("Gantry scheduled job ")?;
    let (job, app) = rest.split_once(" of app ")?;
    Some((app, job))
}

/// Whether `rule` is a valid rule name.
pub fn valid_rule_name(rule: &str) -> bool {
    !rule.is_empty()
        && rule.len() <= 64
        && rule
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// Checks an EventBridge schedule expression: `rate(N minute[s]|hour[s]|day[s])` (singular for
/// 1) or `cron(MIN HOUR DOM MONTH DOW YEAR)`, where one of day-of-month and day-of-week is `?`.
pub fn check_schedule(expr: &str) -> Result<(), String> {
    if let Some(inner) = expr.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
        let (n, unit) = inner
            .split_once(' ')
            .ok_or("a rate is `rate(N UNIT)`, e.g. `rate(1 hour)`")?;
        let n: u32 = n
            .parse()
            .map_err(|_| format!("`{n}` is not a positive whole number"))?;
        if n == 0 {
            return Err("a rate of 0 never runs".into());
        }
        let ok = match n {
            1 => matches!(unit, "minute" | "hour" | "day"),
            _ => matches!(unit, "minutes" | "hours" | "days"),
        };
        return if ok {
            Ok(())
        } else {
            Err(format!(
                "unit `{unit}`: use minute, hour or day for 1, minutes, hours or days otherwise"
            ))
        };
    }
    if let Some(inner) = expr.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) {
        let fields: Vec<&str> = inner.split_whitespace().collect();
        if fields.len() != 6 {
            return Err(format!(
                "a cron has six fields (minutes hours day-of-month month day-of-week year), not {}",
                fields.len()
            ));
        }
        let allowed = |f: &str| {
            f.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '*' | '?' | ',' | '-' | '/' | '#')
            })
        };
        if let Some(bad) = fields.iter().find(|f| !allowed(f)) {
            return Err(format!("`{bad}` is not a cron field"));
        }
        if (fields[2] == "?") == (fields[4] == "?") {
            return Err(
                "exactly one of day-of-month and day-of-week must be `?`, e.g. `cron(0 3 * * ? *)`"
                    .into(),
            );
        }
        return Ok(());
    }
    Err("a schedule is `rate(...)` or `cron(...)`".into())
}

/// The rule a job asks for, running `task_definition`; `first_container` is the container
/// a `command` overrides.
pub fn desired(job: &JobSpec, task_definition: &str, first_container: &str) -> ScheduledTask {
    let mut network = Network {
        subnets: job.network.subnets.clone(),
        security_groups: job.network.security_groups.clone(),
        assign_public_ip: job.network.assign_public_ip,
    };
    network.subnets.sort();
    network.security_groups.sort();
    ScheduledTask {
        schedule: job.schedule.clone(),
        enabled: job.enabled,
        cluster: job.cluster.clone(),
        task_definition: task_definition.to_owned(),
        role_arn: job.role_arn.clone(),
        network,
        platform_version: job
            .platform_version
            .clone()
            .unwrap_or_else(|| "LATEST".into()),
        command: job
            .command
            .as_ref()
            .map(|c| (first_container.to_owned(), c.clone())),
    }
}

/// The target's ECS cluster ARN: `cluster` when it is one, else built from the rule's ARN
/// (same partition, region and account).
pub fn cluster_arn(rule_arn: &str, cluster: &str) -> Option<String> {
    if cluster.starts_with("arn:") {
        return Some(cluster.to_owned());
    }
    let mut parts = rule_arn.split(':');
    let (_, partition, _, region, account) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    Some(format!(
        "arn:{partition}:ecs:{region}:{account}:cluster/{cluster}"
    ))
}

fn same_cluster(a: &str, b: &str) -> bool {
    let name = |c: &str| c.rsplit_once(":cluster/").map_or(c, |(_, n)| n).to_owned();
    a == b || (!(a.starts_with("arn:") && b.starts_with("arn:")) && name(a) == name(b))
}

/// The target's input: the container override, as EventBridge passes it to RunTask.
pub fn input(command: &Option<(String, Vec<String>)>) -> Option<String> {
    command.as_ref().map(|(container, cmd)| {
        serde_json::json!({"containerOverrides": [{"name": container, "command": cmd}]}).to_string()
    })
}

/// The container override of a target's input (`None` for none or another shape).
pub fn parse_input(input: &str) -> Option<(String, Vec<String>)> {
    let v: serde_json::Value = serde_json::from_str(input).ok()?;
    let o = v.get("containerOverrides")?.get(0)?;
    let name = o.get("name")?.as_str()?.to_owned();
    let cmd = o
        .get("command")?
        .as_array()?
        .iter()
        .map(|c| c.as_str().map(str::to_owned))
        .collect::<Option<Vec<_>>>()?;
    Some((name, cmd))
}

/// What differs between the desired rule and the live one (`None`: no rule yet).
pub fn plan(desired: &ScheduledTask, live: Option<&ScheduledTask>) -> Vec<Change> {
    let Some(live) = live else {
        return vec![Change {
            field: "rule",
            live: "none".into(),
            desired: format!("{} running {}", desired.schedule, desired.task_definition),
        }];
    };
    let mut live = live.clone();
    live.network.subnets.sort();
    live.network.security_groups.sort();
    let mut changes = Vec::new();
    let mut field = |field: &'static str, l: String, d: String| {
        if l != d {
            changes.push(Change {
                field,
                live: l,
                desired: d,
            });
        }
    };
    field(
        "scheduleExpression",
        live.schedule.clone(),
        desired.schedule.clone(),
    );
    let state = |on: bool| if on { "ENABLED" } else { "DISABLED" }.to_owned();
    field("state", state(live.enabled), state(desired.enabled));
    if !same_cluster(&live.cluster, &desired.cluster) {
        field("cluster", live.cluster.clone(), desired.cluster.clone());
    }
    field(
        "taskDefinitionArn",
        live.task_definition.clone(),
        desired.task_definition.clone(),
    );
    field("roleArn", live.role_arn.clone(), desired.role_arn.clone());
    let net = |n: &Network| {
        format!(
            "subnets [{}], security groups [{}], public IP {}",
            n.subnets.join(", "),
            n.security_groups.join(", "),
            if n.assign_public_ip { "on" } else { "off" }
        )
    };
    field(
        "networkConfiguration",
        net(&live.network),
        net(&desired.network),
    );
    field(
        "platformVersion",
        live.platform_version.clone(),
        desired.platform_version.clone(),
    );
    let cmd = |c: &Option<(String, Vec<String>)>| match c {
        None => "none".to_owned(),
        Some((container, cmd)) => format!("{container}: {}", cmd.join(" ")),
    };
    field("command", cmd(&live.command), cmd(&desired.command));
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(extra: &str) -> JobSpec {
        serde_yaml::from_str(&format!(
            "name: nightly\ncluster: c\ntaskDefinition: td.json\nschedule: cron(0 3 * * ? *)\nroleArn: arn:aws:iam::1:role/run\nnetwork:\n  subnets: [subnet-b, subnet-a]\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn schedules_are_checked_as_eventbridge_does() {
        for ok in [
            "rate(1 hour)",
            "rate(5 minutes)",
            "cron(0 3 * * ? *)",
            "cron(0/15 * ? * MON-FRI *)",
        ] {
            assert_eq!(check_schedule(ok), Ok(()), "{ok}");
        }
        for bad in [
            "rate(1 hours)",
            "rate(0 days)",
            "rate(2 day)",
            "cron(0 3 * * *)",
            "cron(0 3 * * * *)",
            "@daily",
            "cron(0 3 ; * ? *)",
        ] {
            assert!(check_schedule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_unchanged_rule_needs_nothing_and_each_change_is_named() {
        let d = desired(&job("command: [python, report.py]\n"), "arn:td:1", "app");
        let mut live = d.clone();
        live.cluster = "arn:aws:ecs:us-east-1:1:cluster/c".into();
        live.network.subnets.reverse();
        assert!(plan(&d, Some(&live)).is_empty());
        live.task_definition = "arn:td:0".into();
        live.enabled = false;
        live.command = None;
        let fields: Vec<_> = plan(&d, Some(&live)).iter().map(|c| c.field).collect();
        assert_eq!(fields, ["state", "taskDefinitionArn", "command"]);
        assert_eq!(plan(&d, None)[0].field, "rule");
    }

    #[test]
    fn names_arns_inputs_and_owners_round_trip() {
        assert_eq!(
            cluster_arn(
                "arn:aws:events:eu-west-1:123456789012:rule/gantry-a-b",
                "prod"
            )
            .unwrap(),
            "arn:aws:ecs:eu-west-1:123456789012:cluster/prod"
        );
        let cmd = Some((
            "app".to_owned(),
            vec!["python".to_owned(), "x.py".to_owned()],
        ));
        assert_eq!(parse_input(&input(&cmd).unwrap()), cmd);
        assert_eq!(
            owner(&description("shop-api", "nightly")),
            Some(("shop-api", "nightly"))
        );
        assert_eq!(owner("someone else's rule"), None);
        assert!(valid_rule_name(&rule_name("shop", "nightly")));
        assert!(!valid_rule_name(&rule_name("shop", &"x".repeat(60))));
    }
}
