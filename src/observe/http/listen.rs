//! Listen addresses as CoreDNS's HTTP plugins take them (`:8080`, `localhost:9153`,
//! `[::1]:8080`), split and bound like Go's `net` package, with SO_REUSEPORT.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, ToSocketAddrs};

use socket2::{Domain, Protocol, Socket, Type};

/// Splits `host:port` as Go's `net.SplitHostPort` does, with its error texts
/// (`address bla: missing port in address`).
pub fn split_host_port(hostport: &str) -> Result<(String, String), String> {
    let err = |why: &str| format!("address {hostport}: {why}");
    let Some(i) = hostport.rfind(':') else { return Err(err("missing port in address")) };
    let (host, j, k);
    if hostport.starts_with('[') {
        let Some(end) = hostport.find(']') else { return Err(err("missing ']' in address")) };
        if end + 1 == hostport.len() {
            return Err(err("missing port in address"));
        } else if end + 1 != i {
            if hostport.as_bytes().get(end + 1) == Some(&b':') {
                return Err(err("too many colons in address"));
            }
            return Err(err("missing port in address"));
        }
        host = hostport.get(1..end).unwrap_or("");
        j = 1;
        k = end + 1;
    } else {
        host = hostport.get(..i).unwrap_or("");
        if host.contains(':') {
            return Err(err("too many colons in address"));
        }
        j = 0;
        k = 0;
    }
    if hostport.get(j..).is_some_and(|s| s.contains('[')) {
        return Err(err("unexpected '[' in address"));
    }
    if hostport.get(k..).is_some_and(|s| s.contains(']')) {
        return Err(err("unexpected ']' in address"));
    }
    Ok((host.to_string(), hostport.get(i + 1..).unwrap_or("").to_string()))
}

/// The socket address to bind for `addr`: an empty host means every interface (IPv6 wildcard,
/// dual-stack); a host name binds its first IPv4 address (else its first address), as Go does.
pub fn resolve(addr: &str) -> Result<SocketAddr, String> {
    let (host, port) = split_host_port(addr).map_err(|e| format!("listen tcp {addr}: {e}"))?;
    let port: u16 = match port.as_str() {
        "" => 0,
        p => p.parse().map_err(|_| format!("listen tcp: lookup tcp/{p}: unknown port"))?,
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
    fn split_like_go() {
        assert_eq!(split_host_port(":8080"), Ok((String::new(), "8080".to_string())));
        assert_eq!(split_host_port("bla:a"), Ok(("bla".to_string(), "a".to_string())));
        assert_eq!(split_host_port("[::1]:80"), Ok(("::1".to_string(), "80".to_string())));
        assert_eq!(split_host_port("bla"), Err("address bla: missing port in address".to_string()));
        assert_eq!(split_host_port("::1:80"), Err("address ::1:80: too many colons in address".to_string()));
        assert_eq!(split_host_port("[::1]"), Err("address [::1]: missing port in address".to_string()));
        assert_eq!(split_host_port("[::1:80"), Err("address [::1:80: missing ']' in address".to_string()));
    }

    #[test]
    fn resolve_forms() {
        assert_eq!(resolve("127.0.0.1:9"), Ok("127.0.0.1:9".parse().unwrap()));
        assert_eq!(resolve("[::1]:9"), Ok("[::1]:9".parse().unwrap()));
        assert_eq!(resolve(":9"), Ok("[::]:9".parse().unwrap()));
        assert_eq!(resolve("localhost:9").map(|a| a.port()), Ok(9));
        assert_eq!(resolve("bla:a"), Err("listen tcp: lookup tcp/a: unknown port".to_string()));
    }
}
