//! Socket creation: SO_REUSEPORT sockets, wildcard addresses bound dual-stack when possible.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

fn make(addr: SocketAddr, ty: Type, proto: Protocol) -> io::Result<Socket> {
    let domain = if addr.is_ipv6() { Domain::IPV6 } else { Domain::IPV4 };
    let s = Socket::new(domain, ty, Some(proto))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        s.set_only_v6(false)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

/// Binds with a fallback from the dual-stack wildcard `[::]` to `0.0.0.0` on hosts without
/// IPv6.
fn bind_with_fallback(addr: SocketAddr, ty: Type, proto: Protocol) -> io::Result<Socket> {
    match make(addr, ty, proto) {
        Ok(s) => Ok(s),
        Err(e) if addr.is_ipv6() && addr.ip().is_unspecified() => {
            make(SocketAddr::from((Ipv4Addr::UNSPECIFIED, addr.port())), ty, proto).map_err(|_| e)
        }
        Err(e) => Err(e),
    }
}

/// A UDP socket for `addr`, with large buffers.
pub fn udp(addr: SocketAddr) -> io::Result<tokio::net::UdpSocket> {
    let s = bind_with_fallback(addr, Type::DGRAM, Protocol::UDP)?;
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    tokio::net::UdpSocket::from_std(s.into())
}

/// A listening TCP socket for `addr`.
pub fn tcp(addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    let s = bind_with_fallback(addr, Type::STREAM, Protocol::TCP)?;
    s.set_tcp_nodelay(true)?;
    s.listen(1024)?;
    tokio::net::TcpListener::from_std(s.into())
}

/// A blocking UDP socket for `addr` (SO_REUSEPORT, large buffers) with a short read timeout,
/// for the batched receive loop on its own thread.
pub fn udp_blocking(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let s = bind_with_fallback(addr, Type::DGRAM, Protocol::UDP)?;
    s.set_nonblocking(false)?;
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.set_read_timeout(Some(std::time::Duration::from_millis(200)))?;
    Ok(s.into())
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
pub fn send_many(fd: std::os::fd::RawFd, items: &[(SocketAddr, &[u8])]) {
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
