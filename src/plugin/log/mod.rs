//! The `log` plugin: one line per query in CoreDNS's formats.

pub mod format;
pub mod handler;
pub mod setup;
#[cfg(test)]
pub mod testutil;
