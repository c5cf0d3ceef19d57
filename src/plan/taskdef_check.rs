//! Checks a task definition before any API call: what ECS would reject, and what would leak or
//! fail at run time. Every problem names its JSON path; a secret's literal value is never
//! repeated in a message.

use crate::domain::taskdef::TaskDefinition;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// JSON path, e.g. `$.containerDefinitions[0].environment[2]`.
    pub path: String,
    pub message: String,
    pub hint: String,
}

/// Fargate's valid task sizes: CPU units and the memory (MiB) each allows.
fn fargate_memory_ok(cpu: u32, memory: u32) -> bool {
    let gb = |n: u32| n * 1024;
    match cpu {
        256 => matches!(memory, 512 | 1024 | 2048),
        512 => (gb(1)..=gb(4)).contains(&memory) && memory % 1024 == 0,
        1024 => (gb(2)..=gb(8)).contains(&memory) && memory % 1024 == 0,
        2048 => (gb(4)..=gb(16)).contains(&memory) && memory % 1024 == 0,
        4096 => (gb(8)..=gb(30)).contains(&memory) && memory % 1024 == 0,
        8192 => (gb(16)..=gb(60)).contains(&memory) && memory % gb(4) == 0,
        16384 => (gb(32)..=gb(120)).contains(&memory) && memory % gb(8) == 0,
        _ => false,
    }
}

/// `"256"`, `"0.25 vCPU"`, `"1 vCPU"` -> CPU units.
fn cpu_units(s: &str) -> Option<u32> {
    let t = s.trim();
    if let Some(v) = t.strip_suffix("vCPU").or_else(|| t.strip_suffix("vcpu")) {
        let f: f64 = v.trim().parse().ok()?;
        return Some((f * 1024.0).round() as u32);
    }
    t.parse().ok()
}

/// `"512"`, `"1 GB"`, `"0.5GB"` -> MiB.
fn memory_mib(s: &str) -> Option<u32> {
    let t = s.trim();
    if let Some(v) = t.strip_suffix("GB").or_else(|| t.strip_suffix("gb")) {
        let f: f64 = v.trim().parse().ok()?;
        return Some((f * 1024.0).round() as u32);
    }
    t.parse().ok()
}

/// Whether an environment variable's name says it holds a secret.
pub fn looks_secret(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    n.ends_with("_KEY")
        || n.ends_with("_TOKEN")
        || n.ends_with("_SECRET")
        || n.contains("PASSWORD")
        || n == "SECRET"
        || n == "TOKEN"
}

fn is_secret_arn(v: &str) -> bool {
    let parts: Vec<&str> = v.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && ((parts[2] == "ssm" && parts[5].starts_with("parameter/"))
            || (parts[2] == "secretsmanager" && parts[5].starts_with("secret:")))
}

/// Every problem of `td`; `allowed_literals` names environment variables allowed to hold a
/// literal value despite a secret-looking name.
pub fn check(td: &TaskDefinition, allowed_literals: &[String]) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut add = |path: String, message: String, hint: &str| {
        out.push(Problem {
            path,
            message,
            hint: hint.to_owned(),
        })
    };
    if td.family.trim().is_empty() {
        add(
            "$.family".into(),
            "family is missing".into(),
            "name the task definition family",
        );
    }
    if td.container_definitions.is_empty() {
        add(
            "$.containerDefinitions".into(),
            "no container definitions".into(),
            "a task needs at least one container",
        );
    }
    if td.is_fargate() {
        if td.network_mode.as_deref() != Some("awsvpc") {
            add(
                "$.networkMode".into(),
                format!(
                    "a Fargate task needs networkMode awsvpc, not {}",
                    td.network_mode.as_deref().unwrap_or("(unset)")
                ),
                "set \"networkMode\": \"awsvpc\"",
            );
        }
        match (td.cpu.as_deref(), td.memory.as_deref()) {
            (Some(c), Some(m)) => match (cpu_units(c), memory_mib(m)) {
                (Some(cpu), Some(mem)) if fargate_memory_ok(cpu, mem) => {}
                (Some(cpu), Some(mem)) => add(
                    "$.memory".into(),
                    format!("{mem} MiB of memory is not valid with {cpu} CPU units on Fargate"),
                    "see the Fargate task size table: e.g. cpu 256 with 512/1024/2048, cpu 512 with 1024-4096, cpu 1024 with 2048-8192",
                ),
                _ => add("$.cpu".into(), format!("cannot read cpu `{c}` / memory `{m}`"), "use numbers such as \"256\" and \"512\""),
            },
            _ => add("$.cpu".into(), "a Fargate task needs task-level cpu and memory".into(), "set \"cpu\" and \"memory\" on the task definition"),
        }
    }
    let mut names = std::collections::BTreeSet::new();
    let mut needs_execution_role = Vec::new();
    for (i, c) in td.container_definitions.iter().enumerate() {
        let at = format!("$.containerDefinitions[{i}]");
        if c.name.is_empty() {
            add(format!("{at}.name"), "container name is missing".into(), "");
        } else if !names.insert(c.name.as_str()) {
            add(
                format!("{at}.name"),
                format!("container `{}` is defined twice", c.name),
                "container names must be unique",
            );
        }
        if c.image.is_empty() {
            add(
                format!("{at}.image"),
                format!("container `{}` has no image", c.name),
                "",
            );
        }
        if c.log_configuration
            .as_ref()
            .is_some_and(|l| l.log_driver == "awslogs")
        {
            needs_execution_role.push(format!("{at}.logConfiguration (awslogs)"));
        }
        if c.image.contains(".dkr.ecr.") {
            needs_execution_role.push(format!("{at}.image (ECR)"));
        }
        if !c.secrets.is_empty() {
            needs_execution_role.push(format!("{at}.secrets"));
        }
        if c.repository_credentials.is_some() {
            needs_execution_role.push(format!("{at}.repositoryCredentials"));
        }
        for (j, s) in c.secrets.iter().enumerate() {
            if !is_secret_arn(&s.value_from) {
                add(
                    format!("{at}.secrets[{j}].valueFrom"),
                    format!("secret `{}` must come from an SSM parameter or Secrets Manager ARN", s.name),
                    "arn:aws:ssm:REGION:ACCOUNT:parameter/NAME or arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME",
                );
            }
        }
        for (j, e) in c.environment.iter().enumerate() {
            if looks_secret(&e.name) && !e.value.is_empty() && !allowed_literals.contains(&e.name) {
                add(
                    format!("{at}.environment[{j}]"),
                    format!("`{}` looks like a secret but has a literal value (not shown)", e.name),
                    "move it to \"secrets\" with a valueFrom ARN, or allow it explicitly if it is not a secret",
                );
            }
        }
    }
    if td.execution_role_arn.as_deref().is_none_or(str::is_empty) {
        if let Some(first) = needs_execution_role.first() {
            add(
                "$.executionRoleArn".into(),
                format!(
                    "an execution role is required by {first}{}",
                    if needs_execution_role.len() > 1 {
                        format!(" and {} more", needs_execution_role.len() - 1)
                    } else {
                        String::new()
                    }
                ),
                "set \"executionRoleArn\" to a role with AmazonECSTaskExecutionRolePolicy",
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn td(json: &str) -> TaskDefinition {
        TaskDefinition::from_json(json).unwrap()
    }

    #[test]
    fn fargate_sizes() {
        assert!(fargate_memory_ok(256, 512));
        assert!(!fargate_memory_ok(256, 4096));
        assert!(fargate_memory_ok(1024, 3072));
        assert!(!fargate_memory_ok(512, 8192));
        assert_eq!(cpu_units("0.25 vCPU"), Some(256));
        assert_eq!(memory_mib("2 GB"), Some(2048));
    }

    #[test]
    fn awslogs_without_execution_role_is_rejected() {
        let t = td(
            r#"{"family": "nginx", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256", "memory": "512",
            "containerDefinitions": [{"name": "nginx", "image": "nginx:1.27", "essential": true,
              "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/nginx"}}}]}"#,
        );
        let p = check(&t, &[]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].path, "$.executionRoleArn");
        assert!(p[0]
            .message
            .contains("$.containerDefinitions[0].logConfiguration (awslogs)"));
    }

    #[test]
    fn secret_literals_are_reported_without_their_value() {
        let t = td(
            r#"{"family": "api", "requiresCompatibilities": ["FARGATE"], "networkMode": "bridge", "cpu": "256", "memory": "4096",
            "executionRoleArn": "arn:aws:iam::1:role/x",
            "containerDefinitions": [{"name": "api", "image": "1.dkr.ecr.us-east-1.amazonaws.com/api:1",
              "environment": [{"name": "OPENAI_API_KEY", "value": "sk-live-123456"}, {"name": "LOG_LEVEL", "value": "info"}, {"name": "PUBLIC_KEY", "value": "pk"}],
              "secrets": [{"name": "DB_PASSWORD", "valueFrom": "db-password"}]}]}"#,
        );
        let p = check(&t, &["PUBLIC_KEY".to_string()]);
        let paths: Vec<_> = p.iter().map(|x| x.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "$.networkMode",
                "$.memory",
                "$.containerDefinitions[0].secrets[0].valueFrom",
                "$.containerDefinitions[0].environment[0]"
            ]
        );
        assert!(p
            .iter()
            .all(|x| !x.message.contains("sk-live") && !x.hint.contains("sk-live")));
    }
}
