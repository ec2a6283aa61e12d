//! The upstream fixture: a small authoritative DNS responder on 127.0.0.1 (UDP, optionally TCP).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::zone::ZoneSet;

/// How a fixture answers; can be changed while it runs (`upstream_set`).
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Zone data.
    pub zones: ZoneSet,
    /// Answer after this many milliseconds.
    pub delay_ms: u64,
    /// Answer every query with this rcode and no records.
    pub rcode: Option<ResponseCode>,
    /// Never answer.
    pub drop: bool,
    /// Over UDP answer TC=1 with no records.
    pub truncate_udp: bool,
}

/// One query the fixture received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Question as `name TYPE` (spelling as received).
    pub question: String,
    /// True when it came over TCP.
    pub tcp: bool,
}

#[derive(Default)]
struct Shared {
    behaviour: Mutex<Behaviour>,
    seen: Mutex<Vec<Seen>>,
    stop: AtomicBool,
}

/// A running fixture. Dropping it stops its threads.
pub struct Fixture {
    addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Fixture {
    /// Binds UDP (and TCP when `tcp`) on the same free port of 127.0.0.1 and starts answering.
    pub fn start(behaviour: Behaviour, tcp: bool) -> std::io::Result<Self> {
        Self::start_at(behaviour, tcp, 0)
    }

    /// Like `start`, on a given port (0 = any free port).
    pub fn start_at(behaviour: Behaviour, tcp: bool, port: u16) -> std::io::Result<Self> {
        let (udp, listener) = if port == 0 {
            bind_pair(tcp)?
        } else {
            let udp = UdpSocket::bind(("127.0.0.1", port))?;
            let l = if tcp { Some(TcpListener::bind(("127.0.0.1", port))?) } else { None };
            (udp, l)
        };
        let addr = udp.local_addr()?;
        let shared = Arc::new(Shared { behaviour: Mutex::new(behaviour), ..Shared::default() });
        let mut threads = Vec::new();
        udp.set_read_timeout(Some(Duration::from_millis(100)))?;
        let s = shared.clone();
        threads.push(thread::spawn(move || udp_loop(udp, s)));
        if let Some(listener) = listener {
            listener.set_nonblocking(true)?;
            let s = shared.clone();
            threads.push(thread::spawn(move || tcp_loop(listener, s)));
        }
        Ok(Self { addr, shared, threads })
    }

    /// The `127.0.0.1:PORT` address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queries counted so far (loop probes excluded).
    pub fn queries(&self) -> usize {
        self.seen().len()
    }

    /// Of the counted queries, how many came over TCP.
    pub fn tcp_queries(&self) -> usize {
        self.seen().iter().filter(|s| s.tcp).count()
    }

    /// Every counted query, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.shared.seen).clone()
    }

    /// Forgets every counted query.
    pub fn reset_counters(&self) {
        lock(&self.shared.seen).clear();
    }

    /// Changes the behaviour from now on.
    pub fn update(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut lock(&self.shared.behaviour));
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn bind_pair(tcp: bool) -> std::io::Result<(UdpSocket, Option<TcpListener>)> {
    let mut last = None;
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        if !tcp {
            return Ok((udp, None));
        }
        let port = udp.local_addr()?.port();
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => return Ok((udp, Some(l))),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free port")))
}

/// True for the `loop` plugin's start-up probe: `<n>.<n>.<zone> HINFO`.
pub fn is_loop_probe(msg: &Message) -> bool {
    let Some(q) = msg.queries.first() else { return false };
    if q.query_type != RecordType::HINFO {
        return false;
    }
    let labels: Vec<&[u8]> = q.name.iter().collect();
    labels.len() >= 2 && labels[..2].iter().all(|l| !l.is_empty() && l.iter().all(|b| b.is_ascii_digit()))
}

fn udp_loop(sock: UdpSocket, shared: Arc<Shared>) {
    let sock = Arc::new(sock);
    let mut buf = vec![0u8; 65535];
    while !shared.stop.load(Ordering::SeqCst) {
        let Ok((n, peer)) = sock.recv_from(&mut buf) else { continue };
        let data = buf[..n].to_vec();
        let (s, sock) = (shared.clone(), sock.clone());
        thread::spawn(move || {
            if let Some(reply) = handle(&data, false, &s) {
                let _ = sock.send_to(&reply, peer);
            }
        });
    }
}

fn tcp_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((conn, _)) => {
                let s = shared.clone();
                thread::spawn(move || tcp_conn(conn, s));
            }
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn tcp_conn(mut conn: TcpStream, shared: Arc<Shared>) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
    let mut idle = 0;
    loop {
        if shared.stop.load(Ordering::SeqCst) || idle > 150 {
            return;
        }
        let mut len = [0u8; 2];
        match conn.read(&mut len[..1]) {
            Ok(0) => return,
            Ok(_) => {}
            Err(_) => {
                idle += 1;
                continue;
            }
        }
        idle = 0;
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        if conn.read_exact(&mut len[1..]).is_err() {
            return;
        }
        let mut data = vec![0u8; u16::from_be_bytes(len) as usize];
        if conn.read_exact(&mut data).is_err() {
            return;
        }
        let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
        if let Some(reply) = handle(&data, true, &shared) {
            let mut out = Vec::with_capacity(reply.len() + 2);
            out.extend_from_slice(&(reply.len() as u16).to_be_bytes());
            out.extend_from_slice(&reply);
            if conn.write_all(&out).is_err() {
                return;
            }
        }
    }
}

/// Counts the query and builds the reply bytes (None: no reply).
fn handle(data: &[u8], tcp: bool, shared: &Shared) -> Option<Vec<u8>> {
    let req = Message::from_vec(data).ok()?;
    if req.metadata.message_type != MessageType::Query {
        return None;
    }
    if !is_loop_probe(&req) {
        let question = req.queries.first().map(|q| format!("{} {}", q.name, q.query_type)).unwrap_or_default();
        lock(&shared.seen).push(Seen { question, tcp });
    }
    let behaviour = lock(&shared.behaviour).clone();
    if behaviour.drop {
        return None;
    }
    if behaviour.delay_ms > 0 {
        thread::sleep(Duration::from_millis(behaviour.delay_ms));
        if shared.stop.load(Ordering::SeqCst) {
            return None;
        }
    }
    let reply = build_reply(&req, tcp, &behaviour);
    reply.to_vec().ok()
}

fn build_reply(req: &Message, tcp: bool, b: &Behaviour) -> Message {
    let mut resp = Message::new(req.metadata.id, MessageType::Response, req.metadata.op_code);
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.metadata.checking_disabled = req.metadata.checking_disabled;
    resp.queries = req.queries.clone();
    if let Some(client) = &req.edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        e.set_dnssec_ok(client.flags().dnssec_ok);
        resp.set_edns(e);
    }
    if req.metadata.op_code != OpCode::Query || req.queries.len() != 1 {
        let code = if req.metadata.op_code != OpCode::Query { ResponseCode::NotImp } else { ResponseCode::FormErr };
        resp.metadata.response_code = code;
        return resp;
    }
    if let Some(code) = b.rcode {
        resp.metadata.response_code = code;
        return resp;
    }
    if !tcp && b.truncate_udp {
        resp.metadata.truncation = true;
        return resp;
    }
    let q = &req.queries[0];
    let ans = b.zones.lookup(&q.name, q.query_type, q.query_class);
    resp.metadata.response_code = ans.rcode;
    resp.metadata.authoritative = ans.authoritative;
    resp.answers = ans.answers;
    resp.authorities = ans.authorities;
    if !tcp {
        let limit = req.edns.as_ref().map(|e| e.max_payload().max(512)).unwrap_or(512) as usize;
        if resp.to_vec().map(|v| v.len() > limit).unwrap_or(false) {
            resp.answers.clear();
            resp.authorities.clear();
            resp.metadata.truncation = true;
        }
    }
    resp
}
