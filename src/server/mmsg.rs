//! Batched datagram I/O: `recvmmsg` into a set of reusable buffers, and `sendmmsg` of many
//! (destination, payload) pairs. Used by the UDP listener threads and by the forward plugin's
//! direct upstream path.

use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Converts a kernel socket address to a std one.
pub fn to_socket_addr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
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

/// Buffers and message headers to receive up to `count` datagrams of up to `size` bytes with one
/// `recvmmsg`, reused from call to call.
pub struct RecvBatch {
    size: usize,
    bufs: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

impl RecvBatch {
    /// Room for `count` datagrams of `size` bytes each.
    pub fn new(count: usize, size: usize) -> RecvBatch {
        RecvBatch {
            size,
            bufs: vec![0u8; count * size],
            // SAFETY: all-zero is a valid value for these plain C structs.
            addrs: (0..count).map(|_| unsafe { zeroed() }).collect(),
            iovs: (0..count).map(|_| libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }).collect(),
            // SAFETY: as above.
            msgs: (0..count).map(|_| unsafe { zeroed() }).collect(),
        }
    }

    /// Waits for at least one datagram on `fd` (up to the socket's read timeout), then takes
    /// what else is queued without waiting. Returns how many were read (0 on timeout or error).
    pub fn recv(&mut self, fd: RawFd) -> usize {
        self.recv_flags(fd, libc::MSG_WAITFORONE).unwrap_or(0)
    }

    /// Takes what is queued on `fd` without waiting: how many were read, or the socket's error
    /// (`WouldBlock` when nothing is queued).
    pub fn try_recv(&mut self, fd: RawFd) -> std::io::Result<usize> {
        self.recv_flags(fd, libc::MSG_DONTWAIT)
    }

    /// The number of datagrams one call can read.
    pub fn capacity(&self) -> usize {
        self.msgs.len()
    }

    fn recv_flags(&mut self, fd: RawFd, flags: libc::c_int) -> std::io::Result<usize> {
        let count = self.msgs.len();
        for i in 0..count {
            let buf = &mut self.bufs[i * self.size..(i + 1) * self.size];
            self.iovs[i] = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: self.size };
            let m = &mut self.msgs[i];
            m.msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            m.msg_hdr.msg_iov = &mut self.iovs[i];
            m.msg_hdr.msg_iovlen = 1;
            m.msg_hdr.msg_control = std::ptr::null_mut();
            m.msg_hdr.msg_controllen = 0;
            m.msg_hdr.msg_flags = 0;
            m.msg_len = 0;
        }
        // SAFETY: every mmsghdr points at buffers owned by `self`, alive for the call.
        let n =
            unsafe { libc::recvmmsg(fd, self.msgs.as_mut_ptr(), count as libc::c_uint, flags, std::ptr::null_mut()) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Datagram `i` of the last [`RecvBatch::recv`], and whether the kernel cut it to fit.
    pub fn datagram(&self, i: usize) -> (&[u8], bool) {
        let m = &self.msgs[i];
        let len = (m.msg_len as usize).min(self.size);
        (&self.bufs[i * self.size..i * self.size + len], m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0)
    }

    /// The sender of datagram `i`.
    pub fn source(&self, i: usize) -> Option<SocketAddr> {
        to_socket_addr(&self.addrs[i])
    }
}

/// Writes `addr` into `storage`; returns the length to pass to the kernel.
fn write_sockaddr(addr: &SocketAddr, storage: &mut libc::sockaddr_storage) -> libc::socklen_t {
    let sa = socket2::SockAddr::from(*addr);
    let len = (sa.len() as usize).min(std::mem::size_of::<libc::sockaddr_storage>());
    // SAFETY: both point at valid memory of at least `len` bytes and do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            sa.as_ptr().cast::<u8>(),
            (storage as *mut libc::sockaddr_storage).cast::<u8>(),
            len,
        );
    }
    len as libc::socklen_t
}

/// Datagrams per `sendmmsg` in [`send_many`].
const SEND_BATCH: usize = 32;

/// Sends each `(destination, payload)` from socket `fd` with as few `sendmmsg` calls as the
/// kernel allows; a datagram the kernel refuses (e.g. an unreachable destination) is skipped.
pub fn send_many(fd: RawFd, items: &[(SocketAddr, &[u8])]) {
    // SAFETY: all-zero is a valid value for these plain C structs.
    let mut addrs: [libc::sockaddr_storage; SEND_BATCH] = unsafe { std::mem::zeroed() };
    let mut iovs: [libc::iovec; SEND_BATCH] = unsafe { std::mem::zeroed() };
    let mut msgs: [libc::mmsghdr; SEND_BATCH] = unsafe { std::mem::zeroed() };
    for chunk in items.chunks(SEND_BATCH) {
        for (k, (to, bytes)) in chunk.iter().enumerate() {
            let len = write_sockaddr(to, &mut addrs[k]);
            iovs[k] = libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() };
            msgs[k].msg_hdr.msg_name = (&mut addrs[k] as *mut libc::sockaddr_storage).cast();
            msgs[k].msg_hdr.msg_namelen = len;
            msgs[k].msg_hdr.msg_iov = &mut iovs[k];
            msgs[k].msg_hdr.msg_iovlen = 1;
            msgs[k].msg_len = 0;
        }
        let mut done = 0usize;
        while done < chunk.len() {
            // SAFETY: msgs[done..chunk.len()] point at live addresses and payloads for the call.
            let sent =
                unsafe { libc::sendmmsg(fd, msgs[done..].as_mut_ptr(), (chunk.len() - done) as libc::c_uint, 0) };
            done += if sent <= 0 { 1 } else { sent as usize };
        }
    }
}
