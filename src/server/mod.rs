//! Listeners, request parsing, zone routing, reply scrubbing, and the runtime that ties a plan's
//! plugin chains to sockets.

pub mod request;
pub mod wire;

pub use request::{ClientEdns, Outcome, Proto, Reply, Request};
