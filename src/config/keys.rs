//! Server-block keys: `[scheme://]zone[:port]` → normalised zone keys, with CoreDNS's checks
//! and reverse-CIDR expansion.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::corefile::{CorefileError, ErrorKind, Token};
use crate::dnsname;

use super::plan::{Transport, ZoneKey};

/// Normalises one server-block key. A reverse CIDR zone can yield several keys. Errors carry
/// CoreDNS's wording (without the `error inspecting server blocks: ` prefix the plan adds).
pub fn normalize_key(tok: &Token, default_port: u16) -> Result<Vec<ZoneKey>, CorefileError> {
    let err = |msg: String| CorefileError::at(ErrorKind::Plain, tok, msg);
    let (transport, rest) = split_transport(&tok.text).map_err(err)?;
    let (hosts, port) = split_host_port(rest).map_err(err)?;
    for h in &hosts {
        split_host_port(&dnsname::fqdn_escaped(h)).map_err(err)?;
    }
    let port = match port {
        Some(p) => u16::try_from(p).map_err(|_| err(format!("address {p}: invalid port")))?,
        None => match transport {
            Transport::Dns => default_port,
            Transport::Tls | Transport::Quic => 853,
            Transport::Grpc | Transport::Https | Transport::Https3 => 443,
        },
    };
    Ok(hosts.iter().map(|h| ZoneKey { transport, zone: dnsname::normalize_unicode(h), port }).collect())
}

/// Strips a `scheme://` prefix; no prefix means `dns`.
fn split_transport(s: &str) -> Result<(Transport, &str), String> {
    const SCHEMES: [(&str, Transport); 6] = [
        ("tls://", Transport::Tls),
        ("dns://", Transport::Dns),
        ("quic://", Transport::Quic),
        ("grpc://", Transport::Grpc),
        ("https3://", Transport::Https3),
        ("https://", Transport::Https),
    ];
    for (prefix, t) in SCHEMES {
        if let Some(rest) = s.strip_prefix(prefix) {
            return Ok((t, rest));
        }
    }
    if s.starts_with("unix://") {
        return Err(format!("transport unix is not supported by nodecache: {s}"));
    }
    Ok((Transport::Dns, s))
}

/// CoreDNS's `plugin.SplitHostPort`: an integer after the last colon is the port; the rest
/// must be a valid domain name; a CIDR expands into its reverse zones.
fn split_host_port(s: &str) -> Result<(Vec<String>, Option<i64>), String> {
    let mut host = s;
    let mut port = None;
    if let Some(colon) = s.rfind(':') {
        if colon == s.len() - 1 {
            return Err(format!("expecting data after last colon: {}", go_quote(s)));
        }
        if let Some(p) = go_atoi(&s[colon + 1..]) {
            port = Some(p);
            host = &s[..colon];
        }
    }
    if host.len() > 255 {
        return Err(format!("specified zone is too long: {} > 255", host.len()));
    }
    if !is_domain_name(host) {
        return Err(format!("zone is not a valid domain name: {host}"));
    }
    let Some(net) = parse_cidr(host) else {
        return Ok((vec![host.to_string()], port));
    };
    if host.starts_with(':') || (host.starts_with('0') && host.contains(':')) {
        return Err(format!("invalid CIDR {host}"));
    }
    Ok((reverse_zones(net), port))
}

/// Go's `strconv.Atoi`: optional sign, decimal digits, fits in i64.
fn go_atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok()
}

/// Go's `%q` for plain ASCII text (enough for error messages).
fn go_quote(s: &str) -> String {
    format!("{s:?}")
}

/// miekg's `dns.IsDomainName`: label lengths, total length, no empty labels, escapes.
pub fn is_domain_name(s: &str) -> bool {
    if s.is_empty() {
        return false;
    }
    let s = dnsname::fqdn_escaped(s);
    let b = s.as_bytes();
    const LENMSG: usize = 256;
    let (mut off, mut begin, mut was_dot, mut escape) = (0usize, 0usize, false, false);
    let mut i = 0usize;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                escape = !escape;
                if off + 1 > LENMSG {
                    return false;
                }
                let ddd = b.len() >= i + 4 && b[i + 1..i + 4].iter().all(u8::is_ascii_digit);
                if ddd {
                    i += 3;
                    begin += 3;
                } else {
                    i += 1;
                    begin += 1;
                }
                was_dot = false;
            }
            b'.' => {
                escape = false;
                if i == 0 && b.len() > 1 {
                    return false;
                }
                if was_dot {
                    return false;
                }
                was_dot = true;
                let label_len = i - begin;
                if label_len >= 64 {
                    return false;
                }
                off += 1 + label_len;
                if off > LENMSG {
                    return false;
                }
                begin = i + 1;
            }
            _ => {
                escape = false;
                was_dot = false;
            }
        }
        i += 1;
    }
    !escape
}

/// A parsed CIDR: the masked network address and its prefix length.
#[derive(Clone, Copy, Debug)]
enum Cidr {
    V4(u32, u8),
    V6(u128, u8),
}

/// Go's `net.ParseCIDR`: a full IP, `/`, and a decimal prefix no longer than the address.
fn parse_cidr(s: &str) -> Option<Cidr> {
    let (ip, bits) = s.split_once('/')?;
    if bits.is_empty() || !bits.bytes().all(|b| b.is_ascii_digit()) || bits.len() > 6 {
        return None;
    }
    let prefix: u32 = bits.parse().ok()?;
    if ip.contains(':') {
        let a: Ipv6Addr = ip.parse().ok()?;
        if prefix > 128 {
            return None;
        }
        let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
        Some(Cidr::V6(u128::from(a) & mask, prefix as u8))
    } else {
        let a: Ipv4Addr = ip.parse().ok()?;
        if prefix > 32 {
            return None;
        }
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
        Some(Cidr::V4(u32::from(a) & mask, prefix as u8))
    }
}

/// Splits a network at reverse-label boundaries (8 bits for v4, 4 for v6) and names the
/// reverse zone of each part, e.g. `10.0.0.0/15` → `0.10.in-addr.arpa.`, `1.10.in-addr.arpa.`.
fn reverse_zones(net: Cidr) -> Vec<String> {
    match net {
        Cidr::V4(addr, prefix) => {
            let target = prefix.div_ceil(8) * 8;
            let count = 1u32 << (target - prefix);
            let step = if target == 0 { 0 } else { 1u32 << (32 - u32::from(target)) };
            (0..count)
                .map(|i| {
                    let sub = addr.wrapping_add(i.wrapping_mul(step));
                    let octets = Ipv4Addr::from(sub).octets();
                    let mut labels: Vec<String> =
                        octets[..usize::from(target / 8)].iter().rev().map(|o| o.to_string()).collect();
                    labels.push("in-addr.arpa.".into());
                    labels.join(".")
                })
                .collect()
        }
        Cidr::V6(addr, prefix) => {
            let target = prefix.div_ceil(4) * 4;
            let count = 1u32 << (target - prefix);
            let step: u128 = if target == 0 { 0 } else { 1u128 << (128 - u32::from(target)) };
            (0..count)
                .map(|i| {
                    let sub = addr.wrapping_add(u128::from(i).wrapping_mul(step));
                    let nibbles = usize::from(target / 4);
                    let mut labels: Vec<String> =
                        (0..nibbles).rev().map(|n| format!("{:x}", (sub >> (124 - 4 * n)) & 0xf)).collect();
                    labels.push("ip6.arpa.".into());
                    labels.join(".")
                })
                .collect()
        }
    }
}

/// Formats a listen host and port as Go's `net.JoinHostPort` + `ResolveTCPAddr` print it:
/// `:53`, `127.0.0.1:53`, `[::1]:53`, `[fe80::1%eth0]:53`.
pub fn host_port_label(host: &str, port: u16) -> String {
    if host.is_empty() {
        return format!(":{port}");
    }
    let (ip, zone) = match host.split_once('%') {
        Some((ip, zone)) => (ip, Some(zone)),
        None => (host, None),
    };
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => format!("{a}:{port}"),
        Ok(IpAddr::V6(a)) => match (a.to_ipv4_mapped(), zone) {
            (Some(v4), None) => format!("{v4}:{port}"),
            (_, Some(z)) => format!("[{a}%{z}]:{port}"),
            (None, None) => format!("[{a}]:{port}"),
        },
        Err(_) if host.contains(':') => format!("[{host}]:{port}"),
        Err(_) => format!("{host}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corefile::token::simple_tokens;
    use pretty_assertions::assert_eq;

    fn norm(key: &str) -> Result<Vec<String>, String> {
        let tok = simple_tokens(key, "Corefile").remove(0);
        normalize_key(&tok, 53).map(|v| v.iter().map(ZoneKey::to_uri).collect()).map_err(|e| e.message)
    }

    fn zones(key: &str) -> Vec<String> {
        let tok = simple_tokens(key, "Corefile").remove(0);
        normalize_key(&tok, 53).map(|v| v.into_iter().map(|k| k.zone).collect()).unwrap_or_default()
    }

    #[test]
    fn case_20_schemes_and_ports() {
        assert_eq!(norm("EXAMPLE.ORG"), Ok(vec!["dns://example.org.:53".to_string()]));
        assert_eq!(norm("example.org:1053"), Ok(vec!["dns://example.org.:1053".to_string()]));
        assert_eq!(norm("tls://example.org"), Ok(vec!["tls://example.org.:853".to_string()]));
        assert_eq!(norm("quic://example.org"), Ok(vec!["quic://example.org.:853".to_string()]));
        assert_eq!(norm("grpc://example.org"), Ok(vec!["grpc://example.org.:443".to_string()]));
        assert_eq!(norm("https://example.org."), Ok(vec!["https://example.org.:443".to_string()]));
        assert_eq!(norm("https3://example.org"), Ok(vec!["https3://example.org.:443".to_string()]));
        assert_eq!(norm(".:53"), Ok(vec!["dns://.:53".to_string()]));
        assert_eq!(norm("."), Ok(vec!["dns://.:53".to_string()]));
        assert_eq!(norm("EXAMPLE.ORG.:0"), Ok(vec!["dns://example.org.:0".to_string()]));
        // A bare IP is a name, not a reverse zone.
        assert_eq!(norm("10.0.0.1"), Ok(vec!["dns://10.0.0.1.:53".to_string()]));
    }

    #[test]
    fn default_port_flag_applies_to_dns_only() {
        let tok = simple_tokens("example.org", "Corefile").remove(0);
        assert_eq!(normalize_key(&tok, 1053).map(|v| v[0].port), Ok(1053));
        let tok = simple_tokens("tls://example.org", "Corefile").remove(0);
        assert_eq!(normalize_key(&tok, 1053).map(|v| v[0].port), Ok(853));
        let tok = simple_tokens("example.org:54", "Corefile").remove(0);
        assert_eq!(normalize_key(&tok, 1053).map(|v| v[0].port), Ok(54));
    }

    #[test]
    fn case_21_reverse_cidr() {
        assert_eq!(zones("10.0.0.0/8:53"), vec!["10.in-addr.arpa."]);
        assert_eq!(zones("10.0.0.0/15"), vec!["0.10.in-addr.arpa.", "1.10.in-addr.arpa."]);
        // A /18 covers 64 /24s: 10.9.0.0 .. 10.9.63.0.
        let z18 = zones("10.9.3.0/18");
        assert_eq!(z18.len(), 64);
        assert_eq!(z18[..3], ["0.9.10.in-addr.arpa.", "1.9.10.in-addr.arpa.", "2.9.10.in-addr.arpa."]);
        assert_eq!(z18[63], "63.9.10.in-addr.arpa.");
        let z27 = zones("10.0.0.0/27");
        assert_eq!(z27.len(), 32);
        assert_eq!(z27[0], "0.0.0.10.in-addr.arpa.");
        assert_eq!(z27[31], "31.0.0.10.in-addr.arpa.");
        assert_eq!(
            zones("2001:db8::/30"),
            vec![
                "8.b.d.0.1.0.0.2.ip6.arpa.",
                "9.b.d.0.1.0.0.2.ip6.arpa.",
                "a.b.d.0.1.0.0.2.ip6.arpa.",
                "b.b.d.0.1.0.0.2.ip6.arpa.",
            ]
        );
        assert_eq!(
            zones("2001:db8::/115"),
            vec![
                "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
                "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
            ]
        );
        assert_eq!(zones("2001:db8::/112"), vec!["0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."]);
        assert_eq!(zones("dns://example.org"), vec!["example.org."]);
        assert_eq!(zones("0.0.0.0/0"), vec!["in-addr.arpa."]);
        assert_eq!(zones("10.1.2.3/32"), vec!["3.2.1.10.in-addr.arpa."]);
    }

    #[test]
    fn key_errors() {
        assert_eq!(norm("::fFFF:B:F/115"), Err("invalid CIDR ::fFFF:B:F/115".to_string()));
        assert_eq!(norm(":53"), Err("zone is not a valid domain name: ".to_string()));
        assert_eq!(norm("example.org:"), Err("expecting data after last colon: \"example.org:\"".to_string()));
        assert_eq!(norm("a..b"), Err("zone is not a valid domain name: a..b".to_string()));
        let long = format!("{}.org", "a".repeat(64));
        assert_eq!(norm(&long), Err(format!("zone is not a valid domain name: {long}")));
        let huge = "a.".repeat(128) + "b";
        assert_eq!(norm(&huge), Err("specified zone is too long: 257 > 255".to_string()));
        assert_eq!(norm("example.org:70000"), Err("address 70000: invalid port".to_string()));
    }

    #[test]
    fn listener_labels() {
        assert_eq!(host_port_label("", 53), ":53");
        assert_eq!(host_port_label("127.0.0.1", 53), "127.0.0.1:53");
        assert_eq!(host_port_label("::1", 53), "[::1]:53");
        assert_eq!(host_port_label("fe80::1%eth0", 53), "[fe80::1%eth0]:53");
        assert_eq!(host_port_label("::ffff:1.2.3.4", 53), "1.2.3.4:53");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(key in "[a-zA-Z0-9.:/\\\\-]{0,300}") {
            let tok = Token::new(key.clone(), std::sync::Arc::from("Corefile"), 1, 1);
            if let Ok(keys) = normalize_key(&tok, 53) {
                for k in keys {
                    proptest::prop_assert!(k.zone.ends_with('.'));
                    proptest::prop_assert_eq!(k.zone.to_lowercase(), k.zone.clone());
                }
            }
        }
    }
}
