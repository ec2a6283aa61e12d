//! The cache's query handler: look-ups, hit replies patched from stored wire bytes, storing
//! replies written downstream, prefetch and serve_stale.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use hickory_proto::op::{Message, ResponseCode};

use super::classify::{self, Kind};
use super::key;
use super::metrics::{Handles, PerServer};
use super::setup::Config;
use super::store::{Entry, Store, Stores};
use super::wire_scan::{self, rtype, Scan, Section};
use crate::plugin::fast::{FastAnswer, FastLookup, FastQuery};
use crate::plugin::{BuildContext, Next, OwnedNext, Plugin};
use crate::server::wire::{self, bits};
use crate::server::{Outcome, Proto, Reply, Request};

const NAME: &str = "cache";

/// The `cache` plugin instance. Cheap to share: state lives behind an `Arc`.
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: Config,
    stores: Arc<Stores>,
    metrics: PerServer,
    /// Added to the clock (nanoseconds); only tests move it, to age entries without sleeping.
    skew: AtomicU64,
}

/// The parts of a query the cache needs, borrowed from the request.
#[derive(Clone, Copy)]
struct Q<'a> {
    /// Lower-cased presentation qname (key input).
    qname_lower: &'a str,
    /// The question name as the client sent it, in wire form.
    qwire: &'a [u8],
    qtype: u16,
    qclass: u16,
    do_bit: bool,
    /// The AD bit of the client's query.
    ad: bool,
    key: u64,
}

impl<'a> Q<'a> {
    fn new(query: &'a [u8], qname_lower: &'a str, qtype: u16, qclass: u16, do_bit: bool) -> Option<Q<'a>> {
        let end = wire_scan::skip_name(query, wire::HEADER_LEN)?;
        let qwire = query.get(wire::HEADER_LEN..end)?;
        if qwire.last().copied() != Some(0) {
            // A compressed question name cannot be compared byte-wise.
            return None;
        }
        let flags = wire::flags(query);
        let cd = flags & bits::CD != 0;
        Some(Q {
            qname_lower,
            qwire,
            qtype,
            qclass,
            do_bit,
            ad: flags & bits::AD != 0,
            key: key::hash(qname_lower, qtype, qclass, do_bit, cd),
        })
    }

    fn from_request(req: &'a Request) -> Option<Q<'a>> {
        Q::new(&req.wire, &req.qname_lower, req.qtype, req.qclass, req.dnssec_ok())
    }
}

/// How a reply written downstream is handled (CoreDNS's writer variants).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A client miss: store and pass the reply on.
    Miss,
    /// A background refresh: store only.
    Prefetch,
}

/// The result of handling a downstream reply.
struct Processed {
    /// The reply for the client (TTLs clamped, AD rule applied).
    wire: Vec<u8>,
    /// The entry stored from it, if any.
    item: Option<Arc<Entry>>,
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn zones_match(zones: &[String], name: &str) -> bool {
    zones.iter().any(|z| crate::dnsname::in_zone_ignore_case(z, name))
}

fn set_u32(buf: &mut [u8], off: usize, v: u32) {
    if let Some(b) = buf.get_mut(off..off + 4) {
        b.copy_from_slice(&v.to_be_bytes());
    }
}

fn set_ad(buf: &mut [u8], on: bool) {
    let f = wire::flags(buf);
    wire::set_flags(buf, if on { f | bits::AD } else { f & !bits::AD });
}

impl Cache {
    /// Builds the handler, taking the stores from `ctx.carry` when an identical cache (same
    /// block zones, listeners and configuration, and the same plugins after it) ran before a
    /// reload.
    pub fn build(cfg: Config, ctx: &BuildContext) -> Cache {
        // Block zones and listeners identify the block (two blocks never share both); the
        // configuration and everything after the cache in the chain (where the cached answers
        // came from: forward's upstreams, template, hosts, ...) decide whether the old entries
        // are still valid.
        let carry_key =
            format!("plugin/cache|{}|{}|{:?}|{}", ctx.zones.join(","), ctx.servers.join(","), cfg, ctx.after);
        let (pcap, ncap) = (cfg.pcap, cfg.ncap);
        let stores =
            ctx.carry.get_or_insert(&carry_key, || Stores { success: Store::new(pcap), denial: Store::new(ncap) });
        let metrics = PerServer::new(cfg.zones_label(), String::new());
        for s in &ctx.servers {
            metrics.get(s);
        }
        Cache { inner: Arc::new(Inner { cfg, stores, metrics, skew: AtomicU64::new(0) }) }
    }

    /// A handler with fresh stores, for tests and tools.
    pub fn new(cfg: Config) -> Cache {
        let stores = Arc::new(Stores { success: Store::new(cfg.pcap), denial: Store::new(cfg.ncap) });
        let metrics = PerServer::new(cfg.zones_label(), String::new());
        Cache { inner: Arc::new(Inner { cfg, stores, metrics, skew: AtomicU64::new(0) }) }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.cfg
    }

    /// Moves this cache's clock forward by `d` (tests use it to age entries without sleeping).
    pub fn advance_clock(&self, d: Duration) {
        self.inner.skew.fetch_add(d.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    /// The cache's current time: the monotonic clock plus any [`Cache::advance_clock`] offset.
    pub fn now(&self) -> Instant {
        self.inner.now()
    }

    /// The stores (shared with any instance built from the same carry key).
    pub fn stores(&self) -> &Arc<Stores> {
        &self.inner.stores
    }

    /// Fast path for the server, before a full [`Request`] exists: a fresh cache hit is
    /// answered [`FastLookup::Hit`] with a complete reply (without OPT), counted as a request
    /// and a hit.
    ///
    /// Only call it when no plugin before `cache` in the chain could change or answer the query.
    /// The caller must add the client's OPT and truncate to the client's size, exactly as for a
    /// reply the chain wrote. [`FastLookup::Pass`] (nothing counted) means the chain must run:
    /// the name is outside the cache's zones, the entry is stale, or prefetch is configured
    /// (hits then need the chain for background refreshes). [`FastLookup::Absent`] (nothing
    /// counted) means the chain's cache would find nothing at all: the caller either runs the
    /// chain, or completes the miss itself: [`Cache::count_fast_miss`], then the query sent on
    /// exactly as the cache would (AD set), and the reply handed to [`Cache::store_miss_reply`].
    pub fn lookup_fast(&self, fq: &FastQuery<'_>) -> FastLookup {
        let FastQuery { server, query, qname_lower, qtype, qclass, do_bit, now } = *fq;
        let inner = &self.inner;
        if !zones_match(&inner.cfg.zones, qname_lower) {
            return FastLookup::Pass;
        }
        let Some(q) = Q::new(query, qname_lower, qtype, qclass, do_bit) else { return FastLookup::Pass };
        let Some((entry, denial)) = inner.lookup(&q, now) else { return FastLookup::Absent };
        // Prefetch counts hits per entry and may start a refresh: that needs the chain.
        if inner.cfg.prefetch > 0 {
            return FastLookup::Pass;
        }
        let ttl = entry.ttl(now);
        if ttl <= 0 {
            return FastLookup::Pass;
        }
        let reply_ttl = if inner.cfg.keepttl { entry.orig_ttl } else { ttl as u32 };
        let Some(out) = hit_reply(&entry, query, q.qwire, reply_ttl, q.do_bit, q.ad) else { return FastLookup::Pass };
        let h = inner.metrics.get(server);
        h.requests().inc();
        if denial {
            h.hits_denial().inc()
        } else {
            h.hits_success().inc()
        };
        FastLookup::Hit(out)
    }

    /// Counts a miss the server completes itself (after [`FastLookup::Absent`]) as the chain's
    /// cache would: a request and a miss.
    pub fn count_fast_miss(&self, server: &str) {
        let h = self.inner.metrics.get(server);
        h.requests().inc();
        h.misses().inc();
    }

    /// Completes a miss taken with [`Cache::lookup_fast`]: `reply` is what the next plugin
    /// wrote for the client's `query` (the query as the client sent it, AD unchanged); it is
    /// processed exactly as a reply written down the chain (TTLs clamped, stored when allowed,
    /// AD rule) and returned for the client. `now` is the instant of the look-up.
    pub fn store_miss_reply(&self, fq: &FastQuery<'_>, reply: Vec<u8>) -> Vec<u8> {
        let FastQuery { server, query, qname_lower, qtype, qclass, do_bit, now } = *fq;
        let inner = &self.inner;
        let Some(q) = Q::new(query, qname_lower, qtype, qclass, do_bit) else { return reply };
        let h = inner.metrics.get(server);
        inner.process(reply, &q, &h, Mode::Miss, now).wire
    }
}

/// A reply written from the cache. Like CoreDNS the cache then returns NOERROR, whatever rcode
/// the cached reply carries (a cached SERVFAIL is a written reply, not a failure).
fn hit_outcome(wire: Vec<u8>) -> Outcome {
    Outcome { rcode: ResponseCode::NoError, reply: Some(Reply::Wire(wire)), error: None, plugin: NAME }
}

/// Builds the hit reply from a stored entry: the client's ID, opcode, RD and CD (for QUERY), AA
/// set, RA and rcode as stored, AD as stored but cleared unless the query had DO or AD, the
/// client's question spelling, and `ttl` on every record.
fn hit_reply(entry: &Entry, query: &[u8], qwire: &[u8], ttl: u32, do_bit: bool, ad: bool) -> Option<Vec<u8>> {
    let mut out = entry.wire().to_vec();
    let qf = wire::flags(query);
    let opcode = qf & 0x7800;
    let mut f = bits::QR | opcode | bits::AA | entry.rcode as u16;
    if opcode == 0 {
        f |= qf & (bits::RD | bits::CD);
    }
    if entry.ra {
        f |= bits::RA;
    }
    if entry.ad && (do_bit || ad) {
        f |= bits::AD;
    }
    wire::set_flags(&mut out, f);
    wire::set_id(&mut out, wire::id(query)?);
    for off in entry.ttl_offs() {
        set_u32(&mut out, off as usize, ttl);
    }
    let stored_q = out.get(wire::HEADER_LEN..entry.qname_end as usize)?;
    if stored_q == qwire {
        return Some(out);
    }
    if stored_q.len() != qwire.len() {
        return None;
    }
    // Same name in another case. Record names may point at the question, so re-encode to give
    // the question the client's spelling while records keep the stored one.
    let mut msg = Message::from_vec(&out).ok()?;
    let client = Message::from_vec(query).ok()?;
    let name = client.queries.first()?.name.clone();
    msg.queries.first_mut()?.set_name(name);
    msg.to_vec().ok()
}

impl Inner {
    fn now(&self) -> Instant {
        let skew = self.skew.load(Ordering::Relaxed);
        if skew == 0 {
            Instant::now()
        } else {
            Instant::now() + Duration::from_nanos(skew)
        }
    }

    fn stale_ok(&self, ttl: i64) -> bool {
        ttl > 0 || (!self.cfg.stale_up_to.is_zero() && -ttl < self.cfg.stale_up_to.as_secs() as i64)
    }

    /// CoreDNS's look-up order (without counting): with prefer_positive and serve_stale an
    /// answering success entry first; then denial (a SERVFAIL entry yields to a usable success
    /// entry); then success. Entries qualify while fresh or within serve_stale. Returns the
    /// entry and whether it came from the denial store.
    fn lookup(&self, q: &Q<'_>, now: Instant) -> Option<(Arc<Entry>, bool)> {
        let s = &self.stores;
        if self.cfg.prefer_positive && !self.cfg.stale_up_to.is_zero() {
            if let Some(e) = s.success.get(q.key).and_then(|e| e.answering_entry(q.qwire, q.qtype, q.qclass)) {
                if self.stale_ok(e.ttl(now)) {
                    return Some((e, false));
                }
            }
        }
        if let Some(e) = s.denial.get(q.key) {
            if e.matches(q.qwire, q.qtype, q.qclass) && self.stale_ok(e.ttl(now)) {
                if e.rcode == 2 {
                    if let Some(p) = s.success.get(q.key) {
                        if p.matches(q.qwire, q.qtype, q.qclass) && self.stale_ok(p.ttl(now)) {
                            return Some((p, false));
                        }
                    }
                }
                return Some((e, true));
            }
        }
        if let Some(e) = s.success.get(q.key) {
            if e.matches(q.qwire, q.qtype, q.qclass) && self.stale_ok(e.ttl(now)) {
                return Some((e, false));
            }
        }
        None
    }

    /// Any entry for the key, fresh or not (denial first).
    fn exists(&self, key: u64) -> Option<Arc<Entry>> {
        self.stores.denial.peek(key).or_else(|| self.stores.success.peek(key))
    }

    fn should_prefetch(&self, e: &Entry, now: Instant) -> bool {
        if self.cfg.prefetch == 0 {
            return false;
        }
        e.update_hits(self.cfg.prefetch_window, now);
        let threshold = (self.cfg.percentage as f64 / 100.0 * e.orig_ttl as f64).ceil() as i64;
        e.hits() >= self.cfg.prefetch && e.ttl(now) <= threshold
    }

    /// Whether the reply's question is the query's (CoreDNS `request.Match`).
    fn reply_matches(buf: &[u8], s: &Scan, q: &Q<'_>) -> bool {
        let Some(rq) = s.question else { return false };
        if s.qdcount != 1 || s.flags & bits::QR == 0 || rq.qtype != q.qtype || rq.qclass != q.qclass {
            return false;
        }
        wire_scan::name_key(buf, rq.name).is_some_and(|k| k.eq_ignore_ascii_case(q.qwire))
    }

    /// Handles a reply written downstream (CoreDNS's cache `ResponseWriter.WriteMsg`): classify,
    /// clamp every TTL to the cache duration, store when allowed, apply the AD rule.
    fn process(&self, mut buf: Vec<u8>, q: &Q<'_>, h: &Handles, mode: Mode, now: Instant) -> Processed {
        let Some(s) = wire_scan::scan(&buf) else {
            return Processed { wire: buf, item: None };
        };
        let kind = classify::cache_type(&buf, &s, unix_now());
        let storable = classify::storable(&buf, &s, kind);
        let cfg = &self.cfg;
        let dur = match kind {
            Kind::NameError | Kind::NoData => Duration::from_secs(classify::clamp_ttl(
                classify::minimal_ttl(&s, kind, cfg.nttl),
                cfg.minnttl,
                cfg.nttl,
            ) as u64),
            Kind::ServerError => cfg.failttl,
            _ => Duration::from_secs(classify::clamp_ttl(
                classify::minimal_ttl(&s, kind, cfg.pttl),
                cfg.minpttl,
                cfg.pttl,
            ) as u64),
        };
        let ttl = dur.as_secs().min(u32::MAX as u64) as u32;
        for r in &s.rrs {
            if !(r.section == Section::Additional && r.rtype == rtype::OPT) {
                set_u32(&mut buf, r.ttl_off, ttl);
            }
        }
        let mut item = None;
        if storable && !dur.is_zero() {
            if Self::reply_matches(&buf, &s, q) {
                item = self.set(&buf, &s, q, kind, ttl, h, mode, now);
                h.entries_success().set(self.stores.success.len() as i64);
                h.entries_denial().set(self.stores.denial.len() as i64);
            } else {
                h.drops().inc();
            }
        }
        if !q.do_bit && !q.ad {
            set_ad(&mut buf, false);
        }
        drop_opt(&mut buf, &s);
        Processed { wire: buf, item }
    }

    /// Stores the reply (CoreDNS `ResponseWriter.set`).
    #[allow(clippy::too_many_arguments)]
    fn set(
        &self,
        buf: &[u8],
        s: &Scan,
        q: &Q<'_>,
        kind: Kind,
        ttl: u32,
        h: &Handles,
        mode: Mode,
        now: Instant,
    ) -> Option<Arc<Entry>> {
        let success = match kind {
            Kind::NoError | Kind::Delegation => true,
            Kind::NameError | Kind::NoData | Kind::ServerError => false,
            _ => return None,
        };
        let except = if success { &self.cfg.pexcept } else { &self.cfg.nexcept };
        if zones_match(except, q.qname_lower) {
            return None;
        }
        let answering = classify::answers_question(buf, s);
        let mut entry = make_entry(buf, s, kind, answering, ttl, now)?;
        let stores = &self.stores;
        if success {
            if self.cfg.prefer_positive && !answering {
                if let Some(prev) = stores.success.peek(q.key) {
                    entry.last_known_good = prev.answering_entry(q.qwire, q.qtype, q.qclass);
                }
            }
            let entry = Arc::new(entry);
            if stores.success.add(q.key, entry.clone()) {
                h.evictions_success().inc();
            }
            if (!self.cfg.prefer_positive && mode == Mode::Prefetch) || (self.cfg.prefer_positive && answering) {
                stores.denial.remove(q.key);
            }
            Some(entry)
        } else {
            let entry = Arc::new(entry);
            if stores.denial.add(q.key, entry.clone()) {
                h.evictions_denial().inc();
            }
            Some(entry)
        }
    }

    /// Serves a query (CoreDNS `Cache.ServeDNS`).
    async fn serve(self: &Arc<Self>, req: &mut Request, next: Next<'_>) -> Outcome {
        if !zones_match(&self.cfg.zones, &req.qname_lower) {
            return next.serve(req).await;
        }
        let Some(q) = Q::from_request(req) else {
            return next.serve(req).await;
        };
        let now = self.now();
        let h = self.metrics.get(&req.server);
        h.requests().inc();
        let found = self.lookup(&q, now);
        let Some((entry, denial)) = found else {
            h.misses().inc();
            return self.miss(req, next, &h, now).await;
        };
        if denial {
            h.hits_denial().inc();
        } else {
            h.hits_success().inc();
        }
        let ttl = entry.ttl(now);
        let stale = ttl <= 0;
        let mut hit_now = now;
        if stale {
            if self.cfg.verify_stale {
                if let Some(out) = self.verify_stale(req, next, &entry, &h, now).await {
                    return out;
                }
            }
            // Moves "now" back so the stale entry reads as TTL 0.
            hit_now = now.checked_sub(Duration::from_secs((-ttl) as u64)).unwrap_or(now);
            if !self.cfg.verify_stale {
                self.try_prefetch(req, next.to_owned(), &entry, &h, hit_now, true);
            }
            h.served_stale().inc();
        } else if self.should_prefetch(&entry, now) {
            self.try_prefetch(req, next.to_owned(), &entry, &h, now, false);
        }
        let Some(q) = Q::from_request(req) else {
            return next.serve(req).await;
        };
        let reply_ttl = if stale && self.cfg.stale_ttl > 0 {
            self.cfg.stale_ttl
        } else if self.cfg.keepttl {
            entry.orig_ttl
        } else {
            entry.ttl(hit_now).max(0) as u32
        };
        match hit_reply(&entry, &req.wire, q.qwire, reply_ttl, q.do_bit, q.ad) {
            Some(out) => hit_outcome(out),
            None => self.miss(req, next, &h, now).await,
        }
    }

    /// A miss: the query goes down the chain with AD=1, the written reply is stored.
    async fn miss(&self, req: &mut Request, next: Next<'_>, h: &Handles, now: Instant) -> Outcome {
        let mut out = serve_with_ad(req, next).await;
        self.finish(req, &mut out, h, Mode::Miss, now);
        out
    }

    /// Processes the reply in `out` (if one was written) for the query in `req`.
    fn finish(&self, req: &Request, out: &mut Outcome, h: &Handles, mode: Mode, now: Instant) -> Option<Arc<Entry>> {
        let reply = out.reply.take()?;
        let Some(q) = Q::from_request(req) else {
            out.reply = Some(reply);
            return None;
        };
        let buf = match reply {
            Reply::Wire(w) => w,
            Reply::Message(m) => match m.to_vec() {
                Ok(w) => w,
                Err(_) => {
                    out.reply = Some(Reply::Message(m));
                    return None;
                }
            },
        };
        let p = self.process(buf, &q, h, mode, now);
        out.reply = Some(Reply::Wire(p.wire));
        p.item
    }

    /// Decides whether a refresh reply may replace a stale entry (CoreDNS's verify writer):
    /// returns true when it is accepted (and then stores it as `mode`); rejected replies are
    /// not stored, except that with prefer_positive a non-answering reply is stored silently.
    fn verify_accepts(&self, req: &Request, out: &Outcome, h: &Handles, now: Instant) -> bool {
        let Some(reply) = &out.reply else { return false };
        let Ok(buf) = reply.to_wire() else { return false };
        let (Some(s), Some(q)) = (wire_scan::scan(&buf), Q::from_request(req)) else { return false };
        if s.flags & bits::TC != 0 || !Self::reply_matches(&buf, &s, &q) {
            return false;
        }
        if self.cfg.prefer_positive {
            let usable =
                classify::cache_type(&buf, &s, unix_now()) == Kind::NoError && classify::answers_question(&buf, &s);
            if !usable {
                self.process(buf, &q, h, Mode::Prefetch, now);
            }
            return usable;
        }
        let t = classify::typify(&buf, &s, unix_now());
        if matches!(t, Kind::OtherError | Kind::Meta | Kind::Update) {
            return false;
        }
        let rc = s.rcode();
        rc == 0 || rc == 3
    }

    /// serve_stale verify: ask the chain first; Some(outcome) when its reply replaces the stale
    /// entry, None to serve stale.
    async fn verify_stale(
        self: &Arc<Self>,
        req: &mut Request,
        next: Next<'_>,
        entry: &Arc<Entry>,
        h: &Arc<Handles>,
        now: Instant,
    ) -> Option<Outcome> {
        let recheck = self.cfg.stale_recheck;
        let track = !recheck.is_zero();
        if track && !entry.begin_refresh(now, recheck) {
            return None;
        }
        if self.cfg.verify_timeout.is_zero() {
            let mut out = serve_with_ad(req, next).await;
            let accepted = self.verify_accepts(req, &out, h, now);
            if accepted {
                self.finish(req, &mut out, h, Mode::Miss, self.now());
            }
            if track {
                entry.end_refresh(self.now(), recheck, accepted);
            }
            return accepted.then_some(out);
        }
        // Bounded: the refresh runs in the background and may finish after we serve stale.
        let me = self.clone();
        let owned = next.to_owned();
        let mut bg = req.clone();
        bg.metadata.clear();
        let entry_bg = entry.clone();
        let h_bg = h.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let flags = wire::flags(&bg.wire);
            set_ad(&mut bg.wire, true);
            let mut out = owned.serve(&mut bg).await;
            wire::set_flags(&mut bg.wire, flags);
            let accepted = me.verify_accepts(&bg, &out, &h_bg, now);
            let item = if accepted { me.finish(&bg, &mut out, &h_bg, Mode::Prefetch, me.now()) } else { None };
            if track {
                entry_bg.end_refresh(me.now(), recheck, accepted);
            }
            let _ = tx.send((accepted, out, item));
        });
        let (accepted, out, item) = tokio::time::timeout(self.cfg.verify_timeout, rx).await.ok()?.ok()?;
        if !accepted {
            return None;
        }
        let Some(item) = item else { return Some(out) };
        let q = Q::from_request(req)?;
        let now = self.now();
        let ttl = if self.cfg.keepttl { item.orig_ttl } else { item.ttl(now).max(0) as u32 };
        hit_reply(&item, &req.wire, q.qwire, ttl, q.do_bit, q.ad).map(hit_outcome)
    }

    /// Starts one background refresh for `entry` unless one is running (CoreDNS `tryPrefetch`).
    fn try_prefetch(
        self: &Arc<Self>,
        req: &Request,
        next: OwnedNext,
        entry: &Arc<Entry>,
        h: &Arc<Handles>,
        now: Instant,
        stale: bool,
    ) {
        let recheck = if stale { self.cfg.stale_recheck } else { Duration::ZERO };
        if !entry.begin_refresh(self.now(), recheck) {
            return;
        }
        let me = self.clone();
        let entry = entry.clone();
        let h = h.clone();
        let mut bg = req.clone();
        bg.metadata.clear();
        // A synthetic TCP client: no client size limit, so upstreams are asked over TCP.
        bg.proto = Proto::Tcp;
        set_ad(&mut bg.wire, true);
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            entry.end_refresh(self.now(), recheck, false);
            return;
        };
        rt.spawn(async move {
            h.prefetch().inc();
            let mut out = next.serve(&mut bg).await;
            let refreshed = if stale {
                let ok = me.verify_accepts(&bg, &out, &h, now);
                if ok {
                    me.finish(&bg, &mut out, &h, Mode::Prefetch, me.now());
                }
                ok
            } else {
                me.finish(&bg, &mut out, &h, Mode::Prefetch, me.now());
                true
            };
            if refreshed {
                if let Some(q) = Q::from_request(&bg) {
                    if let Some(fresh) = me.exists(q.key) {
                        fresh.reset_hits(now, entry.hits());
                    }
                }
            }
            entry.end_refresh(me.now(), recheck, refreshed);
        });
    }
}

/// Runs the rest of the chain on `req` with AD=1 (CoreDNS asks downstream with AD set), then
/// restores the client's flags so plugins before the cache see the query unchanged.
async fn serve_with_ad(req: &mut Request, next: Next<'_>) -> Outcome {
    let flags = wire::flags(&req.wire);
    set_ad(&mut req.wire, true);
    let out = next.serve(req).await;
    wire::set_flags(&mut req.wire, flags);
    out
}

/// Removes the upstream's OPT from a reply written downstream, as CoreDNS's cache does
/// (`plugin/cache/cache.go` WriteMsg filters OPT out of every section with `filterRRSlice`): the
/// server then appends the client's OPT (`request.SizeAndDo`).
fn drop_opt(buf: &mut Vec<u8>, s: &Scan) {
    let Some(o) = s.opt.and_then(|i| s.rrs.get(i)) else { return };
    if o.end() == s.end && buf.len() >= wire::HEADER_LEN {
        buf.truncate(o.owner);
        let ar = u16::from_be_bytes([buf[10], buf[11]]).saturating_sub(1);
        buf[10..12].copy_from_slice(&ar.to_be_bytes());
        return;
    }
    // OPT in the middle of the additional section (e.g. before a TSIG): re-encode.
    let Some(mut m) = buf.get(..s.end).and_then(|b| Message::from_vec(b).ok()) else { return };
    m.edns = None;
    if let Ok(v) = m.to_vec() {
        *buf = v;
    }
}

/// Builds an entry from a TTL-clamped reply: OPT removed, offsets of every TTL recorded.
fn make_entry(buf: &[u8], s: &Scan, kind: Kind, answering: bool, ttl: u32, now: Instant) -> Option<Entry> {
    let q = s.question?;
    let opt = s.opt.and_then(|i| s.rrs.get(i));
    let (stored, rescanned);
    let (bytes, scan): (Vec<u8>, &Scan) = match opt {
        None => {
            stored = buf.get(..s.end)?.to_vec();
            (stored, s)
        }
        Some(o) if o.end() == s.end => {
            let mut v = buf.get(..o.owner)?.to_vec();
            let ar = u16::from_be_bytes([v[10], v[11]]).saturating_sub(1);
            v[10..12].copy_from_slice(&ar.to_be_bytes());
            let r = wire_scan::scan(&v)?;
            rescanned = r;
            (v, &rescanned)
        }
        Some(_) => {
            // OPT in the middle of the additional section (e.g. before a TSIG): re-encode.
            let mut m = Message::from_vec(buf.get(..s.end)?).ok()?;
            m.edns = None;
            let v = m.to_vec().ok()?;
            let r = wire_scan::scan(&v)?;
            rescanned = r;
            (v, &rescanned)
        }
    };
    if bytes.len() > u16::MAX as usize {
        return None;
    }
    let ttl_offs: Vec<u16> = scan.rrs.iter().filter(|r| r.rtype != rtype::OPT).map(|r| r.ttl_off as u16).collect();
    let qname_end = scan.question.map(|q| q.name_end).unwrap_or(q.name_end) as u16;
    Some(Entry::new(bytes, ttl_offs, qname_end, q.qtype, q.qclass, kind, answering, ttl, now))
}

impl Plugin for Cache {
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn name(&self) -> &'static str {
        NAME
    }

    fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move { self.inner.serve(req, next).await })
    }

    fn fast_answer(self: Arc<Self>) -> Option<Arc<dyn FastAnswer>> {
        Some(self)
    }
}

impl FastAnswer for Cache {
    fn lookup_fast(&self, fq: &FastQuery<'_>) -> FastLookup {
        Cache::lookup_fast(self, fq)
    }

    fn count_fast_miss(&self, server: &str) {
        Cache::count_fast_miss(self, server)
    }

    fn store_miss_reply(&self, fq: &FastQuery<'_>, reply: Vec<u8>) -> Vec<u8> {
        Cache::store_miss_reply(self, fq, reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    /// A stored entry for `example.` A with one record, TTL 60, AD and RA set, rcode NOERROR.
    fn entry(now: Instant) -> Entry {
        let mut w = vec![0, 0, 0x81, 0xa0, 0, 1, 0, 1, 0, 0, 0, 0];
        w.extend_from_slice(&[7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0, 0, 1, 0, 1]);
        w.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
        let ttl_off = 12 + 13 + 6;
        Entry::new(w, vec![ttl_off as u16], 21, 1, 1, Kind::NoError, true, 60, now)
    }

    fn query(id: u16, flags: u16, name: &[u8]) -> Vec<u8> {
        let mut q = id.to_be_bytes().to_vec();
        q.extend_from_slice(&flags.to_be_bytes());
        q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        q.extend_from_slice(name);
        q.extend_from_slice(&[0, 1, 0, 1]);
        q
    }

    #[test]
    fn hit_reply_patches_header_ttl_and_question() {
        let e = entry(Instant::now());
        let name = [7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0];
        // RD + CD set, no AD, no DO: AD is cleared, RD/CD echoed, AA set.
        let q = query(0xabcd, bits::RD | bits::CD, &name);
        let out = hit_reply(&e, &q, &name, 42, false, false).unwrap();
        assert_eq!(wire::id(&out), Some(0xabcd));
        assert_eq!(wire::flags(&out), bits::QR | bits::AA | bits::RD | bits::CD | bits::RA);
        assert_eq!(&out[31..35], &42u32.to_be_bytes());
        assert_eq!(out.len(), e.wire().len());
        // With DO the stored AD is kept.
        let out = hit_reply(&e, &q, &name, 42, true, false).unwrap();
        assert_eq!(wire::flags(&out) & bits::AD, bits::AD);
        // Another spelling: the question takes the client's case, the record keeps the stored one.
        let upper = [7, b'E', b'X', b'a', b'm', b'p', b'l', b'E', 0];
        let q = query(7, bits::RD, &upper);
        let out = hit_reply(&e, &q, &upper, 10, false, false).unwrap();
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.queries[0].name.to_ascii(), "EXamplE.");
        assert_eq!(m.answers[0].name.to_ascii(), "example.");
        assert_eq!(m.answers[0].ttl, 10);
        assert!(m.metadata.authoritative);
    }
}
