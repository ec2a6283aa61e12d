//! The `cache` plugin.

pub mod setup;
