//! The `errors` plugin: logs errors the rest of the chain returns, optionally consolidating
//! repeated ones.

pub mod handler;
pub mod setup;
