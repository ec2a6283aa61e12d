//! The state directory (`-statedir DIR`) that instances on one node share: which instances are
//! alive (so the last one out tears the node setup down), the handover of a running instance's
//! cache to a starting one (a unix socket per instance), and the snapshot an instance that
//! stops with no successor leaves for the next one.
//!
//! Liveness is a lock, not a pid: each instance holds an exclusive `flock` on its own file in
//! `instances/` for as long as it runs (pods have their own pid namespaces, and a killed
//! process releases its locks). `lock` serialises joining and leaving, so two instances never
//! both believe the other will stay.

pub mod handover;
pub mod registry;

pub use registry::{Registration, StateDir};

/// The file an instance that stops with no successor writes its cache to.
pub const SNAPSHOT_FILE: &str = "cache.snapshot";
