//! The UDP cache-miss fast path in a block of `cache` and one `forward` with several
//! upstreams: each miss goes straight to the upstream the line's `policy` puts first, with the
//! chain's own selection (round_robin rotates per query, sequential keeps the order).
//!
//! How the tests tell the direct path from the chain without a clock: a "probe-" name is
//! first answered with a reply for another question. The direct path drops it at once and
//! hands the query to the chain, which asks again and gets a proper answer (NOERROR); the
//! chain alone keeps waiting for a matching reply and answers FORMERR at its read timeout.

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

use common::*;
use hickory_proto::op::Message;
use pretty_assertions::assert_eq;

/// Queries seen, per upstream (0 or 1) and lower-case name.
type Seen = Arc<Mutex<HashMap<(usize, String), usize>>>;

/// Two upstreams on loopback sharing one record of the queries they saw. The first query for
/// a `probe-` name (on either upstream) gets a reply for another name; everything else is
/// answered at once.
fn upstreams() -> ([SocketAddr; 2], Seen) {
    let seen: Seen = Arc::default();
    let addrs = [0usize, 1].map(|which| {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind upstream");
        let addr = sock.local_addr().expect("addr");
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                let Ok(q) = Message::from_vec(&buf[..n]) else { continue };
                let Some(question) = q.queries.first() else { continue };
                let name = question.name().to_ascii().to_ascii_lowercase();
                let first_anywhere = {
                    let mut seen = seen.lock().expect("lock");
                    let before: usize = seen.iter().filter(|((_, n), _)| *n == name).map(|(_, c)| *c).sum();
                    *seen.entry((which, name.clone())).or_default() += 1;
                    before == 0
                };
                let answer_for = if name.starts_with("probe-") && first_anywhere { "other.example." } else { &name };
                let _ = sock.send_to(&a_reply(q.metadata.id, answer_for), from);
            }
        });
        addr
    });
    (addrs, seen)
}

/// Queries upstream `which` saw for names starting with `prefix`.
fn count(seen: &Seen, which: usize, prefix: &str) -> usize {
    seen.lock().expect("lock").iter().filter(|((w, n), _)| *w == which && n.starts_with(prefix)).map(|(_, c)| *c).sum()
}

/// Asks for `name` and returns the reply's rcode.
fn ask(srv: &Server, id: u16, name: &str) -> u8 {
    rcode_of(&udp_raw(srv.addr, &a_query(id, name), WAIT).unwrap_or_else(|| panic!("{name}: no reply")))
}

fn server(up: [SocketAddr; 2], policy: &str, before_cache: &str) -> Server {
    Server::start(&format!(
        ".:{{PORT}} {{\n{before_cache}    cache\n    forward . {} {} {{\n        policy {policy}\n    }}\n}}\n",
        up[0], up[1]
    ))
}

/// `policy round_robin`: 20 unique misses are split 10/10; misses (probes) take the direct path.
#[test]
fn round_robin_misses_alternate_on_the_direct_path() {
    let (up, seen) = upstreams();
    let srv = server(up, "round_robin", "");
    for i in 0..20u16 {
        assert_eq!(ask(&srv, 0x100 + i, &format!("rr-{i}.example.")), 0, "rr-{i}");
    }
    assert_eq!((count(&seen, 0, "rr-"), count(&seen, 1, "rr-")), (10, 10), "queries per upstream");
    // Each probe's first query (the direct path's) went to one upstream and its retry through
    // the chain got the answer: a chain-only miss would have been FORMERR.
    for i in 0..4u16 {
        let name = format!("probe-rr-{i}.example.");
        assert_eq!(ask(&srv, 0x200 + i, &name), 0, "{name}: answered after the direct path's hand-over");
    }
}

/// `policy sequential`: every miss goes to the first upstream, on the direct path (each probe
/// is first asked there, handed over and asked there again by the chain).
#[test]
fn sequential_misses_go_to_the_first_upstream_on_the_direct_path() {
    let (up, seen) = upstreams();
    let srv = server(up, "sequential", "");
    for i in 0..20u16 {
        assert_eq!(ask(&srv, 0x100 + i, &format!("probe-seq-{i}.example.")), 0, "probe-seq-{i}");
    }
    assert_eq!((count(&seen, 0, "probe-seq-"), count(&seen, 1, "probe-seq-")), (40, 0), "queries per upstream");
}

/// The control for the probe: with `log` in the block every miss runs through the chain, which
/// waits out its read timeout for a matching reply and answers FORMERR.
#[test]
fn probe_is_formerr_on_the_chain() {
    let (up, _) = upstreams();
    let srv = server(up, "sequential", "    log\n");
    assert_eq!(ask(&srv, 0x300, "probe-chain.example."), 1, "the chain's answer to a mismatched reply");
}
