//! The cache's Prometheus metrics (CoreDNS names and labels), with handles resolved once per
//! (server, zones, view).

use std::sync::{Arc, LazyLock, OnceLock};

use parking_lot::RwLock;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

/// Labels `server`, `zones`, `view`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Labels {
    /// Listener label, e.g. `dns://:53`.
    pub server: String,
    /// The cache's zones joined with `,`.
    pub zones: String,
    /// View name (empty without views).
    pub view: String,
}

/// Labels `server`, `type`, `zones`, `view`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypedLabels {
    /// Listener label.
    pub server: String,
    /// `success` or `denial`.
    pub r#type: String,
    /// The cache's zones joined with `,`.
    pub zones: String,
    /// View name.
    pub view: String,
}

/// The metric families, registered once in the process-wide registry.
pub struct Families {
    entries: Family<TypedLabels, Gauge>,
    requests: Family<Labels, Counter>,
    hits: Family<TypedLabels, Counter>,
    misses: Family<Labels, Counter>,
    prefetch: Family<Labels, Counter>,
    drops: Family<Labels, Counter>,
    served_stale: Family<Labels, Counter>,
    evictions: Family<TypedLabels, Counter>,
}

/// The process-wide cache metric families.
pub static FAMILIES: LazyLock<Families> = LazyLock::new(|| {
    let f = Families {
        entries: Family::default(),
        requests: Family::default(),
        hits: Family::default(),
        misses: Family::default(),
        prefetch: Family::default(),
        drops: Family::default(),
        served_stale: Family::default(),
        evictions: Family::default(),
    };
    use crate::observe::register;
    register("coredns_cache_entries", "The number of elements in the cache.", f.entries.clone());
    register("coredns_cache_requests", "The count of cache requests.", f.requests.clone());
    register("coredns_cache_hits", "The count of cache hits.", f.hits.clone());
    register(
        "coredns_cache_misses",
        "The count of cache misses. Deprecated, derive misses from cache hits/requests counters.",
        f.misses.clone(),
    );
    register(
        "coredns_cache_prefetch",
        "The number of times the cache has prefetched a cached item.",
        f.prefetch.clone(),
    );
    register(
        "coredns_cache_drops",
        "The number responses that are not cached, because the reply is malformed.",
        f.drops.clone(),
    );
    register(
        "coredns_cache_served_stale",
        "The number of requests served from stale cache entries.",
        f.served_stale.clone(),
    );
    register("coredns_cache_evictions", "The count of cache evictions.", f.evictions.clone());
    f
});

/// Metric handles for one (server, zones, view). Each series is created in the registry on
/// first use (as CoreDNS's vectors only show label sets that were touched) and then kept, so
/// hot paths pay one atomic load.
#[derive(Debug)]
pub struct Handles {
    labels: Labels,
    success: TypedLabels,
    denial: TypedLabels,
    entries_success: OnceLock<Gauge>,
    entries_denial: OnceLock<Gauge>,
    requests: OnceLock<Counter>,
    hits_success: OnceLock<Counter>,
    hits_denial: OnceLock<Counter>,
    misses: OnceLock<Counter>,
    prefetch: OnceLock<Counter>,
    drops: OnceLock<Counter>,
    served_stale: OnceLock<Counter>,
    evictions_success: OnceLock<Counter>,
    evictions_denial: OnceLock<Counter>,
}

impl Handles {
    /// Handles for these labels (no series is created yet).
    pub fn resolve(server: &str, zones: &str, view: &str) -> Handles {
        let t = |ty: &str| TypedLabels {
            server: server.to_string(),
            r#type: ty.to_string(),
            zones: zones.to_string(),
            view: view.to_string(),
        };
        Handles {
            labels: Labels { server: server.to_string(), zones: zones.to_string(), view: view.to_string() },
            success: t("success"),
            denial: t("denial"),
            entries_success: OnceLock::new(),
            entries_denial: OnceLock::new(),
            requests: OnceLock::new(),
            hits_success: OnceLock::new(),
            hits_denial: OnceLock::new(),
            misses: OnceLock::new(),
            prefetch: OnceLock::new(),
            drops: OnceLock::new(),
            served_stale: OnceLock::new(),
            evictions_success: OnceLock::new(),
            evictions_denial: OnceLock::new(),
        }
    }

    /// `coredns_cache_entries{type="success"}`.
    pub fn entries_success(&self) -> &Gauge {
        self.entries_success.get_or_init(|| FAMILIES.entries.get_or_create_owned(&self.success))
    }

    /// `coredns_cache_entries{type="denial"}`.
    pub fn entries_denial(&self) -> &Gauge {
        self.entries_denial.get_or_init(|| FAMILIES.entries.get_or_create_owned(&self.denial))
    }

    /// `coredns_cache_requests_total`.
    pub fn requests(&self) -> &Counter {
        self.requests.get_or_init(|| FAMILIES.requests.get_or_create_owned(&self.labels))
    }

    /// `coredns_cache_hits_total{type="success"}`.
    pub fn hits_success(&self) -> &Counter {
        self.hits_success.get_or_init(|| FAMILIES.hits.get_or_create_owned(&self.success))
    }

    /// `coredns_cache_hits_total{type="denial"}`.
    pub fn hits_denial(&self) -> &Counter {
        self.hits_denial.get_or_init(|| FAMILIES.hits.get_or_create_owned(&self.denial))
    }

    /// `coredns_cache_misses_total`.
    pub fn misses(&self) -> &Counter {
        self.misses.get_or_init(|| FAMILIES.misses.get_or_create_owned(&self.labels))
    }

    /// `coredns_cache_prefetch_total`.
    pub fn prefetch(&self) -> &Counter {
        self.prefetch.get_or_init(|| FAMILIES.prefetch.get_or_create_owned(&self.labels))
    }

    /// `coredns_cache_drops_total`.
    pub fn drops(&self) -> &Counter {
        self.drops.get_or_init(|| FAMILIES.drops.get_or_create_owned(&self.labels))
    }

    /// `coredns_cache_served_stale_total`.
    pub fn served_stale(&self) -> &Counter {
        self.served_stale.get_or_init(|| FAMILIES.served_stale.get_or_create_owned(&self.labels))
    }

    /// `coredns_cache_evictions_total{type="success"}`.
    pub fn evictions_success(&self) -> &Counter {
        self.evictions_success.get_or_init(|| FAMILIES.evictions.get_or_create_owned(&self.success))
    }

    /// `coredns_cache_evictions_total{type="denial"}`.
    pub fn evictions_denial(&self) -> &Counter {
        self.evictions_denial.get_or_init(|| FAMILIES.evictions.get_or_create_owned(&self.denial))
    }
}

/// Handles per server label, resolved on first use and memoized (a handful of servers).
#[derive(Debug)]
pub struct PerServer {
    zones: String,
    view: String,
    by_server: RwLock<Vec<(Arc<str>, Arc<Handles>)>>,
}

impl PerServer {
    /// An empty memo for a cache with these zone and view labels.
    pub fn new(zones: String, view: String) -> PerServer {
        PerServer { zones, view, by_server: RwLock::new(Vec::new()) }
    }

    /// Handles for `server`, resolving them the first time.
    pub fn get(&self, server: &str) -> Arc<Handles> {
        if let Some((_, h)) = self.by_server.read().iter().find(|(s, _)| &**s == server) {
            return h.clone();
        }
        let mut w = self.by_server.write();
        if let Some((_, h)) = w.iter().find(|(s, _)| &**s == server) {
            return h.clone();
        }
        let h = Arc::new(Handles::resolve(server, &self.zones, &self.view));
        w.push((Arc::from(server), h.clone()));
        h
    }
}
