//! A shared TCP path to one upstream for the server's cache-miss fast path (`force_tcp`, the
//! way node-local-dns reaches the cluster DNS service).
//!
//! A few long-lived connections per upstream carry many queries each (pipelined, told apart by
//! a random message ID); a reader thread per connection reads the replies, however many arrive
//! in one read, and completes their queries. A connection is opened in the background on first
//! use; until it is up, and whenever one breaks, queries go to the plugin chain (whose pooled
//! exchange dials its own), so nothing waits on a connect here. When a connection ends (the
//! upstream's idle timeout, a reset) its queries in flight are handed to the chain at once.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::direct::{judge, send_all, Completion, Datagram, DirectOutcome, Pending, ID_TRIES, TICK};
use super::msg;
use super::upstream::Upstream;
use super::waiting::WaitLimit;
use crate::plugin::fast::DirectSend;
use crate::server::wire;

/// Connections per upstream (CoreDNS answers the queries of one TCP connection one at a time).
const CONNS: usize = 4;
/// How long a connect may take before the slot gives up (the chain serves meanwhile).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A write that cannot complete within this breaks the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 16 * 1024;

#[derive(Default)]
struct Slot {
    stream: Option<TcpStream>,
    generation: u32,
    connecting: bool,
}

/// The shared TCP path to one upstream.
pub struct DirectTcp {
    addr: SocketAddr,
    source: Option<IpAddr>,
    slots: Vec<Mutex<Slot>>,
    next: AtomicUsize,
    pending: Mutex<HashMap<u16, Pending>>,
    upstream: Weak<Upstream>,
    limit: Arc<WaitLimit>,
    read_timeout: Duration,
}

impl std::fmt::Debug for DirectTcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectTcp").field("addr", &self.addr).finish()
    }
}

fn conn_tag(slot: usize, generation: u32) -> u64 {
    ((slot as u64) << 32) | u64::from(generation)
}

impl DirectSend for DirectTcp {
    /// Over TCP the reply is not limited to `limit`, as with the pooled stream exchange.
    fn send(&self, conn: usize, query: Vec<u8>, _limit: usize, done: Completion) -> Result<(), Completion> {
        DirectTcp::send(self, query, conn, done)
    }
}

impl DirectTcp {
    /// A path to `upstream` (connections are opened on first use).
    pub fn new(
        upstream: &Arc<Upstream>,
        source: Option<IpAddr>,
        limit: Arc<WaitLimit>,
        read_timeout: Duration,
    ) -> Arc<DirectTcp> {
        Arc::new(DirectTcp {
            addr: upstream.addr,
            source,
            slots: (0..CONNS).map(|_| Mutex::new(Slot::default())).collect(),
            next: AtomicUsize::new(0),
            pending: Mutex::new(HashMap::new()),
            upstream: Arc::downgrade(upstream),
            limit,
            read_timeout,
        })
    }

    /// A connection to send on: the next one in turn if it is up, else any that is. Slots that
    /// are down start connecting in the background; None when none is up yet.
    pub fn pick(self: &Arc<Self>) -> Option<usize> {
        let first = self.next.fetch_add(1, Ordering::Relaxed) % CONNS;
        let mut found = None;
        for k in 0..CONNS {
            let index = (first + k) % CONNS;
            let mut slot = self.slots[index].lock();
            if slot.stream.is_some() {
                found = Some(index);
                break;
            }
            if !slot.connecting {
                slot.connecting = true;
                self.connect_in_background(index);
            }
        }
        found
    }

    /// Sends `query` (the client's message ID in it) under a fresh ID on connection `index`
    /// (from [`DirectTcp::pick`]). On success `done` is called later with the outcome; if the
    /// connection went down meanwhile or the write fails, it is handed back unused.
    pub fn send(&self, query: Vec<u8>, index: usize, done: Completion) -> Result<(), Completion> {
        let Some(client_id) = wire::id(&query) else { return Err(done) };
        let Ok(len) = u16::try_from(query.len()) else { return Err(done) };
        let Some(slot_lock) = self.slots.get(index) else { return Err(done) };
        // Without a slot the chain takes the query; its exchange counts the rejection.
        let Some(waiting) = self.limit.try_acquire() else { return Err(done) };
        let mut slot = slot_lock.lock();
        let Some(stream) = slot.stream.as_ref() else { return Err(done) };
        let conn = conn_tag(index, slot.generation);
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&query);
        let id = {
            let mut pending = self.pending.lock();
            let Some(id) = (0..ID_TRIES).map(|_| rand::random::<u16>()).find(|id| !pending.contains_key(id)) else {
                return Err(done);
            };
            wire::set_id(&mut framed[2..], id);
            let mut sent = query;
            wire::set_id(&mut sent, id);
            pending.insert(
                id,
                Pending { sent, client_id, limit: usize::MAX, started: Instant::now(), conn, done, _slot: waiting },
            );
            id
        };
        let mut writer: &TcpStream = stream;
        if writer.write_all(&framed).is_ok() {
            return Ok(());
        }
        // A broken connection: its reader fails what it carried; this query goes back.
        if let Some(s) = slot.stream.take() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        drop(slot);
        match self.pending.lock().remove(&id) {
            Some(p) => Err(p.done),
            None => Ok(()),
        }
    }

    /// Opens connection `index` on a short-lived thread and starts its reader.
    fn connect_in_background(self: &Arc<Self>, index: usize) {
        let me = self.clone();
        let spawned = std::thread::Builder::new().name(format!("fwd-tcp-{}", self.addr)).spawn(move || {
            let opened = me.open();
            let mut slot = me.slots[index].lock();
            slot.connecting = false;
            let stream = match opened {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!("direct TCP connection to {} failed: {e}", me.addr);
                    return;
                }
            };
            let Ok(reader) = stream.try_clone() else { return };
            slot.generation = slot.generation.wrapping_add(1);
            let conn = conn_tag(index, slot.generation);
            slot.stream = Some(stream);
            drop(slot);
            if let Some(up) = me.upstream.upgrade() {
                up.record_direct_dial();
            }
            me.read_loop(reader, index, conn);
        });
        if spawned.is_err() {
            self.slots[index].lock().connecting = false;
        }
    }

    fn open(&self) -> io::Result<TcpStream> {
        let stream = match self.source {
            None => TcpStream::connect_timeout(&self.addr, CONNECT_TIMEOUT)?,
            Some(ip) => {
                let domain = if self.addr.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
                let s = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
                s.bind(&SocketAddr::new(ip, 0).into())?;
                s.connect_timeout(&self.addr.into(), CONNECT_TIMEOUT)?;
                s.into()
            }
        };
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        stream.set_read_timeout(Some(TICK))?;
        Ok(stream)
    }

    /// Reads replies on one connection until it ends, then fails what it still carried.
    fn read_loop(&self, mut reader: TcpStream, index: usize, conn: u64) {
        let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
        let mut chunk = vec![0u8; READ_CHUNK];
        let mut out: Vec<Datagram> = Vec::new();
        let mut last_sweep = Instant::now();
        loop {
            let upstream = self.upstream.upgrade();
            let ended = match reader.read(&mut chunk) {
                Ok(0) => true,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    let mut used = 0;
                    while let Some(len) = buf.get(used..used + 2).map(|b| u16::from_be_bytes([b[0], b[1]]) as usize) {
                        let Some(reply) = buf.get(used + 2..used + 2 + len) else { break };
                        out.extend(self.complete(reply, upstream.as_deref()));
                        used += 2 + len;
                    }
                    buf.drain(..used);
                    send_all(&mut out);
                    false
                }
                Err(e) => !matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut),
            };
            let now = Instant::now();
            if now.duration_since(last_sweep) >= TICK {
                last_sweep = now;
                self.expire(|p| now.duration_since(p.started) >= self.read_timeout);
            }
            if ended || upstream.is_none() {
                let mut slot = self.slots[index].lock();
                if conn_tag(index, slot.generation) == conn {
                    slot.stream = None;
                }
                drop(slot);
                self.expire(|p| p.conn == conn || upstream.is_none());
                return;
            }
        }
    }

    fn complete(&self, reply: &[u8], upstream: Option<&Upstream>) -> Option<Datagram> {
        let id = wire::id(reply)?;
        let p = self.pending.lock().remove(&id)?;
        let outcome =
            if msg::question_matches(&p.sent, reply) { judge(reply, false, &p) } else { DirectOutcome::Failed };
        if let (DirectOutcome::Reply(r), Some(up)) = (&outcome, upstream) {
            up.record_direct_tcp(wire::rcode(r), p.started.elapsed());
        }
        (p.done)(outcome)
    }

    /// Fails (hands to the chain) every query for which `which` holds.
    fn expire(&self, which: impl Fn(&Pending) -> bool) {
        let expired: Vec<Pending> = {
            let mut pending = self.pending.lock();
            let ids: Vec<u16> = pending.iter().filter(|(_, p)| which(p)).map(|(id, _)| *id).collect();
            ids.iter().filter_map(|id| pending.remove(id)).collect()
        };
        for p in expired {
            if let Some(d) = (p.done)(DirectOutcome::Failed) {
                let _ = d.sock.send_to(&d.bytes, d.to);
            }
        }
    }
}
