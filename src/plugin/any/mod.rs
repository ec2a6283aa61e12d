//! The `any` plugin: answers ANY queries with the RFC 8482 HINFO record.

pub mod handler;
pub mod setup;
