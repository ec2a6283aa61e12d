//! The `rewrite` plugin.

pub mod setup;
