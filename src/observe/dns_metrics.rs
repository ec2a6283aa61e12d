//! CoreDNS's core metric families (`plugin/metrics/vars`, reload, health, build info) with the
//! same names, labels and buckets, and pre-resolved per-(server, zone) recorders for the query
//! path.
//!
//! Series appear the first time they are observed, as with Prometheus's Go client; families
//! without labels (panics, reload failures, health) are present from [`init`] on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::histogram::{size_buckets, slim_time_buckets, time_buckets, Histogram};
use crate::server::{Proto, Request};

type L2 = [(&'static str, String); 2];
type L3 = [(&'static str, String); 3];
type L4 = [(&'static str, String); 4];
type L5 = [(&'static str, String); 5];
type L6 = [(&'static str, String); 6];
type HistFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The zone label for queries refused before any chain ran.
pub const DROPPED: &str = "dropped";

/// Query types that get their own `type` label value; everything else is `other`.
const MONITORED_TYPES: [(u16, &str); 19] = [
    (1, "A"),
    (28, "AAAA"),
    (5, "CNAME"),
    (48, "DNSKEY"),
    (43, "DS"),
    (15, "MX"),
    (50, "NSEC3"),
    (47, "NSEC"),
    (2, "NS"),
    (12, "PTR"),
    (46, "RRSIG"),
    (6, "SOA"),
    (33, "SRV"),
    (16, "TXT"),
    (65, "HTTPS"),
    (64, "SVCB"),
    (251, "IXFR"),
    (252, "AXFR"),
    (255, "ANY"),
];
const TYPE_SLOTS: usize = MONITORED_TYPES.len() + 1;

/// The `type` label for a query type.
pub fn qtype_label(qtype: u16) -> &'static str {
    MONITORED_TYPES.iter().find(|(t, _)| *t == qtype).map_or("other", |(_, n)| n)
}

fn qtype_slot(qtype: u16) -> usize {
    MONITORED_TYPES.iter().position(|(t, _)| *t == qtype).unwrap_or(MONITORED_TYPES.len())
}

/// The rcode label: the DNS name of the rcode, or `RCODE<n>` when it has none.
pub fn rcode_label(rcode: u16) -> String {
    crate::gocompat::names::rcode_name(rcode).map_or_else(|| format!("RCODE{rcode}"), str::to_string)
}

/// The `family` label for a client address: 1 for IPv4 (including v4-mapped IPv6), else 2.
pub fn family_of(addr: &SocketAddr) -> u8 {
    match addr {
        SocketAddr::V4(_) => 1,
        SocketAddr::V6(a) if a.ip().to_ipv4_mapped().is_some() => 1,
        SocketAddr::V6(_) => 2,
    }
}

/// All core families, registered once in the process-wide registry.
pub struct DnsMetrics {
    requests: Family<L6, Counter>,
    duration: HistFamily<L3>,
    request_size: HistFamily<L4>,
    response_size: HistFamily<L4>,
    responses: Family<L5, Counter>,
    do_requests: Family<L3, Counter>,
    /// `coredns_panics_total`.
    pub panics: Counter,
    build_info: Family<L3, Gauge>,
    plugin_enabled: Family<L4, Gauge>,
    /// `coredns_reload_failed_total`.
    pub reload_failed: Counter,
    reload_version: Family<L2, Gauge>,
    /// `coredns_health_request_duration_seconds`.
    pub health_duration: Histogram,
    /// `coredns_health_request_failures_total`.
    pub health_failures: Counter,
}

static METRICS: LazyLock<DnsMetrics> = LazyLock::new(|| {
    let m = DnsMetrics {
        requests: Family::default(),
        duration: Family::new_with_constructor(|| Histogram::new(time_buckets())),
        request_size: Family::new_with_constructor(|| Histogram::new(size_buckets())),
        response_size: Family::new_with_constructor(|| Histogram::new(size_buckets())),
        responses: Family::default(),
        do_requests: Family::default(),
        panics: Counter::default(),
        build_info: Family::default(),
        plugin_enabled: Family::default(),
        reload_failed: Counter::default(),
        reload_version: Family::default(),
        health_duration: Histogram::new(slim_time_buckets()),
        health_failures: Counter::default(),
    };
    use super::register;
    register("coredns_dns_requests", "Counter of DNS requests made per zone, protocol and family", m.requests.clone());
    register(
        "coredns_dns_request_duration_seconds",
        "Histogram of the time (in seconds) each request took per zone",
        m.duration.clone(),
    );
    register(
        "coredns_dns_request_size_bytes",
        "Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol",
        m.request_size.clone(),
    );
    register("coredns_dns_do_requests", "Counter of DNS requests with DO bit set per zone", m.do_requests.clone());
    register("coredns_dns_response_size_bytes", "Size of the returned response in bytes", m.response_size.clone());
    register("coredns_dns_responses", "Counter of response status codes", m.responses.clone());
    register("coredns_panics", "A metrics that counts the number of panics", m.panics.clone());
    register(
        "coredns_plugin_enabled",
        "A metric that indicates whether a plugin is enabled on per server and zone basis",
        m.plugin_enabled.clone(),
    );
    register(
        "coredns_build_info",
        "A metric with a constant '1' value labeled by version, revision, and goversion from which CoreDNS was built",
        m.build_info.clone(),
    );
    register("coredns_reload_failed", "Counter of the number of failed reload attempts", m.reload_failed.clone());
    register(
        "coredns_reload_version_info",
        "A metric with a constant '1' value labeled by hash, and value which type of hash generated",
        m.reload_version.clone(),
    );
    register(
        "coredns_health_request_duration_seconds",
        "Histogram of the time (in seconds) each request took",
        m.health_duration.clone(),
    );
    register(
        "coredns_health_request_failures",
        "The number of times the health check failed",
        m.health_failures.clone(),
    );
    super::process::register_collector();
    m
});

/// The core families (registering them on first use).
pub fn metrics() -> &'static DnsMetrics {
    &METRICS
}

/// Registers the core families and the process collector now, so that label-less series are
/// present from startup as in CoreDNS.
pub fn init() {
    LazyLock::force(&METRICS);
}

/// Increments `coredns_panics_total` (the server calls it for each recovered panic).
pub fn panic_inc() {
    METRICS.panics.inc();
}

/// Increments `coredns_reload_failed_total`.
pub fn reload_failed_inc() {
    METRICS.reload_failed.inc();
}

/// Sets `coredns_reload_version_info{hash="sha512",value=<hash>}` to 1 (the only series).
pub fn set_reload_version(hash: &str) {
    METRICS.reload_version.clear();
    METRICS.reload_version.get_or_create(&[("hash", "sha512".to_string()), ("value", hash.to_string())]).set(1);
}

/// Sets `coredns_build_info{version,revision,goversion}` to 1 (the only series).
pub fn set_build_info(version: &str, revision: &str, goversion: &str) {
    METRICS.build_info.clear();
    METRICS
        .build_info
        .get_or_create(&[
            ("version", version.to_string()),
            ("revision", revision.to_string()),
            ("goversion", goversion.to_string()),
        ])
        .set(1);
}

/// Sets `coredns_plugin_enabled{server,zone,view="",name}` to 1.
pub fn set_plugin_enabled(server: &str, zone: &str, name: &str) {
    METRICS
        .plugin_enabled
        .get_or_create(&[
            ("server", server.to_string()),
            ("zone", zone.to_string()),
            ("view", String::new()),
            ("name", name.to_string()),
        ])
        .set(1);
}

/// Removes every `coredns_plugin_enabled` series (done on reload before the new set is written).
pub fn reset_plugin_enabled() {
    METRICS.plugin_enabled.clear();
}

/// One query's facts, as the metrics plugin (or the server, for dropped queries) reports them.
#[derive(Clone, Copy, Debug)]
pub struct Observation {
    /// Transport.
    pub proto: Proto,
    /// Address family label, 1 or 2 (see [`family_of`]).
    pub family: u8,
    /// Query type.
    pub qtype: u16,
    /// Whether the query had the DO bit.
    pub do_bit: bool,
    /// The query's length as received.
    pub request_size: usize,
    /// The written reply's length, 0 if nothing was written.
    pub response_size: usize,
    /// The rcode recorded in `coredns_dns_responses_total`.
    pub rcode: u16,
    /// The plugin that wrote the reply, empty if none.
    pub plugin: &'static str,
    /// Time spent handling the query.
    pub duration: Duration,
}

impl Observation {
    /// The observation for `req` answered with `rcode` by `plugin` (empty when the server
    /// wrote the reply) in `response_size` bytes (0 when nothing was written); the duration
    /// runs from when the server received the query.
    pub fn from_request(req: &Request, rcode: u16, plugin: &'static str, response_size: usize) -> Observation {
        Observation {
            proto: req.proto,
            family: family_of(&req.client),
            qtype: req.qtype,
            do_bit: req.dnssec_ok(),
            request_size: if req.received_len > 0 { req.received_len } else { req.wire.len() },
            response_size,
            rcode,
            plugin,
            duration: req.started.elapsed(),
        }
    }
}

/// Pre-resolved series for one (server, zone, view): recording a query touches only atomics
/// (series are created on first use).
pub struct ZoneRecorder {
    server: String,
    zone: String,
    view: String,
    requests: [OnceLock<Counter>; 2 * 2 * TYPE_SLOTS],
    duration: OnceLock<Histogram>,
    request_size: [OnceLock<Histogram>; 2],
    response_size: [OnceLock<Histogram>; 2],
    do_requests: OnceLock<Counter>,
    /// (rcode, plugin) series seen so far; read lock-free, copied on the rare insert.
    responses: ArcSwap<Vec<(u16, &'static str, Counter)>>,
    /// Serialises inserts into `responses`.
    responses_insert: Mutex<()>,
}

impl std::fmt::Debug for ZoneRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneRecorder").field("server", &self.server).field("zone", &self.zone).finish()
    }
}

/// Recorders by (server, zone, view).
type RecorderMap = HashMap<(String, String, String), Arc<ZoneRecorder>>;

static RECORDERS: LazyLock<Mutex<RecorderMap>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// The shared recorder for (server, zone) with an empty view. Obtain it once (at runtime build)
/// and keep it; the same `Arc` is returned for the same labels across reloads.
pub fn recorder(server: &str, zone: &str) -> Arc<ZoneRecorder> {
    recorder_with_view(server, zone, "")
}

/// The shared recorder for (server, zone, view).
pub fn recorder_with_view(server: &str, zone: &str, view: &str) -> Arc<ZoneRecorder> {
    init();
    let key = (server.to_string(), zone.to_string(), view.to_string());
    RECORDERS
        .lock()
        .entry(key)
        .or_insert_with(|| {
            Arc::new(ZoneRecorder {
                server: server.to_string(),
                zone: zone.to_string(),
                view: view.to_string(),
                requests: std::array::from_fn(|_| OnceLock::new()),
                duration: OnceLock::new(),
                request_size: std::array::from_fn(|_| OnceLock::new()),
                response_size: std::array::from_fn(|_| OnceLock::new()),
                do_requests: OnceLock::new(),
                responses: ArcSwap::from_pointee(Vec::new()),
                responses_insert: Mutex::new(()),
            })
        })
        .clone()
}

/// Records a query refused before any chain ran (`zone="dropped"`, `plugin=""`).
pub fn record_dropped(server: &str, obs: &Observation) {
    dropped_recorder(server).record(obs);
}

/// Records `req`, answered by the server itself with `rcode` in `response_size` bytes before
/// any chain ran (no route, class refused, empty zone, recovered panic), as CoreDNS's
/// `errorAndMetricsFunc` does: `zone="dropped"`, `plugin=""`, duration ~0.
pub fn record_dropped_request(req: &Request, rcode: u16, response_size: usize) {
    let mut obs = Observation::from_request(req, rcode, "", response_size);
    obs.duration = Duration::ZERO;
    dropped_recorder(&req.server).record(&obs);
}

/// The `dropped` recorder for a listener label, cached lock-free after the first use.
fn dropped_recorder(server: &str) -> Arc<ZoneRecorder> {
    static CACHE: LazyLock<ArcSwap<Vec<Arc<ZoneRecorder>>>> = LazyLock::new(|| ArcSwap::from_pointee(Vec::new()));
    if let Some(r) = CACHE.load().iter().find(|r| r.server == server) {
        return r.clone();
    }
    let r = recorder(server, DROPPED);
    CACHE.rcu(|list| {
        let mut next = (**list).clone();
        if !next.iter().any(|x| x.server == server) {
            next.push(r.clone());
        }
        next
    });
    r
}

fn proto_slot(p: Proto) -> usize {
    match p {
        Proto::Udp => 0,
        Proto::Tcp => 1,
    }
}

impl ZoneRecorder {
    /// The `server` label.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The `zone` label.
    pub fn zone(&self) -> &str {
        &self.zone
    }

    fn base3(&self) -> L3 {
        [("server", self.server.clone()), ("zone", self.zone.clone()), ("view", self.view.clone())]
    }

    fn base4(&self, proto: Proto) -> L4 {
        let [a, b, c] = self.base3();
        [a, b, c, ("proto", proto.as_str().to_string())]
    }

    /// Records one query in every core family.
    pub fn record(&self, obs: &Observation) {
        let m = metrics();
        let ps = proto_slot(obs.proto);
        if obs.do_bit {
            self.do_requests.get_or_init(|| m.do_requests.get_or_create_owned(&self.base3())).inc();
        }
        let fam_slot = usize::from(obs.family == 2);
        let ts = qtype_slot(obs.qtype);
        if let Some(cell) = self.requests.get((ps * 2 + fam_slot) * TYPE_SLOTS + ts) {
            cell.get_or_init(|| {
                let [a, b, c, d] = self.base4(obs.proto);
                let fam = if obs.family == 2 { "2" } else { "1" };
                m.requests.get_or_create_owned(&[
                    a,
                    b,
                    c,
                    d,
                    ("family", fam.to_string()),
                    ("type", qtype_label(obs.qtype).to_string()),
                ])
            })
            .inc();
        }
        self.duration.get_or_init(|| m.duration.get_or_create_owned(&self.base3())).observe(obs.duration.as_secs_f64());
        if let Some(cell) = self.response_size.get(ps) {
            cell.get_or_init(|| m.response_size.get_or_create_owned(&self.base4(obs.proto)))
                .observe(obs.response_size as f64);
        }
        if let Some(cell) = self.request_size.get(ps) {
            cell.get_or_init(|| m.request_size.get_or_create_owned(&self.base4(obs.proto)))
                .observe(obs.request_size as f64);
        }
        self.inc_response(obs.rcode, obs.plugin);
    }

    fn inc_response(&self, rcode: u16, plugin: &'static str) {
        if let Some((_, _, c)) = self.responses.load().iter().find(|(r, p, _)| *r == rcode && *p == plugin) {
            c.inc();
            return;
        }
        let _insert = self.responses_insert.lock();
        let current = self.responses.load_full();
        if let Some((_, _, c)) = current.iter().find(|(r, p, _)| *r == rcode && *p == plugin) {
            c.inc();
            return;
        }
        let [a, b, c] = self.base3();
        let counter = metrics().responses.get_or_create_owned(&[
            a,
            b,
            c,
            ("rcode", rcode_label(rcode)),
            ("plugin", plugin.to_string()),
        ]);
        counter.inc();
        let mut next = (*current).clone();
        next.push((rcode, plugin, counter));
        self.responses.store(Arc::new(next));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn labels() {
        assert_eq!(qtype_label(1), "A");
        assert_eq!(qtype_label(65), "HTTPS");
        assert_eq!(qtype_label(99), "other");
        assert_eq!(rcode_label(3), "NXDOMAIN");
        assert_eq!(rcode_label(16), "BADSIG");
        assert_eq!(rcode_label(12), "RCODE12");
        assert_eq!(family_of(&"[::ffff:1.2.3.4]:5".parse().unwrap()), 1);
        assert_eq!(family_of(&"[::1]:5".parse().unwrap()), 2);
    }
}
