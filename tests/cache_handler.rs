//! The cache plugin driven through a real chain: `cache` followed by a counting upstream plugin.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use pretty_assertions::assert_eq;

use nodecache::plugin::cache::setup::Config;
use nodecache::plugin::cache::Cache;
use nodecache::plugin::fast::FastQuery;
use nodecache::plugin::{BuildContext, Carryover, Chain, Next, Plugin, PluginConfig};
use nodecache::server::{ClientEdns, Outcome, Proto, Reply, Request};

type Answer = dyn Fn(&Message, usize) -> Option<Message> + Send + Sync;

/// A plugin that answers from a closure and counts the queries reaching it.
struct Upstream {
    count: AtomicUsize,
    answer: Box<Answer>,
    /// The AD bit of the last query it saw.
    last_ad: AtomicUsize,
}

impl Plugin for Upstream {
    fn name(&self) -> &'static str {
        "upstream"
    }
    fn serve<'a>(&'a self, req: &'a mut Request, _next: Next<'a>) -> BoxFuture<'a, Outcome> {
        let n = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        let q = req.message().expect("query parses");
        self.last_ad.store(q.metadata.authentic_data as usize, Ordering::SeqCst);
        let out = match (self.answer)(&q, n) {
            Some(m) => Outcome::written("upstream", Reply::Wire(m.to_vec().expect("encodes"))),
            None => Outcome::unwritten(ResponseCode::ServFail, Some("upstream down".into())),
        };
        Box::pin(std::future::ready(out))
    }
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn a(owner: &str, ttl: u32, ip: [u8; 4]) -> Record {
    Record::from_rdata(name(owner), ttl, RData::A(A(Ipv4Addr::from(ip))))
}

fn soa(zone: &str, ttl: u32) -> Record {
    let rd = SOA::new(name("ns1.example.org."), name("hostmaster.example.org."), 1, 7200, 3600, 1209600, 60);
    Record::from_rdata(name(zone), ttl, RData::SOA(rd))
}

fn cname(owner: &str, ttl: u32, target: &str) -> Record {
    Record::from_rdata(name(owner), ttl, RData::CNAME(CNAME(name(target))))
}

/// A reply to `q` carrying its question and ID, NOERROR, RA set.
fn reply(q: &Message) -> Message {
    let mut m = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = q.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.queries = q.queries.clone();
    if let Some(e) = &q.edns {
        let mut re = Edns::new();
        re.set_dnssec_ok(e.flags().dnssec_ok);
        re.set_max_payload(1232);
        m.set_edns(re);
    }
    m
}

fn query(qname: &str, qtype: RecordType, id: u16, dnssec: bool) -> Request {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(name(qname), qtype));
    let mut edns = None;
    if dnssec {
        let mut e = Edns::new();
        e.set_dnssec_ok(true);
        e.set_max_payload(4096);
        m.set_edns(e);
        edns = Some(ClientEdns { udp_size: 4096, dnssec_ok: true, version: 0, options: vec![] });
    }
    let wire = m.to_vec().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], 5300));
    Request {
        received_len: wire.len(),
        wire,
        qname: qname.to_string(),
        qname_lower: qname.to_ascii_lowercase(),
        qtype: u16::from(qtype),
        qclass: 1,
        edns,
        client: addr,
        local: SocketAddr::from(([127, 0, 0, 1], 53)),
        proto: Proto::Udp,
        server: Arc::from("dns://:53"),
        zone: Arc::from("."),
        started: Instant::now(),
        metadata: vec![],
    }
}

struct Rig {
    cache: Arc<Cache>,
    upstream: Arc<Upstream>,
    chain: Chain,
}

impl Rig {
    fn new(cfg: Config, answer: impl Fn(&Message, usize) -> Option<Message> + Send + Sync + 'static) -> Rig {
        let cache = Arc::new(Cache::new(cfg));
        let upstream =
            Arc::new(Upstream { count: AtomicUsize::new(0), answer: Box::new(answer), last_ad: AtomicUsize::new(0) });
        let chain: Chain = Arc::from(vec![cache.clone() as Arc<dyn Plugin>, upstream.clone() as Arc<dyn Plugin>]);
        Rig { cache, upstream, chain }
    }

    async fn ask(&self, req: &mut Request) -> Outcome {
        Next::start(&self.chain).serve(req).await
    }

    /// Sends a query and parses the written reply.
    async fn msg(&self, qname: &str, qtype: RecordType, id: u16) -> Message {
        let mut req = query(qname, qtype, id, false);
        let out = self.ask(&mut req).await;
        out.reply.expect("a reply was written").to_message().expect("reply parses")
    }

    fn upstream_count(&self) -> usize {
        self.upstream.count.load(Ordering::SeqCst)
    }

    /// Waits (bounded) for background refreshes to reach the upstream.
    async fn wait_count(&self, want: usize) -> usize {
        for _ in 0..200 {
            if self.upstream_count() >= want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Let the refresh store its result.
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.upstream_count()
    }
}

fn cfg() -> Config {
    Config::new(vec![".".to_string()])
}

fn ttls(m: &Message) -> Vec<u32> {
    m.answers.iter().chain(m.authorities.iter()).chain(m.additionals.iter()).map(|r| r.ttl).collect()
}

fn positive(ttl: u32) -> impl Fn(&Message, usize) -> Option<Message> + Send + Sync {
    move |q, _| {
        let mut m = reply(q);
        let owner = q.queries[0].name.to_ascii().to_ascii_lowercase();
        m.add_answer(a(&owner, ttl, [192, 0, 2, 1]));
        Some(m)
    }
}

#[tokio::test]
async fn hit_skips_upstream_and_patches_header() {
    let mut c = cfg();
    c.pttl = 30;
    c.nttl = 30;
    let rig = Rig::new(c, positive(300));
    let first = rig.msg("www.example.org.", RecordType::A, 100).await;
    assert_eq!(ttls(&first), vec![30], "the miss reply is clamped too");
    assert_eq!(rig.upstream_count(), 1);
    assert_eq!(rig.upstream.last_ad.load(Ordering::SeqCst), 1, "the cache asks downstream with AD=1");

    let mut req = query("www.example.org.", RecordType::A, 0xbeef, false);
    // Clear RD in the second query: the hit must echo the client's RD.
    let mut f = nodecache::server::wire::flags(&req.wire);
    f &= !nodecache::server::wire::bits::RD;
    nodecache::server::wire::set_flags(&mut req.wire, f);
    let out = rig.ask(&mut req).await;
    assert_eq!(out.plugin, "cache");
    let hit = out.reply.unwrap().to_message().unwrap();
    assert_eq!(rig.upstream_count(), 1, "a hit does not reach the upstream");
    assert_eq!(hit.metadata.id, 0xbeef);
    assert!(hit.metadata.authoritative, "AA is always set on hits");
    assert!(!hit.metadata.recursion_desired);
    assert!(hit.metadata.recursion_available);
    assert_eq!(hit.metadata.message_type, MessageType::Response);
    assert!(hit.answers[0].ttl <= 30 && hit.answers[0].ttl >= 29);
    assert!(hit.edns.is_none(), "no OPT is stored");
}

#[tokio::test]
async fn ttl_decrements_and_case_insensitive_key_case_34() {
    let rig = Rig::new(cfg(), positive(3601));
    let first = rig.msg("miek.nl.", RecordType::A, 1).await;
    assert_eq!(ttls(&first), vec![3600]);
    rig.cache.advance_clock(Duration::from_secs(100));
    let hit = rig.msg("mIEK.nL.", RecordType::A, 2).await;
    assert_eq!(rig.upstream_count(), 1);
    assert_eq!(hit.queries[0].name.to_ascii(), "mIEK.nL.", "the question keeps the client's spelling");
    assert_eq!(hit.answers[0].name.to_ascii(), "miek.nl.", "records keep the first reply's spelling");
    assert_eq!(ttls(&hit), vec![3500]);
    // keepttl serves the original TTL.
    let mut c = cfg();
    c.keepttl = true;
    let rig = Rig::new(c, positive(100));
    rig.msg("miek.nl.", RecordType::A, 1).await;
    rig.cache.advance_clock(Duration::from_secs(40));
    assert_eq!(ttls(&rig.msg("miek.nl.", RecordType::A, 2).await), vec![100]);
    // After expiry (no serve_stale) the upstream is asked again.
    rig.cache.advance_clock(Duration::from_secs(61));
    rig.msg("miek.nl.", RecordType::A, 3).await;
    assert_eq!(rig.upstream_count(), 2);
}

#[tokio::test]
async fn ttl_clamps_case_35() {
    let mut c = cfg();
    c.pttl = 10;
    c.nttl = 10;
    let rig = Rig::new(c, positive(3600));
    assert_eq!(ttls(&rig.msg("a.example.", RecordType::A, 1).await), vec![10]);
    let rig = Rig::new(cfg(), positive(1));
    assert_eq!(ttls(&rig.msg("a.example.", RecordType::A, 1).await), vec![5]);
    // Every record, in every section, gets the duration; the SOA's own TTL counts.
    let rig = Rig::new(cfg(), |q, _| {
        let mut m = reply(q);
        m.add_answer(a("a.example.", 300, [192, 0, 2, 1]));
        m.add_authority(soa("example.", 120));
        m.add_additional(a("ns.example.", 900, [192, 0, 2, 2]));
        Some(m)
    });
    let m = rig.msg("a.example.", RecordType::A, 1).await;
    assert_eq!(ttls(&m), vec![120, 120, 120]);
}

#[tokio::test]
async fn dnssec_ok_and_ad_rule() {
    let rig = Rig::new(cfg(), |q, _| {
        let mut m = reply(q);
        m.metadata.authentic_data = true;
        m.add_answer(a("s.example.", 60, [192, 0, 2, 1]));
        Some(m)
    });
    // Without DO or AD the AD bit is cleared, on the miss and on the hit.
    let miss = rig.msg("s.example.", RecordType::A, 1).await;
    assert!(!miss.metadata.authentic_data);
    let hit = rig.msg("s.example.", RecordType::A, 2).await;
    assert!(!hit.metadata.authentic_data);
    assert_eq!(rig.upstream_count(), 1);
    // DO is part of the key; with DO the AD bit is kept and the stored reply has no OPT.
    let mut req = query("s.example.", RecordType::A, 3, true);
    let out = rig.ask(&mut req).await.reply.unwrap().to_message().unwrap();
    assert!(out.metadata.authentic_data);
    // CoreDNS's cache drops the upstream's OPT from the miss reply too (cache.go WriteMsg,
    // filterRRSlice); the server then appends the client's.
    assert!(out.edns.is_none(), "the miss reply has no upstream OPT");
    assert_eq!(rig.upstream_count(), 2);
    let mut req = query("s.example.", RecordType::A, 4, true);
    let out = rig.ask(&mut req).await.reply.unwrap().to_message().unwrap();
    assert_eq!(rig.upstream_count(), 2);
    assert!(out.metadata.authentic_data);
    assert!(out.edns.is_none(), "the server adds the client's OPT back");
}

async fn cached(rig: &Rig, qname: &str, qtype: RecordType) -> bool {
    let before = rig.upstream_count();
    let mut r1 = query(qname, qtype, 1, false);
    rig.ask(&mut r1).await;
    let mut r2 = query(qname, qtype, 2, false);
    rig.ask(&mut r2).await;
    rig.upstream_count() == before + 1
}

#[tokio::test]
async fn what_is_cached_case_33() {
    // TC replies are not cached.
    let rig = Rig::new(cfg(), |q, _| {
        let mut m = reply(q);
        m.metadata.truncation = true;
        Some(m)
    });
    assert!(!cached(&rig, "tc.example.", RecordType::A).await);
    // NXDOMAIN without SOA: not cached; with SOA: cached.
    let rig = Rig::new(cfg(), |q, _| {
        let mut m = reply(q);
        m.metadata.response_code = ResponseCode::NXDomain;
        if q.queries[0].name.to_ascii().starts_with("soa") {
            m.add_authority(soa("example.", 60));
        }
        Some(m)
    });
    assert!(!cached(&rig, "nosoa.example.", RecordType::A).await);
    assert!(cached(&rig, "soa.example.", RecordType::A).await);
    // A dangling CNAME without SOA: not cached; the same with SOA is NoData and cached.
    let rig = Rig::new(cfg(), |q, _| {
        let mut m = reply(q);
        let qn = q.queries[0].name.to_ascii();
        m.add_answer(cname(&qn, 60, "target.example."));
        if qn.starts_with("soa") {
            m.add_authority(soa("example.", 60));
        }
        Some(m)
    });
    assert!(!cached(&rig, "dangling.example.", RecordType::A).await);
    assert!(cached(&rig, "soa-dangling.example.", RecordType::A).await);
    // ... and a CNAME query is answered by the CNAME itself.
    assert!(cached(&rig, "cname.example.", RecordType::CNAME).await);
    // A complete chain is cached.
    let rig = Rig::new(cfg(), |q, _| {
        let mut m = reply(q);
        m.add_answer(cname(&q.queries[0].name.to_ascii(), 60, "target.example."));
        m.add_answer(a("target.example.", 60, [192, 0, 2, 9]));
        Some(m)
    });
    assert!(cached(&rig, "chain.example.", RecordType::A).await);
    // An empty NOERROR stays cacheable.
    let rig = Rig::new(cfg(), |q, _| Some(reply(q)));
    assert!(cached(&rig, "empty.example.", RecordType::A).await);
    // SERVFAIL and NOTIMP written downstream are cached.
    for rc in [ResponseCode::ServFail, ResponseCode::NotImp] {
        let rig = Rig::new(cfg(), move |q, _| {
            let mut m = reply(q);
            m.metadata.response_code = rc;
            Some(m)
        });
        assert!(cached(&rig, "fail.example.", RecordType::A).await, "{rc:?}");
        let mut req = query("fail.example.", RecordType::A, 3, false);
        let out = rig.ask(&mut req).await;
        assert_eq!(out.rcode, ResponseCode::NoError, "a hit is a written reply: the cache returns NOERROR");
        let m = out.reply.unwrap().to_message().unwrap();
        assert_eq!(m.metadata.response_code, rc);
    }
    // REFUSED is OtherError: not cached.
    let rig = Rig::new(cfg(), |q, _| {
        let mut m = reply(q);
        m.metadata.response_code = ResponseCode::Refused;
        Some(m)
    });
    assert!(!cached(&rig, "refused.example.", RecordType::A).await);
    // A reply for another question is not cached (a drop).
    let rig = Rig::new(cfg(), |q, _| {
        let mut m = reply(q);
        m.queries[0].set_name(name("other.example."));
        m.add_answer(a("other.example.", 60, [192, 0, 2, 1]));
        Some(m)
    });
    assert!(!cached(&rig, "asked.example.", RecordType::A).await);
    // A failure that writes nothing caches nothing.
    let rig = Rig::new(cfg(), |_, _| None);
    assert!(!cached(&rig, "down.example.", RecordType::A).await);
}

#[tokio::test]
async fn servfail_zero_and_min_ttl_zero_case_36() {
    let mut c = cfg();
    c.failttl = Duration::ZERO;
    let rig = Rig::new(c, |q, _| {
        let mut m = reply(q);
        m.metadata.response_code = ResponseCode::ServFail;
        Some(m)
    });
    assert!(!cached(&rig, "fail.example.", RecordType::A).await);
    let mut c = cfg();
    c.minpttl = 0;
    let rig = Rig::new(c, positive(0));
    assert!(!cached(&rig, "zero.example.", RecordType::A).await);
    assert_eq!(ttls(&rig.msg("zero.example.", RecordType::A, 9).await), vec![0]);
}

#[tokio::test]
async fn denial_limits_and_servfail_does_not_shadow_success() {
    // A prefetch that gets SERVFAIL stores it in the denial store while the success entry is
    // still valid: look-ups keep serving the success entry.
    let mut c = cfg();
    c.prefetch = 1;
    c.percentage = 90;
    let rig = Rig::new(c, |q, n| {
        let mut m = reply(q);
        if n == 1 {
            m.add_answer(a("x.example.", 100, [192, 0, 2, 1]));
        } else {
            m.metadata.response_code = ResponseCode::ServFail;
        }
        Some(m)
    });
    rig.msg("x.example.", RecordType::A, 1).await;
    rig.cache.advance_clock(Duration::from_secs(20));
    rig.msg("x.example.", RecordType::A, 2).await;
    assert_eq!(rig.wait_count(2).await, 2, "prefetch ran and got SERVFAIL");
    assert_eq!(rig.cache.stores().denial.len(), 1);
    let m = rig.msg("x.example.", RecordType::A, 3).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers.len(), 1);

    // NXDOMAIN TTLs follow the denial limits (denial 9984 5 → exactly 5).
    let mut c = cfg();
    c.nttl = 5;
    let rig = Rig::new(c, |q, _| {
        let mut m = reply(q);
        m.metadata.response_code = ResponseCode::NXDomain;
        m.add_authority(soa("example.", 900));
        Some(m)
    });
    assert_eq!(ttls(&rig.msg("nx.example.", RecordType::A, 1).await), vec![5]);
}

#[tokio::test]
async fn serve_stale_immediate_case_37() {
    let mut c = cfg();
    c.stale_up_to = Duration::from_secs(3600);
    // The upstream answers once, then fails without writing (unreachable).
    let rig = Rig::new(c, |q, n| {
        (n == 1).then(|| {
            let mut m = reply(q);
            m.add_answer(a("stale.example.", 60, [192, 0, 2, 1]));
            m
        })
    });
    rig.msg("stale.example.", RecordType::A, 1).await;
    rig.cache.advance_clock(Duration::from_secs(30 * 60));
    let m = rig.msg("stale.example.", RecordType::A, 2).await;
    assert_eq!(m.answers.len(), 1, "served from cache");
    assert_eq!(ttls(&m), vec![0], "stale replies carry TTL 0");
    assert_eq!(rig.wait_count(2).await, 2, "one background refresh");
    rig.cache.advance_clock(Duration::from_secs(30 * 60));
    let m = rig.msg("stale.example.", RecordType::A, 3).await;
    assert_eq!(m.answers.len(), 1, "still within serve_stale at +60m");
    assert_eq!(rig.wait_count(3).await, 3);
    rig.cache.advance_clock(Duration::from_secs(10 * 60));
    let mut req = query("stale.example.", RecordType::A, 4, false);
    let out = rig.ask(&mut req).await;
    assert!(out.reply.is_none(), "+70m goes upstream, which fails");
    assert_eq!(out.rcode, ResponseCode::ServFail);
    assert_eq!(rig.upstream_count(), 4);
}

#[tokio::test]
async fn serve_stale_response_ttl_and_refresh() {
    let mut c = cfg();
    c.stale_up_to = Duration::from_secs(3600);
    c.stale_ttl = 30;
    let rig = Rig::new(c, |q, n| {
        let mut m = reply(q);
        m.add_answer(a("r.example.", 60, [192, 0, 2, n as u8]));
        Some(m)
    });
    rig.msg("r.example.", RecordType::A, 1).await;
    rig.cache.advance_clock(Duration::from_secs(120));
    let m = rig.msg("r.example.", RecordType::A, 2).await;
    assert_eq!(ttls(&m), vec![30]);
    assert_eq!(m.answers[0].data, RData::A(A(Ipv4Addr::new(192, 0, 2, 1))));
    // The background refresh stores the new answer, which later hits see.
    assert_eq!(rig.wait_count(2).await, 2);
    let m = rig.msg("r.example.", RecordType::A, 3).await;
    assert_eq!(m.answers[0].data, RData::A(A(Ipv4Addr::new(192, 0, 2, 2))));
    assert_eq!(rig.upstream_count(), 2);
}

#[tokio::test]
async fn serve_stale_verify() {
    for timeout in [Duration::ZERO, Duration::from_secs(5)] {
        let mut c = cfg();
        c.stale_up_to = Duration::from_secs(3600);
        c.verify_stale = true;
        c.verify_timeout = timeout;
        // Answers 1 and 2 work, 3 fails (writes SERVFAIL), 4 writes nothing.
        let rig = Rig::new(c, |q, n| {
            let mut m = reply(q);
            match n {
                1 | 2 => {
                    m.add_answer(a("v.example.", 60, [192, 0, 2, n as u8]));
                }
                3 => m.metadata.response_code = ResponseCode::ServFail,
                _ => return None,
            }
            Some(m)
        });
        rig.msg("v.example.", RecordType::A, 1).await;
        rig.cache.advance_clock(Duration::from_secs(120));
        let m = rig.msg("v.example.", RecordType::A, 2).await;
        assert_eq!(m.answers[0].data, RData::A(A(Ipv4Addr::new(192, 0, 2, 2))), "verified upstream answer");
        assert!(m.answers[0].ttl > 0);
        rig.cache.advance_clock(Duration::from_secs(120));
        let m = rig.msg("v.example.", RecordType::A, 3).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "SERVFAIL does not replace stale");
        assert_eq!(ttls(&m), vec![0]);
        assert_eq!(m.answers[0].data, RData::A(A(Ipv4Addr::new(192, 0, 2, 2))));
        let m = rig.msg("v.example.", RecordType::A, 4).await;
        assert_eq!(ttls(&m), vec![0]);
        assert_eq!(rig.upstream_count(), 4);
    }
}

#[tokio::test]
async fn prefetch_refreshes_popular_entries() {
    let mut c = cfg();
    c.prefetch = 2;
    c.percentage = 50;
    let rig = Rig::new(c, |q, n| {
        let mut m = reply(q);
        m.add_answer(a("p.example.", 100, [192, 0, 2, n as u8]));
        Some(m)
    });
    rig.msg("p.example.", RecordType::A, 1).await;
    // First hit: one hit counted, TTL high: no prefetch.
    rig.msg("p.example.", RecordType::A, 2).await;
    rig.cache.advance_clock(Duration::from_secs(55));
    // Second hit within the window with TTL 45 ≤ 50: one background refresh.
    let m = rig.msg("p.example.", RecordType::A, 3).await;
    assert_eq!(m.answers[0].data, RData::A(A(Ipv4Addr::new(192, 0, 2, 1))), "the hit is served first");
    assert_eq!(rig.wait_count(2).await, 2);
    let m = rig.msg("p.example.", RecordType::A, 4).await;
    assert_eq!(m.answers[0].data, RData::A(A(Ipv4Addr::new(192, 0, 2, 2))));
    assert_eq!(ttls(&m), vec![100]);
    assert_eq!(rig.upstream_count(), 2);
}

#[tokio::test]
async fn zones_and_disable() {
    let mut c = cfg();
    c.zones = vec!["example.org.".into()];
    let rig = Rig::new(c, positive(60));
    assert!(cached(&rig, "www.example.org.", RecordType::A).await);
    assert!(!cached(&rig, "www.example.com.", RecordType::A).await, "outside the cache's zones");
    let mut c = cfg();
    c.pexcept = vec!["no.example.".into()];
    let rig = Rig::new(c, positive(60));
    assert!(!cached(&rig, "a.no.example.", RecordType::A).await);
    assert!(cached(&rig, "yes.example.", RecordType::A).await);
}

#[tokio::test]
async fn lookup_fast_answers_fresh_hits_only() {
    let rig = Rig::new(cfg(), positive(60));
    let now = rig.cache.now();
    let q = query("Fast.Example.", RecordType::A, 7, false);
    assert_eq!(rig.cache.lookup_fast(&fast_query(&q.wire, "fast.example.", false, now)).hit(), None);
    rig.msg("fast.example.", RecordType::A, 1).await;
    let out = rig.cache.lookup_fast(&fast_query(&q.wire, "fast.example.", false, rig.cache.now())).hit().unwrap();
    let m = Message::from_vec(&out).unwrap();
    assert_eq!(m.metadata.id, 7);
    assert!(m.metadata.authoritative);
    assert_eq!(m.queries[0].name.to_ascii(), "Fast.Example.");
    assert_eq!(m.answers.len(), 1);
    assert_eq!(
        rig.cache.lookup_fast(&fast_query(&q.wire, "fast.example.", true, rig.cache.now())).hit(),
        None,
        "DO is part of the key"
    );
    rig.cache.advance_clock(Duration::from_secs(61));
    assert_eq!(rig.cache.lookup_fast(&fast_query(&q.wire, "fast.example.", false, rig.cache.now())).hit(), None);
}

#[test]
fn stores_carry_across_reloads() {
    let carry = Arc::new(Carryover::default());
    let ctx = BuildContext {
        zones: vec![".".into()],
        servers: vec!["dns://:53".into()],
        metrics: Arc::new(nodecache::observe::Metrics::default()),
        carry: carry.clone(),
        after: "forward:upstreams 192.0.2.53:53".into(),
    };
    let c = cfg();
    let one = Cache::build(c.clone(), &ctx);
    let two = Cache::build(c.clone(), &ctx);
    assert!(Arc::ptr_eq(one.stores(), two.stores()));
    let mut changed = c.clone();
    changed.pttl = 10;
    let three = Cache::build(changed, &ctx);
    assert!(!Arc::ptr_eq(one.stores(), three.stores()));
    // Another block (other listener) with the same zones and options gets its own stores.
    let other = BuildContext { servers: vec!["dns://:5353".into()], ..ctx.clone() };
    assert!(!Arc::ptr_eq(one.stores(), Cache::build(c.clone(), &other).stores()));
    // A reload (next generation) with the same block and options takes the stores over.
    let reloaded = BuildContext { carry: Arc::new(carry.next_generation()), ..ctx.clone() };
    assert!(Arc::ptr_eq(one.stores(), Cache::build(c.clone(), &reloaded).stores()));
    // A reload that changes what follows the cache (another upstream) starts it afresh.
    let elsewhere = BuildContext {
        carry: Arc::new(carry.next_generation()),
        after: "forward:upstreams 192.0.2.54:53".into(),
        ..ctx.clone()
    };
    assert!(!Arc::ptr_eq(one.stores(), Cache::build(c.clone(), &elsewhere).stores()));
    let built = c.build(&ctx).unwrap().expect("cache adds a handler");
    assert_eq!(built.name(), "cache");
}

#[tokio::test]
async fn capacity_bounds_entries() {
    let mut c = cfg();
    c.pcap = 0;
    let rig = Rig::new(c, positive(60));
    for i in 0..3000 {
        rig.msg(&format!("n{i}.example."), RecordType::A, 1).await;
    }
    assert_eq!(rig.cache.stores().success.capacity(), 1024);
    assert!(rig.cache.stores().success.len() <= 1024);
    assert!(rig.cache.stores().success.len() > 900);
}

fn metrics_text() -> String {
    let mut s = String::new();
    prometheus_client::encoding::text::encode(&mut s, &nodecache::observe::registry().lock()).unwrap();
    s
}

fn metric_value(text: &str, prefix: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_hits_misses() {
    let mut c = cfg();
    c.zones = vec!["metrics.test.".into()];
    let rig = Rig::new(c, positive(60));
    let server = "dns://metrics-test:53";
    for id in 0..3 {
        let mut req = query("www.metrics.test.", RecordType::A, id, false);
        req.server = Arc::from(server);
        rig.ask(&mut req).await;
    }
    let text = metrics_text();
    let labels = format!("{{server=\"{server}\",zones=\"metrics.test.\",view=\"\"}}");
    let typed = |t: &str| format!("{{server=\"{server}\",type=\"{t}\",zones=\"metrics.test.\",view=\"\"}}");
    assert_eq!(metric_value(&text, &format!("coredns_cache_requests_total{labels}")), Some(3.0), "{text}");
    assert_eq!(metric_value(&text, &format!("coredns_cache_misses_total{labels}")), Some(1.0));
    assert_eq!(metric_value(&text, &format!("coredns_cache_hits_total{}", typed("success"))), Some(2.0));
    assert_eq!(
        metric_value(&text, &format!("coredns_cache_hits_total{}", typed("denial"))),
        None,
        "untouched series are absent"
    );
    assert_eq!(metric_value(&text, &format!("coredns_cache_entries{}", typed("success"))), Some(1.0));
    assert_eq!(metric_value(&text, &format!("coredns_cache_entries{}", typed("denial"))), Some(0.0));
    assert_eq!(metric_value(&text, &format!("coredns_cache_drops_total{labels}")), None);
}

#[tokio::test]
async fn serve_stale_policy_prefer_positive() {
    for prefer in [false, true] {
        let mut c = cfg();
        c.stale_up_to = Duration::from_secs(3600);
        c.prefer_positive = prefer;
        // First an answer, then NXDOMAIN with SOA from every refresh.
        let rig = Rig::new(c, |q, n| {
            let mut m = reply(q);
            if n == 1 {
                m.add_answer(a("pp.example.", 60, [192, 0, 2, 1]));
            } else {
                m.metadata.response_code = ResponseCode::NXDomain;
                m.add_authority(soa("example.", 60));
            }
            Some(m)
        });
        rig.msg("pp.example.", RecordType::A, 1).await;
        rig.cache.advance_clock(Duration::from_secs(120));
        let m = rig.msg("pp.example.", RecordType::A, 2).await;
        assert_eq!(m.answers.len(), 1, "the stale answer is served first");
        assert_eq!(rig.wait_count(2).await, 2);
        assert_eq!(rig.cache.stores().denial.len(), 1, "the NXDOMAIN is stored either way");
        let m = rig.msg("pp.example.", RecordType::A, 3).await;
        if prefer {
            assert_eq!(m.metadata.response_code, ResponseCode::NoError, "the positive answer wins");
            assert_eq!(m.answers.len(), 1);
        } else {
            assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "the refresh replaced the answer");
        }
    }
}

/// An IN-class A query for the cache's fast path, as the server's listener would build it.
fn fast_query<'a>(query: &'a [u8], qname_lower: &'a str, do_bit: bool, now: std::time::Instant) -> FastQuery<'a> {
    FastQuery { server: "dns://:53", query, qname_lower, qtype: 1, qclass: 1, do_bit, now }
}
