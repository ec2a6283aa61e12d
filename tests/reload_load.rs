//! Reload under load: a steady stream of UDP and TCP queries against the real `nodecache`
//! binary while its Corefile is swapped (ConfigMap style) 20 times; every query must be
//! answered. Runs ~10 s; the rate is `RELOAD_LOAD_QPS` (default 20000) split over two UDP and
//! two TCP client threads with a bounded number of queries in flight each.

mod reload_common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use pretty_assertions::assert_eq;
use reload_common::*;

const RUN: Duration = Duration::from_secs(10);
const SWAPS: usize = 20;
const UDP_WINDOW: usize = 64;
const TCP_WINDOW: usize = 16;
const DRAIN: Duration = Duration::from_secs(5);

#[derive(Default, Debug, Clone, Copy)]
struct Tally {
    sent: u64,
    received: u64,
    /// Replies that were NOERROR with one A record.
    good: u64,
}

fn query(id: u16) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii("q.load.").expect("name"), RecordType::A));
    m.to_vec().expect("encode")
}

fn check(raw: &[u8], tally: &mut Tally) -> Option<u16> {
    let msg = Message::from_vec(raw).ok()?;
    tally.received += 1;
    if msg.metadata.response_code == ResponseCode::NoError && a_records(&msg).len() == 1 {
        tally.good += 1;
    }
    Some(msg.metadata.id)
}

/// Sends at `rate`/s for `RUN` with at most `UDP_WINDOW` outstanding, then drains.
fn udp_client(port: u16, rate: f64, start: Instant) -> Tally {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.connect(addr(port)).expect("connect");
    sock.set_read_timeout(Some(Duration::from_millis(2))).expect("timeout");
    let mut t = Tally::default();
    let mut outstanding: HashMap<u16, ()> = HashMap::new();
    let mut next_id: u16 = 0;
    let mut buf = [0u8; 1500];
    loop {
        let elapsed = start.elapsed();
        let sending = elapsed < RUN;
        if !sending && (outstanding.is_empty() || elapsed > RUN + DRAIN) {
            break;
        }
        let due = (rate * elapsed.as_secs_f64()) as u64;
        while sending && t.sent < due && outstanding.len() < UDP_WINDOW {
            next_id = next_id.wrapping_add(1);
            if outstanding.contains_key(&next_id) {
                continue;
            }
            if sock.send(&query(next_id)).is_ok() {
                outstanding.insert(next_id, ());
                t.sent += 1;
            }
        }
        while let Ok(n) = sock.recv(&mut buf) {
            if let Some(id) = check(&buf[..n], &mut t) {
                outstanding.remove(&id);
            }
        }
    }
    t
}

/// One TCP connection with up to `TCP_WINDOW` pipelined queries.
fn tcp_client(port: u16, rate: f64, start: Instant) -> Tally {
    let mut conn = TcpStream::connect(addr(port)).expect("connect");
    conn.set_nodelay(true).expect("nodelay");
    conn.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
    let mut t = Tally::default();
    let mut in_flight = 0usize;
    let mut next_id: u16 = 0;
    loop {
        let elapsed = start.elapsed();
        let sending = elapsed < RUN;
        if !sending && (in_flight == 0 || elapsed > RUN + DRAIN) {
            break;
        }
        let due = (rate * elapsed.as_secs_f64()) as u64;
        let mut out = Vec::new();
        while sending && t.sent < due && in_flight < TCP_WINDOW {
            next_id = next_id.wrapping_add(1);
            let q = query(next_id);
            out.extend_from_slice(&(q.len() as u16).to_be_bytes());
            out.extend_from_slice(&q);
            in_flight += 1;
            t.sent += 1;
        }
        if !out.is_empty() && conn.write_all(&out).is_err() {
            eprintln!("tcp write failed with {in_flight} in flight");
            break;
        }
        if in_flight == 0 {
            thread::sleep(Duration::from_micros(200));
            continue;
        }
        let mut len = [0u8; 2];
        match conn.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(e) => {
                eprintln!("tcp read failed with {in_flight} in flight: {e}");
                break;
            }
        }
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        if conn.read_exact(&mut msg).is_err() {
            break;
        }
        check(&msg, &mut t);
        in_flight -= 1;
    }
    t
}

fn corefile(p: u16, i: usize) -> String {
    format!(
        "{}{}",
        template_block("load.", p, &format!("10.9.0.{i}"), "    reload 2s\n"),
        template_block(&format!("other{i}."), p, "10.8.0.1", "")
    )
}

#[test]
fn every_query_is_answered_while_the_corefile_is_swapped() {
    let qps: f64 = std::env::var("RELOAD_LOAD_QPS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000.0);
    let p = port();
    let served = Served::start(&corefile(p, 0), p);
    let start = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..2 {
        clients.push(("udp", thread::spawn(move || udp_client(p, qps * 0.375, start))));
        clients.push(("tcp", thread::spawn(move || tcp_client(p, qps * 0.125, start))));
    }
    for i in 1..=SWAPS {
        thread::sleep(RUN / (SWAPS as u32 + 1));
        served.update(&corefile(p, i));
    }
    let mut total = Tally::default();
    let mut by_proto: HashMap<&str, Tally> = HashMap::new();
    for (proto, h) in clients {
        let t = h.join().expect("client thread");
        let e = by_proto.entry(proto).or_default();
        for acc in [e, &mut total] {
            acc.sent += t.sent;
            acc.received += t.received;
            acc.good += t.good;
        }
    }
    let secs = RUN.as_secs_f64();
    let final_answer = wait_until(Duration::from_secs(5), || a_of(p, "q.load.") == vec![format!("10.9.0.{SWAPS}")]);
    let reloads = served.sha_lines().saturating_sub(1);
    for (proto, t) in &by_proto {
        println!("{proto}: sent {} received {} good {} ({:.0}/s)", t.sent, t.received, t.good, t.sent as f64 / secs);
    }
    println!(
        "total: sent {} received {} good {} ({:.0}/s of {qps:.0}/s asked); {SWAPS} swaps, {reloads} reloads applied",
        total.sent,
        total.received,
        total.good,
        total.sent as f64 / secs
    );
    assert!(final_answer.is_some(), "the last swap was not applied:\n{}", served.proc.output());
    assert!(reloads >= 1, "no reload happened:\n{}", served.proc.output());
    assert_eq!(served.count("reload failed"), 0, "{}", served.proc.output());
    assert!(total.sent > 0);
    assert_eq!((total.received, total.good), (total.sent, total.sent), "queries were lost or failed during reloads");
}
