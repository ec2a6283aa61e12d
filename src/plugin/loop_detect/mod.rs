//! The `loop` plugin.

pub mod setup;
