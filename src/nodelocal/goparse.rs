//! Small re-implementations of the Go standard-library parsers node-cache relies on, so that
//! inputs are accepted or rejected exactly as the Go binary does: `net.ParseIP`,
//! `net.SplitHostPort`, `strconv.Atoi`/`ParseUint`/`ParseBool`, `time.ParseDuration`,
//! `os.Expand` and `%q` quoting.

use std::net::{IpAddr, Ipv4Addr};

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

/// `net.SplitHostPort`; the error text matches Go's `*net.AddrError`.
pub fn split_host_port(hostport: &str) -> Result<(String, String), String> {
    let err = |why: &str| Err(format!("address {hostport}: {why}"));
    let bytes = hostport.as_bytes();
    let Some(i) = hostport.rfind(':') else {
        return err("missing port in address");
    };
    let (host, j, k);
    if bytes.first() == Some(&b'[') {
        let Some(end) = hostport.find(']') else {
            return err("missing ']' in address");
        };
        if end + 1 == hostport.len() {
            return err("missing port in address");
        } else if end + 1 != i {
            if bytes.get(end + 1) == Some(&b':') {
                return err("too many colons in address");
            }
            return err("missing port in address");
        }
        host = &hostport[1..end];
        j = 1;
        k = end + 1;
    } else {
        host = &hostport[..i];
        if host.contains(':') {
            return err("too many colons in address");
        }
        j = 0;
        k = 0;
    }
    if hostport[j..].contains('[') {
        return err("unexpected '[' in address");
    }
    if hostport[k..].contains(']') {
        return err("unexpected ']' in address");
    }
    Ok((host.to_string(), hostport[i + 1..].to_string()))
}

/// `net.JoinHostPort`: brackets hosts that contain a colon.
pub fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `strconv.Atoi` (64-bit): optional sign, decimal digits, no overflow.
pub fn atoi(s: &str) -> Result<i64, String> {
    let fail = || Err(format!("strconv.Atoi: parsing {}: invalid syntax", quote(s)));
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return fail();
    }
    let mut v: i128 = 0;
    for b in digits.bytes() {
        v = v * 10 + i128::from(b - b'0');
        if v > i128::from(i64::MAX) + 1 {
            return Err(format!("strconv.Atoi: parsing {}: value out of range", quote(s)));
        }
    }
    let v = if neg { -v } else { v };
    i64::try_from(v).map_err(|_| format!("strconv.Atoi: parsing {}: value out of range", quote(s)))
}

/// `strconv.ParseUint(s, 10, bits)`: decimal digits only, no sign, within `bits` bits.
pub fn parse_uint(s: &str, bits: u32) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v = s.parse::<u128>().ok()?;
    let max = if bits >= 64 { u128::from(u64::MAX) } else { (1u128 << bits) - 1 };
    if v > max {
        return None;
    }
    u64::try_from(v).ok()
}

/// `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

const TWO63: u64 = 1 << 63;

/// `time.ParseDuration`, returning nanoseconds as Go's `time.Duration` (i64).
pub fn parse_duration(orig: &str) -> Result<i64, String> {
    let invalid = || Err(format!("time: invalid duration {}", quote(orig)));
    let mut s = orig;
    let mut neg = false;
    if let Some(c) = s.chars().next() {
        if c == '-' || c == '+' {
            neg = c == '-';
            s = &s[1..];
        }
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return invalid();
    }
    let mut d: u64 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return invalid();
        }
        // Integer part.
        let mut i = 0;
        let mut v: u64 = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            if v > TWO63 / 10 {
                return invalid();
            }
            v = v * 10 + u64::from(b[i] - b'0');
            if v > TWO63 {
                return invalid();
            }
            i += 1;
        }
        let pre = i > 0;
        s = &s[i..];
        // Fraction part.
        let (mut f, mut scale, mut post) = (0u64, 1f64, false);
        if s.starts_with('.') {
            s = &s[1..];
            let b = s.as_bytes();
            let mut i = 0;
            let mut overflow = false;
            while i < b.len() && b[i].is_ascii_digit() {
                if !overflow {
                    if f > (TWO63 - 1) / 10 {
                        overflow = true;
                    } else {
                        let y = f * 10 + u64::from(b[i] - b'0');
                        if y > TWO63 {
                            overflow = true;
                        } else {
                            f = y;
                            scale *= 10.0;
                        }
                    }
                }
                i += 1;
            }
            post = i > 0;
            s = &s[i..];
        }
        if !pre && !post {
            return invalid();
        }
        // Unit: everything up to the next '.' or digit.
        let end = s.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(s.len());
        if end == 0 {
            return Err(format!("time: missing unit in duration {}", quote(orig)));
        }
        let u = &s[..end];
        s = &s[end..];
        let unit: u64 = match u {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(format!("time: unknown unit {} in duration {}", quote(u), quote(orig))),
        };
        if v > TWO63 / unit {
            return invalid();
        }
        v *= unit;
        if f > 0 {
            v += (f as f64 * (unit as f64 / scale)) as u64;
            if v > TWO63 {
                return invalid();
            }
        }
        d += v;
        if d > TWO63 {
            return invalid();
        }
    }
    if neg {
        return Ok((d as i64).wrapping_neg());
    }
    if d > TWO63 - 1 {
        return invalid();
    }
    Ok(d as i64)
}

/// Go's `time.Duration.String()` (e.g. `60ns`, `1m0s`, `1.5s`).
pub fn duration_string(d: i64) -> String {
    if d == 0 {
        return "0s".to_string();
    }
    let neg = d < 0;
    let u = d.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        // Sub-second: ns, µs or ms with a fraction.
        let (unit, div) = if u < 1_000 {
            ("ns", 1u64)
        } else if u < 1_000_000 {
            ("\u{b5}s", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&fmt_frac(u, div));
        out.push_str(unit);
    } else {
        let secs_total = u / 1_000_000_000;
        let frac = u % 1_000_000_000;
        let h = secs_total / 3600;
        let m = (secs_total / 60) % 60;
        let s = secs_total % 60;
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if h > 0 || m > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&fmt_frac(s * 1_000_000_000 + frac, 1_000_000_000));
        out.push('s');
    }
    if neg {
        format!("-{out}")
    } else {
        out
    }
}

fn fmt_frac(v: u64, div: u64) -> String {
    let int = v / div;
    let mut frac = v % div;
    if frac == 0 {
        return int.to_string();
    }
    let mut width = div.to_string().len() - 1;
    while frac.is_multiple_of(10) {
        frac /= 10;
        width -= 1;
    }
    format!("{int}.{frac:0width$}")
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

/// Go's `%q` / `strconv.Quote`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
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
    fn split_host_port_matches_go() {
        assert_eq!(split_host_port("1.2.3.4:53"), Ok(("1.2.3.4".into(), "53".into())));
        assert_eq!(split_host_port("[::1]:53"), Ok(("::1".into(), "53".into())));
        assert_eq!(split_host_port("1.2.3.4:"), Ok(("1.2.3.4".into(), "".into())));
        assert_eq!(split_host_port("1.2.3.4"), Err("address 1.2.3.4: missing port in address".into()));
        assert_eq!(split_host_port("::1"), Err("address ::1: too many colons in address".into()));
        assert_eq!(split_host_port("[::1]"), Err("address [::1]: missing port in address".into()));
        assert_eq!(split_host_port("[::1]x:5"), Err("address [::1]x:5: missing port in address".into()));
        assert_eq!(split_host_port("a]:5"), Err("address a]:5: unexpected ']' in address".into()));
    }

    #[test]
    fn atoi_and_parse_uint() {
        assert_eq!(atoi("53"), Ok(53));
        assert_eq!(atoi("+53"), Ok(53));
        assert_eq!(atoi("-1"), Ok(-1));
        assert!(atoi("").is_err());
        assert!(atoi("5x").is_err());
        assert!(atoi("99999999999999999999").is_err());
        assert_eq!(atoi("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_uint("65535", 16), Some(65535));
        assert_eq!(parse_uint("65536", 16), None);
        assert_eq!(parse_uint("+1", 16), None);
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("60ns"), Ok(60));
        assert_eq!(parse_duration("1m"), Ok(60_000_000_000));
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_duration("1h2m3s"), Ok(3_723_000_000_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("-0"), Ok(0));
        assert_eq!(parse_duration("-5ns"), Ok(-5));
        assert_eq!(parse_duration(".5us"), Ok(500));
        assert_eq!(parse_duration("1\u{b5}s"), Ok(1000));
        assert_eq!(parse_duration("60"), Err("time: missing unit in duration \"60\"".into()));
        assert_eq!(parse_duration(""), Err("time: invalid duration \"\"".into()));
        assert_eq!(parse_duration("1x"), Err("time: unknown unit \"x\" in duration \"1x\"".into()));
        assert!(parse_duration(".s").is_err());
        assert!(parse_duration("9223372036854775808ns").is_err());
        assert_eq!(parse_duration("9223372036854775807ns"), Ok(i64::MAX));
        assert_eq!(parse_duration("-9223372036854775808ns"), Ok(i64::MIN));
        assert!(parse_duration("3000000h").is_err());
    }

    #[test]
    fn duration_strings_like_go() {
        assert_eq!(duration_string(60), "60ns");
        assert_eq!(duration_string(0), "0s");
        assert_eq!(duration_string(1_500), "1.5\u{b5}s");
        assert_eq!(duration_string(60_000_000_000), "1m0s");
        assert_eq!(duration_string(3_723_500_000_000), "1h2m3.5s");
        assert_eq!(duration_string(-2_000_000), "-2ms");
    }

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
