//! Metrics registry with CoreDNS's names, the HTTP endpoints (health, ready, metrics), and
//! logging in CoreDNS's line shapes.

/// Process-wide metrics (CoreDNS families and plugin families).
#[derive(Default)]
pub struct Metrics {}
