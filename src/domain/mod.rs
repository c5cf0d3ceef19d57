//! Plain data types shared by every layer: the App spec read from manifests, deployments and
//! their steps, releases, and the push events Gantry reacts to. No IO and no behaviour beyond
//! small invariant-keeping helpers.

pub mod app;
pub mod deployment;
pub mod discord;
pub mod drift;
pub mod duration;
pub mod event;
pub mod git;
pub mod image_ref;
pub mod inventory;
pub mod push;
pub mod service;
pub mod site;
pub mod source;
pub mod taskdef;

pub use app::*;
pub use deployment::*;
pub use event::*;
pub use image_ref::*;
pub use push::*;
pub use site::*;
pub use source::*;
