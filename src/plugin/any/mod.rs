//! The `any` plugin.

pub mod setup;
