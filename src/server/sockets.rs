//! Socket creation: SO_REUSEPORT sockets, wildcard addresses bound dual-stack when possible.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};

use socket2::{Domain, Protocol, Socket, Type};

/// Whether DNS listeners may bind an address no interface holds yet (`IP_FREEBIND`).
static FREEBIND: AtomicBool = AtomicBool::new(false);

/// Lets DNS listeners bind addresses that are not (yet) on any interface, so that node-cache
/// serves as soon as its setup loop has put the local IPs in place, instead of failing to start
/// when the interface cannot be created at first. Process-wide; off by default (the engine
/// binds as CoreDNS does).
pub fn allow_nonlocal_binds() {
    FREEBIND.store(true, Ordering::Relaxed);
}

fn make(addr: SocketAddr, ty: Type, proto: Protocol) -> io::Result<Socket> {
    let domain = if addr.is_ipv6() { Domain::IPV6 } else { Domain::IPV4 };
    let s = Socket::new(domain, ty, Some(proto))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if FREEBIND.load(Ordering::Relaxed) && !addr.ip().is_unspecified() {
        let _ = if addr.is_ipv6() { s.set_freebind_v6(true) } else { s.set_freebind_v4(true) };
    }
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
