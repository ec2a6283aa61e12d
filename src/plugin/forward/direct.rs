//! The UDP path to one upstream for the server's cache-miss fast path.
//!
//! Every query leaves from a new ephemeral port the kernel picks at random: a socket of the
//! upstream's pool with no port sends it once under a random message ID with `sendto` (which
//! binds the port), and when its reply arrives or it gives up the port is given back and the
//! socket's queue emptied before it carries another query. Datagrams from any address but the
//! upstream's are dropped by the responder (the socket is not connected: one system call
//! fewer per query; ICMP errors still arrive through `IP_RECVERR`). An attacker who learnt the
//! source port of an earlier query learns nothing about the next one; a forgery must guess a
//! fresh ephemeral port and a 16-bit ID at once. A datagram on the right socket whose ID or
//! question (name, type, class) differs from the query's is dropped and counted
//! (`nodecache_forward_dropped_replies_total`), and the query goes on waiting.
//!
//! One responder thread per upstream waits on all of these sockets with one `epoll` and
//! completes each query with a callback, sending the client replies of a wake-up together
//! (`sendmmsg`). Each waiting query holds one of the upstream's waiting slots
//! ([`super::waiting`]), which bounds sockets and memory when the upstream stops answering.
//!
//! It checks replies exactly as [`super::upstream::Upstream::exchange`] does (overflow of
//! the client's size, well-formedness, the question) and records the same upstream metrics.
//! Anything it cannot judge, and every query without a reply within the read timeout, is
//! completed with [`DirectOutcome::Failed`]; the caller then runs the query through the
//! plugin chain, whose attempt loop retries, fails over and reports errors as usual.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::metrics::Dropped;
use super::msg;
use super::upstream::Upstream;
use super::waiting::{WaitLimit, WaitSlot};
pub use crate::plugin::fast::{Completion, Datagram, DirectOutcome};
use crate::plugin::fast::{DirectSend, ReplyPump};
use crate::server::mmsg::{send_many, RecvBatch};
use crate::server::wire;

/// Readiness events handled per wake-up of the responder.
const BATCH: usize = 64;
/// Datagrams read per `recvmmsg` from one query socket (normally just its reply).
const READ_BATCH: usize = 2;
/// The most `recvmmsg` calls spent emptying one socket.
const DRAIN_READS: usize = 1 << 14;
/// Receive buffer per reply: a reply longer than this is judged by the chain instead.
const READ_SIZE: usize = 4096 + 1;
/// How often the responder wakes without traffic to expire queries and notice shutdown.
pub(super) const TICK: Duration = Duration::from_millis(100);
/// Attempts at finding a free message ID before giving up on the fast path.
pub(super) const ID_TRIES: usize = 8;

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
    /// Its place among the upstream's waiting queries.
    pub(super) _slot: WaitSlot,
}

/// One of the upstream's query sockets: registered with the responder's epoll once, used by
/// one query at a time, each time under a new ephemeral port.
#[derive(Default)]
struct SockState {
    /// The socket (None while closed to keep idle descriptors few).
    fd: Option<OwnedFd>,
    /// The query waiting on it.
    pending: Option<Box<Pending>>,
}

/// Idle query sockets always kept open per upstream.
const MIN_IDLE: usize = 16;
/// How long an idle socket may go unused before it is closed.
const IDLE_FOR: Duration = Duration::from_secs(10);

/// The direct UDP path to one upstream.
pub struct DirectUdp {
    epoll: OwnedFd,
    addr: SocketAddr,
    /// `addr` as the kernel takes it.
    to: socket2::SockAddr,
    source: Option<IpAddr>,
    /// Query sockets by epoll token; at most one per waiting slot.
    sockets: Box<[Mutex<SockState>]>,
    /// Tokens of open sockets without a query (no port, nothing queued).
    idle: Mutex<Vec<u32>>,
    /// Tokens whose socket is closed.
    closed: Mutex<Vec<u32>>,
    /// Tokens never used yet start here.
    fresh: AtomicU32,
    upstream: Weak<Upstream>,
    limit: Arc<WaitLimit>,
    read_timeout: Duration,
    /// This path, for offering it as a [`ReplyPump`] to the threads that send on it.
    self_ref: Weak<DirectUdp>,
    /// Its key among the pumps a thread was offered.
    key: u64,
    /// Queries sent and not yet completed.
    outstanding: AtomicUsize,
    /// Listener threads watching the epoll set (see [`ReplyPump`]).
    watchers: AtomicUsize,
    /// Held while a thread reads the epoll set and completes what it reported, so that an
    /// event is handled once, by one thread, before any other thread reads the set again.
    poll_lock: Mutex<()>,
}

impl std::fmt::Debug for DirectUdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectUdp").field("in_flight", &self.in_flight()).finish()
    }
}

/// A new non-blocking UDP socket for queries to `to` (bound to `source` when set). It is never
/// connected, so ICMP errors are asked for (`IP_RECVERR`): a refused query still fails at once.
fn open_socket(to: SocketAddr, source: Option<IpAddr>) -> io::Result<OwnedFd> {
    let domain = if to.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
    let sock = socket2::Socket::new(domain, socket2::Type::DGRAM.nonblocking().cloexec(), None)?;
    if let Some(ip) = source {
        sock.bind(&SocketAddr::new(ip, 0).into())?;
    }
    let (level, name) =
        if to.is_ipv4() { (libc::IPPROTO_IP, libc::IP_RECVERR) } else { (libc::IPPROTO_IPV6, libc::IPV6_RECVERR) };
    let on: libc::c_int = 1;
    // SAFETY: `on` is a live c_int of the given size.
    let set = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if set < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sock.into())
}

/// Sends `bytes` to `to` from `fd`. The socket holds no port before (see [`release_port`]),
/// so the kernel binds it to a new ephemeral port chosen at random (as `connect` would, one
/// system call fewer). The socket is left unconnected: the responder checks each datagram's
/// sender itself.
fn send_fresh_port(fd: RawFd, to: &socket2::SockAddr, bytes: &[u8]) -> io::Result<()> {
    // SAFETY: `bytes` and `to` are live for the call; MSG_DONTWAIT never blocks.
    let sent = unsafe {
        libc::sendto(fd, bytes.as_ptr().cast(), bytes.len(), libc::MSG_DONTWAIT, to.as_ptr().cast(), to.len())
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Empties the socket's error queue (ICMP errors, `IP_RECVERR`); false if it did not empty.
fn drain_errors(fd: RawFd) -> bool {
    let mut buf = [0u8; 64];
    for _ in 0..DRAIN_READS {
        // SAFETY: `buf` is a live buffer of the given length; MSG_DONTWAIT never blocks.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
        if n < 0 {
            return match io::Error::last_os_error().kind() {
                io::ErrorKind::WouldBlock => true,
                io::ErrorKind::Interrupted => continue,
                _ => false,
            };
        }
    }
    false
}

/// Gives back the socket's ephemeral port by connecting to `AF_UNSPEC`: from then on nothing
/// can arrive on it, though what arrived before stays queued until read. False if the kernel
/// refused (the socket must then not carry another query: it would keep its port).
fn release_port(fd: RawFd) -> bool {
    let unspec = libc::sockaddr { sa_family: libc::AF_UNSPEC as libc::sa_family_t, sa_data: [0; 14] };
    // SAFETY: `unspec` is a live sockaddr of the given size.
    unsafe { libc::connect(fd, &unspec, std::mem::size_of::<libc::sockaddr>() as libc::socklen_t) == 0 }
}

/// Reads everything queued on `fd` with `batch`, handing each datagram (and whether it was
/// cut to fit) and its sender to `each`. Returns whether the queue was seen empty; after
/// [`release_port`] nothing more arrives, so this ends within one receive buffer's worth.
fn drain(fd: RawFd, batch: &mut RecvBatch, each: impl FnMut(&[u8], bool, Option<SocketAddr>)) -> bool {
    match drain_data(fd, batch, each) {
        Some(false) => true,
        Some(true) => drain_errors(fd),
        None => false,
    }
}

/// Reads the data queue of `fd` (see [`drain`]): None if it did not empty, else whether an
/// error was reported on the way.
fn drain_data(fd: RawFd, batch: &mut RecvBatch, mut each: impl FnMut(&[u8], bool, Option<SocketAddr>)) -> Option<bool> {
    let mut failed = false;
    // More reads than any receive buffer holds datagrams; a socket still not empty is closed.
    for _ in 0..DRAIN_READS {
        match batch.try_recv(fd) {
            Ok(n) => {
                for i in 0..n {
                    let (got, cut) = batch.datagram(i);
                    each(got, cut, batch.source(i));
                }
                if n < batch.capacity() {
                    return Some(failed);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(failed),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A reported error (an ICMP port unreachable) is consumed by this read; what
            // was queued besides is read on the next turn, the error's copy in the error
            // queue by the caller.
            Err(_) if !failed => failed = true,
            Err(_) => return None,
        }
    }
    None
}

/// Ends a query's use of its socket: the port given back and the queue emptied, or the socket
/// closed when either cannot be done, so that no later query can inherit the port or a
/// datagram meant for it.
fn retire(state: &mut SockState, batch: &mut RecvBatch, each: impl FnMut(&[u8], bool, Option<SocketAddr>)) {
    let Some(fd) = state.fd.as_ref().map(|f| f.as_raw_fd()) else { return };
    if !(release_port(fd) && drain(fd, batch, each)) {
        state.fd = None;
    }
}

thread_local! {
    /// A listener thread's buffers for [`DirectUdp::pump_ready`]: events, reads, replies.
    static PUMP_SCRATCH: std::cell::RefCell<(Vec<libc::epoll_event>, RecvBatch, Vec<Datagram>)> = std::cell::RefCell::new((
        vec![libc::epoll_event { events: 0, u64: 0 }; BATCH],
        RecvBatch::new(READ_BATCH, READ_SIZE),
        Vec::with_capacity(BATCH),
    ));
}

impl ReplyPump for DirectUdp {
    fn ready_fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }

    fn waiting(&self) -> bool {
        self.outstanding.load(Ordering::Relaxed) > 0
    }

    fn pump(&self) {
        self.pump_ready();
    }

    fn watch(&self, on: bool) {
        if on {
            self.watchers.fetch_add(1, Ordering::Relaxed);
        } else {
            self.watchers.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn alive(&self) -> bool {
        self.upstream.strong_count() > 0
    }

    fn key(&self) -> u64 {
        self.key
    }
}

impl DirectSend for DirectUdp {
    fn send(&self, _conn: usize, query: Vec<u8>, limit: usize, done: Completion) -> Result<(), Completion> {
        DirectUdp::send(self, query, limit, done)
    }
}

impl DirectUdp {
    /// The path to `upstream` (queries sent from `source` when set), with at most
    /// `limit`'s capacity of queries waiting; starts the responder thread.
    pub fn start(
        upstream: &Arc<Upstream>,
        source: Option<IpAddr>,
        limit: Arc<WaitLimit>,
        read_timeout: Duration,
    ) -> io::Result<Arc<DirectUdp>> {
        // SAFETY: plain system call; the result is checked before use.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epfd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `epfd` is a new descriptor owned by nothing else.
        let epoll = unsafe { OwnedFd::from_raw_fd(epfd) };
        let direct = Arc::new_cyclic(|self_ref| DirectUdp {
            epoll,
            addr: upstream.addr,
            to: socket2::SockAddr::from(upstream.addr),
            source,
            sockets: (0..limit.capacity()).map(|_| Mutex::new(SockState::default())).collect(),
            idle: Mutex::new(Vec::new()),
            closed: Mutex::new(Vec::new()),
            fresh: AtomicU32::new(0),
            upstream: Arc::downgrade(upstream),
            limit,
            read_timeout,
            self_ref: self_ref.clone(),
            key: crate::plugin::fast::new_pump_key(),
            outstanding: AtomicUsize::new(0),
            watchers: AtomicUsize::new(0),
            poll_lock: Mutex::new(()),
        });
        let thread_ref = direct.clone();
        std::thread::Builder::new().name(format!("fwd-{}", upstream.addr)).spawn(move || thread_ref.respond())?;
        Ok(direct)
    }

    /// Queries waiting for a reply.
    pub fn in_flight(&self) -> usize {
        self.sockets.iter().filter(|s| s.lock().pending.is_some()).count()
    }

    /// Query sockets open now (idle or carrying a query).
    pub fn open_sockets(&self) -> usize {
        self.sockets.iter().filter(|s| s.lock().fd.is_some()).count()
    }

    /// A socket token for one query: an idle open socket, else a closed or never used token
    /// (the caller opens its socket). The waiting slot held by the caller guarantees one.
    fn take_token(&self) -> Option<u32> {
        if let Some(t) = self.idle.lock().pop() {
            return Some(t);
        }
        if let Some(t) = self.closed.lock().pop() {
            return Some(t);
        }
        let t = self.fresh.fetch_add(1, Ordering::Relaxed);
        if (t as usize) < self.sockets.len() {
            return Some(t);
        }
        self.fresh.fetch_sub(1, Ordering::Relaxed);
        None
    }

    /// Puts a token back after its query (its port given back, nothing queued). Idle sockets
    /// unused for a while are closed by [`DirectUdp::trim_idle`].
    fn put_token(&self, token: u32, state: &mut SockState) {
        if state.fd.is_some() {
            self.idle.lock().push(token);
        } else {
            self.closed.lock().push(token);
        }
    }

    /// Closes the idle sockets that no query used since the last call: the fewest idle seen at
    /// any sweep in between (`low`) were idle all along. The stack's bottom is the least
    /// recently used. Keeps [`MIN_IDLE`] open.
    fn trim_idle(&self, low: usize) {
        let surplus = low.saturating_sub(MIN_IDLE);
        if surplus == 0 {
            return;
        }
        let victims: Vec<u32> = {
            let mut idle = self.idle.lock();
            let n = surplus.min(idle.len());
            idle.drain(..n).collect()
        };
        for token in &victims {
            if let Some(cell) = self.sockets.get(*token as usize) {
                cell.lock().fd = None;
            }
        }
        self.closed.lock().extend(victims);
    }

    /// Opens the socket of `state` if it is closed and registers it under `token`.
    fn ensure_open(&self, token: u32, state: &mut SockState) -> io::Result<RawFd> {
        if let Some(fd) = &state.fd {
            return Ok(fd.as_raw_fd());
        }
        let fd = open_socket(self.addr, self.source)?;
        let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: u64::from(token) };
        // SAFETY: both descriptors are open; `event` is a live struct.
        if unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut event) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let raw = fd.as_raw_fd();
        state.fd = Some(fd);
        Ok(raw)
    }

    /// Sends `query` (the client's message ID in it) under a random ID from a new random
    /// source port; `limit` is the client's reply size. On success `done` is called later
    /// with the outcome; on failure (no waiting slot, no socket) it is handed back unused.
    pub fn send(&self, mut sent: Vec<u8>, limit: usize, done: Completion) -> Result<(), Completion> {
        let Some(client_id) = wire::id(&sent) else { return Err(done) };
        // Without a slot the chain takes the query; its exchange counts the rejection.
        let Some(slot) = self.limit.try_acquire() else { return Err(done) };
        let Some(token) = self.take_token() else { return Err(done) };
        let Some(cell) = self.sockets.get(token as usize) else { return Err(done) };
        // The socket stays locked until the query is recorded, so the responder cannot read
        // the reply before it knows what to match it against.
        let mut state = cell.lock();
        let sent_ok = self.ensure_open(token, &mut state).and_then(|fd| {
            wire::set_id(&mut sent, rand::random::<u16>());
            send_fresh_port(fd, &self.to, &sent)
        });
        if let Err(e) = sent_ok {
            tracing::debug!("direct UDP query to {}: {e}", self.addr);
            retire(&mut state, &mut RecvBatch::new(1, 64), |_, _, _| {});
            self.put_token(token, &mut state);
            return Err(done);
        }
        if let Some(up) = self.upstream.upgrade() {
            up.record_udp_socket();
        }
        state.pending =
            Some(Box::new(Pending { sent, client_id, limit, started: Instant::now(), conn: 0, done, _slot: slot }));
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        drop(state);
        crate::plugin::fast::offer_pump(self.key, || {
            self.self_ref.upgrade().map(|me| me as Arc<dyn crate::plugin::fast::ReplyPump>)
        });
        Ok(())
    }

    /// The responder loop: wait for readable query sockets, complete their queries, expire the
    /// ones past the read timeout, close sockets idle too long; ends when the upstream is
    /// gone, failing what is left.
    fn respond(self: Arc<Self>) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; BATCH];
        let mut batch = RecvBatch::new(READ_BATCH, READ_SIZE);
        let mut last_sweep = Instant::now();
        let mut last_trim = last_sweep;
        let mut idle_low = usize::MAX;
        let mut out: Vec<Datagram> = Vec::with_capacity(BATCH);
        let tick_ms = TICK.as_millis() as libc::c_int;
        loop {
            // While listener threads watch the set they complete the replies; this thread
            // then only looks in once per tick (for what they left) and sweeps.
            let wait_ms = if self.watchers.load(Ordering::Relaxed) > 0 {
                std::thread::sleep(TICK);
                0
            } else {
                tick_ms
            };
            let guard = self.poll_lock.lock();
            // SAFETY: `events` is a live array of BATCH entries.
            let n =
                unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), events.as_mut_ptr(), BATCH as libc::c_int, wait_ms) };
            let upstream = self.upstream.upgrade();
            for ev in events.iter().take(n.max(0) as usize) {
                let token = ev.u64 as u32;
                if let Some(d) = self.readable(token, &mut batch, upstream.as_deref()) {
                    out.push(d);
                }
            }
            send_all(&mut out);
            let now = Instant::now();
            if now.duration_since(last_sweep) >= TICK || n <= 0 {
                last_sweep = now;
                self.expire(now, upstream.is_none(), &mut batch);
                idle_low = idle_low.min(self.idle.lock().len());
                if now.duration_since(last_trim) >= IDLE_FOR {
                    self.trim_idle(idle_low);
                    last_trim = now;
                    idle_low = usize::MAX;
                }
            }
            drop(guard);
            if upstream.is_none() {
                return;
            }
        }
    }

    /// Reads the epoll set without waiting and completes what it reports (see
    /// [`ReplyPump::pump`]); nothing when another thread holds the set.
    fn pump_ready(&self) {
        let Some(_guard) = self.poll_lock.try_lock() else { return };
        PUMP_SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let (events, batch, out) = &mut *scratch;
            // SAFETY: `events` is a live array of BATCH entries.
            let n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), events.as_mut_ptr(), BATCH as libc::c_int, 0) };
            if n <= 0 {
                return;
            }
            let upstream = self.upstream.upgrade();
            for ev in events.iter().take(n as usize) {
                if let Some(d) = self.readable(ev.u64 as u32, batch, upstream.as_deref()) {
                    out.push(d);
                }
            }
            send_all(out);
        });
    }

    /// Handles a readable socket: gives its port back first, so that what is queued is all
    /// that will ever reach its query, then reads all of it. The first datagram from the
    /// upstream with the query's ID and question is the reply; any other is dropped and
    /// counted. Without a reply the query fails over to the chain (which asks again from a
    /// socket of its own).
    fn readable(&self, token: u32, batch: &mut RecvBatch, upstream: Option<&Upstream>) -> Option<Datagram> {
        let cell = self.sockets.get(token as usize)?;
        let mut state = cell.lock();
        state.fd.as_ref()?;
        let Some(p) = state.pending.take() else {
            // Idle already (its query expired meanwhile): nothing is queued that matters.
            retire(&mut state, batch, |_, _, _| {});
            return None;
        };
        self.outstanding.fetch_sub(1, Ordering::Relaxed);
        let mut outcome: Option<DirectOutcome> = None;
        retire(&mut state, batch, |got, cut, from| {
            // Address and port only: an IPv6 sender's flow label is no part of who sent it.
            let why = if from.map(|f| (f.ip(), f.port())) != Some((self.addr.ip(), self.addr.port())) {
                Dropped::Address
            } else if wire::id(got) != wire::id(&p.sent) {
                Dropped::Id
            } else if !msg::question_matches(&p.sent, got) {
                Dropped::Question
            } else if outcome.is_none() {
                outcome = Some(judge(got, cut, &p));
                return;
            } else {
                Dropped::Duplicate
            };
            if let Some(up) = upstream {
                up.record_dropped_reply(why);
            }
        });
        self.put_token(token, &mut state);
        drop(state);
        let outcome = outcome.unwrap_or(DirectOutcome::Failed);
        if let (DirectOutcome::Reply(r), Some(up)) = (&outcome, upstream) {
            up.record_direct(wire::rcode(r), p.started.elapsed());
        }
        (p.done)(outcome)
    }

    /// Fails every query older than the read timeout (all of them when `all`).
    fn expire(&self, now: Instant, all: bool, batch: &mut RecvBatch) {
        let used = (self.fresh.load(Ordering::Relaxed) as usize).min(self.sockets.len());
        let mut expired: Vec<Box<Pending>> = Vec::new();
        for (token, cell) in self.sockets.iter().enumerate().take(used) {
            let mut state = cell.lock();
            let late =
                state.pending.as_ref().is_some_and(|p| all || now.duration_since(p.started) >= self.read_timeout);
            if !late {
                continue;
            }
            if let Some(p) = state.pending.take() {
                self.outstanding.fetch_sub(1, Ordering::Relaxed);
                expired.push(p);
            }
            retire(&mut state, batch, |_, _, _| {});
            self.put_token(token as u32, &mut state);
        }
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

/// The pooled exchange's checks on one reply whose ID and question the caller has already
/// matched to `p`: overflow of the client's size and well-formedness.
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
    wire::set_id(&mut out, p.client_id);
    DirectOutcome::Reply(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn local_port(fd: RawFd) -> u16 {
        // SAFETY: all-zero is a valid sockaddr_in.
        let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: `addr` and `len` are live for the call.
        let rc = unsafe { libc::getsockname(fd, (&mut addr as *mut libc::sockaddr_in).cast(), &mut len) };
        assert_eq!(rc, 0);
        u16::from_be(addr.sin_port)
    }

    /// A refused query (ICMP port unreachable) is reported on the unconnected socket, and
    /// retiring it leaves no port, no datagram and no error behind: the next send binds anew.
    #[test]
    fn refused_queries_are_seen_and_leave_nothing_behind() {
        let closed = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let to = closed.local_addr().expect("addr");
        drop(closed);
        let fd = open_socket(to, None).expect("socket");
        let raw = fd.as_raw_fd();
        send_fresh_port(raw, &socket2::SockAddr::from(to), b"query").expect("send");
        let first = local_port(raw);
        assert_ne!(first, 0);
        std::thread::sleep(Duration::from_millis(50));
        let mut batch = RecvBatch::new(READ_BATCH, 64);
        assert!(release_port(raw));
        assert_eq!(local_port(raw), 0, "the port was given back");
        let mut seen = 0;
        assert_eq!(drain_data(raw, &mut batch, |_, _, _| seen += 1), Some(true), "the refusal was reported");
        assert_eq!(seen, 0);
        assert!(drain_errors(raw));
        let mut buf = [0u8; 64];
        // SAFETY: `buf` is live; MSG_DONTWAIT never blocks.
        let left =
            unsafe { libc::recv(raw, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
        assert!(left < 0, "the error queue was emptied");
        let echo = UdpSocket::bind("127.0.0.1:0").expect("bind");
        send_fresh_port(raw, &socket2::SockAddr::from(echo.local_addr().expect("addr")), b"again").expect("send");
        assert_ne!(local_port(raw), 0);
    }
}
