//! A shared UDP path to one upstream for the server's cache-miss fast path.
//!
//! One connected socket per upstream carries many queries at once, told apart by a random
//! message ID per query; one responder thread reads the replies in batches (`recvmmsg`) and
//! completes each query with a callback. Compared with the pooled exchange (a socket per
//! query in flight, a task, a timer and a readiness wait per reply) this costs one `send` per
//! query and a share of one `recvmmsg` per reply.
//!
//! It checks replies exactly as [`super::upstream::Upstream::exchange`] does (ID, overflow of
//! the client's size, well-formedness, the question) and records the same upstream metrics.
//! Anything it cannot judge, and every query without a reply within the read timeout, is
//! completed with [`DirectOutcome::Failed`]; the caller then runs the query through the
//! plugin chain, whose attempt loop retries, fails over and reports errors as usual.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::msg;
use super::upstream::Upstream;
use crate::server::mmsg::{send_many, RecvBatch};
use crate::server::wire;

/// Replies read per `recvmmsg`.
const BATCH: usize = 16;
/// Receive buffer per reply: a reply longer than this is judged by the chain instead.
const READ_SIZE: usize = 4096 + 1;
/// How often the responder wakes without traffic to expire queries and notice shutdown.
pub(super) const TICK: Duration = Duration::from_millis(100);
/// Attempts at finding a free message ID before giving up on the fast path.
pub(super) const ID_TRIES: usize = 8;

/// How a query sent on the direct path ended.
#[derive(Debug, PartialEq, Eq)]
pub enum DirectOutcome {
    /// The upstream's reply, checked, with the client's message ID restored.
    Reply(Vec<u8>),
    /// No usable reply (timeout, mismatch, malformed, too large to judge here).
    Failed,
}

/// A datagram a completion wants sent: the responder sends a batch's worth together.
pub struct Datagram {
    /// The socket to send from.
    pub sock: Arc<UdpSocket>,
    /// The destination.
    pub to: SocketAddr,
    /// The payload.
    pub bytes: Vec<u8>,
}

/// Called once with the outcome, on the responder thread; may return a datagram to send.
pub type Completion = Box<dyn FnOnce(DirectOutcome) -> Option<Datagram> + Send>;

/// The direct path `forward` chose for one query.
#[derive(Clone, Copy)]
pub enum DirectRef<'a> {
    /// The upstream's shared UDP socket.
    Udp(&'a Arc<DirectUdp>),
    /// One of the upstream's shared TCP connections (`force_tcp`), already up.
    Tcp(&'a Arc<super::direct_tcp::DirectTcp>, usize),
}

impl DirectRef<'_> {
    /// Sends `query` (see [`DirectUdp::send`]; over TCP the reply is not limited to `limit`,
    /// as with the pooled stream exchange).
    pub fn send(&self, query: Vec<u8>, limit: usize, done: Completion) -> Result<(), Completion> {
        match self {
            DirectRef::Udp(d) => d.send(query, limit, done),
            DirectRef::Tcp(d, index) => d.send(query, *index, done),
        }
    }
}

/// A query sent on a direct path, waiting for its reply.
pub(super) struct Pending {
    /// The query as sent (upstream message ID), for the question check.
    pub(super) sent: Vec<u8>,
    /// The client's message ID.
    pub(super) client_id: u16,
    /// Largest reply accepted before it is replaced by an empty truncated one.
    pub(super) limit: usize,
    /// When it was sent.
    pub(super) started: Instant,
    /// Which connection carried it (TCP: slot and generation; UDP: 0).
    pub(super) conn: u64,
    /// The completion.
    pub(super) done: Completion,
}

/// The direct path to one upstream.
pub struct DirectUdp {
    sock: UdpSocket,
    pending: Mutex<HashMap<u16, Pending>>,
    upstream: Weak<Upstream>,
    read_timeout: Duration,
}

impl std::fmt::Debug for DirectUdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectUdp").field("in_flight", &self.in_flight()).finish()
    }
}

impl DirectUdp {
    /// Opens the socket to `upstream` (from `source` when set) and starts the responder thread.
    pub fn start(upstream: &Arc<Upstream>, source: SocketAddr, read_timeout: Duration) -> io::Result<Arc<DirectUdp>> {
        let sock = UdpSocket::bind(source)?;
        sock.connect(upstream.addr)?;
        sock.set_read_timeout(Some(TICK))?;
        let direct = Arc::new(DirectUdp {
            sock,
            pending: Mutex::new(HashMap::new()),
            upstream: Arc::downgrade(upstream),
            read_timeout,
        });
        let thread_ref = direct.clone();
        std::thread::Builder::new().name(format!("fwd-{}", upstream.addr)).spawn(move || thread_ref.respond())?;
        Ok(direct)
    }

    /// Queries waiting for a reply.
    pub fn in_flight(&self) -> usize {
        self.pending.lock().len()
    }

    /// Sends `query` (the client's message ID in it) under a fresh ID; `limit` is the client's
    /// reply size. On success `done` is called later with the outcome; on failure it is
    /// handed back unused.
    pub fn send(&self, mut sent: Vec<u8>, limit: usize, done: Completion) -> Result<(), Completion> {
        let Some(client_id) = wire::id(&sent) else { return Err(done) };
        let mut pending = self.pending.lock();
        let Some(id) = (0..ID_TRIES).map(|_| rand::random::<u16>()).find(|id| !pending.contains_key(id)) else {
            return Err(done);
        };
        wire::set_id(&mut sent, id);
        // The lock is held across the send so that the reply cannot be read before its entry
        // exists. SAFETY: `sent` is a live buffer of the given length; MSG_DONTWAIT never blocks.
        let n = unsafe { libc::send(self.sock.as_raw_fd(), sent.as_ptr().cast(), sent.len(), libc::MSG_DONTWAIT) };
        if n < 0 {
            return Err(done);
        }
        pending.insert(id, Pending { sent, client_id, limit, started: Instant::now(), conn: 0, done });
        Ok(())
    }

    /// The responder loop: read replies in batches, complete their queries, expire the ones
    /// past the read timeout; ends when the upstream is gone, failing what is left.
    fn respond(self: Arc<Self>) {
        let fd = self.sock.as_raw_fd();
        let mut batch = RecvBatch::new(BATCH, READ_SIZE);
        let mut last_sweep = Instant::now();
        let mut out: Vec<Datagram> = Vec::with_capacity(BATCH);
        loop {
            let n = batch.recv(fd);
            let upstream = self.upstream.upgrade();
            for i in 0..n {
                let (reply, cut) = batch.datagram(i);
                out.extend(self.complete(reply, cut, upstream.as_deref()));
            }
            send_all(&mut out);
            let now = Instant::now();
            if now.duration_since(last_sweep) >= TICK || n == 0 {
                last_sweep = now;
                self.expire(now, upstream.is_none());
            }
            if upstream.is_none() {
                return;
            }
        }
    }

    /// Completes the query a reply belongs to (unknown IDs are late or stray and ignored).
    fn complete(&self, reply: &[u8], cut: bool, upstream: Option<&Upstream>) -> Option<Datagram> {
        let id = wire::id(reply)?;
        let p = self.pending.lock().remove(&id)?;
        let outcome = judge(reply, cut, &p);
        if let (DirectOutcome::Reply(r), Some(up)) = (&outcome, upstream) {
            up.record_direct(wire::rcode(r), p.started.elapsed());
        }
        (p.done)(outcome)
    }

    /// Fails every query older than the read timeout (all of them when `all`).
    fn expire(&self, now: Instant, all: bool) {
        let expired: Vec<Pending> = {
            let mut pending = self.pending.lock();
            if pending.is_empty() {
                return;
            }
            let ids: Vec<u16> = pending
                .iter()
                .filter(|(_, p)| all || now.duration_since(p.started) >= self.read_timeout)
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| pending.remove(id)).collect()
        };
        for p in expired {
            if let Some(d) = (p.done)(DirectOutcome::Failed) {
                let _ = d.sock.send_to(&d.bytes, d.to);
            }
        }
    }
}

/// Sends `out` (emptied), one `sendmmsg` per run of datagrams from the same socket.
pub(super) fn send_all(out: &mut Vec<Datagram>) {
    let mut start = 0;
    while start < out.len() {
        let fd = out[start].sock.as_raw_fd();
        let end = out[start..].iter().position(|d| d.sock.as_raw_fd() != fd).map_or(out.len(), |k| start + k);
        let run: Vec<(SocketAddr, &[u8])> = out[start..end].iter().map(|d| (d.to, d.bytes.as_slice())).collect();
        send_many(fd, &run);
        start = end;
    }
    out.clear();
}

/// The pooled exchange's checks on one reply.
pub(super) fn judge(reply: &[u8], cut: bool, p: &Pending) -> DirectOutcome {
    if cut && p.limit >= READ_SIZE - 1 {
        return DirectOutcome::Failed;
    }
    let mut out = if reply.len() > p.limit || cut {
        match msg::truncated_reply(reply) {
            Some(t) => t,
            None => return DirectOutcome::Failed,
        }
    } else {
        if !msg::well_formed(reply) {
            return DirectOutcome::Failed;
        }
        reply.to_vec()
    };
    if !msg::question_matches(&p.sent, &out) {
        return DirectOutcome::Failed;
    }
    wire::set_id(&mut out, p.client_id);
    DirectOutcome::Reply(out)
}
