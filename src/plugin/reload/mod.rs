//! The `reload` plugin.

pub mod setup;
