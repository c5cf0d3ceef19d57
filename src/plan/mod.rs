//! Pure planners: given plain data, decide what to do. No IO, no clocks, no async.
//!
//! - [`intake`]: which apps a GitHub push deploys, or why it deploys none.
//! - [`steps`]: the ordered steps a deployment of an app runs.
//! - [`site`], [`headers`], [`invalidation`]: static-site sync plans, object headers and CDN
//!   invalidation paths.
//! - [`edge`]: the CloudFront Function generated from a site's redirect and rewrite rules.
//! - [`dockerfile`]: the base images a Dockerfile's `FROM` lines name.
//! - [`jobs`]: scheduled jobs' EventBridge rules: names, schedules, what differs from live.
//! - [`import`]: the manifest fields of a live ECS service (`gantry import ecs`).
//! - [`poll`]: polling remotes for pushes a webhook did not bring: sources, schedule, refs.
//! - [`cache`]: build caches: where they live, their keys, which entry a build starts from,
//!   which entries are evicted.

pub mod cache;
pub mod chatops;
pub mod copilot;
pub mod dockerfile;
pub mod dora;
pub mod drift;
pub mod edge;
pub mod gate;
pub mod gitops;
pub mod headers;
pub mod iam;
pub mod import;
pub mod intake;
pub mod invalidation;
pub mod jobs;
pub mod locate;
pub mod lock;
pub mod notify;
pub mod oci;
pub mod poll;
pub mod preview;
pub mod promote;
pub mod render;
pub mod retry;
pub mod rollout;
pub mod service_diff;
pub mod site;
pub mod steps;
pub mod taskdef_check;
pub mod taskdef_diff;
pub mod verify;
pub mod window;
