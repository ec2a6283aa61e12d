//! Small re-implementations of the Go standard-library parsers node-cache relies on, so that
//! inputs are accepted or rejected exactly as the Go binary does: `net.ParseIP`,
//! `net.SplitHostPort`, `strconv.Atoi`/`ParseUint`/`ParseBool`, `time.ParseDuration`,
//! `os.Expand` and `%q` quoting.

use std::net::{IpAddr, Ipv4Addr};

pub use crate::gocompat::duration::{duration_string, parse_duration};
pub use crate::gocompat::net::{join_host_port, split_host_port};
pub use crate::gocompat::strconv::{atoi, parse_bool, parse_uint, quote};

/// `net.ParseIP`: dotted IPv4 (no leading zeros) or IPv6 (no zone). `None` when invalid.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>().ok()
}

/// `ip.To4()`: IPv4 addresses and IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) as IPv4.
pub fn to4(ip: &IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(v4) => Some(*v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    }
}

/// `utilnet.IsIPv6`: true only for IPv6 addresses that are not IPv4-mapped.
pub fn is_ipv6(ip: &IpAddr) -> bool {
    to4(ip).is_none()
}

/// `net.IP.String()`: IPv4-mapped addresses print in dotted form, everything else canonically.
pub fn ip_string(ip: &IpAddr) -> String {
    match to4(ip) {
        Some(v4) => v4.to_string(),
        None => ip.to_string(),
    }
}

/// `net.IP.String()` of a possibly missing IP (`<nil>` when absent).
pub fn opt_ip_string(ip: Option<&IpAddr>) -> String {
    ip.map_or_else(|| "<nil>".to_string(), ip_string)
}

/// `os.Expand(s, os.Getenv)` with a custom lookup: `$NAME`, `${NAME}`, and Go's special
/// one-character names.
pub fn expand_env(s: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    let mut start = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            out.push_str(&s[start..i]);
            let (name, w) = shell_name(&s[i + 1..]);
            if name.is_empty() && w > 0 {
                // Invalid syntax: Go eats the characters.
            } else if name.is_empty() {
                out.push('$');
            } else {
                out.push_str(&lookup(name).unwrap_or_default());
            }
            i += 1 + w;
            start = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&s[start..]);
    out
}

fn is_shell_special(c: u8) -> bool {
    matches!(c, b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-') || c.is_ascii_digit()
}

fn is_alnum(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphanumeric()
}

fn shell_name(s: &str) -> (&str, usize) {
    let b = s.as_bytes();
    if b[0] == b'{' {
        if b.len() > 2 && is_shell_special(b[1]) && b[2] == b'}' {
            return (&s[1..2], 3);
        }
        for i in 1..b.len() {
            if b[i] == b'}' {
                if i == 1 {
                    return ("", 2);
                }
                return (&s[1..i], i + 1);
            }
        }
        return ("", 1);
    }
    if is_shell_special(b[0]) {
        return (&s[0..1], 1);
    }
    let mut i = 0;
    while i < b.len() && is_alnum(b[i]) {
        i += 1;
    }
    (&s[..i], i)
}

/// Go's `%v` of a `[]string`: `[a b c]`.
pub fn fmt_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn expand_env_like_go() {
        let env = |k: &str| match k {
            "KUBE_DNS_SERVICE_HOST" => Some("10.0.0.10".to_string()),
            "A" => Some("x".to_string()),
            _ => None,
        };
        assert_eq!(expand_env("$KUBE_DNS_SERVICE_HOST", env), "10.0.0.10");
        assert_eq!(expand_env("$A.B", env), "x.B");
        assert_eq!(expand_env("${A}b", env), "xb");
        assert_eq!(expand_env("$1ABC", env), "ABC");
        assert_eq!(expand_env("$MISSING", env), "");
        assert_eq!(expand_env("a$", env), "a$");
    }

    #[test]
    fn ip_helpers() {
        assert_eq!(parse_ip("010.1.2.3"), None);
        assert_eq!(parse_ip("fe80::1%eth0"), None);
        let mapped = parse_ip("::ffff:10.0.0.1").unwrap();
        assert!(!is_ipv6(&mapped));
        assert_eq!(ip_string(&mapped), "10.0.0.1");
        assert_eq!(opt_ip_string(None), "<nil>");
        assert_eq!(join_host_port("::1", "53"), "[::1]:53");
        assert_eq!(quote("a\"b\n"), "\"a\\\"b\\n\"");
    }
}
