//! The `health` plugin.

pub mod setup;
