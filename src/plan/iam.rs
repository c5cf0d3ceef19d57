//! `gantry iam-policy`: the least-privilege IAM policy Gantry needs for a set of manifests.
//! Every write action is scoped to the clusters, services, task definition families,
//! repositories, buckets and prefixes, distributions, edge functions and rules the manifests
//! name, and `iam:PassRole` to their task, execution and events roles; the few actions AWS
//! offers no resource scoping for are granted on `*` in statements whose `Sid` says so
//! (`UNSCOPED_IMAGES`, `UNSCOPED_ECS`). Pure: manifests in, a deterministic JSON document out.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::domain::taskdef::TaskDefinition;
use crate::domain::AppSpec;

/// What pushing images needs that AWS authorises only on `*`.
const UNSCOPED_IMAGES: &[&str] = &["ecr:GetAuthorizationToken"];

/// Actions that AWS authorises only on `Resource: "*"` (no resource-level permissions), and
/// read-only lookups `verify` makes that AWS does not scope either: what ECS work needs.
const UNSCOPED_ECS: &[&str] = &[
    "ecs:DeregisterTaskDefinition",
    "ecs:DescribeTaskDefinition",
    "ecs:ListTaskDefinitions",
    "ecs:RegisterTaskDefinition",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "elasticloadbalancing:DescribeTargetGroups",
    "logs:DescribeLogGroups",
    "ssm:DescribeParameters",
];

/// Where the policy applies: the account and region the manifests' resources live in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub account: String,
    pub region: String,
}

/// The account and region the manifests name (ECR repository hosts
/// `ACCOUNT.dkr.ecr.REGION.amazonaws.com`, role ARNs), for `--account`/`--region` defaults.
pub fn infer_scope(apps: &[&AppSpec]) -> (Option<String>, Option<String>) {
    let mut account = None;
    let mut region = None;
    for spec in apps {
        for image in &spec.images {
            let host = image.repository.split('/').next().unwrap_or("");
            let parts: Vec<&str> = host.split('.').collect();
            if let [acct, "dkr", "ecr", reg, ..] = parts.as_slice() {
                account.get_or_insert_with(|| acct.to_string());
                region.get_or_insert_with(|| reg.to_string());
            }
        }
        for td in task_definitions(spec) {
            for arn in td.execution_role_arn.iter().chain(td.task_role_arn.iter()) {
                if let Some(acct) = arn.split(':').nth(4).filter(|a| !a.is_empty()) {
                    account.get_or_insert_with(|| acct.to_owned());
                }
            }
        }
    }
    (account, region)
}

fn task_definitions(spec: &AppSpec) -> Vec<TaskDefinition> {
    spec.services
        .iter()
        .map(|s| s.task_definition_content.as_deref())
        .chain(
            spec.jobs
                .iter()
                .map(|j| j.task_definition_content.as_deref()),
        )
        .flatten()
        .filter_map(|c| serde_json::from_str(c).ok())
        .collect()
}

/// One statement being built: its actions, resources and condition.
type Statement = (BTreeSet<String>, BTreeSet<String>, Option<Value>);

#[derive(Default)]
struct Policy {
    /// By Sid.
    statements: BTreeMap<String, Statement>,
}

impl Policy {
    fn allow(&mut self, sid: &str, actions: &[&str], resources: impl IntoIterator<Item = String>) {
        let e = self.statements.entry(sid.to_owned()).or_default();
        e.0.extend(actions.iter().map(|a| a.to_string()));
        e.1.extend(resources);
    }

    fn allow_if(
        &mut self,
        sid: &str,
        actions: &[&str],
        resources: impl IntoIterator<Item = String>,
        condition: Value,
    ) {
        self.allow(sid, actions, resources);
        if let Some(e) = self.statements.get_mut(sid) {
            e.2 = Some(condition);
        }
    }

    fn document(self) -> Value {
        let statements: Vec<Value> = self
            .statements
            .into_iter()
            .filter(|(_, (a, r, _))| !a.is_empty() && !r.is_empty())
            .map(|(sid, (actions, resources, condition))| {
                let mut s = json!({
                    "Sid": sid,
                    "Effect": "Allow",
                    "Action": actions.into_iter().collect::<Vec<_>>(),
                    "Resource": resources.into_iter().collect::<Vec<_>>(),
                });
                if let Some(c) = condition {
                    s["Condition"] = c;
                }
                s
            })
            .collect();
        json!({ "Version": "2012-10-17", "Statement": statements })
    }
}

fn repository_name(uri: &str) -> &str {
    uri.split_once('/').map_or(uri, |(_, name)| name)
}

/// The policy for `apps` (each an app's name and spec) in `scope`, with the EventBridge bus
/// Gantry publishes to, if any.
pub fn policy(apps: &[(&str, &AppSpec)], scope: &Scope, bus: Option<&str>) -> Value {
    let (a, r) = (&scope.account, &scope.region);
    let mut p = Policy::default();
    let ecs = |kind: &str, rest: &str| format!("arn:aws:ecs:{r}:{a}:{kind}/{rest}");
    let mut pass_roles: BTreeSet<String> = BTreeSet::new();
    let mut events_roles: BTreeSet<String> = BTreeSet::new();
    let mut run_clusters: BTreeSet<String> = BTreeSet::new();
    let mut listed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (app, spec) in apps {
        for s in &spec.services {
            let service = ecs("service", &format!("{}/{}", s.cluster, s.name));
            p.allow(
                "EcsServices",
                &[
                    "ecs:CreateService",
                    "ecs:DescribeServices",
                    "ecs:UpdateService",
                    "ecs:ListServiceDeployments",
                    "ecs:TagResource",
                ],
                [service.clone()],
            );
            p.allow(
                "EcsServiceDeployments",
                &["ecs:DescribeServiceDeployments"],
                [ecs(
                    "service-deployment",
                    &format!("{}/{}/*", s.cluster, s.name),
                )],
            );
            p.allow(
                "EcsClusters",
                &["ecs:DescribeClusters"],
                [ecs("cluster", &s.cluster)],
            );
        }
        for td in task_definitions(spec) {
            // Migrations and scheduled jobs run tasks of these families only.
            p.allow(
                "EcsRunTasks",
                &["ecs:RunTask"],
                [ecs("task-definition", &format!("{}:*", td.family))],
            );
            pass_roles.extend(td.execution_role_arn.iter().cloned());
            pass_roles.extend(td.task_role_arn.iter().cloned());
            for c in &td.container_definitions {
                for secret in &c.secrets {
                    if secret.value_from.starts_with("arn:aws:secretsmanager:") {
                        p.allow(
                            "VerifySecretsMetadata",
                            &["secretsmanager:DescribeSecret"],
                            [secret.value_from.clone()],
                        );
                    }
                }
            }
        }
        run_clusters.extend(
            spec.services
                .iter()
                .map(|s| &s.cluster)
                .chain(spec.jobs.iter().map(|j| &j.cluster))
                .map(|c| ecs("cluster", c)),
        );
        let clusters: BTreeSet<String> = spec
            .services
            .iter()
            .map(|s| &s.cluster)
            .chain(spec.jobs.iter().map(|j| &j.cluster))
            .map(|c| ecs("task", &format!("{c}/*")))
            .collect();
        p.allow("EcsTasks", &["ecs:DescribeTasks", "ecs:StopTask"], clusters);
        for image in &spec.images {
            let repo = format!(
                "arn:aws:ecr:{r}:{a}:repository/{}",
                repository_name(&image.repository)
            );
            p.allow(
                "EcrPushPull",
                &[
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:BatchGetImage",
                    "ecr:CompleteLayerUpload",
                    "ecr:DescribeRepositories",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:InitiateLayerUpload",
                    "ecr:PutImage",
                    "ecr:UploadLayerPart",
                ],
                [repo.clone()],
            );
            if image.create_repository {
                p.allow("EcrCreateRepositories", &["ecr:CreateRepository"], [repo]);
            }
        }
        for site in &spec.sites {
            let trimmed = site.prefix.trim_matches('/');
            let prefix = if trimmed.is_empty() {
                String::new()
            } else {
                format!("{trimmed}/")
            };
            listed
                .entry(site.bucket.clone())
                .or_default()
                .insert(format!("{prefix}*"));
            p.allow(
                "S3SiteObjects",
                &["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
                [format!("arn:aws:s3:::{}/{prefix}*", site.bucket)],
            );
            if let Some(d) = &site.distribution {
                p.allow(
                    "CloudFrontDistributions",
                    &[
                        "cloudfront:CreateInvalidation",
                        "cloudfront:GetDistribution",
                        "cloudfront:GetDistributionConfig",
                        "cloudfront:GetInvalidation",
                        "cloudfront:UpdateDistribution",
                    ],
                    [format!("arn:aws:cloudfront::{a}:distribution/{d}")],
                );
                p.allow(
                    "CloudFrontEdgeFunctions",
                    &[
                        "cloudfront:CreateFunction",
                        "cloudfront:DescribeFunction",
                        "cloudfront:PublishFunction",
                        "cloudfront:UpdateFunction",
                    ],
                    [format!(
                        "arn:aws:cloudfront::{a}:function/{}",
                        super::edge::function_name(app, &site.name)
                    )],
                );
            }
        }
        for job in &spec.jobs {
            p.allow(
                "EventBridgeJobRules",
                &[
                    "events:DeleteRule",
                    "events:DescribeRule",
                    "events:ListTargetsByRule",
                    "events:PutRule",
                    "events:PutTargets",
                    "events:RemoveTargets",
                ],
                [format!(
                    "arn:aws:events:{r}:{a}:rule/{}",
                    super::jobs::rule_name(app, &job.name)
                )],
            );
            events_roles.insert(job.role_arn.clone());
        }
    }
    if let Some(e) = p.statements.get_mut("EcsRunTasks") {
        e.2 = Some(
            json!({"ArnEquals": {"ecs:cluster": run_clusters.into_iter().collect::<Vec<_>>()}}),
        );
    }
    // One statement per bucket: its listing only under the sites' prefixes.
    for (i, (bucket, prefixes)) in listed.into_iter().enumerate() {
        p.allow_if(
            &format!("S3ListSitePrefixes{i}"),
            &["s3:ListBucket"],
            [format!("arn:aws:s3:::{bucket}")],
            json!({"StringLike": {"s3:prefix": prefixes.into_iter().collect::<Vec<_>>()}}),
        );
    }
    if let Some(bus) = bus {
        let arn = if bus.starts_with("arn:") {
            bus.to_owned()
        } else {
            format!("arn:aws:events:{r}:{a}:event-bus/{bus}")
        };
        p.allow("EventBridgeDeploymentEvents", &["events:PutEvents"], [arn]);
    }
    p.allow(
        "VerifyRoles",
        &["iam:GetRole"],
        pass_roles.iter().chain(events_roles.iter()).cloned(),
    );
    p.allow_if(
        "PassTaskRolesToEcs",
        &["iam:PassRole"],
        pass_roles,
        json!({"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}),
    );
    p.allow_if(
        "PassJobRolesToEventBridge",
        &["iam:PassRole"],
        events_roles,
        json!({"StringEquals": {"iam:PassedToService": "events.amazonaws.com"}}),
    );
    let any_ecs = apps
        .iter()
        .any(|(_, s)| !s.services.is_empty() || !s.jobs.is_empty());
    let any_image = apps.iter().any(|(_, s)| !s.images.is_empty());
    let mut unscoped: Vec<&str> = Vec::new();
    if any_image {
        unscoped.extend(UNSCOPED_IMAGES);
    }
    if any_ecs {
        unscoped.extend(UNSCOPED_ECS);
    }
    p.allow(
        "NoResourceScopingOfferedByAws",
        &unscoped,
        (!unscoped.is_empty()).then(|| "*".to_owned()),
    );
    p.document()
}

/// Write actions granted on `*` that AWS does scope (a policy bug): should be empty.
pub fn unscoped_writes(document: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for s in document["Statement"].as_array().into_iter().flatten() {
        let star = s["Resource"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x == "*"));
        if !star {
            continue;
        }
        for a in s["Action"].as_array().into_iter().flatten() {
            let a = a.as_str().unwrap_or("");
            if !UNSCOPED_IMAGES.contains(&a) && !UNSCOPED_ECS.contains(&a) {
                out.push(a.to_owned());
            }
        }
    }
    out
}
