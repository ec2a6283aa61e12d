//! The `hosts` plugin.

pub mod setup;
