//! The two answer stores (success, denial): 256 shards each, every shard a bounded LRU map from
//! key to a stored answer in wire form.
//!
//! Sizes follow CoreDNS (`max(capacity / 256, 4)` entries per shard, shard = `key & 255`). When a
//! new key arrives at a full shard CoreDNS drops an arbitrary entry (Go map order); we drop the
//! least recently used one instead, which keeps popular answers and is just as bounded. Either
//! way the eviction is counted.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lru::LruCache;
use parking_lot::Mutex;

use super::classify::Kind;

/// Number of shards per store (`key & 255` picks one).
pub const SHARDS: usize = 256;

/// A stored answer: the reply's bytes without OPT and with every TTL equal to `orig_ttl`, plus
/// what a hit needs to patch them.
#[derive(Debug)]
pub struct Entry {
    /// The reply in wire form (ID and flags as received; patched on every hit), followed by
    /// the offset of every record's TTL field (u16, native order): one allocation per entry.
    data: Box<[u8]>,
    /// Length of the reply at the front of `data`.
    wire_len: u16,
    /// Offset just past the question name (it starts at 12).
    pub qname_end: u16,
    /// Question type.
    pub qtype: u16,
    /// Question class.
    pub qclass: u16,
    /// Header rcode bits.
    pub rcode: u8,
    /// AD bit as received.
    pub ad: bool,
    /// RA bit as received.
    pub ra: bool,
    /// Classification the entry was stored under.
    pub kind: Kind,
    /// Whether the answer answers its question (for `serve_stale_policy prefer_positive`).
    pub answering: bool,
    /// Seconds the entry lives (the TTL written into every record).
    pub orig_ttl: u32,
    /// When it was stored.
    pub stored: Instant,
    /// With `prefer_positive`: the last answering entry this non-answer replaced.
    pub last_known_good: Option<Arc<Entry>>,
    /// Hits counted for prefetch.
    hits: AtomicU32,
    /// When the last hit was counted, in milliseconds after `stored`.
    last_hit_ms: AtomicU32,
    refreshing: AtomicBool,
    /// Until when a failed refresh blocks retries: milliseconds after `stored`, plus one;
    /// zero when nothing blocks. (Atomics rather than locks keep every entry small: the stores
    /// hold tens of thousands of them.)
    retry_after_ms: AtomicU32,
}

impl Entry {
    /// A new entry; `wire` must already carry `orig_ttl` in every record and no OPT.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        wire: Vec<u8>,
        ttl_offs: Vec<u16>,
        qname_end: u16,
        qtype: u16,
        qclass: u16,
        kind: Kind,
        answering: bool,
        orig_ttl: u32,
        stored: Instant,
    ) -> Entry {
        let flags = crate::server::wire::flags(&wire);
        let wire_len = wire.len().min(usize::from(u16::MAX)) as u16;
        let mut data = wire;
        data.truncate(usize::from(wire_len));
        data.reserve_exact(ttl_offs.len() * 2);
        for off in &ttl_offs {
            data.extend_from_slice(&off.to_ne_bytes());
        }
        Entry {
            rcode: (flags & 0x000f) as u8,
            ad: flags & crate::server::wire::bits::AD != 0,
            ra: flags & crate::server::wire::bits::RA != 0,
            data: data.into_boxed_slice(),
            wire_len,
            qname_end,
            qtype,
            qclass,
            kind,
            answering,
            orig_ttl,
            stored,
            last_known_good: None,
            hits: AtomicU32::new(0),
            last_hit_ms: AtomicU32::new(0),
            refreshing: AtomicBool::new(false),
            retry_after_ms: AtomicU32::new(0),
        }
    }

    /// The stored reply in wire form.
    pub fn wire(&self) -> &[u8] {
        &self.data[..usize::from(self.wire_len)]
    }

    /// Offsets of the TTL field of every record in [`Entry::wire`].
    pub fn ttl_offs(&self) -> impl Iterator<Item = u16> + '_ {
        self.data[usize::from(self.wire_len)..].chunks_exact(2).map(|b| u16::from_ne_bytes([b[0], b[1]]))
    }

    /// `t` as milliseconds after `stored` (0 before it, saturating far after it).
    fn ms(&self, t: Instant) -> u32 {
        t.saturating_duration_since(self.stored).as_millis().min(u128::from(u32::MAX - 1)) as u32
    }

    /// Remaining TTL at `now`: `orig_ttl - floor(elapsed)`; zero or negative once expired.
    pub fn ttl(&self, now: Instant) -> i64 {
        self.orig_ttl as i64 - now.saturating_duration_since(self.stored).as_secs() as i64
    }

    /// The stored question name in wire form (the case of the first reply cached).
    pub fn qname_wire(&self) -> &[u8] {
        self.wire().get(12..self.qname_end as usize).unwrap_or(&[])
    }

    /// Whether the entry is for this question: equal type and class and the same name ignoring
    /// case (`qname_wire` is the request's question name in wire form).
    pub fn matches(&self, qname_wire: &[u8], qtype: u16, qclass: u16) -> bool {
        self.qtype == qtype && self.qclass == qclass && self.qname_wire().eq_ignore_ascii_case(qname_wire)
    }

    /// With prefer_positive: this entry if it answers the question, else its last known good one.
    pub fn answering_entry(self: &Arc<Self>, qname_wire: &[u8], qtype: u16, qclass: u16) -> Option<Arc<Entry>> {
        if self.answering && self.matches(qname_wire, qtype, qclass) {
            return Some(self.clone());
        }
        self.last_known_good.as_ref().filter(|l| l.answering && l.matches(qname_wire, qtype, qclass)).cloned()
    }

    /// Counts a hit: resets to 1 when the last hit is older than `window`. Returns the count.
    pub fn update_hits(&self, window: Duration, now: Instant) -> u32 {
        let now_ms = self.ms(now);
        let last_ms = self.last_hit_ms.swap(now_ms, Ordering::Relaxed);
        let window_ms = window.as_millis().min(u128::from(u64::MAX)) as u64;
        if u64::from(last_ms) + window_ms < u64::from(now_ms) && now.checked_sub(window).is_some() {
            self.hits.store(1, Ordering::Relaxed);
            1
        } else {
            self.hits.fetch_add(1, Ordering::Relaxed).saturating_add(1)
        }
    }

    /// Hits counted so far.
    pub fn hits(&self) -> u32 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Sets the hit counter (a refreshed entry inherits the old entry's popularity).
    pub fn reset_hits(&self, now: Instant, hits: u32) {
        self.last_hit_ms.store(self.ms(now), Ordering::Relaxed);
        self.hits.store(hits, Ordering::Relaxed);
    }

    /// Claims the single in-flight refresh slot; false if one is running or a failed refresh's
    /// recheck period (when `recheck` > 0) has not passed.
    pub fn begin_refresh(&self, now: Instant, recheck: Duration) -> bool {
        if !recheck.is_zero() {
            let after = self.retry_after_ms.load(Ordering::Relaxed);
            if after != 0 && u64::from(self.ms(now)) + 1 < u64::from(after) {
                return false;
            }
        }
        self.refreshing.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Releases the refresh slot; a failed refresh with `recheck` > 0 blocks retries until
    /// `now + recheck`.
    pub fn end_refresh(&self, now: Instant, recheck: Duration, refreshed: bool) {
        let after = if !recheck.is_zero() && !refreshed { self.ms(now + recheck).saturating_add(1) } else { 0 };
        self.retry_after_ms.store(after, Ordering::Relaxed);
        self.refreshing.store(false, Ordering::Release);
    }
}

/// One shard: a bounded LRU map from key to entry.
type Shard = Mutex<LruCache<u64, Arc<Entry>>>;

/// One store (success or denial).
pub struct Store {
    shards: Box<[Shard]>,
    len: AtomicI64,
    shard_cap: usize,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("len", &self.len()).field("shard_cap", &self.shard_cap).finish()
    }
}

impl Store {
    /// A store for `capacity` entries: 256 shards of `max(capacity / 256, 4)`.
    pub fn new(capacity: usize) -> Store {
        let shard_cap = (capacity / SHARDS).max(4);
        let cap = NonZeroUsize::new(shard_cap).unwrap_or(NonZeroUsize::MIN);
        let shards = (0..SHARDS).map(|_| Mutex::new(LruCache::new(cap))).collect();
        Store { shards, len: AtomicI64::new(0), shard_cap }
    }

    fn shard(&self, key: u64) -> &Shard {
        &self.shards[(key as usize) & (SHARDS - 1)]
    }

    /// Entries per shard.
    pub fn shard_capacity(&self) -> usize {
        self.shard_cap
    }

    /// Total capacity (shards × entries per shard).
    pub fn capacity(&self) -> usize {
        self.shard_cap * SHARDS
    }

    /// Looks up `key`, marking it most recently used.
    pub fn get(&self, key: u64) -> Option<Arc<Entry>> {
        self.shard(key).lock().get(&key).cloned()
    }

    /// Looks up `key` without changing the eviction order.
    pub fn peek(&self, key: u64) -> Option<Arc<Entry>> {
        self.shard(key).lock().peek(&key).cloned()
    }

    /// Adds or replaces `key`. Returns true when another entry was evicted to make room.
    pub fn add(&self, key: u64, entry: Arc<Entry>) -> bool {
        let pushed = self.shard(key).lock().push(key, entry);
        match pushed {
            Some((k, _)) if k != key => true,
            Some(_) => false,
            None => {
                self.len.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Removes `key`.
    pub fn remove(&self, key: u64) {
        if self.shard(key).lock().pop(&key).is_some() {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Every entry with its key, shard by shard, least recently used first within a shard (so
    /// that adding them in this order to another store keeps the eviction order).
    pub fn entries_oldest_first(&self) -> Vec<(u64, Arc<Entry>)> {
        let mut out = Vec::with_capacity(self.len());
        for shard in self.shards.iter() {
            out.extend(shard.lock().iter().rev().map(|(k, e)| (*k, e.clone())));
        }
        out
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed).max(0) as usize
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The success and denial stores of one cache, shared across reloads while the cache's
/// configuration is unchanged.
#[derive(Debug)]
pub struct Stores {
    /// NoError and Delegation answers.
    pub success: Store,
    /// NameError, NoData and ServerError answers.
    pub denial: Store,
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn entry(ttl: u32, now: Instant) -> Arc<Entry> {
        let mut w = vec![0u8; 12];
        w.extend_from_slice(&[1, b'a', 0, 0, 1, 0, 1]);
        Arc::new(Entry::new(w, vec![], 15, 1, 1, Kind::NoError, true, ttl, now))
    }

    #[test]
    fn shard_sizes() {
        assert_eq!(Store::new(10000).capacity(), 9984);
        assert_eq!(Store::new(10000).shard_capacity(), 39);
        assert_eq!(Store::new(10).capacity(), 1024);
        assert_eq!(Store::new(0).shard_capacity(), 4);
    }

    #[test]
    fn full_shard_evicts_least_recently_used() {
        let s = Store::new(0);
        let now = Instant::now();
        // Keys 0, 256, 512, 768 share shard 0 (capacity 4).
        for k in 0..4u64 {
            assert!(!s.add(k * 256, entry(10, now)));
        }
        assert_eq!(s.len(), 4);
        // Touch key 0 so 256 becomes the oldest.
        assert!(s.get(0).is_some());
        assert!(s.add(1024, entry(10, now)), "a fifth key evicts");
        assert_eq!(s.len(), 4);
        assert!(s.peek(256).is_none());
        assert!(s.peek(0).is_some());
        // Replacing an existing key is not an eviction.
        assert!(!s.add(0, entry(20, now)));
        assert_eq!(s.peek(0).map(|e| e.orig_ttl), Some(20));
        // Another shard is unaffected.
        assert!(!s.add(1, entry(10, now)));
        assert_eq!(s.len(), 5);
        s.remove(1);
        s.remove(1);
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn ttl_and_hits() {
        let now = Instant::now();
        let e = entry(60, now);
        assert_eq!(e.ttl(now + Duration::from_millis(1500)), 59);
        assert_eq!(e.ttl(now + Duration::from_secs(70)), -10);
        assert_eq!(e.update_hits(Duration::from_secs(60), now), 1);
        assert_eq!(e.update_hits(Duration::from_secs(60), now + Duration::from_secs(10)), 2);
        assert_eq!(e.update_hits(Duration::from_secs(60), now + Duration::from_secs(100)), 1);
        assert!(e.begin_refresh(now, Duration::ZERO));
        assert!(!e.begin_refresh(now, Duration::ZERO));
        e.end_refresh(now, Duration::from_secs(30), false);
        assert!(!e.begin_refresh(now + Duration::from_secs(10), Duration::from_secs(30)));
        assert!(e.begin_refresh(now + Duration::from_secs(31), Duration::from_secs(30)));
    }
}
