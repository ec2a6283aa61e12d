//! Conformance cases for CoreDNS-compatible servers: the case format, upstream fixtures (small
//! authoritative responders), a ConfigMap-style Corefile writer, a DNS/HTTP client, and the runner.
//! Nothing here depends on the `nodecache` crate: the server under test is any process started by
//! a command template.

pub mod case;
pub mod check;
pub mod client;
pub mod configmap;
pub mod diff;
pub mod fixture;
pub mod fuzz;
pub mod http;
pub mod ports;
pub mod records;
pub mod report;
pub mod runner;
pub mod server;
pub mod zone;
