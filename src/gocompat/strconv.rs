//! Go's `strconv` integer and boolean parsers and `%q` quoting, with Go's error wording.

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

/// `strconv.ParseUint(s, 10, 32)`.
pub fn parse_uint32(s: &str) -> Result<u32, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseUint: parsing {}: invalid syntax", quote(s)));
    }
    s.parse::<u32>().map_err(|_| format!("strconv.ParseUint: parsing {}: value out of range", quote(s)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

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
    fn parse_uint32_like_go() {
        assert_eq!(parse_uint32("53"), Ok(53));
        assert_eq!(parse_uint32("-1"), Err("strconv.ParseUint: parsing \"-1\": invalid syntax".to_string()));
        assert_eq!(
            parse_uint32("4294967296"),
            Err("strconv.ParseUint: parsing \"4294967296\": value out of range".to_string())
        );
    }

    #[test]
    fn quote_like_go() {
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quote("x\ny\u{1}"), "\"x\\ny\\x01\"");
    }
}
