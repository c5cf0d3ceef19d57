//! Verify before deploy: which live resources an app's manifest and task definitions name
//! ([`references`]), and what is wrong given what the account holds ([`judge`]). ecspresso's
//! `verify` is the model: roles, secrets and parameters (metadata only), subnets and security
//! groups in one VPC, the target group and how it fits the container, log groups, the ECR
//! repository, the bucket and the distribution's origin.

use std::collections::BTreeMap;

use crate::domain::inventory::{Fact, Lookup, TargetGroupFacts};
use crate::domain::taskdef::TaskDefinition;
use crate::domain::{ecr_registry, AppSpec, ImageRef};

/// Which file a field is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    /// The App manifest; the path starts at the document (`spec.services[0].cluster`).
    Manifest,
    /// The task definition file of `spec.services[N]`, or of `spec.jobs[N - services]`; the
    /// path starts at its root (`executionRoleArn`, `containerDefinitions[0].secrets[1].valueFrom`).
    TaskDefinition { service: usize },
}

/// A field of a manifest or task definition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Field {
    pub origin: Origin,
    pub path: String,
}

impl Field {
    fn manifest(path: impl Into<String>) -> Self {
        Self {
            origin: Origin::Manifest,
            path: path.into(),
        }
    }

    fn taskdef(service: usize, path: impl Into<String>) -> Self {
        Self {
            origin: Origin::TaskDefinition { service },
            path: path.into(),
        }
    }
}

/// What the found resource must be like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// It exists.
    Exists,
    /// A subnet or security group of `spec.services[service]`: it exists, and in the same VPC
    /// as the service's other subnets and groups.
    SameVpc { service: usize },
    /// The target group of `spec.services[service]`: it exists, routes from a load balancer,
    /// registers by IP (awsvpc), and its port and protocol are the container's.
    TargetGroup {
        service: usize,
        container_port: u16,
        /// The port mapping's protocol, `tcp` or `udp`.
        protocol: String,
    },
    /// The distribution of a site: it exists and one of its origins is `bucket`.
    OriginIs { bucket: String },
}

/// One resource a field names, and what it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub lookup: Lookup,
    pub at: Field,
    pub expect: Expect,
}

/// What looking a resource up gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Found(Fact),
    /// The credentials may not look; the check is skipped with a warning.
    Denied(String),
    /// The lookup failed for another reason; the check is skipped with a warning.
    Failed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The deployment would fail on it: verify fails.
    Error,
    /// A check that could not be made.
    Warning,
}

/// One problem, at the field that names the resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub at: Field,
    /// The AWS resource, e.g. ``IAM role `web-task` ``.
    pub resource: String,
    pub message: String,
    pub hint: Option<String>,
}

/// The resources `spec` names, each with the field that names it. `taskdefs[i]` is the parsed
/// task definition of `spec.services[i]` (`None` when it could not be read: its references
/// are then unknown). An ECR repository with `createRepository` is not looked up, nor is a
/// log group with `awslogs-create-group`.
pub fn references(spec: &AppSpec, taskdefs: &[Option<TaskDefinition>]) -> Vec<Reference> {
    let mut refs = Vec::new();
    for (i, svc) in spec.services.iter().enumerate() {
        let at = format!("spec.services[{i}]");
        let td = taskdefs.get(i).and_then(Option::as_ref);
        task_references(&mut refs, &at, i, &svc.cluster, td, svc.network.as_ref());
        if let Some(lb) = &svc.load_balancer {
            let protocol = td
                .and_then(|td| port_protocol(td, &lb.container_name, lb.container_port))
                .unwrap_or_else(|| "tcp".into());
            refs.push(Reference {
                lookup: Lookup::TargetGroup {
                    arn: lb.target_group_arn.clone(),
                },
                at: Field::manifest(format!("{at}.loadBalancer.targetGroupArn")),
                expect: Expect::TargetGroup {
                    service: i,
                    container_port: lb.container_port,
                    protocol,
                },
            });
        }
    }
    // A job's task definition follows the services' in `taskdefs`.
    for (j, job) in spec.jobs.iter().enumerate() {
        let k = spec.services.len() + j;
        let at = format!("spec.jobs[{j}]");
        let td = taskdefs.get(k).and_then(Option::as_ref);
        task_references(&mut refs, &at, k, &job.cluster, td, Some(&job.network));
        if let Some(name) = role_name(&job.role_arn) {
            refs.push(Reference {
                lookup: Lookup::Role { name },
                at: Field::manifest(format!("{at}.roleArn")),
                expect: Expect::Exists,
            });
        }
    }
    let mut add = |lookup, at, expect| {
        refs.push(Reference { lookup, at, expect });
    };
    for (i, image) in spec.images.iter().enumerate() {
        if image.create_repository {
            continue;
        }
        let Ok(r) = ImageRef::parse(&image.repository) else {
            continue;
        };
        if let Some((_, region)) = ecr_registry(&r.registry) {
            add(
                Lookup::Repository {
                    name: r.repository.clone(),
                    region,
                },
                Field::manifest(format!("spec.images[{i}].repository")),
                Expect::Exists,
            );
        }
    }
    for (i, site) in spec.sites.iter().enumerate() {
        add(
            Lookup::Bucket {
                name: site.bucket.clone(),
            },
            Field::manifest(format!("spec.sites[{i}].bucket")),
            Expect::Exists,
        );
        if let Some(id) = &site.distribution {
            add(
                Lookup::Distribution { id: id.clone() },
                Field::manifest(format!("spec.sites[{i}].distribution")),
                Expect::OriginIs {
                    bucket: site.bucket.clone(),
                },
            );
        }
    }
    refs
}

/// What a task runs with: its cluster, the roles, secrets and log groups its task definition
/// names (task definition `k`), and its network. `at` is the service's or job's field path.
fn task_references(
    refs: &mut Vec<Reference>,
    at: &str,
    k: usize,
    cluster: &str,
    td: Option<&TaskDefinition>,
    network: Option<&crate::domain::NetworkSpec>,
) {
    let mut add = |lookup, at, expect| {
        refs.push(Reference { lookup, at, expect });
    };
    add(
        Lookup::Cluster {
            name: cluster.to_owned(),
        },
        Field::manifest(format!("{at}.cluster")),
        Expect::Exists,
    );
    if let Some(td) = td {
        for (field, arn) in [
            ("executionRoleArn", &td.execution_role_arn),
            ("taskRoleArn", &td.task_role_arn),
        ] {
            if let Some(name) = arn.as_deref().and_then(role_name) {
                add(
                    Lookup::Role { name },
                    Field::taskdef(k, field),
                    Expect::Exists,
                );
            }
        }
        for (c, container) in td.container_definitions.iter().enumerate() {
            for (n, secret) in container.secrets.iter().enumerate() {
                if let Some(lookup) = secret_lookup(&secret.value_from) {
                    add(
                        lookup,
                        Field::taskdef(
                            k,
                            format!("containerDefinitions[{c}].secrets[{n}].valueFrom"),
                        ),
                        Expect::Exists,
                    );
                }
            }
            if let Some(log) = &container.log_configuration {
                let options = log.other.get("options");
                let opt = |key: &str| options.and_then(|o| o.get(key)).and_then(|v| v.as_str());
                let creates = opt("awslogs-create-group") == Some("true");
                if log.log_driver == "awslogs" && !creates {
                    if let Some(group) = opt("awslogs-group") {
                        add(
                            Lookup::LogGroup {
                                name: group.to_owned(),
                                region: opt("awslogs-region").map(str::to_owned),
                            },
                            Field::taskdef(
                                k,
                                format!(
                                    "containerDefinitions[{c}].logConfiguration.options.awslogs-group"
                                ),
                            ),
                            Expect::Exists,
                        );
                    }
                }
            }
        }
    }
    if let Some(net) = network {
        for (j, id) in net.subnets.iter().enumerate() {
            add(
                Lookup::Subnet { id: id.clone() },
                Field::manifest(format!("{at}.network.subnets[{j}]")),
                Expect::SameVpc { service: k },
            );
        }
        for (j, id) in net.security_groups.iter().enumerate() {
            add(
                Lookup::SecurityGroup { id: id.clone() },
                Field::manifest(format!("{at}.network.securityGroups[{j}]")),
                Expect::SameVpc { service: k },
            );
        }
    }
}

/// `arn:aws:iam::123456789012:role/path/name` (or a bare name) -> `name`.
fn role_name(arn: &str) -> Option<String> {
    let name = match arn.strip_prefix("arn:") {
        Some(rest) => rest.split_once(":role/")?.1.rsplit('/').next()?,
        None => arn,
    };
    (!name.is_empty()).then(|| name.to_owned())
}

/// What an ECS `valueFrom` names: a Secrets Manager ARN (a JSON key, version stage or id after
/// the secret's own seven fields is dropped), an SSM parameter ARN, or an SSM parameter name.
fn secret_lookup(value_from: &str) -> Option<Lookup> {
    let fields: Vec<&str> = value_from.split(':').collect();
    if fields.first() != Some(&"arn") {
        return (!value_from.is_empty()).then(|| Lookup::Parameter {
            name: value_from.to_owned(),
            region: None,
        });
    }
    let region = fields
        .get(3)
        .filter(|r| !r.is_empty())
        .map(|r| r.to_string());
    match fields.get(2) {
        Some(&"secretsmanager") if fields.len() >= 7 => Some(Lookup::Secret {
            id: fields[..7].join(":"),
            region,
        }),
        Some(&"ssm") => {
            let rest = fields[5..].join(":");
            let name = rest.strip_prefix("parameter")?;
            // `parameter/a/b` is `/a/b`; `parameter/name` is `name`.
            let name = match name.strip_prefix('/') {
                Some(n) if n.contains('/') => name.to_owned(),
                Some(n) => n.to_owned(),
                None => return None,
            };
            Some(Lookup::Parameter { name, region })
        }
        _ => None,
    }
}

/// The protocol of `container`'s port mapping for `port`, lowercased.
fn port_protocol(td: &TaskDefinition, container: &str, port: u16) -> Option<String> {
    let c = td
        .container_definitions
        .iter()
        .find(|c| c.name == container)?;
    c.other
        .get("portMappings")?
        .as_array()?
        .iter()
        .find(|m| m.get("containerPort").and_then(|p| p.as_u64()) == Some(u64::from(port)))
        .map(|m| {
            m.get("protocol")
                .and_then(|p| p.as_str())
                .unwrap_or("tcp")
                .to_ascii_lowercase()
        })
}

/// The problems `outcomes` (one per reference, same order) show, errors first, each at its
/// field.
pub fn judge(refs: &[Reference], outcomes: &[Outcome]) -> Vec<Finding> {
    let mut findings = Vec::new();
    // The VPC of each service's first located subnet (references list subnets before
    // groups): the one the others must share.
    let mut vpc_of: BTreeMap<usize, (String, String)> = BTreeMap::new();
    for (r, o) in refs.iter().zip(outcomes) {
        if let (Expect::SameVpc { service }, Outcome::Found(Fact::InVpc { vpc })) = (&r.expect, o) {
            vpc_of
                .entry(*service)
                .or_insert_with(|| (vpc.clone(), r.lookup.describe()));
        }
    }
    for (r, o) in refs.iter().zip(outcomes) {
        let resource = r.lookup.describe();
        let mut error = |message: String, hint: String| {
            findings.push(Finding {
                severity: Severity::Error,
                at: r.at.clone(),
                resource: resource.clone(),
                message,
                hint: (!hint.is_empty()).then_some(hint),
            })
        };
        let fact = match o {
            Outcome::Found(Fact::Missing) => {
                error("does not exist".into(), missing_hint(&r.lookup));
                continue;
            }
            Outcome::Found(f) => f,
            Outcome::Denied(why) | Outcome::Failed(why) => {
                findings.push(Finding {
                    severity: Severity::Warning,
                    at: r.at.clone(),
                    resource: resource.clone(),
                    message: format!("not checked: {why}"),
                    hint: matches!(o, Outcome::Denied(_))
                        .then(|| format!("allow Gantry's role `{}`", action(&r.lookup))),
                });
                continue;
            }
        };
        match (&r.expect, fact) {
            (Expect::SameVpc { service }, Fact::InVpc { vpc }) => {
                if let Some((first, by)) = vpc_of.get(service) {
                    if first != vpc {
                        error(
                            format!("is in {vpc}, but {by} is in {first}"),
                            "a service's subnets and security groups must all be in one VPC".into(),
                        );
                    }
                }
            }
            (
                Expect::TargetGroup {
                    service,
                    container_port,
                    protocol,
                },
                Fact::TargetGroup(tg),
            ) => {
                for (message, hint) in target_group_problems(
                    tg,
                    *container_port,
                    protocol,
                    vpc_of.get(service).map(|v| v.0.as_str()),
                ) {
                    error(message, hint);
                }
            }
            (Expect::OriginIs { bucket }, Fact::Distribution { origins })
                if !origins.iter().any(|o| origin_is_bucket(o, bucket)) =>
            {
                let listed = if origins.is_empty() {
                    "none".to_owned()
                } else {
                    origins.join(", ")
                };
                error(
                    format!("serves none of its origins from bucket `{bucket}` (origins: {listed})"),
                    format!(
                        "point an origin of the distribution at `{bucket}.s3.<region>.amazonaws.com`, or fix the site's bucket or distribution"
                    ),
                );
            }
            _ => {}
        }
    }
    findings.sort_by(|a, b| a.severity.cmp(&b.severity).then(a.at.cmp(&b.at)));
    findings
}

fn target_group_problems(
    tg: &TargetGroupFacts,
    container_port: u16,
    protocol: &str,
    service_vpc: Option<&str>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(t) = tg.target_type.as_deref() {
        if t != "ip" {
            out.push((
                format!("has target type `{t}`; Fargate tasks (awsvpc) register by IP"),
                "create the target group with target type `ip`".into(),
            ));
        }
    }
    if let Some(port) = tg.port {
        if port != container_port {
            out.push((
                format!("listens on port {port}, but the container port is {container_port}"),
                format!(
                    "give the target group port {container_port} (its health checks use the traffic port), or fix loadBalancer.containerPort"
                ),
            ));
        }
    }
    if let Some(p) = tg.protocol.as_deref() {
        let needs = if p.eq_ignore_ascii_case("udp") {
            "udp"
        } else {
            "tcp"
        };
        let fits = protocol == needs || (p.eq_ignore_ascii_case("tcp_udp"));
        if !fits {
            out.push((
                format!("speaks {p}, but the container's port mapping is {protocol}"),
                format!("map the container port with protocol `{needs}`"),
            ));
        }
    }
    if let (Some(tg_vpc), Some(svc_vpc)) = (tg.vpc.as_deref(), service_vpc) {
        if tg_vpc != svc_vpc {
            out.push((
                format!("is in {tg_vpc}, but the service's subnets are in {svc_vpc}"),
                "use a target group of the service's VPC".into(),
            ));
        }
    }
    if tg.load_balancers == 0 {
        out.push((
            "is not attached to any load balancer; ECS refuses to create the service".into(),
            "add a listener rule that forwards to it".into(),
        ));
    }
    out
}

/// `bucket.s3.amazonaws.com`, `bucket.s3.REGION.amazonaws.com`, `bucket.s3-REGION...`, or an
/// S3 website endpoint `bucket.s3-website[-.]REGION.amazonaws.com`.
fn origin_is_bucket(domain: &str, bucket: &str) -> bool {
    domain
        .strip_prefix(bucket)
        .and_then(|rest| rest.strip_prefix('.'))
        .is_some_and(|rest| rest.starts_with("s3.") || rest.starts_with("s3-"))
}

fn missing_hint(l: &Lookup) -> String {
    match l {
        Lookup::Role { .. } => "create the role, or fix the ARN".into(),
        Lookup::Secret { .. } => {
            "create the secret in Secrets Manager in the task's region, or fix valueFrom".into()
        }
        Lookup::Parameter { .. } => {
            "create the parameter in SSM Parameter Store in the task's region, or fix valueFrom"
                .into()
        }
        Lookup::Subnet { .. } | Lookup::SecurityGroup { .. } => {
            "use an id of the VPC the service runs in".into()
        }
        Lookup::TargetGroup { .. } => "create the target group, or fix the ARN".into(),
        Lookup::LogGroup { .. } => {
            "create the log group, or set `\"awslogs-create-group\": \"true\"` in the log options (the execution role then needs logs:CreateLogGroup)".into()
        }
        Lookup::Repository { .. } => {
            "create the repository, or set `createRepository: true` on the image".into()
        }
        Lookup::Cluster { .. } => "create the cluster, or fix its name".into(),
        Lookup::Bucket { .. } => "create the bucket, or fix its name".into(),
        Lookup::Distribution { .. } => "create the distribution, or fix its id".into(),
    }
}

/// The IAM action a lookup needs.
pub fn action(l: &Lookup) -> &'static str {
    match l {
        Lookup::Role { .. } => "iam:GetRole",
        Lookup::Secret { .. } => "secretsmanager:DescribeSecret",
        Lookup::Parameter { .. } => "ssm:DescribeParameters",
        Lookup::Subnet { .. } => "ec2:DescribeSubnets",
        Lookup::SecurityGroup { .. } => "ec2:DescribeSecurityGroups",
        Lookup::TargetGroup { .. } => "elasticloadbalancing:DescribeTargetGroups",
        Lookup::LogGroup { .. } => "logs:DescribeLogGroups",
        Lookup::Repository { .. } => "ecr:DescribeRepositories",
        Lookup::Cluster { .. } => "ecs:DescribeClusters",
        Lookup::Bucket { .. } => "s3:ListBucket",
        Lookup::Distribution { .. } => "cloudfront:GetDistribution",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AppManifest;

    fn spec() -> AppSpec {
        let m: AppManifest = serde_yaml::from_str(
            r#"
apiVersion: gantry/v1
kind: App
metadata: {name: web}
spec:
  source: {repo: acme/web}
  images:
    - {name: api, repository: 123456789012.dkr.ecr.us-east-1.amazonaws.com/api, base: "python:3.12"}
    - {name: made, repository: 123456789012.dkr.ecr.us-east-1.amazonaws.com/made, base: "python:3.12", createRepository: true}
    - {name: local, repository: "127.0.0.1:5000/local", base: "python:3.12"}
  services:
    - name: api
      cluster: prod
      taskDefinition: api.json
      network: {subnets: [subnet-a, subnet-b], securityGroups: [sg-1]}
      loadBalancer: {targetGroupArn: "arn:tg", containerName: api, containerPort: 8000}
  sites:
    - {name: www, dir: out, bucket: www-bucket, distribution: E1}
"#,
        )
        .unwrap();
        m.spec
    }

    fn taskdef() -> TaskDefinition {
        TaskDefinition::from_json(
            r#"{"family": "api",
              "executionRoleArn": "arn:aws:iam::123456789012:role/ecs/exec",
              "taskRoleArn": "api-task",
              "containerDefinitions": [{"name": "api", "image": "x",
                "portMappings": [{"containerPort": 8000}],
                "secrets": [
                  {"name": "A", "valueFrom": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf:password::"},
                  {"name": "B", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/web/key"},
                  {"name": "C", "valueFrom": "plain-name"}],
                "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/api", "awslogs-region": "us-east-1"}}},
               {"name": "side", "image": "y",
                "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/side", "awslogs-create-group": "true"}}}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn references_name_every_resource_at_its_field() {
        let refs = references(&spec(), &[Some(taskdef())]);
        let got: Vec<(String, String)> = refs
            .iter()
            .map(|r| (r.lookup.describe(), r.at.path.clone()))
            .collect();
        let want = [
            ("ECS cluster `prod`", "spec.services[0].cluster"),
            ("IAM role `exec`", "executionRoleArn"),
            ("IAM role `api-task`", "taskRoleArn"),
            (
                "secret `arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf`",
                "containerDefinitions[0].secrets[0].valueFrom",
            ),
            (
                "SSM parameter `/web/key`",
                "containerDefinitions[0].secrets[1].valueFrom",
            ),
            (
                "SSM parameter `plain-name`",
                "containerDefinitions[0].secrets[2].valueFrom",
            ),
            (
                "log group `/ecs/api`",
                "containerDefinitions[0].logConfiguration.options.awslogs-group",
            ),
            ("subnet `subnet-a`", "spec.services[0].network.subnets[0]"),
            ("subnet `subnet-b`", "spec.services[0].network.subnets[1]"),
            (
                "security group `sg-1`",
                "spec.services[0].network.securityGroups[0]",
            ),
            (
                "target group `arn:tg`",
                "spec.services[0].loadBalancer.targetGroupArn",
            ),
            (
                "ECR repository `api` (us-east-1)",
                "spec.images[0].repository",
            ),
            ("S3 bucket `www-bucket`", "spec.sites[0].bucket"),
            ("CloudFront distribution `E1`", "spec.sites[0].distribution"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(
            refs[3].lookup,
            Lookup::Secret {
                id: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf".into(),
                region: Some("eu-west-1".into())
            }
        );
    }

    #[test]
    fn a_job_is_checked_like_a_service_and_its_events_role_too() {
        let mut spec = spec();
        spec.jobs = serde_yaml::from_str(
            "- {name: nightly, cluster: batch, taskDefinition: job.json, schedule: rate(1 day), roleArn: 'arn:aws:iam::1:role/run-tasks', network: {subnets: [subnet-c]}}",
        )
        .unwrap();
        let refs = references(&spec, &[Some(taskdef()), Some(taskdef())]);
        let at = |path: &str| {
            refs.iter()
                .find(|r| r.at.path == path)
                .map(|r| r.lookup.describe())
        };
        assert_eq!(
            at("spec.jobs[0].cluster").as_deref(),
            Some("ECS cluster `batch`")
        );
        assert_eq!(
            at("spec.jobs[0].roleArn").as_deref(),
            Some("IAM role `run-tasks`")
        );
        assert!(at("spec.jobs[0].network.subnets[0]").is_some());
        // Its task definition's references point at the second file.
        assert!(refs
            .iter()
            .any(|r| r.at.origin == Origin::TaskDefinition { service: 1 }
                && r.at.path == "executionRoleArn"));
        // Its subnet is judged on its own, not against the service's VPC.
        let outcomes: Vec<Outcome> = refs
            .iter()
            .map(|r| match &r.lookup {
                Lookup::Subnet { id } if id == "subnet-c" => Outcome::Found(Fact::InVpc {
                    vpc: "vpc-9".into(),
                }),
                _ => outcome_for(r),
            })
            .collect();
        assert_eq!(judge(&refs, &outcomes), vec![]);
    }

    #[test]
    fn an_unreadable_task_definition_still_checks_the_manifest() {
        let refs = references(&spec(), &[None]);
        assert!(refs.iter().all(|r| r.at.origin == Origin::Manifest));
        assert!(refs.iter().any(
            |r| matches!(&r.expect, Expect::TargetGroup { protocol, .. } if protocol == "tcp")
        ));
    }

    fn outcome_for(r: &Reference) -> Outcome {
        Outcome::Found(match &r.lookup {
            Lookup::Subnet { .. } | Lookup::SecurityGroup { .. } => Fact::InVpc {
                vpc: "vpc-1".into(),
            },
            Lookup::TargetGroup { .. } => Fact::TargetGroup(TargetGroupFacts {
                port: Some(8000),
                protocol: Some("HTTP".into()),
                target_type: Some("ip".into()),
                vpc: Some("vpc-1".into()),
                load_balancers: 1,
            }),
            Lookup::Distribution { .. } => Fact::Distribution {
                origins: vec!["www-bucket.s3.us-east-1.amazonaws.com".into()],
            },
            _ => Fact::Present,
        })
    }

    #[test]
    fn a_sound_account_has_no_findings() {
        let refs = references(&spec(), &[Some(taskdef())]);
        let outcomes: Vec<Outcome> = refs.iter().map(outcome_for).collect();
        assert_eq!(judge(&refs, &outcomes), vec![]);
    }

    #[test]
    fn each_problem_is_named_at_its_field() {
        let refs = references(&spec(), &[Some(taskdef())]);
        let outcomes: Vec<Outcome> = refs
            .iter()
            .map(|r| match &r.lookup {
                Lookup::Role { name } if name == "exec" => Outcome::Found(Fact::Missing),
                Lookup::Parameter { name, .. } if name == "plain-name" => {
                    Outcome::Denied("AccessDeniedException".into())
                }
                Lookup::SecurityGroup { .. } => Outcome::Found(Fact::InVpc {
                    vpc: "vpc-2".into(),
                }),
                Lookup::TargetGroup { .. } => Outcome::Found(Fact::TargetGroup(TargetGroupFacts {
                    port: Some(80),
                    protocol: Some("UDP".into()),
                    target_type: Some("instance".into()),
                    vpc: Some("vpc-1".into()),
                    load_balancers: 0,
                })),
                Lookup::Distribution { .. } => Outcome::Found(Fact::Distribution {
                    origins: vec!["other.s3.amazonaws.com".into()],
                }),
                _ => outcome_for(r),
            })
            .collect();
        let got: Vec<String> = judge(&refs, &outcomes)
            .iter()
            .map(|f| {
                format!(
                    "{:?} {} {}: {}",
                    f.severity, f.at.path, f.resource, f.message
                )
            })
            .collect();
        insta::assert_yaml_snapshot!(got);
    }

    #[test]
    fn value_from_forms() {
        assert_eq!(
            secret_lookup("arn:aws:ssm:us-east-1:1:parameter/name"),
            Some(Lookup::Parameter {
                name: "name".into(),
                region: Some("us-east-1".into())
            })
        );
        assert_eq!(secret_lookup("arn:aws:s3:::bucket/key"), None);
        assert_eq!(secret_lookup(""), None);
        assert_eq!(role_name("arn:aws:iam::1:user/bob"), None);
        assert!(origin_is_bucket(
            "b.s3-website-us-east-1.amazonaws.com",
            "b"
        ));
        assert!(!origin_is_bucket("bb.s3.amazonaws.com", "b"));
        assert!(!origin_is_bucket("b.example.com", "b"));
    }
}
