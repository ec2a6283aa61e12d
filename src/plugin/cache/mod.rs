//! The `cache` plugin: answers stored in wire form, served by patching a copy of the bytes.

pub mod classify;
pub mod handler;
pub mod key;
pub mod metrics;
pub mod setup;
pub mod snapshot;
pub mod store;
pub mod wire_scan;

pub use handler::Cache;
