//! Go's `time.ParseDuration` and `Duration.String`, which Corefile options use for durations.

use std::time::Duration;

/// Parses a Go duration (`300ms`, `1h30m`, `-1.5s`, `0`) into signed nanoseconds, with Go's
/// error wording (`time: missing unit in duration "1"`).
pub fn parse_go(s: &str) -> Result<i64, String> {
    let orig = s;
    let invalid = || format!("time: invalid duration \"{orig}\"");
    let mut rest = s;
    let mut neg = false;
    if let Some(r) = rest.strip_prefix('-') {
        neg = true;
        rest = r;
    } else if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    }
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let first = rest.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let mut v: u64 = 0;
        for b in int_part.bytes() {
            v = v.checked_mul(10).and_then(|v| v.checked_add(u64::from(b - b'0'))).ok_or_else(invalid)?;
            if v > 1 << 63 {
                return Err(invalid());
            }
        }
        rest = after;
        let mut frac: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut frac_digits = 0;
        if let Some(r) = rest.strip_prefix('.') {
            rest = r;
            let n = rest.bytes().take_while(u8::is_ascii_digit).count();
            let (f, after) = rest.split_at(n);
            for b in f.bytes() {
                // Digits past what u64 can hold only lose precision, as in Go.
                if frac < (1 << 62) / 10 {
                    frac = frac * 10 + u64::from(b - b'0');
                    scale *= 10.0;
                }
            }
            frac_digits = n;
            rest = after;
        }
        if int_len == 0 && frac_digits == 0 {
            return Err(invalid());
        }
        let unit_len = rest.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(rest.len());
        let (unit, after) = rest.split_at(unit_len);
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration \"{orig}\""));
        }
        let mult: u64 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(format!("time: unknown unit \"{unit}\" in duration \"{orig}\"")),
        };
        rest = after;
        if v > (1 << 63) / mult {
            return Err(invalid());
        }
        v *= mult;
        if frac > 0 {
            v += (frac as f64 * (mult as f64 / scale)) as u64;
            if v > 1 << 63 {
                return Err(invalid());
            }
        }
        total = total.checked_add(v).filter(|t| *t <= 1 << 63).ok_or_else(invalid)?;
    }
    if neg {
        Ok((total as i128).wrapping_neg() as i64)
    } else if total > i64::MAX as u64 {
        Err(invalid())
    } else {
        Ok(total as i64)
    }
}

/// Parses a Go duration that must not be negative.
pub fn parse_std(s: &str) -> Result<Duration, String> {
    let n = parse_go(s)?;
    Ok(Duration::from_nanos(n.max(0) as u64))
}

/// Formats nanoseconds as Go's `Duration.String` does: `1m0s`, `1.5s`, `300ms`, `0s`.
pub fn format_go(nanos: i64) -> String {
    let neg = nanos < 0;
    let u = nanos.unsigned_abs();
    let mut out = String::new();
    if u == 0 {
        return "0s".into();
    }
    if u < 1_000_000_000 {
        let (prec, unit) = if u < 1_000 {
            (0, "ns")
        } else if u < 1_000_000 {
            (3, "\u{b5}s")
        } else {
            (6, "ms")
        };
        out.push_str(&with_frac(u, prec));
        out.push_str(unit);
    } else {
        let secs = u / 1_000_000_000;
        let sec_text = with_frac(u % 60_000_000_000, 9);
        let mins = secs / 60;
        if mins > 0 {
            let hours = mins / 60;
            if hours > 0 {
                out.push_str(&format!("{hours}h"));
            }
            out.push_str(&format!("{}m", mins % 60));
        }
        out.push_str(&sec_text);
        out.push('s');
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

/// Formats a std duration the Go way.
pub fn format_std(d: Duration) -> String {
    format_go(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn with_frac(v: u64, prec: u32) -> String {
    let div = 10u64.pow(prec);
    let int = v / div;
    let frac = v % div;
    if frac == 0 {
        return int.to_string();
    }
    let digits = format!("{:0width$}", frac, width = prec as usize);
    format!("{int}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn parses_like_go() {
        assert_eq!(parse_go("10s"), Ok(10_000_000_000));
        assert_eq!(parse_go("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_go("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_go("0.5s"), Ok(500_000_000));
        assert_eq!(parse_go(".5s"), Ok(500_000_000));
        assert_eq!(parse_go("-2ms"), Ok(-2_000_000));
        assert_eq!(parse_go("0"), Ok(0));
        assert_eq!(parse_go("100us"), Ok(100_000));
        assert_eq!(parse_go("1"), Err("time: missing unit in duration \"1\"".to_string()));
        assert_eq!(parse_go("foo"), Err("time: invalid duration \"foo\"".to_string()));
        assert_eq!(parse_go("1x"), Err("time: unknown unit \"x\" in duration \"1x\"".to_string()));
        assert_eq!(parse_go(""), Err("time: invalid duration \"\"".to_string()));
        assert_eq!(parse_go("."), Err("time: invalid duration \".\"".to_string()));
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_go(60_000_000_000), "1m0s");
        assert_eq!(format_go(5_000_000_000), "5s");
        assert_eq!(format_go(1_500_000_000), "1.5s");
        assert_eq!(format_go(3_600_000_000_000), "1h0m0s");
        assert_eq!(format_go(300_000_000), "300ms");
        assert_eq!(format_go(1_500), "1.5\u{b5}s");
        assert_eq!(format_go(0), "0s");
        assert_eq!(format_go(-90_000_000_000), "-1m30s");
    }
}
