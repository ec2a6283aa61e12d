//! The `minimal` plugin.

pub mod setup;
