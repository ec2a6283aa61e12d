//! The `prometheus` plugin: records CoreDNS's per-query metrics after the rest of the chain ran,
//! and asks for a `/metrics` endpoint (served by [`crate::observe::http`]).

pub mod handler;
pub mod setup;
