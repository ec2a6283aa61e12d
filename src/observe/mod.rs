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
//!
//! Wiring (what the process does with this module):
//! - startup: [`logging::init`]`(quiet)`, [`dns_metrics::init`]`()`;
//! - after each (re)build: [`wiring::after_build`]`(&plan, &chains)` (endpoints, readiness
//!   checks, `coredns_plugin_enabled`; blocks briefly; its error reads like CoreDNS's listen
//!   errors);
//! - query path: the `prometheus` handler records chain results; the server records what it
//!   answers itself before or instead of a chain (no route, class refused, empty zone, panic)
//!   with [`dns_metrics::record_dropped_request`] and counts panics with
//!   [`dns_metrics::panic_inc`];
//! - reload: [`dns_metrics::set_reload_version`] / [`dns_metrics::reload_failed_inc`];
//! - SIGTERM: [`http::final_shutdown`]`().await` (lameduck), stop DNS, [`http::stop_all`].

pub mod dns_metrics;
pub mod histogram;
pub mod http;
pub mod logging;
pub mod process;
pub mod readiness;
pub mod wiring;

use std::sync::OnceLock;

use parking_lot::Mutex;
use prometheus_client::metrics::MetricType;
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
/// appended by the encoder, so pass `coredns_cache_hits` for `coredns_cache_hits_total`; a
/// `_total` suffix given for a counter is dropped so it appears once). The encoder ends the
/// help text with a period, so a trailing one in `help` is dropped.
pub fn register(name: &str, help: &str, metric: impl Metric) {
    let name = match metric.metric_type() {
        MetricType::Counter => name.strip_suffix("_total").unwrap_or(name),
        _ => name,
    };
    let help = help.strip_suffix('.').unwrap_or(help);
    registry().lock().register(name, help, metric);
}

/// `Content-Type` of [`encode_text`] output.
pub const TEXT_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// `Content-Type` of [`encode_openmetrics`] output.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The registry in Prometheus's text format 0.0.4 (what Go's `promhttp` serves by default).
pub fn encode_text() -> String {
    // Every page carries the core families, as Prometheus's default registry does in CoreDNS.
    dns_metrics::init();
    let mut out = String::with_capacity(16 * 1024);
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry().lock());
    out
}

/// The registry in OpenMetrics text format (served when a scraper asks for it).
pub fn encode_openmetrics() -> String {
    dns_metrics::init();
    let mut out = String::with_capacity(16 * 1024);
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry().lock());
    out
}
