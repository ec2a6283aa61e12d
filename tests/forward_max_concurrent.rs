//! `max_concurrent` on the UDP cache-miss fast path (a block of just `cache` and `forward`):
//! queries on the direct path hold places under the limit just as the chain's do, a query over
//! the limit is refused (and counted) once, and a query the direct path hands to the chain
//! gives its place back first.

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::Message;
use nodecache_conformance::ports::PortPicker;
use pretty_assertions::assert_eq;

/// How long the upstream holds its first reply to each test name.
const HOLD: Duration = Duration::from_millis(300);

/// An upstream on loopback. The first query for an `mc-` name is held for [`HOLD`] and then
/// answered under a wrong message ID only: the direct path gives such a query up to the chain
/// at once (the chain would wait out its 2 s read timeout instead), and the chain's second
/// query is answered at once. Other names (the readiness probe) are answered at once.
/// Returns its address and the queries seen per name.
fn upstream() -> (SocketAddr, Arc<Mutex<HashMap<String, usize>>>) {
    let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("bind upstream"));
    let addr = sock.local_addr().expect("addr");
    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let Ok(q) = Message::from_vec(&buf[..n]) else { continue };
            let Some(question) = q.queries.first() else { continue };
            let name = question.name().to_ascii().to_ascii_lowercase();
            let id = q.metadata.id;
            let asked = {
                let mut seen = seen2.lock().expect("lock");
                let n = seen.entry(name.clone()).or_default();
                *n += 1;
                *n
            };
            if name.starts_with("mc-") && asked == 1 {
                let s = sock.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(HOLD);
                    let _ = s.send_to(&a_reply(id.wrapping_add(1), &name), from);
                });
            } else {
                let _ = sock.send_to(&a_reply(id, &name), from);
            }
        }
    });
    (addr, seen)
}

/// `max_concurrent 5` and 20 concurrent unique misses while the upstream holds its replies:
/// 5 are answered, 15 refused and counted once each. The 5 went out on the direct path (each
/// was handed to the chain at the upstream's wrong-ID datagram, well before the chain's own
/// read timeout, and asked again there), and their places were given back at the hand-over
/// (otherwise the chain would have refused them) and after the answer (a later query passes).
#[test]
fn max_concurrent_limits_direct_path_misses() {
    let (up, seen) = upstream();
    let prom = PortPicker.tcp().expect("free port");
    let srv = Server::start(&format!(
        ".:{{PORT}} {{\n    prometheus 127.0.0.1:{prom}\n    cache\n    forward . {up} {{\n        max_concurrent 5\n    }}\n}}\n"
    ));
    let rejects = |page: &str| metric_total(page, "coredns_forward_max_concurrent_rejects_total", "");
    let before = rejects(&metrics_page(prom));

    let names: Vec<String> = (0..20).map(|i| format!("mc-{i}.example.")).collect();
    let started = Instant::now();
    let socks: Vec<UdpSocket> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let sock = UdpSocket::bind("127.0.0.1:0").expect("bind client");
            sock.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
            sock.send_to(&a_query(0x100 + i as u16, name), srv.addr).expect("send");
            sock
        })
        .collect();
    let mut rcodes = Vec::new();
    for (i, sock) in socks.iter().enumerate() {
        let mut buf = [0u8; 1500];
        let (n, _) = sock.recv_from(&mut buf).unwrap_or_else(|e| panic!("{}: no reply: {e}", names[i]));
        assert_eq!(u16::from_be_bytes([buf[0], buf[1]]), 0x100 + i as u16, "{}: reply ID", names[i]);
        rcodes.push(rcode_of(&buf[..n]));
    }
    let elapsed = started.elapsed();
    let answered: Vec<&String> = names.iter().zip(&rcodes).filter(|(_, &r)| r == 0).map(|(n, _)| n).collect();
    assert_eq!(
        (answered.len(), rcodes.iter().filter(|&&r| r == 5).count()),
        (5, 15),
        "NOERROR and REFUSED counts: {rcodes:?}"
    );
    assert!(elapsed < Duration::from_millis(1800), "answered on the direct path, not after a timeout: {elapsed:?}");
    {
        let seen = seen.lock().expect("lock");
        for name in &names {
            let expected = if answered.contains(&name) { 2 } else { 0 };
            assert_eq!(seen.get(name).copied().unwrap_or(0), expected, "{name}: upstream queries ({seen:?})");
        }
    }
    let page = metrics_page(prom);
    assert_eq!(rejects(&page) - before, 15.0, "{page}");
    assert_eq!(
        metric_total(&page, "nodecache_forward_dropped_replies_total{", "reason=\"id\""),
        5.0,
        "the direct path dropped each held wrong-ID reply: {page}"
    );

    // Every place was given back: a new miss goes through.
    let after = udp_raw(srv.addr, &a_query(0x999, "mc-after.example."), WAIT).expect("reply");
    assert_eq!(rcode_of(&after), 0, "a miss after the burst is answered");
    assert_eq!(rejects(&metrics_page(prom)) - before, 15.0);
}
