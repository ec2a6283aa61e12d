//! Listen addresses as CoreDNS's HTTP plugins take them (`:8080`, `localhost:9153`,
//! `[::1]:8080`), split and bound like Go's `net` package, with SO_REUSEPORT.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, ToSocketAddrs};

use socket2::{Domain, Protocol, Socket, Type};

use crate::corefile::{CorefileError, Dispenser};
use crate::gocompat::net::split_host_port;

/// The optional `ADDRESS` argument of the health, ready and prometheus directives: none, or
/// one address that must split as `host:port` (Go's error text), else an argument error.
pub fn optional_addr_arg(d: &mut Dispenser) -> Result<Option<String>, CorefileError> {
    let args = d.remaining_args();
    match args.as_slice() {
        [] => Ok(None),
        [addr] => {
            split_host_port(addr).map_err(CorefileError::plain)?;
            Ok(Some(addr.clone()))
        }
        _ => Err(d.arg_err()),
    }
}

/// The socket address to bind for `addr`: an empty host means every interface (IPv6 wildcard,
/// dual-stack); a host name binds its first IPv4 address (else its first address), as Go does.
pub fn resolve(addr: &str) -> Result<SocketAddr, String> {
    let (host, port) = split_host_port(addr).map_err(|e| format!("listen tcp {addr}: {e}"))?;
    let port: u16 = match port.as_str() {
        "" => 0,
        p if p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse().map_err(|_| format!("listen tcp: address {p}: invalid port"))?
        }
        p => service_port(p).ok_or_else(|| format!("listen tcp: lookup tcp/{p}: unknown port"))?,
    };
    if host.is_empty() {
        return Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let addrs: Vec<SocketAddr> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|_| format!("listen tcp {addr}: lookup {host}: no such host"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("listen tcp {addr}: lookup {host}: no such host"))
}

/// Looks a TCP service name up in `/etc/services` (as Go does), e.g. `http` → 80.
fn service_port(name: &str) -> Option<u16> {
    let services = std::fs::read_to_string("/etc/services").ok()?;
    services.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let service = fields.next()?;
        let (port, proto) = fields.next()?.split_once('/')?;
        let matches = proto == "tcp" && (service == name || fields.any(|alias| alias == name));
        if matches {
            port.parse().ok()
        } else {
            None
        }
    })
}

/// Binds a listening TCP socket for `addr` with SO_REUSEPORT (non-blocking, for tokio).
pub fn bind(addr: &str) -> Result<TcpListener, String> {
    let sa = resolve(addr)?;
    match bind_socket(sa) {
        Ok(l) => Ok(l),
        // No IPv6 on this host: the wildcard falls back to IPv4.
        Err(_) if sa.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED) => {
            bind_socket(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), sa.port()))
                .map_err(|e| format!("listen tcp {addr}: {}", go_error(&e)))
        }
        Err(e) => Err(format!("listen tcp {addr}: {}", go_error(&e))),
    }
}

fn bind_socket(sa: SocketAddr) -> std::io::Result<TcpListener> {
    let sock = Socket::new(Domain::for_address(sa), Type::STREAM, Some(Protocol::TCP))?;
    if sa.is_ipv6() && sa.ip().is_unspecified() {
        sock.set_only_v6(false)?;
    }
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&sa.into())?;
    sock.listen(1024)?;
    Ok(sock.into())
}

/// Go's wording for common bind errors.
fn go_error(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EADDRINUSE) => "bind: address already in use".to_string(),
        Some(libc::EADDRNOTAVAIL) => "bind: cannot assign requested address".to_string(),
        Some(libc::EACCES) => "bind: permission denied".to_string(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn resolve_forms() {
        assert_eq!(resolve("127.0.0.1:9"), Ok("127.0.0.1:9".parse().unwrap()));
        assert_eq!(resolve("[::1]:9"), Ok("[::1]:9".parse().unwrap()));
        assert_eq!(resolve(":9"), Ok("[::]:9".parse().unwrap()));
        assert_eq!(resolve("localhost:9").map(|a| a.port()), Ok(9));
        assert_eq!(resolve("bla:a"), Err("listen tcp: lookup tcp/a: unknown port".to_string()));
        assert_eq!(resolve("127.0.0.1:70000"), Err("listen tcp: address 70000: invalid port".to_string()));
    }
}
