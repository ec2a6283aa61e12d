//! Wire-level compatibility with CoreDNS (issue 13) over real loopback sockets: the reply OPT
//! rebuilt from the request's (request/request.go SizeAndDo, plugin/cache dropping the
//! upstream's OPT), BADVERS, FORMERR/NOTIMP headers and miekg's parsing leniency.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::thread;

use common::*;
use nodecache::server::wire;
use pretty_assertions::assert_eq;

/// An upstream that answers every query with one A record and an OPT carrying an NSID, an EDE,
/// Z bits and UDP size 1232: what the reply to the client must not show through a cache.
fn opt_upstream() -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind upstream");
    let addr = sock.local_addr().expect("addr");
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let q = &buf[..n];
            let Some(qend) = wire::question_end(q) else { continue };
            let mut r = q[..qend].to_vec();
            r[2] = 0x81;
            r[3] = 0x80;
            r[4..12].copy_from_slice(&[0, 1, 0, 1, 0, 0, 0, 1]);
            r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 1]);
            let opts = [&[0u8, 3, 0, 4][..], b"up01", &[0, 15, 0, 2, 0, 0]].concat();
            wire::encode_opt(1232, 0x0000_1100, &opts, &mut r);
            let _ = sock.send_to(&r, from);
        }
    });
    addr
}

/// The OPT record (fixed part and RDATA) of a reply: (UDP size, TTL, RDATA).
fn reply_opt(r: &[u8]) -> (u16, u32, Vec<u8>) {
    let rrs = wire::records(r).expect("reply parses");
    let opts: Vec<_> = rrs.iter().filter(|x| x.rtype == wire::TYPE_OPT).collect();
    assert_eq!(opts.len(), 1, "one OPT in {r:02x?}");
    let o = opts[0];
    let f = o.fixed;
    let size = u16::from_be_bytes([r[f + 2], r[f + 3]]);
    let ttl = u32::from_be_bytes([r[f + 4], r[f + 5], r[f + 6], r[f + 7]]);
    (size, ttl, r[o.rdata..o.end()].to_vec())
}

/// `name` A IN with an OPT: UDP size 100, DO and Z bits 0x1234, options NSID (empty), COOKIE,
/// an unsupported local option, PADDING, TCP-KEEPALIVE with timeout 0, EXPIRE (empty).
fn query_with_options(first: &str) -> Vec<u8> {
    let mut body = question(first);
    let cookie = [0u8, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8];
    let opts = [
        &[0u8, 3, 0, 0][..],
        &cookie,
        &[0xfd, 0xe9, 0, 2, 0xab, 0xcd],
        &[0, 12, 0, 3, 0, 0, 0],
        &[0, 11, 0, 2, 0, 0],
        &[0, 9, 0, 0],
    ]
    .concat();
    wire::encode_opt(100, 0x0000_9234, &opts, &mut body);
    raw_query(0x0100, [1, 0, 0, 1], &body)
}

/// What CoreDNS sends back for [`query_with_options`]: the supported options in order, the
/// keepalive re-packed empty (miekg packs a zero timeout as no data).
fn echoed_options() -> Vec<u8> {
    [
        &[0u8, 3, 0, 0][..],
        &[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8],
        &[0, 12, 0, 3, 0, 0, 0],
        &[0, 11, 0, 0],
        &[0, 9, 0, 0],
    ]
    .concat()
}

#[test]
fn cached_and_forwarded_replies_carry_the_request_opt_rebuilt() {
    let up = opt_upstream();
    // prefer_udp: the fixture answers over UDP only, TCP clients included.
    let srv =
        Server::start(&format!(".:{{PORT}} {{\n    cache 30\n    forward . {up} {{\n        prefer_udp\n    }}\n}}\n"));
    // UDP: the miss (fast direct path) then the hit (fast path) must give the same OPT bytes.
    let q = query_with_options("www");
    let miss = udp_raw(srv.addr, &q, WAIT).expect("miss reply");
    let hit = udp_raw(srv.addr, &q, WAIT).expect("hit reply");
    // TCP: a miss and a hit through the chain and the TCP hit path.
    let qt = query_with_options("mail");
    let tmiss = tcp_raw(srv.addr, &framed(&qt), WAIT).expect("tcp miss");
    let thit = tcp_raw(srv.addr, &framed(&qt), WAIT).expect("tcp hit");
    for (what, r) in [("udp miss", &miss), ("udp hit", &hit), ("tcp miss", &tmiss), ("tcp hit", &thit)] {
        assert_eq!(rcode_of(r), 0, "{what}");
        assert_eq!(wire::counts(r), (1, 1, 0, 1), "{what}");
        // Size verbatim (not raised to 512), version 0, DO and Z & 0x7f00 kept, no NSID/EDE
        // from the upstream, the supported options echoed.
        assert_eq!(reply_opt(r), (100, 0x0000_9200, echoed_options()), "{what}");
        // The OPT is the last record.
        assert_eq!(wire::records(r).and_then(|v| v.last().map(|x| x.rtype)), Some(wire::TYPE_OPT), "{what}");
    }
    let tail = |r: &[u8]| r[r.len() - 11 - echoed_options().len()..].to_vec();
    assert_eq!(tail(&miss), tail(&hit));
}

#[test]
fn server_written_replies_echo_the_request_opt() {
    let srv = Server::start("example.org:{PORT} {\n    whoami\n}\n");
    // REFUSED (no zone): the question and the client's OPT rebuilt.
    let mut body = vec![3, b'w', b'w', b'w', 3, b'n', b'e', b't', 0, 0, 1, 0, 1];
    wire::encode_opt(300, 0x0000_0100, &[0, 10, 0, 8, 9, 9, 9, 9, 9, 9, 9, 9, 0, 8, 0, 4, 0, 1, 0, 0], &mut body);
    let r = udp_raw(srv.addr, &raw_query(0x0100, [1, 0, 0, 1], &body), WAIT).expect("REFUSED");
    assert_eq!(rcode_of(&r), 5);
    assert_eq!(reply_opt(&r), (300, 0x0000_0100, vec![0, 10, 0, 8, 9, 9, 9, 9, 9, 9, 9, 9]));
    // A plugin-written reply (whoami) also gets the UDP size verbatim.
    let mut body = question("www");
    wire::encode_opt(200, 0, &[], &mut body);
    let r = udp_raw(srv.addr, &raw_query(0x0100, [1, 0, 0, 1], &body), WAIT).expect("whoami");
    assert_eq!(rcode_of(&r), 0);
    assert_eq!(reply_opt(&r).0, 200);
}

/// A forwarding server in front of the example zone.
fn forwarder() -> (Server, nodecache_conformance::fixture::Fixture) {
    let up = fixture(&example_zone(300));
    let srv = Server::start(&format!(".:{{PORT}} {{\n    forward . {}\n}}\n", up.addr()));
    (srv, up)
}

#[test]
fn formerr_and_notimp_headers_are_set_rcode_format_error() {
    let (mut srv, up) = forwarder();
    // NOTIFY with AA, TC, RD, RA, Z, AD, CD, and a cut-short additional record: FORMERR with
    // opcode QUERY, AA and Z cleared, TC/RD/RA/AD/CD kept, the question read echoed.
    let q = question("www");
    let flags = 4 << 11 | 0x0400 | 0x0200 | 0x0100 | 0x0080 | 0x0040 | 0x0020 | 0x0010;
    let body = [&q[..], &[0, 0, 41, 0x10]].concat();
    let r = udp_raw(srv.addr, &raw_query(flags, [1, 0, 0, 1], &body), WAIT).expect("FORMERR");
    assert_eq!(wire::flags(&r), 0x8000 | 0x0200 | 0x0100 | 0x0080 | 0x0020 | 0x0010 | 1);
    assert_eq!(wire::counts(&r), (1, 0, 0, 0));
    assert_eq!(&r[wire::HEADER_LEN..], &q[..]);
    // A question that cannot be read: no question.
    let r = udp_raw(srv.addr, &raw_query(0x0500, [1, 0, 0, 0], &[0xc0, 0x0c, 0, 1, 0, 1]), WAIT).expect("FORMERR");
    assert_eq!((wire::flags(&r), wire::counts(&r), r.len()), (0x8101, (0, 0, 0, 0), 12));
    // NOTIMP keeps the opcode but clears AA.
    let r = udp_raw(srv.addr, &raw_query(5 << 11 | 0x0500, [1, 0, 0, 0], &q), WAIT).expect("NOTIMP");
    assert_eq!(wire::flags(&r), 0x8000 | 5 << 11 | 0x0100 | 4);
    assert_eq!(up.seen().len(), 0);
    srv.assert_alive();
}

#[test]
fn question_count_one_without_a_question_is_servfail() {
    let up = fixture(&example_zone(300));
    let mport = nodecache_conformance::ports::PortPicker.tcp().expect("metrics port");
    let mut srv =
        Server::start(&format!(".:{{PORT}} {{\n    forward . {}\n    prometheus 127.0.0.1:{mport}\n}}\n", up.addr()));
    for tcp in [false, true] {
        let q = raw_query(0x0110, [1, 0, 0, 0], &[]);
        let r = if tcp { tcp_raw(srv.addr, &framed(&q), WAIT) } else { udp_raw(srv.addr, &q, WAIT) };
        assert_eq!(r.expect("SERVFAIL"), vec![0x12, 0x34, 0x81, 0x12, 0, 0, 0, 0, 0, 0, 0, 0], "tcp={tcp}");
    }
    assert_eq!(up.seen().len(), 0);
    // Counted as CoreDNS's errorAndMetricsFunc counts it: zone "dropped".
    let body =
        nodecache_conformance::http::get(&format!("http://127.0.0.1:{mport}/metrics"), WAIT).expect("metrics").body;
    let servfail: f64 = body
        .lines()
        .filter(|l| l.starts_with("coredns_dns_responses_total{") && l.contains("zone=\"dropped\""))
        .filter(|l| l.contains("rcode=\"SERVFAIL\""))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum();
    assert_eq!(servfail, 2.0, "{body}");
    srv.assert_alive();
}

#[test]
fn malformed_client_subnet_is_formerr_and_not_forwarded() {
    let (srv, up) = forwarder();
    let q = question("www");
    for ecs in [
        &[0u8, 8, 0, 4, 0, 3, 0, 0][..],
        &[0, 8, 0, 3, 0, 1, 24],
        &[0, 8, 0, 5, 0, 1, 33, 0, 1],
        &[0, 8, 0, 4, 0, 2, 129, 0],
    ] {
        let mut body = q.clone();
        wire::encode_opt(1232, 0, ecs, &mut body);
        // Twice: the second would be a fast-path candidate.
        for _ in 0..2 {
            let r = udp_raw(srv.addr, &raw_query(0x0100, [1, 0, 0, 1], &body), WAIT).expect("FORMERR");
            assert_eq!(rcode_of(&r), 1, "{ecs:?}");
            assert_eq!(wire::counts(&r), (1, 0, 0, 0), "{ecs:?}");
        }
    }
    assert_eq!(up.seen().len(), 0);
    // A valid ECS is forwarded.
    let mut body = q.clone();
    wire::encode_opt(1232, 0, &[0, 8, 0, 7, 0, 1, 24, 0, 192, 0, 2], &mut body);
    let r = udp_raw(srv.addr, &raw_query(0x0100, [1, 0, 0, 1], &body), WAIT).expect("answer");
    assert_eq!(rcode_of(&r), 0);
}

#[test]
fn miekg_leniency_serves_the_query() {
    let (srv, up) = forwarder();
    let q = question("www");
    let with = |extra: &[u8]| [&q[..], extra].concat();
    let mut two_opts = Vec::new();
    wire::encode_opt(512, 0, &[], &mut two_opts);
    wire::encode_opt(1400, 0, &[0, 0, 0, 0], &mut two_opts);
    let mut zero_code = Vec::new();
    wire::encode_opt(1232, 0, &[0, 0, 0, 2, 1, 2], &mut zero_code);
    let cases: Vec<(&str, [u16; 4], Vec<u8>)> = vec![
        ("trailing bytes", [1, 0, 0, 0], with(&[0xde, 0xad, 0xbe])),
        ("counts above the records present", [1, 1, 1, 2], q.clone()),
        ("OPT with a non-root owner", [1, 0, 0, 1], with(&[1, b'x', 0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0])),
        ("two OPTs", [1, 0, 0, 2], with(&two_opts)),
        ("option code 0", [1, 0, 0, 1], with(&zero_code)),
    ];
    for (what, counts, body) in cases {
        for tcp in [false, true] {
            let m = raw_query(0x0100, counts, &body);
            let r = if tcp { tcp_raw(srv.addr, &framed(&m), WAIT) } else { udp_raw(srv.addr, &m, WAIT) };
            let r = r.unwrap_or_else(|| panic!("{what}: no reply"));
            assert_eq!(rcode_of(&r), 0, "{what} tcp={tcp}: {r:02x?}");
            assert_eq!(wire::counts(&r).1, 1, "{what} tcp={tcp}: one answer");
        }
    }
    assert!(up.seen().len() >= 5);
    // A question without class is read with class 0: not IN, so REFUSED, the question echoed
    // as miekg re-packs it (type A, class 0).
    let name = &q[..q.len() - 4];
    let body = [name, &[0, 1]].concat();
    let r = udp_raw(srv.addr, &raw_query(0x0100, [1, 0, 0, 0], &body), WAIT).expect("REFUSED");
    assert_eq!(rcode_of(&r), 5);
    assert_eq!(&r[wire::HEADER_LEN..], &[name, &[0, 1, 0, 0]].concat()[..]);
}
