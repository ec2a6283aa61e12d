//! Reloads that replace the upstream while UDP misses go to it directly: the listener threads
//! that completed those misses themselves let go of each dropped path (its epoll set and
//! sockets), so descriptors do not pile up reload after reload.

mod reload_common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{RData, Record, RecordType};
use pretty_assertions::assert_eq;
use reload_common::*;

/// An upstream answering every `A` question with `ip`.
fn upstream(ip: Ipv4Addr) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind upstream");
    let addr = sock.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let Ok(q) = Message::from_vec(&buf[..n]) else { continue };
            let Some(question) = q.queries.first() else { continue };
            let mut m = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
            m.metadata.recursion_desired = true;
            m.metadata.recursion_available = true;
            m.add_query(Query::query(question.name().clone(), RecordType::A));
            m.add_answer(Record::from_rdata(question.name().clone(), 300, RData::A(ip.into())));
            if let Ok(bytes) = m.to_vec() {
                let _ = sock.send_to(&bytes, from);
            }
        }
    });
    addr
}

fn corefile(port: u16, up: SocketAddr) -> String {
    format!(".:{port} {{\n    reload 2s 1s\n    cache\n    forward . {up}\n}}\n")
}

/// epoll sets the process holds.
fn epoll_sets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter(|target| target.to_string_lossy().contains("eventpoll"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn replaced_upstreams_are_let_go_by_the_listener_threads() {
    let ups = [upstream(Ipv4Addr::new(192, 0, 2, 1)), upstream(Ipv4Addr::new(192, 0, 2, 2))];
    let p = port();
    let served = Served::start(&corefile(p, ups[0]), p);
    let pid = served.proc.pid();
    let ask_misses = |round: usize, want: &str| {
        for i in 0..20 {
            let name = format!("r{round}-{i}.example.");
            assert_eq!(a_of(p, &name), vec![want.to_string()], "{name}");
        }
    };
    ask_misses(0, "192.0.2.1");
    let baseline = epoll_sets(pid);
    for round in 1..=8usize {
        let which = round % 2;
        served.update(&corefile(p, ups[which]));
        let want = format!("192.0.2.{}", which + 1);
        let switched = wait_until(Duration::from_secs(6), || {
            a_of(p, &format!("switch-{round}-{}.example.", rand_suffix())) == vec![want.clone()]
        });
        assert!(switched.is_some(), "round {round}: never reloaded:\n{}", served.proc.output());
        ask_misses(round, &want);
    }
    // Dropped paths are let go within a listener's wait (200 ms) and their thread's tick.
    let settled = wait_until(Duration::from_secs(3), || epoll_sets(pid) <= baseline + 1);
    assert!(settled.is_some(), "epoll sets: {} after 8 reloads, {baseline} before", epoll_sets(pid));
}

/// A fresh label so that each probe is a miss.
fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
