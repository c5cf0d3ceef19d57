//! Adapters: the only code that talks to the outside world (processes, git, AWS, and later
//! registries, GitHub and Discord). Each implements a narrow port owned by the core.

pub mod aws;
pub mod cloudfront;
pub mod discord;
pub mod ecr;
pub mod ecs;
pub mod eventbridge;
pub mod git;
pub mod github;
pub mod process;
pub mod registry;
pub mod s3;
