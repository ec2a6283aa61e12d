//! The `prometheus` plugin.

pub mod setup;
