//! The UDP loop on a dedicated thread: `recvmmsg` takes up to [`BATCH`] queries per system
//! call, cache hits are answered inline and sent back with one `sendmmsg`, and everything else
//! is handed to the async runtime. No epoll round trip per query, no task per cache hit.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::fast::{try_serve, Fast, UdpReturn};
use super::handle::handle;
use super::mmsg::{send_many, RecvBatch};
use super::request::Proto;
use super::runtime::ListenerRuntime;

/// Queries read per `recvmmsg`.
pub const BATCH: usize = 32;

/// CoreDNS reads UDP queries into a 512-byte buffer (miekg/dns's default UDPSize).
const READ_SIZE: usize = 512;

/// Runs until `stop` is set (checked at least every read timeout of `sock`).
pub fn serve(
    sock: Arc<UdpSocket>,
    state: Arc<ArcSwap<ListenerRuntime>>,
    stop: Arc<AtomicBool>,
    rt: tokio::runtime::Handle,
) {
    let Ok(local) = sock.local_addr() else { return };
    let fd = sock.as_raw_fd();
    let mut batch = RecvBatch::new(BATCH, READ_SIZE);
    let mut replies: Vec<(SocketAddr, Vec<u8>)> = Vec::with_capacity(BATCH);
    let ret = UdpReturn { sock: sock.clone(), local, rt: rt.clone() };
    while !stop.load(Ordering::Relaxed) {
        let n = batch.recv(fd);
        if n == 0 {
            continue;
        }
        let lr = state.load_full();
        replies.clear();
        for i in 0..n {
            let Some(client) = batch.source(i) else { continue };
            let (query, _) = batch.datagram(i);
            match try_serve(&lr, query, client, Proto::Udp, Some((&lr, &ret))) {
                Fast::Reply(reply) => {
                    replies.push((client, reply));
                    continue;
                }
                Fast::Forwarded => continue,
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
            let out: Vec<(SocketAddr, &[u8])> = replies.iter().map(|(to, r)| (*to, r.as_slice())).collect();
            send_many(fd, &out);
        }
    }
}
