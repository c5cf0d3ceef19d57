//! The resources a manifest names in the live account, and what a lookup found of each:
//! plain data shared by the verify planner (`plan::verify`) and the `Inventory` port.

/// One resource to look up, as a manifest or task definition names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lookup {
    /// An IAM role, by name (the last segment of its ARN).
    Role {
        name: String,
    },
    /// A Secrets Manager secret, by ARN (full or partial) or name, in `region`.
    Secret {
        id: String,
        region: Option<String>,
    },
    /// An SSM parameter, by name (`/path/name`), in `region`.
    Parameter {
        name: String,
        region: Option<String>,
    },
    Subnet {
        id: String,
    },
    SecurityGroup {
        id: String,
    },
    TargetGroup {
        arn: String,
    },
    /// A CloudWatch Logs group, by exact name, in `region`.
    LogGroup {
        name: String,
        region: Option<String>,
    },
    /// An ECR repository, by name, in `region`.
    Repository {
        name: String,
        region: String,
    },
    Cluster {
        name: String,
    },
    Bucket {
        name: String,
    },
    Distribution {
        id: String,
    },
}

impl Lookup {
    /// What the resource is called in a report: `IAM role web-task`, `subnet subnet-1`.
    pub fn describe(&self) -> String {
        match self {
            Self::Role { name } => format!("IAM role `{name}`"),
            Self::Secret { id, .. } => format!("secret `{id}`"),
            Self::Parameter { name, .. } => format!("SSM parameter `{name}`"),
            Self::Subnet { id } => format!("subnet `{id}`"),
            Self::SecurityGroup { id } => format!("security group `{id}`"),
            Self::TargetGroup { arn } => format!("target group `{arn}`"),
            Self::LogGroup { name, .. } => format!("log group `{name}`"),
            Self::Repository { name, region } => {
                format!("ECR repository `{name}` ({region})")
            }
            Self::Cluster { name } => format!("ECS cluster `{name}`"),
            Self::Bucket { name } => format!("S3 bucket `{name}`"),
            Self::Distribution { id } => format!("CloudFront distribution `{id}`"),
        }
    }
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    /// The resource does not exist (or is not active: a deleted secret, an INACTIVE cluster).
    Missing,
    /// It exists; nothing more is needed of it.
    Present,
    /// A subnet or security group, and the VPC it belongs to.
    InVpc {
        vpc: String,
    },
    TargetGroup(TargetGroupFacts),
    /// A distribution and the domain names of its origins.
    Distribution {
        origins: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroupFacts {
    pub port: Option<u16>,
    /// `HTTP`, `HTTPS`, `TCP`, `UDP`, ...
    pub protocol: Option<String>,
    /// `ip`, `instance`, `lambda`, `alb`.
    pub target_type: Option<String>,
    pub vpc: Option<String>,
    /// Load balancers routing to it; ECS refuses a target group that has none.
    pub load_balancers: usize,
}
