//! The `loadbalance` plugin.

pub mod setup;
