//! The `bind` plugin.

pub mod setup;
