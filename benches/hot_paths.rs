//! Criterion micro-benchmarks of nodecache's per-query hot paths: the cache key, a cache hit
//! (look-up, copy and header/TTL/question patch), zone routing, query acceptance, and parsing
//! the node-local-dns Corefile template. Run: `cargo bench --bench hot_paths`.
//! Short measurement windows keep a full run around a minute.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use nodecache::corefile::{parse_str, ParseOptions};
use nodecache::plugin::cache::classify::Kind;
use nodecache::plugin::cache::setup::Config;
use nodecache::plugin::cache::store::Entry;
use nodecache::plugin::cache::{key, wire_scan, Cache};
use nodecache::plugin::fast::FastQuery;
use nodecache::server::query::{accept, Accepted};
use nodecache::server::zones::ZoneTable;

const SERVER: &str = "dns://:53";

/// Wire form of a presentation name ("a.b." → 1a1b0).
fn name_wire(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.trim_end_matches('.').split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// A query: ID, RD set, one question, optionally an OPT record (EDNS0, 1232 bytes, DO clear).
fn query(id: u16, name: &str, qtype: u16, edns: bool) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&0x0100u16.to_be_bytes());
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(edns)]);
    q.extend_from_slice(&name_wire(name));
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    if edns {
        q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    }
    q
}

/// An authoritative-looking NOERROR reply to `query(.., name, A, false)` with two A records.
fn reply_a(name: &str) -> Vec<u8> {
    let mut r = Vec::with_capacity(96);
    r.extend_from_slice(&0u16.to_be_bytes());
    r.extend_from_slice(&0x8180u16.to_be_bytes());
    r.extend_from_slice(&[0, 1, 0, 2, 0, 0, 0, 0]);
    r.extend_from_slice(&name_wire(name));
    r.extend_from_slice(&[0, 1, 0, 1]);
    for last in [1u8, 2] {
        r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 127, 0, 0, last]);
    }
    r
}

/// A cache holding the reply for `name` A, as the cache would have stored it.
fn warm_cache(name: &str) -> Cache {
    let cache = Cache::new(Config::new(vec![".".to_string()]));
    let wire = reply_a(name);
    let Some(scan) = wire_scan::scan(&wire) else { panic!("benchmark reply does not scan") };
    let Some(q) = scan.question else { panic!("benchmark reply has no question") };
    let ttl_offs: Vec<u16> = scan.rrs.iter().map(|r| r.ttl_off as u16).collect();
    let entry = Entry::new(wire, ttl_offs, q.name_end as u16, 1, 1, Kind::NoError, true, 3600, cache.now());
    cache.stores().success.add(key::hash(name, 1, 1, false, false), Arc::new(entry));
    cache
}

fn bench_cache(c: &mut Criterion) {
    let name = "a0.bench.example.";
    c.bench_function("cache/key_hash", |b| b.iter(|| key::hash(black_box(name), 1, 1, false, false)));

    let cache = warm_cache(name);
    let q = query(0x1234, name, 1, false);
    let now = Instant::now();
    assert!(cache.lookup_fast(&fast_query(&q, name, false, now)).hit().is_some(), "benchmark entry must hit");
    c.bench_function("cache/hit_lookup_copy_patch", |b| {
        b.iter(|| cache.lookup_fast(&fast_query(black_box(&q), black_box(name), false, now)).hit())
    });
    // The client spells the name in another case: the question is re-encoded.
    let mixed = query(0x1234, "A0.Bench.Example.", 1, false);
    c.bench_function("cache/hit_mixed_case", |b| {
        b.iter(|| cache.lookup_fast(&fast_query(black_box(&mixed), black_box(name), false, now)).hit())
    });
    c.bench_function("cache/miss_lookup", |b| {
        let miss = query(0x1234, "b0.bench.example.", 1, false);
        b.iter(|| cache.lookup_fast(&fast_query(black_box(&miss), "b0.bench.example.", false, now)).hit())
    });
}

fn bench_zones(c: &mut Criterion) {
    // The node-local-dns layout: cluster.local, the two reverse zones, and the root.
    let mut table: ZoneTable<u32> = ZoneTable::default();
    for (i, z) in ["cluster.local.", "in-addr.arpa.", "ip6.arpa.", "."].iter().enumerate() {
        table.insert(z, Arc::new(i as u32));
    }
    let cluster = "kube-dns.kube-system.svc.cluster.local.";
    let external = "www.example.com.";
    assert_eq!(table.route(cluster, false).map(|(z, _)| z), Some("cluster.local."));
    c.bench_function("zones/route_cluster_local", |b| b.iter(|| table.route(black_box(cluster), false)));
    c.bench_function("zones/route_root_fallback", |b| b.iter(|| table.route(black_box(external), false)));
}

fn bench_accept(c: &mut Criterion) {
    let plain = query(0x1234, "kube-dns.kube-system.svc.cluster.local.", 1, false);
    let edns = query(0x1234, "kube-dns.kube-system.svc.cluster.local.", 28, true);
    assert!(matches!(accept(&plain), Accepted::Query(_)));
    assert!(matches!(accept(&edns), Accepted::Query(_)));
    c.bench_function("query/accept_plain", |b| b.iter(|| accept(black_box(&plain))));
    c.bench_function("query/accept_edns", |b| b.iter(|| accept(black_box(&edns))));
}

fn bench_corefile(c: &mut Criterion) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/corefiles/node-local-dns.Corefile");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let opts = ParseOptions::default();
    assert!(parse_str(&text, path, &opts).is_ok(), "template must parse");
    c.bench_function("corefile/parse_node_local_dns", |b| b.iter(|| parse_str(black_box(&text), path, &opts)));
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1))
}

criterion_group! { name = hot_paths; config = config(); targets = bench_cache, bench_zones, bench_accept, bench_corefile }
criterion_main!(hot_paths);

/// An IN-class A query for the cache's fast path, as the server's listener would build it.
fn fast_query<'a>(query: &'a [u8], qname_lower: &'a str, do_bit: bool, now: std::time::Instant) -> FastQuery<'a> {
    FastQuery { server: SERVER, query, qname_lower, qtype: 1, qclass: 1, do_bit, now }
}
