//! Normalises task definitions and renders a readable diff between the live one and the
//! desired one, so a deployment registers a new revision only when something really differs.
//!
//! Normalisation removes what ECS adds or defaults on its own (empty lists, `cpu: 0` on a
//! container, read-only fields) and sorts environment and secrets by name, so a task definition
//! read back from ECS compares equal to the file it was registered from.

use serde_json::{Map, Value};
use similar::{ChangeTag, TextDiff};

use crate::domain::taskdef::{TaskDefinition, READ_ONLY_FIELDS};

/// The canonical JSON of a task definition.
pub fn normalise(td: &TaskDefinition) -> Value {
    let mut v = serde_json::to_value(td).expect("task definitions serialise");
    if let Value::Object(map) = &mut v {
        for f in READ_ONLY_FIELDS {
            map.remove(*f);
        }
        if let Some(Value::Array(containers)) = map.get_mut("containerDefinitions") {
            for c in containers.iter_mut() {
                if let Value::Object(cm) = c {
                    normalise_container(cm);
                }
            }
        }
        strip_empty(map);
    }
    sort_keys(v)
}

fn normalise_container(c: &mut Map<String, Value>) {
    for key in ["environment", "secrets"] {
        if let Some(Value::Array(items)) = c.get_mut(key) {
            items.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        }
    }
    if c.get("cpu") == Some(&Value::from(0)) {
        c.remove("cpu");
    }
    strip_empty(c);
}

fn strip_empty(map: &mut Map<String, Value>) {
    map.retain(|_, v| {
        !matches!(v, Value::Null)
            && !matches!(v, Value::Array(a) if a.is_empty())
            && !matches!(v, Value::Object(o) if o.is_empty())
    });
}

fn sort_keys(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sort_keys(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

/// Whether registering `desired` would change anything compared with `live`.
pub fn differs(live: &TaskDefinition, desired: &TaskDefinition) -> bool {
    normalise(live) != normalise(desired)
}

/// A unified, line-based diff of the normalised forms (`-` live, `+` desired); empty when equal.
pub fn render_diff(live: Option<&TaskDefinition>, desired: &TaskDefinition) -> String {
    let pretty = |td: &TaskDefinition| {
        serde_json::to_string_pretty(&normalise(td)).expect("json serialises") + "\n"
    };
    let old = live.map(pretty).unwrap_or_default();
    let new = pretty(desired);
    if old == new {
        return String::new();
    }
    let diff = TextDiff::from_lines(&old, &new);
    let mut out = String::new();
    for group in diff.grouped_ops(3) {
        for op in group {
            for change in diff.iter_changes(&op) {
                let sign = match change.tag() {
                    ChangeTag::Delete => '-',
                    ChangeTag::Insert => '+',
                    ChangeTag::Equal => ' ',
                };
                out.push(sign);
                out.push_str(change.value());
            }
        }
        out.push_str("...\n");
    }
    out
}

/// The desired task definition: `td` with each named container's image replaced.
pub fn with_images(
    td: &TaskDefinition,
    images: &std::collections::BTreeMap<String, String>,
) -> TaskDefinition {
    let mut out = td.clone();
    for c in &mut out.container_definitions {
        if let Some(image) = images.get(&c.name) {
            c.image = image.clone();
        }
    }
    out
}

/// What `gantry diff` shows for one service or scheduled job (`kind`): its settings'
/// changes, then the task definition diff. `live` is what it runs now (the revision and its
/// task definition), if it exists; a job has no count.
pub fn render_task_diff(
    kind: &str,
    name: &str,
    cluster: &str,
    live: Option<(&str, &TaskDefinition)>,
    desired: &TaskDefinition,
    desired_count: Option<i32>,
    settings: &[crate::plan::service_diff::Change],
) -> String {
    let mut out = format!("{kind} {name} (cluster {cluster})\n");
    match live {
        None if kind == "job" => {
            out.push_str("  will be scheduled\n");
            out.push_str(&render_diff(None, desired));
        }
        None => {
            out.push_str(&format!(
                "  will be created with desired count {}\n",
                desired_count.unwrap_or(1)
            ));
            out.push_str(&render_diff(None, desired));
        }
        Some((arn, td)) => {
            for c in settings {
                out.push_str(&format!("  {}: {} -> {}\n", c.field, c.live, c.desired));
            }
            let diff = render_diff(Some(td), desired);
            if diff.is_empty() {
                out.push_str(&format!("  task definition: unchanged ({arn})\n"));
            } else {
                out.push_str(&format!("  task definition: {arn} -> a new revision\n"));
                out.push_str(&diff);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVE: &str = r#"{"taskDefinition": {"taskDefinitionArn": "arn:aws:ecs:us-east-1:1:task-definition/api:7", "revision": 7,
        "family": "api", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"], "cpu": "256", "memory": "512",
        "executionRoleArn": "arn:aws:iam::1:role/exec", "volumes": [], "placementConstraints": [],
        "containerDefinitions": [{"name": "api", "image": "1.dkr.ecr.us-east-1.amazonaws.com/api@sha256:aaa", "cpu": 0, "essential": true,
          "environment": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}], "mountPoints": [], "volumesFrom": [],
          "portMappings": [{"containerPort": 8000, "hostPort": 8000, "protocol": "tcp"}]}]}}"#;

    const FILE: &str = r#"{"family": "api", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"], "cpu": "256", "memory": "512",
        "executionRoleArn": "arn:aws:iam::1:role/exec",
        "containerDefinitions": [{"name": "api", "image": "placeholder", "essential": true,
          "environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
          "portMappings": [{"containerPort": 8000, "hostPort": 8000, "protocol": "tcp"}]}]}"#;

    fn images(digest: &str) -> std::collections::BTreeMap<String, String> {
        [(
            "api".to_string(),
            format!("1.dkr.ecr.us-east-1.amazonaws.com/api@sha256:{digest}"),
        )]
        .into()
    }

    #[test]
    fn a_task_definition_read_back_from_ecs_equals_its_file() {
        let live = TaskDefinition::from_json(LIVE).unwrap();
        let desired = with_images(&TaskDefinition::from_json(FILE).unwrap(), &images("aaa"));
        assert!(
            !differs(&live, &desired),
            "{}",
            render_diff(Some(&live), &desired)
        );
        assert_eq!(render_diff(Some(&live), &desired), "");
    }

    #[test]
    fn diff_shows_the_new_image_and_memory() {
        let live = TaskDefinition::from_json(LIVE).unwrap();
        let mut desired = with_images(&TaskDefinition::from_json(FILE).unwrap(), &images("bbb"));
        desired.memory = Some("1024".into());
        insta::assert_snapshot!(render_diff(Some(&live), &desired));
    }

    #[test]
    fn service_diff_output() {
        let live = TaskDefinition::from_json(LIVE).unwrap();
        let mut desired = with_images(&TaskDefinition::from_json(FILE).unwrap(), &images("bbb"));
        desired.memory = Some("1024".into());
        let changed = render_task_diff(
            "service",
            "api",
            "prod",
            Some(("arn:aws:ecs:us-east-1:1:task-definition/api:7", &live)),
            &desired,
            Some(3),
            &[crate::plan::service_diff::Change {
                field: "desiredCount",
                live: "2".into(),
                desired: "3".into(),
            }],
        );
        let same = with_images(&TaskDefinition::from_json(FILE).unwrap(), &images("aaa"));
        let unchanged = render_task_diff(
            "service",
            "api",
            "prod",
            Some(("arn:aws:ecs:us-east-1:1:task-definition/api:7", &live)),
            &same,
            Some(2),
            &[],
        );
        insta::assert_snapshot!(format!("{changed}\n{unchanged}"));
    }

    #[test]
    fn rendered_task_definition() {
        let desired = with_images(&TaskDefinition::from_json(FILE).unwrap(), &images("bbb"));
        insta::assert_json_snapshot!(normalise(&desired));
    }
}
