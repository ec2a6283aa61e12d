//! The `template` plugin.

pub mod setup;
