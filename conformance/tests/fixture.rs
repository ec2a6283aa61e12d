//! The upstream fixture over real loopback sockets.

use std::time::Duration;

use hickory_proto::op::ResponseCode;
use nodecache_conformance::client::{exchange, QuerySpec, Reply};
use nodecache_conformance::fixture::{Behaviour, Fixture};
use nodecache_conformance::records::{flags, rcode_name};
use nodecache_conformance::zone::ZoneSet;
use pretty_assertions::assert_eq;

const ZONE: &str = "$ORIGIN example.org.
$TTL 300
@      IN SOA ns1 hostmaster 1 7200 3600 1209600 60
www    IN A 192.0.2.1
www    IN A 192.0.2.2
alias  IN CNAME www
";

fn fixture(f: impl FnOnce(&mut Behaviour)) -> Fixture {
    let mut b = Behaviour { zones: ZoneSet::parse(ZONE).unwrap(), ..Behaviour::default() };
    f(&mut b);
    Fixture::start(b, true).unwrap()
}

fn ask(fx: &Fixture, q: &str, tcp: bool, wait_ms: u64) -> Option<Reply> {
    let mut spec = QuerySpec::parse(q, "").unwrap();
    spec.tcp = tcp;
    exchange(fx.addr(), &spec, Duration::from_millis(wait_ms)).unwrap()
}

fn lines(r: &Reply) -> (String, Vec<String>, Vec<String>, Vec<String>) {
    let mut ans: Vec<String> = r.msg.answers.iter().map(|r| r.to_string()).collect();
    ans.sort();
    let auth = r.msg.authorities.iter().map(|r| r.to_string()).collect();
    (rcode_name(r.msg.metadata.response_code), flags(&r.msg), ans, auth)
}

/// The SOA of negative answers: its TTL is min(TTL 300, MINIMUM 60) (RFC 2308 §3).
const SOA: &str = "example.org. 60 IN SOA ns1.example.org. hostmaster.example.org. 1 7200 3600 1209600 60";

#[test]
fn zone_answers_nxdomain_nodata_cname_and_refused() {
    let fx = fixture(|_| {});
    let r = ask(&fx, "www.example.org. A", false, 3000).unwrap();
    assert_eq!(
        lines(&r),
        (
            "NOERROR".into(),
            vec!["qr".into(), "aa".into(), "rd".into()],
            vec!["www.example.org. 300 IN A 192.0.2.1".into(), "www.example.org. 300 IN A 192.0.2.2".into()],
            vec![]
        )
    );
    let r = ask(&fx, "nope.example.org. A", false, 3000).unwrap();
    assert_eq!(lines(&r).0, "NXDOMAIN");
    assert_eq!(lines(&r).3, vec![SOA.to_string()]);
    let r = ask(&fx, "www.example.org. AAAA", false, 3000).unwrap();
    assert_eq!((lines(&r).0, lines(&r).2.len(), lines(&r).3), ("NOERROR".into(), 0, vec![SOA.to_string()]));
    let r = ask(&fx, "alias.example.org. A", false, 3000).unwrap();
    assert_eq!(r.msg.answers.len(), 3);
    let r = ask(&fx, "www.other.test. A", false, 3000).unwrap();
    assert_eq!(lines(&r), ("REFUSED".into(), vec!["qr".into(), "rd".into()], vec![], vec![]));
    assert_eq!(fx.queries(), 5);
}

#[test]
fn delay_holds_the_answer_back() {
    let fx = fixture(|b| b.delay_ms = 1500);
    assert!(ask(&fx, "www.example.org. A", false, 300).is_none());
    assert!(ask(&fx, "www.example.org. A", false, 5000).is_some());
    assert_eq!(fx.queries(), 2);
}

#[test]
fn drop_never_answers_but_counts() {
    let fx = fixture(|b| b.drop = true);
    assert!(ask(&fx, "www.example.org. A", false, 800).is_none());
    assert!(ask(&fx, "www.example.org. A", true, 800).is_none());
    assert_eq!((fx.queries(), fx.tcp_queries()), (2, 1));
}

#[test]
fn truncate_udp_sets_tc_over_udp_only() {
    let fx = fixture(|b| b.truncate_udp = true);
    let r = ask(&fx, "www.example.org. A", false, 3000).unwrap();
    assert_eq!((r.msg.metadata.truncation, r.msg.answers.len()), (true, 0));
    let r = ask(&fx, "www.example.org. A", true, 3000).unwrap();
    assert_eq!((r.msg.metadata.truncation, r.msg.answers.len()), (false, 2));
}

#[test]
fn forced_rcode_and_runtime_update() {
    let fx = fixture(|b| b.rcode = Some(ResponseCode::ServFail));
    let r = ask(&fx, "www.example.org. A", false, 3000).unwrap();
    assert_eq!((lines(&r).0, r.msg.answers.len()), ("SERVFAIL".into(), 0));
    fx.update(|b| b.rcode = None);
    let r = ask(&fx, "www.example.org. A", false, 3000).unwrap();
    assert_eq!((lines(&r).0, r.msg.answers.len()), ("NOERROR".into(), 2));
}

#[test]
fn counts_by_transport_and_skips_loop_probes() {
    let fx = fixture(|_| {});
    ask(&fx, "www.example.org. A", false, 3000).unwrap();
    ask(&fx, "www.example.org. A", false, 3000).unwrap();
    ask(&fx, "www.example.org. A", true, 3000).unwrap();
    ask(&fx, "4817263.99182.example.org. HINFO", false, 3000).unwrap();
    ask(&fx, "4817263.99182. HINFO", true, 3000).unwrap();
    assert_eq!((fx.queries(), fx.tcp_queries()), (3, 1));
    ask(&fx, "www.example.org. HINFO", false, 3000).unwrap();
    ask(&fx, "a1.2.example.org. HINFO", false, 3000).unwrap();
    assert_eq!(fx.queries(), 5);
    fx.reset_counters();
    assert_eq!(fx.queries(), 0);
}

#[test]
fn large_udp_answers_are_truncated_like_a_real_server() {
    let mut zone = String::from(ZONE);
    for i in 1..=40 {
        zone.push_str(&format!("big IN A 198.51.100.{i}\n"));
    }
    let fx = Fixture::start(Behaviour { zones: ZoneSet::parse(&zone).unwrap(), ..Behaviour::default() }, true).unwrap();
    let r = ask(&fx, "big.example.org. A", false, 3000).unwrap();
    assert_eq!((r.msg.metadata.truncation, r.msg.answers.len()), (true, 0));
    let r = ask(&fx, "big.example.org. A", true, 3000).unwrap();
    assert_eq!((r.msg.metadata.truncation, r.msg.answers.len()), (false, 40));
}
