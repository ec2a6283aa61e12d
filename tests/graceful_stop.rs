//! SIGTERM stops a server gracefully: queries it has already read are answered (those waiting
//! for a slow upstream too) before it exits, and when a second instance serves the same
//! address (SO_REUSEPORT, as in a surge rolling update) no query sent during the first one's
//! exit is lost.

mod common;

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use nodecache_conformance::ports::PortPicker;

/// A query the slow upstream holds: when to answer, the query, who asked.
type Due = (Instant, Vec<u8>, SocketAddr);

/// A UDP upstream that answers every query NOERROR (no records), `delay` after it arrived,
/// without holding up the queries behind it. Counts what it received.
struct SlowUpstream {
    addr: SocketAddr,
    seen: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl SlowUpstream {
    fn start(delay: Duration) -> SlowUpstream {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind upstream");
        sock.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
        let addr = sock.local_addr().expect("addr");
        let seen = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let queue: Arc<Mutex<Vec<Due>>> = Arc::default();
        {
            let (sock, queue, stop) = (sock.try_clone().expect("clone"), queue.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    thread::sleep(Duration::from_millis(5));
                    let due: Vec<_> = {
                        let mut q = queue.lock().expect("lock");
                        let now = Instant::now();
                        let (due, later) = q.drain(..).partition(|(at, _, _)| *at <= now);
                        *q = later;
                        due
                    };
                    for (_, mut msg, to) in due {
                        msg[2] |= 0x80; // QR
                        msg[3] = (msg[3] & 0xf0) | 0x80; // RA, NOERROR
                        let _ = sock.send_to(&msg, to);
                    }
                }
            });
        }
        {
            let (seen, stop) = (seen.clone(), stop.clone());
            thread::spawn(move || {
                let mut buf = [0u8; 1500];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = sock.recv_from(&mut buf) {
                        seen.fetch_add(1, Ordering::Relaxed);
                        queue.lock().expect("lock").push((Instant::now() + delay, buf[..n].to_vec(), from));
                    }
                }
            });
        }
        SlowUpstream { addr, seen, stop }
    }
}

impl Drop for SlowUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn sigterm_answers_the_queries_already_read() {
    let upstream = SlowUpstream::start(Duration::from_millis(600));
    let mut server =
        Server::start(&format!(".:{{PORT}} {{\n    bind 127.0.0.1\n    forward . {}\n}}\n", upstream.addr));
    let client = UdpSocket::bind("127.0.0.1:0").expect("bind");
    client.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    const N: u16 = 40;
    for i in 0..N {
        client.send_to(&a_query(i, &format!("q{i}.slow.example.")), server.addr).expect("send");
    }
    // Every query is now waiting for the upstream.
    let deadline = Instant::now() + Duration::from_secs(5);
    while upstream.seen.load(Ordering::Relaxed) < usize::from(N) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(upstream.seen.load(Ordering::Relaxed), usize::from(N), "the upstream saw every query");
    server.process.signal("TERM").expect("SIGTERM");
    let mut answered = HashSet::new();
    let mut buf = [0u8; 512];
    let until = Instant::now() + Duration::from_secs(4);
    while answered.len() < usize::from(N) && Instant::now() < until {
        if let Ok(n) = client.recv(&mut buf) {
            let reply = Message::from_vec(&buf[..n]).expect("reply parses");
            assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
            answered.insert(reply.metadata.id);
        }
    }
    assert_eq!(answered.len(), usize::from(N), "every query read before SIGTERM is answered");
    let status = server.process.wait_exit(Duration::from_secs(8)).expect("the server exits after answering");
    assert!(status.success(), "exit status {status:?}\n{}", server.process.output());
}

/// Sends `names` round-robin from several sockets at about `rate` queries per second for
/// `duration`, and returns (sent, answered) once every reply had a second to arrive.
fn load(addr: SocketAddr, names: &[String], rate: u32, duration: Duration, during: impl FnOnce()) -> (usize, usize) {
    // Enough client sockets that both instances get a share (the kernel picks a member of
    // the SO_REUSEPORT group by a hash of the client address).
    const SOCKETS: usize = 16;
    let socks: Vec<Arc<UdpSocket>> = (0..SOCKETS)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
            s.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
            Arc::new(s)
        })
        .collect();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = socks
        .iter()
        .map(|s| {
            let (s, done) = (s.clone(), done.clone());
            thread::spawn(move || {
                let mut ids = HashSet::new();
                let mut buf = [0u8; 512];
                while !done.load(Ordering::Relaxed) {
                    if let Ok(n) = s.recv(&mut buf) {
                        if let Ok(m) = Message::from_vec(&buf[..n]) {
                            if m.metadata.response_code == ResponseCode::NoError {
                                ids.insert(m.metadata.id);
                            }
                        }
                    }
                }
                ids.len()
            })
        })
        .collect();
    let started = Instant::now();
    let mut during = Some(during);
    let mut sent = 0usize;
    while started.elapsed() < duration {
        let due = (started.elapsed().as_secs_f64() * f64::from(rate)) as usize;
        while sent < due && sent < usize::from(u16::MAX) * SOCKETS {
            let sock = &socks[sent % SOCKETS];
            let id = (sent / SOCKETS) as u16;
            sock.send_to(&a_query(id, &names[sent % names.len()]), addr).expect("send");
            sent += 1;
        }
        if started.elapsed() >= duration / 3 {
            if let Some(f) = during.take() {
                f();
            }
        }
        thread::sleep(Duration::from_millis(1));
    }
    thread::sleep(Duration::from_secs(1));
    done.store(true, Ordering::Relaxed);
    let answered = readers.into_iter().map(|r| r.join().expect("reader")).sum();
    (sent, answered)
}

#[test]
fn a_second_instance_on_the_same_address_takes_over_without_loss() {
    // Every query waits 100 ms upstream, so about 200 are in flight in the first instance
    // when it is told to stop: none may be lost, nor any sent while it stops.
    let upstream = SlowUpstream::start(Duration::from_millis(100));
    let port = PortPicker.dns().expect("port");
    let corefile = format!(".:{{PORT}} {{\n    bind 127.0.0.1\n    forward . {}\n}}\n", upstream.addr);
    let mut first = Server::start_on(&corefile, port);
    let mut second = Server::start_on(&corefile, port);
    let names: Vec<String> = (0..20_000).map(|i| format!("n{i}.surge.example.")).collect();
    let (sent, answered) = load(first.addr, &names, 2000, Duration::from_secs(3), || {
        first.process.signal("TERM").expect("SIGTERM");
    });
    assert!(sent > 4000, "the load ran ({sent} sent)");
    assert_eq!(answered, sent, "every query is answered while the first instance exits");
    let status = first.process.wait_exit(Duration::from_secs(8)).expect("the first instance exits");
    assert!(status.success(), "exit status {status:?}\n{}", first.process.output());
    second.assert_alive();
    assert!(Q::new("n1.surge.example.", RecordType::A).send(second.addr).is_some(), "the second one serves on");
}
