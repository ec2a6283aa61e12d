//! The `ready` plugin.

pub mod setup;
