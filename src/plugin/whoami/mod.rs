//! The `whoami` plugin: answers every query with the client's address and port.

pub mod handler;
pub mod setup;
