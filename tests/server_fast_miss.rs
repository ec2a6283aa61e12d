//! The UDP cache-miss fast path (a block of just `cache` and `forward` sends misses over the
//! forward plugin's shared upstream socket) against the plugin chain: same bytes, same
//! counters, and the chain takes over whenever the direct path cannot finish a query.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use nodecache_conformance::fixture::Fixture;
use nodecache_conformance::ports::PortPicker;
use pretty_assertions::assert_eq;

/// A query in wire form with a fixed ID, RD set, and optionally an OPT (size, DO).
fn query(id: u16, name: &str, qtype: RecordType, edns: Option<(u16, bool)>) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    if let Some((size, dnssec_ok)) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        e.set_dnssec_ok(dnssec_ok);
        m.edns = Some(e);
    }
    m.to_vec().expect("encode")
}

/// Name, type, and the OPT (size, DO) of one query.
type Case = (&'static str, RecordType, Option<(u16, bool)>);

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut conn = TcpStream::connect(addr).expect("connect metrics");
    write!(conn, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("write");
    let mut page = String::new();
    conn.read_to_string(&mut page).expect("read");
    page
}

/// The value of the first sample line that starts with `series` (name and labels as printed).
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines().find(|l| l.starts_with(series)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

fn fixture_zone() -> Fixture {
    fixture(&example_zone(300))
}

/// The fast path (cache then forward) and the chain (`log` in front keeps every query on it)
/// answer misses of every kind with the same bytes: answers, NODATA, NXDOMAIN, an oversized
/// reply truncated for a client without OPT, the full reply for an EDNS client, DO and case.
#[test]
fn fast_misses_answer_exactly_as_the_chain() {
    let up = fixture_zone();
    let fast = Server::start(&format!(".:{{PORT}} {{\n    cache\n    forward . {}\n}}\n", up.addr()));
    let chain = Server::start(&format!(".:{{PORT}} {{\n    log\n    cache\n    forward . {}\n}}\n", up.addr()));
    let cases: Vec<Case> = vec![
        ("www.example.org.", RecordType::A, None),
        ("WwW.Example.org.", RecordType::AAAA, None),
        ("missing.example.org.", RecordType::A, None),
        ("big.example.org.", RecordType::A, None),
        ("twenty.example.org.", RecordType::A, Some((4096, false))),
        ("mail.example.org.", RecordType::A, Some((1232, true))),
        ("mixed.example.org.", RecordType::TXT, Some((512, false))),
    ];
    for (i, (name, qtype, edns)) in cases.into_iter().enumerate() {
        let q = query(0x4000 + i as u16, name, qtype, edns);
        let a = udp_raw(fast.addr, &q, WAIT).unwrap_or_else(|| panic!("fast path: no reply to {name} {qtype}"));
        let b = udp_raw(chain.addr, &q, WAIT).unwrap_or_else(|| panic!("chain: no reply to {name} {qtype}"));
        assert_eq!(a, b, "{name} {qtype} {edns:?}: fast-path miss differs from the chain");
        // The stored entry then serves the hit with the same bytes as the chain's hit.
        let a = udp_raw(fast.addr, &q, WAIT).expect("fast hit");
        let b = udp_raw(chain.addr, &q, WAIT).expect("chain hit");
        assert_eq!(a, b, "{name} {qtype} {edns:?}: hit after a fast-path miss differs");
    }
    let big = Message::from_vec(&udp_raw(fast.addr, &query(7, "big.example.org.", RecordType::A, None), WAIT).unwrap())
        .expect("parse");
    assert!(big.metadata.truncation && big.answers.is_empty(), "512-byte client gets TC: {big:?}");
}

/// One miss and one hit over UDP count as CoreDNS counts them: two cache requests, one miss,
/// one upstream request, a response from `forward` and one from `cache`; the upstream saw one
/// query, sent with AD set as the cache sends it.
#[test]
fn fast_miss_counts_like_the_chain_and_stores_the_reply() {
    let up = fixture_zone();
    let prom = PortPicker.tcp().expect("free port");
    let srv = Server::start(&format!(
        ".:{{PORT}} {{\n    prometheus 127.0.0.1:{prom}\n    errors\n    cache\n    forward . {}\n}}\n",
        up.addr()
    ));
    let q = query(0x1111, "www.example.org.", RecordType::A, None);
    let first = Message::from_vec(&udp_raw(srv.addr, &q, WAIT).expect("miss reply")).expect("parse");
    let second = Message::from_vec(&udp_raw(srv.addr, &q, WAIT).expect("hit reply")).expect("parse");
    assert_eq!(first.answers, second.answers);
    assert_eq!(up.queries(), 1, "the second query is a cache hit");
    let page = http_get(([127, 0, 0, 1], prom).into(), "/metrics");
    assert_eq!(sample(&page, "coredns_cache_requests_total{"), Some(2.0), "{page}");
    assert_eq!(sample(&page, "coredns_cache_misses_total{"), Some(1.0));
    assert!(
        page.lines()
            .any(|l| l.starts_with("coredns_cache_entries{") && l.contains("type=\"success\"") && l.ends_with(" 1")),
        "{page}"
    );
    let responses = |plugin: &str| {
        page.lines()
            .filter(|l| l.starts_with("coredns_dns_responses_total{") && l.contains(&format!("plugin=\"{plugin}\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    assert_eq!((responses("forward"), responses("cache")), (1.0, 1.0), "{page}");
    assert!(
        page.lines().any(|l| l.starts_with("coredns_proxy_request_duration_seconds_count{")
            && l.contains("rcode=\"NOERROR\"")
            && l.ends_with(" 1")),
        "one upstream request recorded: {page}"
    );
}

/// A first upstream that never answers: the direct path gives up after the read timeout and
/// the chain's attempt loop moves on to the next upstream, so the client still gets its answer.
#[test]
fn silent_upstream_hands_the_query_to_the_chain() {
    let dead = dead_fixture();
    let up = fixture_zone();
    let srv = Server::start(&format!(
        ".:{{PORT}} {{\n    cache\n    forward . {} {} {{\n        policy sequential\n    }}\n}}\n",
        dead.addr(),
        up.addr()
    ));
    let started = Instant::now();
    let reply = udp_raw(srv.addr, &query(0x2222, "www.example.org.", RecordType::A, None), Duration::from_secs(15))
        .expect("an answer after the fallback");
    let msg = Message::from_vec(&reply).expect("parse");
    assert_eq!(msg.metadata.id, 0x2222);
    assert_eq!(msg.answers.len(), 1, "{msg:?}");
    assert!(up.queries() >= 1 && dead.queries() >= 1, "tried the silent upstream, answered by the next");
    assert!(started.elapsed() >= Duration::from_secs(2), "the direct path waited its read timeout first");
}

/// TCP clients and HINFO (the `loop` probe's type) always take the chain; they still share the
/// cache the fast path fills.
#[test]
fn tcp_and_hinfo_take_the_chain() {
    let up = fixture_zone();
    let srv = Server::start(&format!(".:{{PORT}} {{\n    cache\n    loop\n    forward . {}\n}}\n", up.addr()));
    let udp = Q::new("www.example.org.", RecordType::A).ask(srv.addr);
    let tcp = Q::new("www.example.org.", RecordType::A).tcp().ask(srv.addr);
    assert_eq!(udp.answers, tcp.answers);
    assert_eq!(up.queries(), 1, "the TCP query was a hit on the entry the UDP miss stored");
    let hinfo = Q::new("mail.example.org.", RecordType::HINFO).ask(srv.addr);
    assert_eq!(hinfo.metadata.message_type, MessageType::Response);
    assert!(up.seen().iter().any(|s| s.question.to_ascii_lowercase().starts_with("mail.example.org. hinfo")));
}

/// A reply whose question does not match is not used by the direct path; the chain asks again
/// and, as CoreDNS, answers FORMERR when the upstream keeps mismatching.
#[test]
fn mismatched_upstream_reply_falls_back_to_the_chain() {
    // An upstream that answers every query for a different name.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = sock.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let Ok(q) = Message::from_vec(&buf[..n]) else { continue };
            let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
            r.add_query(Query::query(Name::from_ascii("other.example.").expect("name"), RecordType::A));
            let _ = sock.send_to(&r.to_vec().expect("encode"), from);
        }
    });
    let srv = Server::start(&format!(".:{{PORT}} {{\n    cache\n    forward . {addr}\n}}\n"));
    let reply = udp_raw(srv.addr, &query(0x3333, "www.example.org.", RecordType::A, None), WAIT).expect("reply");
    assert_eq!((u16::from_be_bytes([reply[0], reply[1]]), rcode_of(&reply)), (0x3333, 1), "FORMERR from the chain");
}

/// With `force_tcp` (node-local-dns's cluster.local block) misses travel on the upstream's
/// shared TCP connections (the chain's pooled exchange while they open): the same bytes as
/// the chain, every upstream query over TCP, one upstream query per miss.
#[test]
fn force_tcp_misses_use_shared_connections_and_answer_as_the_chain() {
    let up = fixture_zone();
    let tcp = |extra: &str| {
        format!(".:{{PORT}} {{\n{extra}    cache\n    forward . {} {{\n        force_tcp\n    }}\n}}\n", up.addr())
    };
    let fast = Server::start(&tcp(""));
    let chain = Server::start(&tcp("    log\n"));
    let cases: Vec<Case> = vec![
        ("www.example.org.", RecordType::A, None),
        ("missing.example.org.", RecordType::A, None),
        ("big.example.org.", RecordType::A, None),
        ("twenty.example.org.", RecordType::A, Some((4096, false))),
        ("mail.example.org.", RecordType::AAAA, Some((1232, true))),
    ];
    for (i, (name, qtype, edns)) in cases.into_iter().enumerate() {
        let q = query(0x5000 + i as u16, name, qtype, edns);
        let a = udp_raw(fast.addr, &q, WAIT).unwrap_or_else(|| panic!("fast path: no reply to {name} {qtype}"));
        let b = udp_raw(chain.addr, &q, WAIT).unwrap_or_else(|| panic!("chain: no reply to {name} {qtype}"));
        assert_eq!(a, b, "{name} {qtype} {edns:?}: force_tcp fast-path miss differs from the chain");
    }
    assert_eq!(up.queries(), up.tcp_queries(), "every upstream query went over TCP");
    assert_eq!(up.queries(), 10, "one upstream query per miss per server");
}
