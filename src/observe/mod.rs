//! Metrics registry with CoreDNS's names, the HTTP endpoints (health, ready, metrics), and
//! logging in CoreDNS's line shapes.
//!
//! Metrics: one process-wide registry (as CoreDNS and node-cache share Prometheus's default
//! registry). Each area defines its metric families once (e.g. in a `LazyLock` static) and
//! adds them with [`register`]; hot paths keep pre-resolved handles
//! (`family.get_or_create(&labels).clone()`), never look labels up per query.
//!
//! Logging convention: `tracing` events with `target: "plugin/<name>"` render as
//! `[LEVEL] plugin/<name>: message`; other targets render as `[LEVEL] message`.

use std::sync::OnceLock;

use parking_lot::Mutex;
use prometheus_client::registry::{Metric, Registry};

/// Process-wide metrics handle passed to plugin builds (the registry itself is global).
#[derive(Default)]
pub struct Metrics {}

/// The process-wide registry.
pub fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(Registry::default()))
}

/// Adds a metric family to the process-wide registry under `name` (counters get `_total`
/// appended by the encoder, so pass `coredns_cache_hits` for `coredns_cache_hits_total`).
pub fn register(name: &str, help: &str, metric: impl Metric) {
    registry().lock().register(name, help, metric);
}
