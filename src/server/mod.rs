//! Listeners, request parsing, zone routing, reply scrubbing, and the runtime that ties a plan's
//! plugin chains to sockets.

pub mod client;
pub mod drain;
pub mod fast;
pub mod handle;
pub mod listeners;
pub mod mmsg;
pub mod pump_watch;
pub mod query;
pub mod reply;
pub mod request;
pub mod runtime;
pub mod sockets;
pub mod tcp;
pub mod tcp_conns;
pub mod udp_batch;
pub mod wire;
pub mod zones;

pub use listeners::Listeners;
pub use request::{ClientEdns, Outcome, Proto, Reply, Request};
pub use runtime::Runtime;
