//! The `errors` plugin.

pub mod setup;
