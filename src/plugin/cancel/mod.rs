//! The `cancel` plugin: bounds how long the rest of the chain may take for one query.

pub mod handler;
pub mod setup;
