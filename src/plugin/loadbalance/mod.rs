//! The `loadbalance` plugin: shuffles address records in replies (round robin), optionally
//! putting addresses from preferred subnets first.

pub mod handler;
pub mod setup;
pub mod weighted;
