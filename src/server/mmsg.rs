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
/// `recvmmsg`, reused from call to call. The headers point into the buffers from construction
/// on (the heap blocks do not move when the struct does); a call resets only the fields the
/// kernel wrote in the previous one.
pub struct RecvBatch {
    size: usize,
    bufs: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    /// Headers the last call may have written (their name lengths need resetting).
    used: usize,
}

impl RecvBatch {
    /// Room for `count` datagrams of `size` bytes each.
    pub fn new(count: usize, size: usize) -> RecvBatch {
        let mut b = RecvBatch {
            size,
            bufs: vec![0u8; count * size],
            // SAFETY: all-zero is a valid value for these plain C structs.
            addrs: (0..count).map(|_| unsafe { zeroed() }).collect(),
            iovs: (0..count).map(|_| libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }).collect(),
            // SAFETY: as above.
            msgs: (0..count).map(|_| unsafe { zeroed() }).collect(),
            used: 0,
        };
        for i in 0..count {
            let buf = &mut b.bufs[i * size..(i + 1) * size];
            b.iovs[i] = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: size };
            let m = &mut b.msgs[i];
            m.msg_hdr.msg_name = (&mut b.addrs[i] as *mut libc::sockaddr_storage).cast();
            m.msg_hdr.msg_iov = &mut b.iovs[i];
            m.msg_hdr.msg_iovlen = 1;
            m.msg_hdr.msg_control = std::ptr::null_mut();
            m.msg_hdr.msg_controllen = 0;
        }
        b.used = count;
        b.reset();
        b
    }

    /// Resets what the kernel writes back (name length, flags, length) in the headers the
    /// last call may have used.
    fn reset(&mut self) {
        for m in &mut self.msgs[..self.used] {
            m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            m.msg_hdr.msg_flags = 0;
            m.msg_len = 0;
        }
        self.used = 0;
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
        self.reset();
        let count = self.msgs.len();
        // SAFETY: every mmsghdr points at buffers owned by `self`, alive for the call.
        let n =
            unsafe { libc::recvmmsg(fd, self.msgs.as_mut_ptr(), count as libc::c_uint, flags, std::ptr::null_mut()) };
        if n < 0 {
            // A failed call writes nothing back; the first header is reset anyway.
            self.used = 1.min(count);
            return Err(std::io::Error::last_os_error());
        }
        self.used = (n as usize).min(count);
        Ok(self.used)
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

/// Writes `addr` as a `sockaddr_in`/`sockaddr_in6` into `storage` without going through a
/// zeroed temporary; returns the length to pass to the kernel.
fn put_sockaddr(addr: &SocketAddr, storage: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in.
            let sin = unsafe { &mut *(storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr { s_addr: u32::from(*a.ip()).to_be() };
            sin.sin_zero = [0; 8];
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(_) => write_sockaddr(addr, storage),
    }
}

/// Sends one datagram with `sendto` (cheaper in the kernel than a one-message `sendmmsg`: no
/// message header or iovec to copy in). Errors (e.g. an unreachable destination) are ignored,
/// as [`send_many`] skips them.
pub fn send_one(fd: RawFd, to: &SocketAddr, bytes: &[u8]) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut addr: libc::sockaddr_storage = unsafe { zeroed() };
    let len = put_sockaddr(to, &mut addr);
    // SAFETY: `bytes` and `addr` are valid for the call; the kernel reads `len` bytes of `addr`.
    unsafe {
        libc::sendto(fd, bytes.as_ptr().cast(), bytes.len(), 0, (&addr as *const libc::sockaddr_storage).cast(), len);
    }
}

/// Message headers for `sendmmsg`, set up once and reused by a sending loop (no per-call
/// zeroing of the header arrays).
pub struct SendBatch {
    addrs: Box<[libc::sockaddr_storage]>,
    iovs: Box<[libc::iovec]>,
    msgs: Box<[libc::mmsghdr]>,
}

impl Default for SendBatch {
    fn default() -> Self {
        SendBatch::new()
    }
}

impl SendBatch {
    /// Headers for up to [`SEND_BATCH`] datagrams per call.
    pub fn new() -> SendBatch {
        // SAFETY: all-zero is a valid value for these plain C structs.
        let zero_addr = || unsafe { zeroed::<libc::sockaddr_storage>() };
        // SAFETY: as above.
        let zero_msg = || unsafe { zeroed::<libc::mmsghdr>() };
        SendBatch {
            addrs: (0..SEND_BATCH).map(|_| zero_addr()).collect(),
            iovs: (0..SEND_BATCH).map(|_| libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }).collect(),
            msgs: (0..SEND_BATCH).map(|_| zero_msg()).collect(),
        }
    }

    /// Sends each `(destination, payload)` from `fd`: one alone with `sendto`, more with as
    /// few `sendmmsg` calls as the kernel allows. A datagram the kernel refuses is skipped.
    pub fn send<B: AsRef<[u8]>>(&mut self, fd: RawFd, items: &[(SocketAddr, B)]) {
        if let [(to, bytes)] = items {
            send_one(fd, to, bytes.as_ref());
            return;
        }
        for chunk in items.chunks(SEND_BATCH) {
            for (k, (to, bytes)) in chunk.iter().enumerate() {
                let bytes = bytes.as_ref();
                let len = put_sockaddr(to, &mut self.addrs[k]);
                self.iovs[k] = libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() };
                let m = &mut self.msgs[k];
                m.msg_hdr.msg_name = (&mut self.addrs[k] as *mut libc::sockaddr_storage).cast();
                m.msg_hdr.msg_namelen = len;
                m.msg_hdr.msg_iov = &mut self.iovs[k];
                m.msg_hdr.msg_iovlen = 1;
                m.msg_len = 0;
            }
            sendmmsg_all(fd, &mut self.msgs[..chunk.len()]);
        }
    }
}

/// `sendmmsg` until every header in `msgs` has been sent or skipped.
fn sendmmsg_all(fd: RawFd, msgs: &mut [libc::mmsghdr]) {
    let mut done = 0usize;
    while done < msgs.len() {
        // SAFETY: msgs[done..] point at live addresses and payloads for the call.
        let sent = unsafe { libc::sendmmsg(fd, msgs[done..].as_mut_ptr(), (msgs.len() - done) as libc::c_uint, 0) };
        done += if sent <= 0 { 1 } else { sent as usize };
    }
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
