//! The `whoami` plugin.

pub mod setup;
