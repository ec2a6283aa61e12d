//! Go-compatible parsing used by forward's setup: `dns.IsDomainName`, and CoreDNS's `Host.NormalizeExact` (including CIDR reverse zones).

use std::net::IpAddr;

use crate::dnsname;

/// `dns.IsDomainName`: labels of 1–63 octets (escapes counted as one), at most 255 octets in
/// wire form, no empty label except the root.
pub fn is_domain_name(s: &str) -> bool {
    if s.is_empty() {
        return false;
    }
    if s == "." {
        return true;
    }
    let b = s.as_bytes();
    let mut label_len = 0usize;
    let mut wire_len = 1usize; // the root label
    let mut i = 0;
    let mut labels_done = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                if i + 3 < b.len() && b[i + 1..=i + 3].iter().all(|c| c.is_ascii_digit()) {
                    i += 4;
                } else if i + 1 < b.len() {
                    i += 2;
                } else {
                    return false;
                }
                label_len += 1;
            }
            b'.' => {
                if label_len == 0 {
                    return false;
                }
                wire_len += label_len + 1;
                label_len = 0;
                labels_done += 1;
                i += 1;
            }
            _ => {
                label_len += 1;
                i += 1;
            }
        }
        if label_len > 63 {
            return false;
        }
    }
    if label_len > 0 {
        wire_len += label_len + 1;
        labels_done += 1;
    }
    labels_done > 0 && wire_len <= 255
}

/// Strips a `scheme://` prefix as CoreDNS's `parse.Transport` does, returning (scheme, rest).
pub fn split_transport(s: &str) -> (&'static str, &str) {
    for scheme in ["tls", "dns", "quic", "grpc", "https3", "https", "unix"] {
        if let Some(rest) = s.strip_prefix(scheme).and_then(|r| r.strip_prefix("://")) {
            return (scheme, rest);
        }
    }
    ("dns", s)
}

/// CoreDNS's `Host(s).NormalizeExact()`: the zones a key or FROM stands for (a CIDR gives its
/// reverse zones); empty when the input is not usable.
pub fn normalize_exact(s: &str) -> Vec<String> {
    let (_, mut s) = split_transport(s);
    if let Some(colon) = s.rfind(':') {
        if colon == s.len() - 1 {
            return Vec::new();
        }
        if s[colon + 1..].parse::<i64>().is_ok() {
            s = &s[..colon];
        }
    }
    if s.len() > 255 || !is_domain_name(s) {
        return Vec::new();
    }
    match parse_cidr(s) {
        None => vec![dnsname::normalize(s)],
        Some((ip, ones)) => {
            if s.starts_with(':') || (s.starts_with('0') && s.contains(':')) {
                return Vec::new();
            }
            reverse_zones(ip, ones)
        }
    }
}

/// Parses `IP/prefix` into the network address and prefix length.
pub fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, bits) = s.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    if bits.is_empty() || bits.len() > 3 || !bits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ones: u8 = bits.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if ones > max {
        return None;
    }
    Some((mask(ip, ones), ones))
}

fn mask(ip: IpAddr, ones: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let m = if ones == 0 { 0 } else { u32::MAX << (32 - ones as u32) };
            IpAddr::V4((u32::from(v4) & m).into())
        }
        IpAddr::V6(v6) => {
            let m = if ones == 0 { 0 } else { u128::MAX << (128 - ones as u32) };
            IpAddr::V6((u128::from(v6) & m).into())
        }
    }
}

/// The reverse zones of a network, split on octet (v4) or nibble (v6) boundaries.
pub fn reverse_zones(net: IpAddr, ones: u8) -> Vec<String> {
    let (boundary, bits) = if net.is_ipv4() { (8u32, 32u32) } else { (4, 128) };
    let ones = ones as u32;
    let new_ones = ones.div_ceil(boundary) * boundary;
    let count: u128 = 1u128 << (new_ones - ones);
    let count = count.min(1 << 16);
    let step: u128 = if new_ones == bits { 1 } else { 1u128 << (bits - new_ones) };
    let skip = ((bits - new_ones) / boundary) as usize;
    let base: u128 = match net {
        IpAddr::V4(v4) => u32::from(v4) as u128,
        IpAddr::V6(v6) => u128::from(v6),
    };
    (0..count)
        .map(|i| {
            let addr = base + i * step;
            let labels: Vec<String> = match net {
                IpAddr::V4(_) => (0..4).map(|k| ((addr >> (8 * k)) & 0xff).to_string()).collect(),
                IpAddr::V6(_) => (0..32).map(|k| format!("{:x}", (addr >> (4 * k)) & 0xf)).collect(),
            };
            // labels are least significant first
            let kept = labels.get(skip..).unwrap_or(&[]).join(".");
            let suffix = if net.is_ipv4() { "in-addr.arpa." } else { "ip6.arpa." };
            if kept.is_empty() {
                suffix.to_string()
            } else {
                format!("{kept}.{suffix}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn normalize_exact_handles_names_ports_and_cidrs() {
        assert_eq!(normalize_exact("Example.ORG"), vec!["example.org.".to_string()]);
        assert_eq!(normalize_exact("dns://example.org:1053"), vec!["example.org.".to_string()]);
        let z = normalize_exact("10.9.3.0/18");
        assert_eq!(z.len(), 64);
        assert_eq!(z[0], "0.9.10.in-addr.arpa.");
        assert_eq!(z[63], "63.9.10.in-addr.arpa.");
        assert_eq!(normalize_exact("10.0.0.0/8"), vec!["10.in-addr.arpa.".to_string()]);
        assert_eq!(normalize_exact("2001:db8::/32"), vec!["8.b.d.0.1.0.0.2.ip6.arpa.".to_string()]);
        assert!(normalize_exact(&"x".repeat(64)).is_empty());
        assert!(normalize_exact("a..b").is_empty());
    }
}
