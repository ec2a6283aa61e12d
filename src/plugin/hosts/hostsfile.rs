//! Hosts-file parsing into lookup maps (names by family, wildcards, reverse names).

use std::collections::HashMap;
use std::net::IpAddr;

use crate::plugin::template::common::{normalize_zone, zone_match};

/// Lookup tables built from hosts-file text.
#[derive(Debug, Default, Clone)]
pub struct HostsMap {
    name4: HashMap<String, Vec<IpAddr>>,
    name6: HashMap<String, Vec<IpAddr>>,
    wild4: HashMap<String, Vec<IpAddr>>,
    wild6: HashMap<String, Vec<IpAddr>>,
    addr: HashMap<IpAddr, Vec<String>>,
}

/// Parses an address field, dropping a `%zone` suffix; IPv4-mapped IPv6 counts as IPv4.
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = text.split('%').next().unwrap_or(text);
    text.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

impl HostsMap {
    /// Parses hosts-file `text`, keeping names inside `origins`; PTR data only when `reverse`.
    pub fn parse(text: &str, origins: &[String], reverse: bool) -> HostsMap {
        let mut m = HostsMap::default();
        for raw in text.lines() {
            let line = raw.split('#').next().unwrap_or("");
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 2 {
                continue;
            }
            let Some(addr) = parse_ip(fields[0]) else { continue };
            for f in &fields[1..] {
                let name = normalize_zone(f);
                if zone_match(origins, &name).is_none() {
                    continue;
                }
                let v4 = addr.is_ipv4();
                if name.starts_with("*.") {
                    let map = if v4 { &mut m.wild4 } else { &mut m.wild6 };
                    map.entry(name).or_default().push(addr);
                    continue;
                }
                let map = if v4 { &mut m.name4 } else { &mut m.name6 };
                map.entry(name.clone()).or_default().push(addr);
                if reverse {
                    m.addr.entry(addr).or_default().push(name);
                }
            }
        }
        m
    }

    /// Number of entries (CoreDNS's `Map.Len`, for `coredns_hosts_entries`).
    pub fn len(&self) -> usize {
        [&self.name4, &self.name6, &self.wild4, &self.wild6]
            .iter()
            .map(|m| m.values().map(Vec::len).sum::<usize>())
            .sum::<usize>()
            + self.addr.values().map(Vec::len).sum::<usize>()
    }

    /// True when the map holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Addresses of `host` (lower case FQDN) for one family, exact names before wildcards.
    pub fn lookup(&self, host: &str, v4: bool) -> Vec<IpAddr> {
        let (m, w) = if v4 { (&self.name4, &self.wild4) } else { (&self.name6, &self.wild6) };
        if let Some(ips) = m.get(host) {
            return ips.clone();
        }
        if let Some(pattern) = wildcard_of(host) {
            if let Some(ips) = w.get(&pattern) {
                return ips.clone();
            }
        }
        Vec::new()
    }

    /// Names registered for `addr`.
    pub fn names(&self, addr: &IpAddr) -> Vec<String> {
        self.addr.get(addr).cloned().unwrap_or_default()
    }
}

/// `*.` + the name without its first label, or None for a single-label name.
fn wildcard_of(host: &str) -> Option<String> {
    let i = host.find('.')?;
    let rest = &host[i + 1..];
    if rest.is_empty() {
        return None;
    }
    Some(format!("*.{rest}"))
}

/// The address a reverse name (`in-addr.arpa.` / `ip6.arpa.`) stands for.
pub fn address_from_reverse(name: &str) -> Option<IpAddr> {
    let lower = name.to_ascii_lowercase();
    if let Some(rest) = lower.strip_suffix(".in-addr.arpa.") {
        let mut labels: Vec<&str> = rest.split('.').collect();
        labels.reverse();
        return labels.join(".").parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4);
    }
    if let Some(rest) = lower.strip_suffix(".ip6.arpa.") {
        let labels: Vec<&str> = rest.split('.').collect();
        if labels.len() != 32 || labels.iter().any(|l| l.len() != 1) {
            return None;
        }
        let nibbles: String = labels.iter().rev().copied().collect();
        let mut text = String::new();
        for (i, c) in nibbles.chars().enumerate() {
            if i > 0 && i % 4 == 0 {
                text.push(':');
            }
            text.push(c);
        }
        return text.parse::<std::net::Ipv6Addr>().ok().map(|ip| IpAddr::V6(ip).to_canonical());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn parse_and_lookup() {
        let text = "127.0.0.1 localhost Localhost.Domain # c\n::1 localhost\n10.0.0.1 *.wild.example\n# x\nbad line\n";
        let m = HostsMap::parse(text, &[".".to_string()], true);
        assert_eq!(m.lookup("localhost.", true), vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(m.lookup("localhost.domain.", true).len(), 1);
        assert_eq!(m.lookup("localhost.", false), vec!["::1".parse::<IpAddr>().unwrap()]);
        assert_eq!(m.lookup("a.wild.example.", true).len(), 1);
        assert_eq!(m.names(&"127.0.0.1".parse().unwrap()), vec!["localhost.", "localhost.domain."]);
        assert_eq!(m.len(), 7);
    }

    #[test]
    fn reverse_names() {
        assert_eq!(address_from_reverse("1.0.0.127.in-addr.arpa."), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(
            address_from_reverse("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa."),
            Some("::1".parse().unwrap())
        );
        assert_eq!(address_from_reverse("example.org."), None);
    }
}
