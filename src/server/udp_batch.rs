//! The UDP loop on a dedicated thread: `recvmmsg` takes up to [`BATCH`] queries per system
//! call, cache hits are answered inline and sent back with one `sendmmsg`, and everything else
//! is handed to the async runtime. No epoll round trip per query, no task per cache hit.

use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::fast::{try_serve, Fast, UdpReturn};
use super::handle::handle;
use super::request::Proto;
use super::runtime::ListenerRuntime;

/// Queries read per `recvmmsg`.
pub const BATCH: usize = 32;

/// CoreDNS reads UDP queries into a 512-byte buffer (miekg/dns's default UDPSize).
const READ_SIZE: usize = 512;

/// Converts a kernel socket address to a std one.
fn to_socket_addr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match ss.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large enough for.
            let sin: &libc::sockaddr_in = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6: &libc::sockaddr_in6 = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Runs until `stop` is set (checked at least every read timeout of `sock`).
pub fn serve(
    sock: Arc<UdpSocket>,
    state: Arc<ArcSwap<ListenerRuntime>>,
    stop: Arc<AtomicBool>,
    rt: tokio::runtime::Handle,
) {
    let Ok(local) = sock.local_addr() else { return };
    let fd = sock.as_raw_fd();
    let mut bufs = vec![[0u8; READ_SIZE]; BATCH];
    // SAFETY: all-zero is a valid value for these plain C structs.
    let mut addrs: Vec<libc::sockaddr_storage> = (0..BATCH).map(|_| unsafe { zeroed() }).collect();
    let mut iovs: Vec<libc::iovec> =
        (0..BATCH).map(|_| libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }).collect();
    // SAFETY: as above.
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { zeroed() }).collect();
    let mut replies: Vec<(usize, Vec<u8>)> = Vec::with_capacity(BATCH);
    let ret = UdpReturn { sock: sock.clone(), local, rt: rt.clone() };
    while !stop.load(Ordering::Relaxed) {
        for i in 0..BATCH {
            iovs[i] = libc::iovec { iov_base: bufs[i].as_mut_ptr().cast(), iov_len: READ_SIZE };
            msgs[i].msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
            msgs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            msgs[i].msg_hdr.msg_iov = &mut iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_control = std::ptr::null_mut();
            msgs[i].msg_hdr.msg_controllen = 0;
            msgs[i].msg_hdr.msg_flags = 0;
            msgs[i].msg_len = 0;
        }
        // SAFETY: every mmsghdr points at live buffers owned by this frame for the call.
        let n = unsafe {
            libc::recvmmsg(fd, msgs.as_mut_ptr(), BATCH as libc::c_uint, libc::MSG_WAITFORONE, std::ptr::null_mut())
        };
        if n <= 0 {
            continue;
        }
        let lr = state.load_full();
        replies.clear();
        for i in 0..n as usize {
            let len = (msgs[i].msg_len as usize).min(READ_SIZE);
            let Some(client) = to_socket_addr(&addrs[i]) else { continue };
            let query = &bufs[i][..len];
            match try_serve(&lr, query, client, Proto::Udp, Some((&lr, &ret))) {
                Fast::Reply(reply) => {
                    replies.push((i, reply));
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
        send_batch(fd, &mut replies, &mut addrs, &mut iovs, &mut msgs);
    }
}

/// Sends `replies` (index of the query's address, bytes) with `sendmmsg`, retrying the rest
/// after a partial send.
fn send_batch(
    fd: libc::c_int,
    replies: &mut [(usize, Vec<u8>)],
    addrs: &mut [libc::sockaddr_storage],
    iovs: &mut [libc::iovec],
    msgs: &mut [libc::mmsghdr],
) {
    if replies.is_empty() {
        return;
    }
    for (slot, (i, reply)) in replies.iter_mut().enumerate() {
        let namelen = match addrs[*i].ss_family as libc::c_int {
            libc::AF_INET => size_of::<libc::sockaddr_in>(),
            _ => size_of::<libc::sockaddr_in6>(),
        };
        iovs[slot] = libc::iovec { iov_base: reply.as_mut_ptr().cast(), iov_len: reply.len() };
        msgs[slot].msg_hdr.msg_name = (&mut addrs[*i] as *mut libc::sockaddr_storage).cast();
        msgs[slot].msg_hdr.msg_namelen = namelen as libc::socklen_t;
        msgs[slot].msg_hdr.msg_iov = &mut iovs[slot];
        msgs[slot].msg_hdr.msg_iovlen = 1;
        msgs[slot].msg_hdr.msg_control = std::ptr::null_mut();
        msgs[slot].msg_hdr.msg_controllen = 0;
        msgs[slot].msg_len = 0;
    }
    let mut done = 0usize;
    let total = replies.len();
    let mut tries = 0;
    while done < total && tries < 4 {
        // SAFETY: msgs[done..total] point at live reply buffers and addresses.
        let sent = unsafe { libc::sendmmsg(fd, msgs[done..].as_mut_ptr(), (total - done) as libc::c_uint, 0) };
        if sent <= 0 {
            // Skip the datagram that failed (e.g. an unreachable client) and go on.
            done += 1;
            tries += 1;
            continue;
        }
        done += sent as usize;
    }
}
