//! Gantry: a GitOps deployment controller for ECS Fargate services and S3/CloudFront sites.
//!
//! The library holds everything; `src/main.rs` only parses the command line and hands over to
//! [`cli::run`]. See `ARCHITECTURE.md` for the map of modules and the invariants between them.

pub mod adapters;
pub mod app;
pub mod cli;
pub mod config;
pub mod control;
pub mod domain;
pub mod http;
pub mod images;
pub mod manifests;
pub mod pipeline;
pub mod plan;
pub mod ports;
pub mod queue;
pub mod reporting;
pub mod secret;
pub mod services;
pub mod sites;
pub mod store;
pub mod telemetry;
pub mod verify;
