//! The `forward` plugin: proxies queries to upstream servers over UDP, TCP or TLS, with
//! connection pooling, health checks and CoreDNS's selection and retry behaviour.

pub mod direct;
pub mod direct_tcp;
pub mod goparse;
pub mod handler;
pub mod inflight;
pub mod metrics;
pub mod msg;
pub mod policy;
pub mod resolve;
pub mod setup;
pub mod tls;
pub mod upstream;
pub mod waiting;
