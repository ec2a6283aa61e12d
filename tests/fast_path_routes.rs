//! The fast miss path for TCP clients and for blocks with several `forward` lines.
//!
//! How the tests tell the direct path from the chain without a clock: the first query for a
//! "probe-" name (over either transport) is answered with a reply for another question. The
//! direct path drops it and hands the query to the chain, which asks again and gets a proper
//! answer (NOERROR); the chain alone answers FORMERR at once for a TCP exchange, and at its
//! read timeout for UDP.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::{Arc, Mutex};

use common::*;
use hickory_proto::op::Message;
use pretty_assertions::assert_eq;

/// Queries seen, per transport ("udp"/"tcp") and lower-case name.
type Seen = Arc<Mutex<HashMap<(&'static str, String), usize>>>;

/// The reply an upstream gives `query`: a reply for another name to the first query for a
/// `probe-` name, else a NOERROR `A` answer.
fn answer(seen: &Seen, proto: &'static str, query: &[u8]) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    let name = q.queries.first()?.name().to_ascii().to_ascii_lowercase();
    let first = {
        let mut seen = seen.lock().expect("lock");
        let before: usize = seen.iter().filter(|((_, n), _)| *n == name).map(|(_, c)| *c).sum();
        *seen.entry((proto, name.clone())).or_default() += 1;
        before == 0
    };
    let answer_for = if name.starts_with("probe-") && first { "other.example." } else { &name };
    Some(a_reply(q.metadata.id, answer_for))
}

/// An upstream on loopback answering over UDP and TCP on one port.
fn upstream() -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind upstream");
    let addr = udp.local_addr().expect("addr");
    let tcp = TcpListener::bind(addr).expect("bind tcp upstream");
    let s = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = udp.recv_from(&mut buf) {
            if let Some(r) = answer(&s, "udp", &buf[..n]) {
                let _ = udp.send_to(&r, from);
            }
        }
    });
    let s = seen.clone();
    std::thread::spawn(move || {
        for conn in tcp.incoming() {
            let Ok(mut conn) = conn else { continue };
            let s = s.clone();
            std::thread::spawn(move || {
                while let Some(q) = read_frame(&mut conn) {
                    let Some(r) = answer(&s, "tcp", &q) else { break };
                    if conn.write_all(&framed(&r)).is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// Queries the upstream saw over `proto` for names starting with `prefix`.
fn count(seen: &Seen, proto: &str, prefix: &str) -> usize {
    seen.lock().expect("lock").iter().filter(|((p, n), _)| *p == proto && n.starts_with(prefix)).map(|(_, c)| *c).sum()
}

/// Asks `name` over TCP on a new connection and returns the reply.
fn ask_tcp(srv: &Server, id: u16, name: &str) -> Vec<u8> {
    tcp_raw(srv.addr, &framed(&a_query(id, name)), WAIT).unwrap_or_else(|| panic!("{name}: no TCP reply"))
}

/// Asks `probe-warm-N.<zone>` over TCP until one takes the direct path (NOERROR): the direct
/// path's upstream connection is then up.
fn warm_tcp(srv: &Server, zone: &str) {
    let mut n = 0u16;
    let up = eventually(WAIT, || {
        n += 1;
        rcode_of(&ask_tcp(srv, 0xf000 + n, &format!("probe-warm-{n}.{zone}"))) == 0
    });
    assert!(up, "the direct TCP path never came up");
}

/// `a_query` with an OPT record: UDP size 1232, DO set, one COOKIE option.
fn a_query_edns(id: u16, name: &str) -> Vec<u8> {
    let mut q = a_query(id, name);
    q[11] = 1;
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 12]);
    q.extend_from_slice(&[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
    q
}

/// A TCP client's miss takes the direct path: the probe's first (wrong) reply is dropped and
/// the chain's second query answers it. The reply is counted as the chain would count it.
#[test]
fn tcp_client_misses_take_the_direct_path() {
    let (up, seen) = upstream();
    let mut srv =
        Server::start(&format!(".:{{PORT}} {{\n    prometheus 127.0.0.1:0\n    cache\n    forward . {up}\n}}\n"));
    // The direct path's upstream connection opens on first use (that query takes the chain).
    warm_tcp(&srv, "example.");
    for i in 0..5u16 {
        let reply = ask_tcp(&srv, 0x200 + i, &format!("probe-tcp-{i}.example."));
        assert_eq!(rcode_of(&reply), 0, "probe-tcp-{i}: the direct path's failure is retried by the chain");
    }
    // Both attempts went over TCP (the client's transport), none over UDP.
    assert_eq!((count(&seen, "tcp", "probe-tcp-"), count(&seen, "udp", "probe-tcp-")), (10, 0));
    // A plain miss, then its hit, over TCP: one upstream query.
    assert_eq!(rcode_of(&ask_tcp(&srv, 0x300, "plain-tcp.example.")), 0);
    assert_eq!(rcode_of(&ask_tcp(&srv, 0x301, "plain-tcp.example.")), 0);
    assert_eq!(count(&seen, "tcp", "plain-tcp."), 1);
    srv.assert_alive();
}

/// The chain alone (a `log` in front of the cache leaves the block no fast path) answers the
/// probe FORMERR: this is what tells the paths apart above.
#[test]
fn without_a_fast_path_the_tcp_probe_is_formerr() {
    let (up, _seen) = upstream();
    let srv = Server::start(&format!(".:{{PORT}} {{\n    log\n    cache\n    forward . {up}\n}}\n"));
    assert_eq!(rcode_of(&ask_tcp(&srv, 0x400, "probe-chain.example.")), 1);
}

/// A TCP client's miss answered on the direct path is byte for byte what the chain answers,
/// with and without the client's OPT.
#[test]
fn tcp_direct_miss_replies_match_the_chain() {
    let (up, _seen) = upstream();
    let fast = Server::start(&format!(".:{{PORT}} {{\n    cache\n    forward . {up}\n}}\n"));
    let chain = Server::start(&format!(".:{{PORT}} {{\n    log\n    cache\n    forward . {up}\n}}\n"));
    for (i, build) in [a_query as fn(u16, &str) -> Vec<u8>, a_query_edns].iter().enumerate() {
        let name_fast = format!("same-{i}.example.");
        let got_fast = tcp_raw(fast.addr, &framed(&build(0x500, &name_fast)), WAIT).expect("fast reply");
        let got_chain = tcp_raw(chain.addr, &framed(&build(0x500, &name_fast)), WAIT).expect("chain reply");
        assert_eq!(got_fast, got_chain, "query form {i}");
        // The hit that follows is the same on both too.
        let hit_fast = tcp_raw(fast.addr, &framed(&build(0x501, &name_fast)), WAIT).expect("fast hit");
        let hit_chain = tcp_raw(chain.addr, &framed(&build(0x501, &name_fast)), WAIT).expect("chain hit");
        assert_eq!(hit_fast, hit_chain, "hit, query form {i}");
    }
}

/// Several `forward` lines: a miss goes directly to the line whose zone holds the name.
#[test]
fn several_forward_lines_take_the_direct_path() {
    let (up_sub, seen_sub) = upstream();
    let (up_rest, seen_rest) = upstream();
    let srv = Server::start(&format!(
        ".:{{PORT}} {{\n    cache\n    forward sub.example. {up_sub}\n    forward . {up_rest}\n}}\n"
    ));
    for i in 0..4u16 {
        let sub = udp_raw(srv.addr, &a_query(0x600 + i, &format!("probe-{i}.sub.example.")), WAIT).expect("sub");
        assert_eq!(rcode_of(&sub), 0, "probe-{i}.sub: direct path, then the chain");
        let rest = udp_raw(srv.addr, &a_query(0x700 + i, &format!("probe-{i}.rest.example.")), WAIT).expect("rest");
        assert_eq!(rcode_of(&rest), 0, "probe-{i}.rest: direct path, then the chain");
    }
    assert_eq!((count(&seen_sub, "udp", "probe-"), count(&seen_rest, "udp", "probe-")), (8, 8));
    warm_tcp(&srv, "sub.example.");
    let tcp = ask_tcp(&srv, 0x800, "probe-t.sub.example.");
    assert_eq!(rcode_of(&tcp), 0);
    assert_eq!(count(&seen_sub, "tcp", "probe-t."), 2);
}

/// A line that may hand a query on to the next (`next`) leaves its names to the chain.
#[test]
fn a_line_with_next_keeps_the_chain() {
    let (up_a, _) = upstream();
    let (up_b, _) = upstream();
    let srv = Server::start(&format!(
        ".:{{PORT}} {{\n    cache\n    forward . {up_a} {{\n        next NXDOMAIN\n    }}\n    forward . {up_b}\n}}\n"
    ));
    assert_eq!(rcode_of(&ask_tcp(&srv, 0x900, "probe-next.example.")), 1, "the chain's FORMERR");
}
