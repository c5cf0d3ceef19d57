//! ECS task definitions as JSON, in the form `aws ecs register-task-definition` takes and
//! `describe-task-definition` prints. Gantry's own serde types: the fields Gantry reads or
//! rewrites are typed; everything else is kept verbatim so nothing a user wrote is lost.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Fields ECS sets itself; present in `describe-task-definition` output, ignored on input.
pub const READ_ONLY_FIELDS: &[&str] = &[
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskDefinition {
    pub family: String,
    #[serde(default)]
    pub container_definitions: Vec<ContainerDefinition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires_compatibilities: Vec<String>,
    /// Task-level CPU units; JSON may hold a number, `"256"` or `"1 vCPU"`.
    #[serde(
        default,
        deserialize_with = "string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub cpu: Option<String>,
    /// Task-level memory; JSON may hold a number, `"512"` or `"1 GB"`.
    #[serde(
        default,
        deserialize_with = "string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_role_arn: Option<String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerDefinition {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub essential: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_configuration: Option<LogConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_credentials: Option<Value>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    pub name: String,
    pub value_from: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogConfiguration {
    pub log_driver: String,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "expected a string or a number, got {other}"
            )))
        }
    })
}

impl TaskDefinition {
    /// Parses either form (a bare task definition, or `describe-task-definition` output with
    /// its `taskDefinition` wrapper), dropping the fields ECS sets itself.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        let mut value: Value = serde_json::from_str(text)?;
        if let Some(inner) = value.get_mut("taskDefinition") {
            value = inner.take();
        }
        if let Value::Object(map) = &mut value {
            for f in READ_ONLY_FIELDS {
                map.remove(*f);
            }
        }
        serde_json::from_value(value)
    }

    pub fn is_fargate(&self) -> bool {
        self.requires_compatibilities.iter().any(|c| c == "FARGATE")
    }
}

/// `arn:aws:ecs:REGION:ACCOUNT:task-definition/FAMILY:REVISION` -> `FAMILY`.
pub fn family_of(arn: &str) -> &str {
    let tail = arn.rsplit('/').next().unwrap_or(arn);
    tail.rsplit_once(':').map(|(f, _)| f).unwrap_or(tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_output_is_unwrapped_and_read_only_fields_dropped() {
        let text = r#"{"taskDefinition": {"taskDefinitionArn": "arn:aws:ecs:us-east-1:1:task-definition/web:3",
            "family": "web", "revision": 3, "status": "ACTIVE", "cpu": "256", "memory": 512,
            "containerDefinitions": [{"name": "app", "image": "nginx", "portMappings": [{"containerPort": 80}]}],
            "compatibilities": ["EC2", "FARGATE"], "registeredAt": "2024-01-01T00:00:00Z"}, "tags": []}"#;
        let td = TaskDefinition::from_json(text).unwrap();
        assert_eq!(td.family, "web");
        assert_eq!(td.memory.as_deref(), Some("512"));
        assert!(td.other.is_empty(), "{:?}", td.other);
        assert!(td.container_definitions[0]
            .other
            .contains_key("portMappings"));
    }
}
