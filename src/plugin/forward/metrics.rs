//! The forward plugin's metric families (CoreDNS names) and per-upstream pre-resolved handles.

use std::sync::{LazyLock, OnceLock};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

/// Label set `{proxy_name, to}`.
type Labels2 = [(&'static str, String); 2];
/// Label set `{proxy_name, to, rcode|proto}`.
type Labels3 = [(&'static str, String); 3];

fn time_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.00025, 2.0, 16))
}

/// All forward/proxy metric families.
pub struct Families {
    request_duration: Family<Labels3, Histogram, fn() -> Histogram>,
    healthcheck_failures: Family<Labels2, Counter>,
    conn_cache_hits: Family<Labels3, Counter>,
    conn_cache_misses: Family<Labels3, Counter>,
    /// `coredns_forward_healthcheck_broken_total`.
    pub healthcheck_broken: Counter,
    /// `coredns_forward_max_concurrent_rejects_total`.
    pub max_concurrent_rejects: Counter,
    dropped_replies: Family<Labels3, Counter>,
    waiting_rejects: Family<Labels2, Counter>,
}

static FAMILIES: LazyLock<Families> = LazyLock::new(|| {
    let f = Families {
        request_duration: Family::new_with_constructor(time_histogram as fn() -> Histogram),
        healthcheck_failures: Family::default(),
        conn_cache_hits: Family::default(),
        conn_cache_misses: Family::default(),
        healthcheck_broken: Counter::default(),
        max_concurrent_rejects: Counter::default(),
        dropped_replies: Family::default(),
        waiting_rejects: Family::default(),
    };
    crate::observe::register(
        "coredns_proxy_request_duration_seconds",
        "Histogram of the time each request took.",
        f.request_duration.clone(),
    );
    crate::observe::register(
        "coredns_proxy_healthcheck_failures",
        "Counter of the number of failed healthchecks.",
        f.healthcheck_failures.clone(),
    );
    crate::observe::register(
        "coredns_proxy_conn_cache_hits",
        "Counter of connection cache hits per upstream and protocol.",
        f.conn_cache_hits.clone(),
    );
    crate::observe::register(
        "coredns_proxy_conn_cache_misses",
        "Counter of connection cache misses per upstream and protocol.",
        f.conn_cache_misses.clone(),
    );
    crate::observe::register(
        "coredns_forward_healthcheck_broken",
        "Counter of the number of complete failures of the healthchecks.",
        f.healthcheck_broken.clone(),
    );
    crate::observe::register(
        "coredns_forward_max_concurrent_rejects",
        "Counter of the number of queries rejected because the concurrent queries were at maximum.",
        f.max_concurrent_rejects.clone(),
    );
    crate::observe::register(
        "nodecache_forward_dropped_replies",
        "Counter of UDP datagrams from an upstream dropped because their ID or question did not match the query waiting on that socket.",
        f.dropped_replies.clone(),
    );
    crate::observe::register(
        "nodecache_forward_waiting_rejects",
        "Counter of queries failed at once because too many queries were already waiting for the upstream.",
        f.waiting_rejects.clone(),
    );
    f
});

/// The process-wide families (registered on first use).
pub fn families() -> &'static Families {
    &FAMILIES
}

/// CoreDNS's name for a response code (`RcodeToString`), or its number.
pub fn rcode_name(rcode: u16) -> String {
    crate::gocompat::names::rcode_name(rcode).map_or_else(|| rcode.to_string(), str::to_string)
}

/// Pre-resolved metric handles of one upstream. Series are created on first use, so (as in
/// CoreDNS) a series appears only once something was counted.
pub struct UpstreamMetrics {
    proxy_name: &'static str,
    to: String,
    durations: [OnceLock<Histogram>; 16],
    healthcheck_failures: OnceLock<Counter>,
    hits: [OnceLock<Counter>; 3],
    misses: [OnceLock<Counter>; 3],
    dropped: [OnceLock<Counter>; 4],
    rejected: OnceLock<Counter>,
}

/// Why a datagram from an upstream was not taken as the reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Its message ID is not the waiting query's.
    Id,
    /// Its question (name, type, class) is not the waiting query's.
    Question,
    /// It did not come from the upstream's address and port.
    Address,
    /// A second copy of a reply already taken.
    Duplicate,
}

impl Dropped {
    fn label(self) -> &'static str {
        match self {
            Dropped::Id => "id",
            Dropped::Question => "question",
            Dropped::Address => "address",
            Dropped::Duplicate => "duplicate",
        }
    }
}

/// Pool protocol labels, in index order.
pub const PROTOS: [&str; 3] = ["udp", "tcp", "tcp-tls"];

impl UpstreamMetrics {
    /// Handles for upstream `to` (`IP:port`).
    pub fn new(proxy_name: &'static str, to: &str) -> UpstreamMetrics {
        UpstreamMetrics {
            proxy_name,
            to: to.to_string(),
            durations: Default::default(),
            healthcheck_failures: OnceLock::new(),
            hits: Default::default(),
            misses: Default::default(),
            dropped: Default::default(),
            rejected: OnceLock::new(),
        }
    }

    fn labels3(&self, key: &'static str, value: &str) -> Labels3 {
        [("proxy_name", self.proxy_name.to_string()), ("to", self.to.clone()), (key, value.to_string())]
    }

    /// Counts a failed health check.
    pub fn healthcheck_failed(&self) {
        self.healthcheck_failures
            .get_or_init(|| {
                families()
                    .healthcheck_failures
                    .get_or_create_owned(&[("proxy_name", self.proxy_name.to_string()), ("to", self.to.clone())])
            })
            .inc();
    }

    /// Counts a connection cache hit for protocol index `pi` (see [`PROTOS`]).
    pub fn conn_hit(&self, pi: usize) {
        if let (Some(slot), Some(proto)) = (self.hits.get(pi), PROTOS.get(pi)) {
            slot.get_or_init(|| families().conn_cache_hits.get_or_create_owned(&self.labels3("proto", proto))).inc();
        }
    }

    /// Counts a connection cache miss for protocol index `pi`.
    pub fn conn_miss(&self, pi: usize) {
        if let (Some(slot), Some(proto)) = (self.misses.get(pi), PROTOS.get(pi)) {
            slot.get_or_init(|| families().conn_cache_misses.get_or_create_owned(&self.labels3("proto", proto))).inc();
        }
    }

    /// Counts a datagram dropped for `why`.
    pub fn dropped_reply(&self, why: Dropped) {
        let slot = &self.dropped[why as usize];
        slot.get_or_init(|| families().dropped_replies.get_or_create_owned(&self.labels3("reason", why.label()))).inc();
    }

    /// Counts a query failed because the upstream's waiting slots were all taken.
    pub fn waiting_rejected(&self) {
        self.rejected
            .get_or_init(|| {
                families()
                    .waiting_rejects
                    .get_or_create_owned(&[("proxy_name", self.proxy_name.to_string()), ("to", self.to.clone())])
            })
            .inc();
    }

    /// Records one request's duration under its reply rcode.
    pub fn observe_duration(&self, rcode: u16, seconds: f64) {
        let make = || families().request_duration.get_or_create_owned(&self.labels3("rcode", &rcode_name(rcode)));
        match self.durations.get(rcode as usize) {
            Some(slot) => slot.get_or_init(make).observe(seconds),
            None => make().observe(seconds),
        }
    }
}
