//! The `cancel` plugin.

pub mod setup;
