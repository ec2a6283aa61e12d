//! The UDP loop on a dedicated thread: `recvmmsg` takes up to [`BATCH`] queries per system
//! call, cache hits are answered inline and sent back with one `sendmmsg`, and everything else
//! is handed to the async runtime. No epoll round trip per query, no task per cache hit.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::fast::{try_serve, Fast, MissRoute, UdpReturn};
use super::handle::handle;
use super::mmsg::{RecvBatch, SendBatch};
use super::pump_watch::PumpWatch;
use super::request::Proto;
use super::runtime::ListenerRuntime;

/// Queries read per `recvmmsg`.
pub const BATCH: usize = 32;

/// The longest wait for a query or a reply while misses are out (as the socket's read
/// timeout bounds a wait in `recvmmsg`), so that a stop request is seen.
const WAIT_MS: i32 = 200;

/// CoreDNS reads UDP queries into a 512-byte buffer (miekg/dns's default UDPSize).
const READ_SIZE: usize = 512;

/// [`serve`]'s control word: serving.
pub const RUN: u8 = 0;
/// [`serve`]'s control word: leave the SO_REUSEPORT group, answer what is queued, then end.
pub const LEAVE: u8 = 1;
/// [`serve`]'s control word: end at once.
pub const STOP: u8 = 2;

/// Runs until `stop` says [`STOP`] (checked at least every read timeout of `sock`), or says
/// [`LEAVE`] and every datagram queued on the socket has been answered.
pub fn serve(
    sock: Arc<UdpSocket>,
    state: Arc<ArcSwap<ListenerRuntime>>,
    stop: Arc<AtomicU8>,
    rt: tokio::runtime::Handle,
) {
    let Ok(local) = sock.local_addr() else { return };
    let fd = sock.as_raw_fd();
    let mut batch = RecvBatch::new(BATCH, READ_SIZE);
    let mut replies: Vec<(SocketAddr, Vec<u8>)> = Vec::with_capacity(BATCH);
    let mut sender = SendBatch::new();
    let ret = UdpReturn { sock: sock.clone(), local, rt: rt.clone() };
    let mut left_group = false;
    // Without an epoll set of its own the thread leaves replies to the paths' threads.
    let mut watch = PumpWatch::new(fd).ok();
    loop {
        match stop.load(Ordering::Relaxed) {
            RUN => {}
            // A wildcard socket cannot leave (see `leave_reuseport_group`): it serves on until
            // the process ends.
            LEAVE => left_group = !local.ip().is_unspecified(),
            _ => break,
        }
        let n = if left_group {
            // Replies to misses still out are left to their paths' own threads.
            watch = None;
            drain_once(&mut batch, fd)
        } else {
            let out = watch.as_mut().and_then(|w| {
                w.refresh();
                w.waiting().then_some(w)
            });
            match out {
                // Misses are out: wait for a query or a reply, whichever comes first.
                Some(w) if w.wait(WAIT_MS) => batch.try_recv(fd).unwrap_or(0),
                Some(_) => 0,
                None => batch.recv(fd),
            }
        };
        if n == 0 {
            if left_group {
                // Everything queued before the socket left its group has been answered.
                break;
            }
            continue;
        }
        // A guard, not a counted reference: no shared reference count touched per batch.
        let lr = state.load();
        replies.clear();
        for i in 0..n {
            let Some(client) = batch.source(i) else { continue };
            let (query, _) = batch.datagram(i);
            match try_serve(&lr, query, client, Proto::Udp, MissRoute::Udp(&lr, &ret)) {
                Fast::Reply(reply) => {
                    replies.push((client, reply));
                    continue;
                }
                Fast::Forwarded | Fast::Waiting(_) => continue,
                Fast::Slow => {}
            }
            let msg = query.to_vec();
            let lr = lr.clone();
            let sock = sock.clone();
            rt.spawn(async move {
                if let Some(reply) = handle(&lr, msg, client, local, Proto::Udp).await {
                    let _ = sock.send_to(&reply, client);
                }
            });
        }
        if !replies.is_empty() {
            sender.send(fd, &replies);
        }
    }
}

/// After leaving the group: what is still queued, without waiting (a datagram whose socket
/// lookup ran just before the socket left may land a moment later, so an empty queue is looked
/// at once more after a millisecond). Zero means the queue is empty.
fn drain_once(batch: &mut RecvBatch, fd: std::os::fd::RawFd) -> usize {
    match batch.try_recv(fd) {
        Ok(n) if n > 0 => n,
        _ => {
            std::thread::sleep(std::time::Duration::from_millis(1));
            batch.try_recv(fd).unwrap_or(0)
        }
    }
}

/// Takes `sock` out of its SO_REUSEPORT group's choice for new datagrams without closing it,
/// and wakes its thread: the kernel gives a group's datagrams only to unconnected members
/// (Linux 5.7+), so connecting the socket to its own address (a peer that never sends) leaves
/// the datagrams already queued on it readable while every new one goes to the other members;
/// shutting its reading side down then ends a blocked `recvmmsg` at once, while what is queued
/// can still be read. Only for a socket bound to one address: connecting a wildcard socket
/// would bind its source address. Called by [`super::Listeners::quiesce`] after it set
/// [`LEAVE`].
pub fn leave_reuseport_group(sock: &UdpSocket) -> std::io::Result<()> {
    let local = sock.local_addr()?;
    if local.ip().is_unspecified() {
        return Ok(());
    }
    // Connecting fails when the address is already gone (node-cache's teardown removed it);
    // the read side is shut down either way, so the socket's thread wakes and ends. On an
    // unconnected socket Linux answers ENOTCONN but still marks it and wakes its readers.
    let left = sock.connect(local);
    // SAFETY: shutdown on a descriptor `sock` owns has no memory effects.
    unsafe {
        libc::shutdown(sock.as_raw_fd(), libc::SHUT_RD);
    }
    left
}
