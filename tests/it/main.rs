//! Gantry's integration tests: one binary, real parts (git repositories, SQLite, the real
//! `gantry` binary where a process boundary matters). GitHub is faked only at the wire, with
//! payloads from `@octokit/webhooks-examples` signed exactly as GitHub signs them.

mod support;

mod approvals;
mod caches;
mod chatops;
mod cli;
mod control;
mod crash;
mod dora;
mod drift;
mod ecs;
mod edge;
mod environments;
mod events;
mod fakes;
mod fuzz;
mod gitops;
mod hostile;
mod images;
mod leaks;
mod metrics;
mod pipeline;
mod poll;
mod queue;
mod s3proxy;
mod services;
mod sites;
mod tidy;
mod verify;
mod webhooks;
mod windows;
