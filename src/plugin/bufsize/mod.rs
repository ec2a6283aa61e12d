//! The `bufsize` plugin: caps the EDNS UDP size a query advertises before it goes upstream.

pub mod handler;
pub mod setup;
