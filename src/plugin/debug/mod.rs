//! The `debug` plugin.

pub mod setup;
