//! Adapters: the only code that talks to the outside world (processes, git, AWS, registries,
//! GitHub, Discord, and Gantry's own API for the CLI). Each implements a narrow port owned by
//! the core, or is a client the composition root or a CLI command hands to the core.

pub mod api_client;
pub mod aws;
pub mod build_cache;
pub mod cloudfront;
pub mod discord;
pub mod ecr;
pub mod ecs;
pub mod eventbridge;
pub mod git;
pub mod github;
pub mod inventory;
pub mod lockfile;
pub mod process;
pub mod prometheus;
pub mod registry;
pub mod s3;
