//! The `timeouts` plugin (setup only): TCP read, write and idle timeouts and the per-connection
//! query limit, read by the server.

pub mod setup;
