//! The `timeouts` plugin.

pub mod setup;
