//! The ports: the narrow traits the core owns and adapters implement, with the plain types
//! that cross them. Below the pipeline, the services, images, sites and reporters, which all
//! speak to the outside world only through these; nothing here does IO itself (the
//! [`StepLog`] is an in-memory, bounded, secret-scrubbed buffer that steps write to).

mod cache;
mod clock;
mod ecs;
mod inventory;
mod metrics;
mod objects;
mod process;
mod registry;
mod report;
mod source;
mod step_log;

pub use cache::*;
pub use clock::*;
pub use ecs::*;
pub use inventory::*;
pub use metrics::*;
pub use objects::*;
pub use process::*;
pub use registry::*;
pub use report::*;
pub use source::*;
pub use step_log::*;
