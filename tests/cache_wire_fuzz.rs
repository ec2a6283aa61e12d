//! Malformed replies never panic the cache's wire scanner, classifier or store path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::BoxFuture;
use proptest::prelude::*;

use nodecache::plugin::cache::classify;
use nodecache::plugin::cache::setup::Config;
use nodecache::plugin::cache::wire_scan;
use nodecache::plugin::cache::Cache;
use nodecache::plugin::{Chain, Next, Plugin};
use nodecache::server::{Outcome, Proto, Reply, Request};

/// A valid reply for `example.` A: one CNAME (compressed), one A, an SOA and an OPT.
fn valid_reply() -> Vec<u8> {
    let mut b = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 1, 0, 1];
    b.extend_from_slice(&[7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0, 0, 1, 0, 1]);
    // CNAME example. -> www.example.
    b.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6, 3, b'w', b'w', b'w', 0xc0, 12]);
    // A www.example.
    b.extend_from_slice(&[0xc0, 37, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
    // SOA example.
    b.extend_from_slice(&[0xc0, 12, 0, 6, 0, 1, 0, 0, 0, 60, 0, 22, 0, 0]);
    b.extend_from_slice(&[0; 20]);
    // OPT
    b.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0x80, 0, 0, 0]);
    b
}

fn check_all(buf: &[u8]) {
    if let Some(s) = wire_scan::scan(buf) {
        let t = classify::cache_type(buf, &s, 1_700_000_000);
        let _ = classify::storable(buf, &s, t);
        let _ = classify::answers_question(buf, &s);
        let _ = classify::minimal_ttl(&s, t, 3600);
        for r in &s.rrs {
            let _ = wire_scan::name_key(buf, r.owner);
            let _ = wire_scan::name_key(buf, r.rdata);
        }
    }
    for off in 0..buf.len().min(64) {
        let _ = wire_scan::name_key(buf, off);
        let _ = wire_scan::skip_name(buf, off);
    }
}

struct Fixed(Vec<u8>);

impl Plugin for Fixed {
    fn name(&self) -> &'static str {
        "fixed"
    }
    fn serve<'a>(&'a self, _req: &'a mut Request, _next: Next<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(std::future::ready(Outcome::written("fixed", Reply::Wire(self.0.clone()))))
    }
}

fn request() -> Request {
    let mut wire = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    wire.extend_from_slice(&[7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0, 0, 1, 0, 1]);
    let addr = SocketAddr::from(([127, 0, 0, 1], 5300));
    Request {
        received_len: wire.len(),
        wire,
        qname: "example.".into(),
        qname_lower: "example.".into(),
        qtype: 1,
        qclass: 1,
        edns: None,
        client: addr,
        local: addr,
        proto: Proto::Udp,
        server: Arc::from("dns://:53"),
        zone: Arc::from("."),
        started: Instant::now(),
        metadata: vec![],
    }
}

fn through_cache(reply: Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let cache: Arc<dyn Plugin> = Arc::new(Cache::new(Config::new(vec![".".into()])));
        let chain: Chain = Arc::from(vec![cache, Arc::new(Fixed(reply)) as Arc<dyn Plugin>]);
        for _ in 0..2 {
            let mut req = request();
            let _ = Next::start(&chain).serve(&mut req).await;
        }
    });
}

#[test]
fn valid_reply_scans_and_answers() {
    let buf = valid_reply();
    let s = wire_scan::scan(&buf).expect("valid reply scans");
    assert_eq!(s.rrs.len(), 4);
    assert!(classify::answers_question(&buf, &s), "the CNAME chain ends in an A record");
    through_cache(buf);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..300)) {
        check_all(&buf);
    }

    #[test]
    fn mutated_replies_never_panic(edits in proptest::collection::vec((0usize..120, any::<u8>()), 1..6), cut in 0usize..130) {
        let mut buf = valid_reply();
        for (i, v) in edits {
            if let Some(b) = buf.get_mut(i) {
                *b = v;
            }
        }
        buf.truncate(cut.max(12));
        check_all(&buf);
        through_cache(buf);
    }
}
