//! The `hosts` plugin: answers A, AAAA and PTR from a hosts file and inline entries.

pub mod handler;
pub mod hostsfile;
pub mod setup;
