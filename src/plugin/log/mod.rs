//! The `log` plugin.

pub mod setup;
