//! Turning `forward` TO arguments into upstream addresses: IPs with default ports, `%sni`
//! zones, resolv.conf-style files, and hostnames resolved once at setup.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::RData;

use super::goparse::split_transport;

/// One TO entry after classification, in config order.
enum Entry {
    /// Literal addresses (from an IP or a file), already in `scheme://host:port` form.
    Static(Vec<String>),
    /// A hostname to resolve.
    Host { hostname: String, port: String, scheme: &'static str, zone: String },
}

/// Splits a `%zone` (TLS server name) off an address, keeping any port (CoreDNS `splitZone`).
pub fn split_zone(addr: &str) -> (String, String) {
    let (trans, host) = match addr.split_once("://") {
        Some((t, h)) => (Some(t), h),
        None => (None, addr),
    };
    let mut new_host = host.to_string();
    let mut zone = String::new();
    if let Some(pct) = host.rfind('%') {
        new_host = host[..pct].to_string();
        if new_host.starts_with('[') {
            new_host.push(']');
        }
        zone = host[pct + 1..].to_string();
        if let Some(colon) = zone.rfind(':') {
            new_host.push_str(&zone[colon..]);
            zone.truncate(colon);
            if zone.ends_with(']') {
                zone.pop();
            }
        }
    }
    match trans {
        Some(t) => (format!("{t}://{new_host}"), zone),
        None => (new_host, zone),
    }
}

fn strip_zone(h: &str) -> &str {
    h.rfind('%').map(|i| &h[..i]).unwrap_or(h)
}

/// Go's `net.SplitHostPort`.
pub fn split_host_port(s: &str) -> Option<(String, String)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        if port.contains(':') {
            return None;
        }
        return Some((host.to_string(), port.to_string()));
    }
    let (host, port) = s.rsplit_once(':')?;
    if host.contains(':') {
        return None;
    }
    Some((host.to_string(), port.to_string()))
}

fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn is_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

/// Nameservers of a resolv.conf-style file as `host:port` (port 53 unless the line gives one).
/// `Ok(None)` when the file has none.
fn try_file(path: &str) -> Result<Option<Vec<String>>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("failed to open file \"{path}\": \"open {path}: no such file or directory\"")
        } else {
            format!("open {path}: {e}")
        }
    })?;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let mut f = line.split_whitespace();
        if f.next() != Some("nameserver") {
            continue;
        }
        let Some(ns) = f.next() else { continue };
        match split_host_port(ns).filter(|(h, _)| is_ip(strip_zone(h))) {
            Some((h, p)) => out.push(join_host_port(strip_zone(&h), &p)),
            None => out.push(join_host_port(strip_zone(ns.trim_matches(['[', ']'])), "53")),
        }
    }
    Ok((!out.is_empty()).then_some(out))
}

/// CoreDNS `HostPortOrFile` for one argument: `Ok(None)` for a file without nameservers.
fn host_port_or_file(h: &str) -> Result<Option<Vec<String>>, String> {
    let (trans, host) = split_transport(h);
    if host.is_empty() {
        return Err(format!("invalid address: {h:?}"));
    }
    if trans == "unix" {
        return Ok(Some(vec![format!("unix://{host}")]));
    }
    match split_host_port(host) {
        None => {
            let host = host.trim_matches(['[', ']']);
            if !is_ip(strip_zone(host)) {
                return match try_file(host) {
                    Ok(s) => Ok(s),
                    Err(e) => Err(format!("not an IP address or file {host:?}: {e}")),
                };
            }
            let port = match trans {
                "tls" | "quic" => "853",
                "https" | "grpc" => "443",
                _ => "53",
            };
            let hp = join_host_port(host, port);
            Ok(Some(vec![if trans == "dns" { hp } else { format!("{trans}://{hp}") }]))
        }
        Some((addr, _)) => {
            if !is_ip(strip_zone(&addr)) {
                return match try_file(host) {
                    Ok(s) => Ok(s),
                    Err(e) => Err(format!("not an IP address or file {host:?}: {e}")),
                };
            }
            Ok(Some(vec![h.to_string()]))
        }
    }
}

fn parse_host_entry(h: &str) -> Option<Entry> {
    let (clean, zone) = split_zone(h);
    let (scheme, host) = split_transport(&clean);
    if !matches!(scheme, "dns" | "tls" | "https") {
        return None;
    }
    let (mut hostname, mut port) = (
        host.to_string(),
        match scheme {
            "tls" => "853",
            "https" => "443",
            _ => "53",
        }
        .to_string(),
    );
    if let Some((h2, p)) = split_host_port(host) {
        hostname = h2;
        port = p;
    }
    let hostname = hostname.trim_matches(['[', ']']).to_string();
    if hostname.is_empty() || !super::goparse::is_domain_name(&hostname) || is_ip(&hostname) {
        return None;
    }
    Some(Entry::Host { hostname, port, scheme, zone })
}

/// The number of TO entries and the deduplicated upstream address strings, in config order.
pub fn expand(to: &[String], resolvers: &[String]) -> Result<(usize, Vec<String>), String> {
    let mut entries = Vec::new();
    for h in to {
        match host_port_or_file(h) {
            Ok(Some(addrs)) => entries.push(Entry::Static(addrs)),
            Ok(None) => continue,
            Err(e) if e.contains("not an IP address or file") => match parse_host_entry(h) {
                Some(entry) => entries.push(entry),
                None => return Err(format!("not an IP address, file, or valid domain: {h:?}")),
            },
            Err(e) => return Err(e),
        }
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for e in &entries {
        let addrs = match e {
            Entry::Static(a) => a.clone(),
            Entry::Host { hostname, port, scheme, zone } => {
                let ips = lookup(hostname, resolvers).map_err(|e| format!("failed to resolve {hostname:?}: {e}"))?;
                ips.into_iter()
                    .map(|ip| {
                        let ip = ip.to_string();
                        if *scheme == "dns" {
                            join_host_port(&ip, port)
                        } else if zone.is_empty() {
                            format!("{scheme}://{}", join_host_port(&ip, port))
                        } else if ip.contains(':') {
                            format!("{scheme}://[{ip}%{zone}]:{port}")
                        } else {
                            format!("{scheme}://{ip}%{zone}:{port}")
                        }
                    })
                    .collect()
            }
        };
        for a in addrs {
            let (host, _) = split_zone(&a);
            let key = split_transport(&host).1.to_string();
            if seen.insert(key) {
                out.push(a);
            }
        }
    }
    Ok((entries.len(), out))
}

fn lookup(hostname: &str, resolvers: &[String]) -> Result<Vec<IpAddr>, String> {
    if resolvers.is_empty() {
        let addrs: Vec<IpAddr> = (hostname, 0u16)
            .to_socket_addrs()
            .map_err(|e| format!("lookup {hostname}: {e}"))?
            .map(|a| a.ip())
            .collect();
        if addrs.is_empty() {
            return Err(format!("no addresses found for {hostname:?}"));
        }
        let mut dedup = Vec::new();
        for a in addrs {
            if !dedup.contains(&a) {
                dedup.push(a);
            }
        }
        return Ok(dedup);
    }
    let mut last_err = None;
    for r in resolvers {
        let server: SocketAddr = match r.parse::<SocketAddr>() {
            Ok(s) => s,
            Err(_) => match r.trim_matches(['[', ']']).parse::<IpAddr>() {
                Ok(ip) => SocketAddr::new(ip, 53),
                Err(_) => continue,
            },
        };
        let mut ips = Vec::new();
        for qtype in [1u16, 28] {
            match query(server, hostname, qtype) {
                Ok(mut v) => ips.append(&mut v),
                Err(e) => {
                    last_err = Some(e);
                    if qtype == 1 {
                        break;
                    }
                }
            }
        }
        if !ips.is_empty() {
            return Ok(ips);
        }
    }
    match last_err {
        Some(e) => Err(format!("no addresses found for {hostname:?}: {e}")),
        None => Err(format!("no addresses found for {hostname:?}")),
    }
}

fn query(server: SocketAddr, hostname: &str, qtype: u16) -> Result<Vec<IpAddr>, String> {
    let name = crate::dnsname::fqdn(hostname);
    let id: u16 = rand::random();
    let q = super::msg::build_query(id, &name, qtype, true)?;
    let bind: SocketAddr = if server.is_ipv4() { "0.0.0.0:0".parse() } else { "[::]:0".parse() }.map_err(|_| "bind")?;
    let sock = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(2))).map_err(|e| e.to_string())?;
    sock.connect(server).map_err(|e| e.to_string())?;
    sock.send(&q).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4096];
    loop {
        let n = sock.recv(&mut buf).map_err(|e| format!("read udp {server}: {e}"))?;
        if n < 12 || buf[..2] != id.to_be_bytes() {
            continue;
        }
        let msg = Message::from_vec(&buf[..n]).map_err(|e| e.to_string())?;
        return Ok(msg
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn split_zone_like_coredns() {
        let s = |a: &str| split_zone(a);
        assert_eq!(s("tls://127.0.0.1%example.net:854"), ("tls://127.0.0.1:854".into(), "example.net".into()));
        assert_eq!(s("tls://127.0.0.1%example.net"), ("tls://127.0.0.1".into(), "example.net".into()));
        assert_eq!(s("tls://[::1%example.net]:853"), ("tls://[::1]:853".into(), "example.net".into()));
        assert_eq!(s("1.2.3.4"), ("1.2.3.4".into(), String::new()));
    }

    #[test]
    fn expands_ips_ports_files_and_dedups() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("resolv.conf");
        std::fs::write(&f, "# c\nnameserver 10.10.255.252\nnameserver 10.10.255.253\nnameserver [::1]:5353\n").unwrap();
        let empty = dir.path().join("empty.conf");
        std::fs::write(&empty, "# nameserver 1.0.0.1\n").unwrap();
        let to: Vec<String> = [
            "127.0.0.1",
            "dns://127.0.0.1:53",
            "[::1]:54",
            "tls://127.0.0.2",
            f.to_str().unwrap(),
            empty.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (n, got) = expand(&to, &[]).unwrap();
        assert_eq!(n, 5);
        assert_eq!(
            got,
            vec![
                "127.0.0.1:53",
                "[::1]:54",
                "tls://127.0.0.2:853",
                "10.10.255.252:53",
                "10.10.255.253:53",
                "[::1]:5353"
            ]
        );
        assert!(expand(&["a27.0.0.1".to_string()], &[]).unwrap_err().starts_with("failed to resolve"));
        assert_eq!(
            expand(&["a..b".to_string()], &[]).unwrap_err(),
            "not an IP address, file, or valid domain: \"a..b\""
        );
    }
}
