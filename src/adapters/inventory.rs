//! `Inventory` over the AWS SDK: one read-only, metadata-only call per lookup (IAM GetRole,
//! Secrets Manager DescribeSecret, SSM DescribeParameters, EC2 DescribeSubnets and
//! DescribeSecurityGroups, ELBv2 DescribeTargetGroups, CloudWatch Logs DescribeLogGroups, ECR
//! DescribeRepositories, ECS DescribeClusters, S3 HeadBucket, CloudFront GetDistribution).
//! A secret's or parameter's value is never asked for. Lookups in another region than the
//! configured one (a secret ARN's, `awslogs-region`) get a client for that region.

use async_trait::async_trait;
use aws_config::{Region, SdkConfig};
use aws_sdk_ec2::types::Filter;
use aws_sdk_ssm::types::ParameterStringFilter;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::aws::{error_chain, transient};
use crate::ports::{Fact, Inventory, Lookup, LookupError, TargetGroupFacts};

/// Clients of the configured region are made once; regional lookups (`in_region`) make
/// theirs per call.
pub struct AwsInventory {
    sdk: SdkConfig,
    iam: aws_sdk_iam::Client,
    ec2: aws_sdk_ec2::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    ecs: aws_sdk_ecs::Client,
    s3: aws_sdk_s3::Client,
    cloudfront: aws_sdk_cloudfront::Client,
}

impl AwsInventory {
    pub fn new(sdk: &SdkConfig) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(super::aws::custom_s3_endpoint(sdk))
            .build();
        Self {
            sdk: sdk.clone(),
            iam: aws_sdk_iam::Client::new(sdk),
            ec2: aws_sdk_ec2::Client::new(sdk),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(sdk),
            ecs: aws_sdk_ecs::Client::new(sdk),
            s3: aws_sdk_s3::Client::from_conf(s3),
            cloudfront: aws_sdk_cloudfront::Client::new(sdk),
        }
    }

    /// The shared configuration, moved to `region` when one is named.
    fn in_region(&self, region: Option<&str>) -> SdkConfig {
        match region {
            Some(r) if Some(r) != self.sdk.region().map(|x| x.as_ref()) => self
                .sdk
                .to_builder()
                .region(Region::new(r.to_owned()))
                .build(),
            _ => self.sdk.clone(),
        }
    }
}

/// Codes that mean "this does not exist" (or is malformed, which cannot exist either).
const MISSING: &[&str] = &[
    "NoSuchEntity",
    "ResourceNotFoundException",
    "TargetGroupNotFound",
    "RepositoryNotFoundException",
    "NoSuchDistribution",
    "NotFound",
    "NoSuchBucket",
    "ValidationError",
    "InvalidSubnetID.NotFound",
    "InvalidGroup.NotFound",
];

const DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "AuthorizationError",
    "Forbidden",
];

/// Sorts an SDK error into missing (`Ok(Fact::Missing)`), denied, transient or failed.
fn classify<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    e: SdkError<E, HttpResponse>,
) -> Result<Fact, LookupError> {
    let code = e.code().map(str::to_owned);
    let status = match &e {
        SdkError::ServiceError(s) => Some(s.raw().status().as_u16()),
        _ => None,
    };
    if code.as_deref().is_some_and(|c| MISSING.contains(&c)) || status == Some(404) {
        return Ok(Fact::Missing);
    }
    let message = error_chain(&e);
    if code.as_deref().is_some_and(|c| DENIED.contains(&c)) || status == Some(403) {
        return Err(LookupError::Denied(code.unwrap_or(message)));
    }
    if transient(&e) {
        return Err(LookupError::Transient(message));
    }
    Err(LookupError::Failed(message))
}

fn present(found: bool) -> Fact {
    if found {
        Fact::Present
    } else {
        Fact::Missing
    }
}

#[async_trait]
impl Inventory for AwsInventory {
    #[tracing::instrument(skip_all, fields(resource = %lookup.describe()))]
    async fn look(&self, lookup: &Lookup) -> Result<Fact, LookupError> {
        match lookup {
            Lookup::Role { name } => self
                .iam
                .get_role()
                .role_name(name)
                .send()
                .await
                .map(|_| Fact::Present)
                .or_else(classify),
            Lookup::Secret { id, region } => {
                aws_sdk_secretsmanager::Client::new(&self.in_region(region.as_deref()))
                    .describe_secret()
                    .secret_id(id)
                    .send()
                    .await
                    // A secret scheduled for deletion cannot be read by a task.
                    .map(|s| present(s.deleted_date().is_none()))
                    .or_else(classify)
            }
            Lookup::Parameter { name, region } => {
                let filter = ParameterStringFilter::builder()
                    .key("Name")
                    .option("Equals")
                    .values(name)
                    .build()
                    .map_err(|e| LookupError::Failed(e.to_string()))?;
                aws_sdk_ssm::Client::new(&self.in_region(region.as_deref()))
                    .describe_parameters()
                    .parameter_filters(filter)
                    .send()
                    .await
                    .map(|out| {
                        present(out.parameters().iter().any(|p| {
                            p.name().is_some_and(|n| {
                                n == name
                                    || n.trim_start_matches('/') == name.trim_start_matches('/')
                            })
                        }))
                    })
                    .or_else(classify)
            }
            Lookup::Subnet { id } => self
                .ec2
                .describe_subnets()
                .filters(Filter::builder().name("subnet-id").values(id).build())
                .send()
                .await
                .map(|out| match out.subnets().first().and_then(|s| s.vpc_id()) {
                    Some(vpc) => Fact::InVpc {
                        vpc: vpc.to_owned(),
                    },
                    None => Fact::Missing,
                })
                .or_else(classify),
            Lookup::SecurityGroup { id } => self
                .ec2
                .describe_security_groups()
                .filters(Filter::builder().name("group-id").values(id).build())
                .send()
                .await
                .map(
                    |out| match out.security_groups().first().and_then(|g| g.vpc_id()) {
                        Some(vpc) => Fact::InVpc {
                            vpc: vpc.to_owned(),
                        },
                        None => Fact::Missing,
                    },
                )
                .or_else(classify),
            Lookup::TargetGroup { arn } => self
                .elb
                .describe_target_groups()
                .target_group_arns(arn)
                .send()
                .await
                .map(|out| match out.target_groups().first() {
                    Some(tg) => Fact::TargetGroup(TargetGroupFacts {
                        port: tg.port().and_then(|p| u16::try_from(p).ok()),
                        protocol: tg.protocol().map(|p| p.as_str().to_owned()),
                        target_type: tg.target_type().map(|t| t.as_str().to_owned()),
                        vpc: tg.vpc_id().map(str::to_owned),
                        load_balancers: tg.load_balancer_arns().len(),
                    }),
                    None => Fact::Missing,
                })
                .or_else(classify),
            Lookup::LogGroup { name, region } => {
                let client =
                    aws_sdk_cloudwatchlogs::Client::new(&self.in_region(region.as_deref()));
                let mut pages = client
                    .describe_log_groups()
                    .log_group_name_prefix(name)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    match page {
                        Ok(out) => {
                            if out
                                .log_groups()
                                .iter()
                                .any(|g| g.log_group_name() == Some(name.as_str()))
                            {
                                return Ok(Fact::Present);
                            }
                        }
                        Err(e) => return classify(e),
                    }
                }
                Ok(Fact::Missing)
            }
            Lookup::Repository { name, region } => {
                aws_sdk_ecr::Client::new(&self.in_region(Some(region)))
                    .describe_repositories()
                    .repository_names(name)
                    .send()
                    .await
                    .map(|out| present(!out.repositories().is_empty()))
                    .or_else(classify)
            }
            Lookup::Cluster { name } => self
                .ecs
                .describe_clusters()
                .clusters(name)
                .send()
                .await
                .map(|out| present(out.clusters().iter().any(|c| c.status() == Some("ACTIVE"))))
                .or_else(classify),
            Lookup::Bucket { name } => {
                match self.s3.head_bucket().bucket(name).send().await {
                    Ok(_) => Ok(Fact::Present),
                    // A bucket in another region answers 301: it exists.
                    Err(SdkError::ServiceError(s)) if s.raw().status().as_u16() == 301 => {
                        Ok(Fact::Present)
                    }
                    Err(e) => classify(e),
                }
            }
            Lookup::Distribution { id } => self
                .cloudfront
                .get_distribution()
                .id(id)
                .send()
                .await
                .map(|out| {
                    let origins = out
                        .distribution()
                        .and_then(|d| d.distribution_config())
                        .and_then(|c| c.origins())
                        .map(|o| {
                            o.items()
                                .iter()
                                .map(|o| o.domain_name().to_owned())
                                .collect()
                        })
                        .unwrap_or_default();
                    Fact::Distribution { origins }
                })
                .or_else(classify),
        }
    }
}
