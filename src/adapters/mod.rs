//! Adapters: the only code that talks to the outside world (processes, git, and later AWS,
//! registries, GitHub and Discord). Each implements a narrow port owned by the core.

pub mod git;
pub mod process;
