//! Pure planners: given plain data, decide what to do. No IO, no clocks, no async.
//!
//! - [`intake`]: which apps a GitHub push deploys, or why it deploys none.
//! - [`steps`]: the ordered steps a deployment of an app runs.

pub mod intake;
pub mod steps;
