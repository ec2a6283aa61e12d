//! nodecache: a CoreDNS-compatible Corefile engine and a drop-in replacement for Kubernetes
//! NodeLocal DNSCache (`node-cache`).
//!
//! Data flow: Corefile text ([`corefile`]) → typed configuration and plan ([`config`]) →
//! runtime plugin chains ([`plugin`]) → sockets and routing ([`server`]), hot-swapped by
//! [`reload`]. [`nodelocal`] holds node-cache's own parts; [`observe`] metrics, HTTP endpoints
//! and logging.

pub mod cli;
pub mod config;
pub mod corefile;
pub mod dnsmsg;
pub mod dnsname;
pub mod engine;
pub mod gocompat;
pub mod goflag;
pub mod lifecycle;
pub mod memory;
pub mod nodelocal;
pub mod observe;
pub mod plugin;
pub mod reload;
pub mod residency;
pub mod server;
pub mod statedir;
