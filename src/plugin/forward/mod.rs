//! The `forward` plugin.

pub mod setup;
