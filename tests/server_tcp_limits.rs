//! TCP connections that cannot hold the server hostage (issue 12), over real loopback sockets
//! against the `nodecache` binary: one read deadline per message (bytes trickling in do not
//! extend it), the idle timeout between messages, and the per-client and per-listener
//! connection limits that evict the longest-waiting connection instead of refusing a new
//! client, never one whose query is being processed.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use nodecache_conformance::http;
use nodecache_conformance::ports::PortPicker;

/// The server's default connection limits (src/server/runtime.rs).
const PER_CLIENT: usize = 256;
const PER_LISTENER: usize = 1000;

/// A framed `www.example.org. A` query with ID 0x1234.
fn query() -> Vec<u8> {
    framed(&raw_query(0x0100, [1, 0, 0, 0], &question("www")))
}

/// Whether `s` was closed by the server: a read returns end of stream or an error other
/// than "nothing yet" within `wait`.
fn closed_within(s: &TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).expect("read timeout");
    let mut byte = [0u8; 1];
    match (&*s).read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted),
    }
}

/// Whether the server closed the non-blocking socket `s` (checked without waiting).
fn closed_now(s: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match (&*s).read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted),
    }
}

/// Writes a 256-byte message one byte every `every` on `s` until the server closes it or
/// `limit` passes; returns how long after the call the closure was seen.
fn trickle_until_closed(s: &TcpStream, every: Duration, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut sent = 0usize;
    while start.elapsed() < limit {
        // Length prefix 0x0100, then the body: the message is never complete in time.
        let byte = if sent == 0 { 0x01 } else { 0x00 };
        let _ = (&*s).write(&[byte]);
        sent += 1;
        if closed_within(s, every) {
            return Some(start.elapsed());
        }
    }
    None
}

/// Opens a TCP connection to `to` from the loopback address `from`.
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    sock.bind(&SocketAddr::from((from, 0)).into()).expect("bind a loopback source address");
    sock.connect(&to.into()).expect("connect");
    sock.into()
}

/// Raises the open-file soft limit to the hard limit (the server child inherits it).
fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid, writable rlimit struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 && lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit struct.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    }
}

/// Connections that stall: each has sent the start of a 512-byte message (or nothing) and
/// a background thread adds one byte to each every 500 ms while the crowd lives.
struct Crowd {
    socks: Arc<Vec<TcpStream>>,
    stop: Arc<AtomicBool>,
    trickler: Option<thread::JoinHandle<()>>,
}

impl Crowd {
    /// `per_source` connections from each address in `sources`; every other one stays silent
    /// (idle), the rest trickle.
    fn open(to: SocketAddr, sources: &[Ipv4Addr], per_source: usize) -> Crowd {
        let mut socks = Vec::with_capacity(sources.len() * per_source);
        for i in 0..per_source {
            for src in sources {
                let s = connect_from(*src, to);
                if i % 2 == 0 {
                    (&s).write_all(&[0x02, 0x00, 0x12]).expect("first bytes");
                }
                s.set_nonblocking(true).expect("nonblocking");
                socks.push(s);
            }
        }
        let socks = Arc::new(socks);
        let stop = Arc::new(AtomicBool::new(false));
        let trickler = {
            let (socks, stop) = (socks.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for (i, s) in socks.iter().enumerate() {
                        if i % 2 == 0 {
                            let _ = (&*s).write(&[0]);
                        }
                    }
                    thread::sleep(Duration::from_millis(500));
                }
            })
        };
        Crowd { socks, stop, trickler: Some(trickler) }
    }

    /// How many of the crowd's connections the server has closed.
    fn closed(&self) -> usize {
        self.socks.iter().filter(|s| closed_now(s)).count()
    }

    fn len(&self) -> usize {
        self.socks.len()
    }
}

impl Drop for Crowd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.trickler.take() {
            let _ = t.join();
        }
    }
}

/// Asks `n` times, each with a fresh TCP connection from 127.0.0.1 that stays open (so the
/// listener stays full and each new one needs room); returns how many got a NOERROR reply
/// with the query's ID.
fn answered_over_fresh_tcp(addr: SocketAddr, n: usize) -> usize {
    let mut kept = Vec::with_capacity(n);
    let mut answered = 0;
    for _ in 0..n {
        let mut conn = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
        conn.set_read_timeout(Some(WAIT)).expect("timeout");
        if conn.write_all(&query()).is_ok() {
            let reply = read_frame(&mut conn);
            answered += usize::from(reply.is_some_and(|r| r.get(..2) == Some(&[0x12, 0x34][..]) && rcode_of(&r) == 0));
        }
        kept.push(conn);
    }
    answered
}

/// The value of `nodecache_tcp_connections_shed_total` for `limit` and `action` (0 when the
/// series is absent).
fn shed(metrics_port: u16, limit: &str, action: &str) -> f64 {
    let body = http::get(&format!("http://127.0.0.1:{metrics_port}/metrics"), WAIT).expect("metrics").body;
    body.lines()
        .filter(|l| l.starts_with("nodecache_tcp_connections_shed_total{"))
        .filter(|l| l.contains(&format!("limit=\"{limit}\"")) && l.contains(&format!("action=\"{action}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_trickling_first_message_is_closed_by_the_read_deadline() {
    let srv = Server::start(".:{PORT} {\n    whoami\n    timeouts {\n        read 1s\n        idle 2s\n    }\n}\n");
    let conn = TcpStream::connect(srv.addr).expect("connect");
    // One byte per 500 ms: the 258-byte frame would take minutes, each byte well inside 1 s.
    let seen = trickle_until_closed(&conn, Duration::from_millis(500), Duration::from_secs(10));
    let after = seen.expect("the server never closed a connection trickling one byte per 500 ms");
    assert!(after >= Duration::from_millis(500), "closed after {after:?}, before the 1 s read timeout could pass");
}

#[test]
fn a_trickling_later_message_is_closed_by_the_read_deadline() {
    let srv = Server::start(".:{PORT} {\n    whoami\n    timeouts {\n        read 1s\n        idle 5s\n    }\n}\n");
    let mut conn = TcpStream::connect(srv.addr).expect("connect");
    conn.set_read_timeout(Some(WAIT)).expect("timeout");
    conn.write_all(&query()).expect("send");
    let first = read_frame(&mut conn).expect("first query answered");
    assert_eq!(rcode_of(&first), 0);
    let seen = trickle_until_closed(&conn, Duration::from_millis(500), Duration::from_secs(12));
    // Within the read timeout of the first byte; without a per-message deadline it would never
    // close, and the idle timeout (5 s) must not restart with each byte either.
    assert!(seen.is_some(), "the server never closed a connection trickling its second message");
}

#[test]
fn silent_and_idle_connections_are_closed() {
    let srv = Server::start(".:{PORT} {\n    whoami\n    timeouts {\n        read 1s\n        idle 5s\n    }\n}\n");
    // Nothing sent at all: the read timeout of the first message applies.
    let silent = TcpStream::connect(srv.addr).expect("connect");
    assert!(closed_within(&silent, Duration::from_secs(8)), "a silent connection was kept past the read timeout");

    // After an answered query the idle timeout applies: open past the read timeout, closed
    // after the idle one.
    let mut conn = TcpStream::connect(srv.addr).expect("connect");
    conn.set_read_timeout(Some(WAIT)).expect("timeout");
    conn.write_all(&query()).expect("send");
    assert!(read_frame(&mut conn).is_some(), "query answered");
    let answered = Instant::now();
    assert!(!closed_within(&conn, Duration::from_secs(2)), "closed before the 5 s idle timeout");
    assert!(closed_within(&conn, Duration::from_secs(15)), "an idle connection was kept past the idle timeout");
    let idle_for = answered.elapsed();
    assert!(idle_for >= Duration::from_secs(2), "closed after {idle_for:?}");
}

#[test]
fn a_client_over_its_per_ip_limit_still_gets_answers() {
    raise_fd_limit();
    let mport = PortPicker.tcp().expect("metrics port");
    // Long timeouts, so that only the limit (not the read deadline) can make room.
    let srv = Server::start(&format!(
        ".:{{PORT}} {{\n    whoami\n    prometheus 127.0.0.1:{mport}\n    timeouts {{\n        read 60s\n        idle 60s\n    }}\n}}\n"
    ));
    let crowd = Crowd::open(srv.addr, &[Ipv4Addr::LOCALHOST], PER_CLIENT + 44);
    let over = crowd.len() - PER_CLIENT;
    assert!(
        eventually(Duration::from_secs(20), || crowd.closed() >= over),
        "the server evicted {} of the {over} connections over the per-client limit",
        crowd.closed()
    );
    let answered = answered_over_fresh_tcp(srv.addr, 10);
    assert!(answered >= 9, "answered {answered} of 10 with {} stalled connections from 127.0.0.1", crowd.len());
    // The last eviction may still be on its way when the last answer arrives.
    assert!(
        eventually(Duration::from_secs(5), || crowd.closed() >= over + answered),
        "each new connection evicted a stalled one: {} closed",
        crowd.closed()
    );
    let evicted = shed(mport, "client", "evicted");
    assert!(evicted >= (over + answered) as f64, "nodecache_tcp_connections_shed_total client/evicted = {evicted}");
    assert_eq!(shed(mport, "client", "refused"), 0.0);
}

#[test]
fn a_full_listener_still_answers_new_clients() {
    raise_fd_limit();
    let srv = Server::start(".:{PORT} {\n    whoami\n    timeouts {\n        read 60s\n        idle 60s\n    }\n}\n");
    // 1,050 connections from five other loopback addresses, each under the per-client limit.
    let sources: Vec<Ipv4Addr> = (2..=6).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect();
    let crowd = Crowd::open(srv.addr, &sources, 210);
    let over = crowd.len() - PER_LISTENER;
    assert!(
        eventually(Duration::from_secs(30), || crowd.closed() >= over),
        "the server evicted {} of the {over} connections over the listener limit",
        crowd.closed()
    );
    let answered = answered_over_fresh_tcp(srv.addr, 10);
    assert!(answered >= 9, "answered {answered} of 10 with the listener full of stalled connections");
    // The last eviction may still be on its way when the last answer arrives.
    assert!(
        eventually(Duration::from_secs(5), || crowd.closed() >= over + answered),
        "each new connection evicted a stalled one: {} closed",
        crowd.closed()
    );
}

#[test]
fn a_connection_with_a_query_in_progress_is_not_evicted() {
    raise_fd_limit();
    // The upstream never answers: the query stays in progress until forward gives up (SERVFAIL).
    let upstream = dead_fixture();
    let srv = Server::start(&format!(
        ".:{{PORT}} {{\n    forward . {}\n    timeouts {{\n        read 60s\n        idle 60s\n    }}\n}}\n",
        upstream.addr()
    ));
    // The oldest connection from 127.0.0.1, so the first victim if it were evictable.
    let mut busy = TcpStream::connect(srv.addr).expect("connect");
    let q = framed(&raw_query(0x0100, [1, 0, 0, 0], &question("slow")));
    busy.write_all(&q).expect("send");
    assert!(eventually(Duration::from_secs(10), || upstream.queries() >= 1), "the query reached the upstream");

    let crowd = Crowd::open(srv.addr, &[Ipv4Addr::LOCALHOST], PER_CLIENT + 20);
    // Every connection over the limit is evicted (the busy one counts towards it too).
    let over = crowd.len() + 1 - PER_CLIENT;
    assert!(
        eventually(Duration::from_secs(20), || crowd.closed() >= over),
        "the server evicted {} of the {over} connections over the per-client limit",
        crowd.closed()
    );
    // Still in progress (nothing written back yet), so the evictions above happened around it.
    busy.set_nonblocking(true).expect("nonblocking");
    let mut peek = [0u8; 2];
    let pending = matches!(busy.peek(&mut peek), Err(e) if e.kind() == ErrorKind::WouldBlock);
    assert!(pending, "the query must still be in progress while the crowd arrives");
    busy.set_nonblocking(false).expect("blocking");
    busy.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let reply = read_frame(&mut busy).expect("the connection with a query in progress was closed, not answered");
    assert_eq!(reply.get(..2), Some(&[0x12, 0x34][..]), "the reply to its query");
    assert_eq!(crowd.closed(), over, "only waiting connections were evicted, {over} of them");
}
