//! The `bufsize` plugin.

pub mod setup;
