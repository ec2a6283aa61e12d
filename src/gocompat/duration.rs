//! Go's `time.ParseDuration` and `time.Duration.String()`, which Corefile options, node-cache
//! flags and log lines use. Durations are signed nanoseconds, as Go's `time.Duration` (i64).

use std::time::Duration;

use super::strconv::quote;

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

/// Go nanoseconds as a std duration; negative values become zero.
pub fn to_std(ns: i64) -> Duration {
    Duration::from_nanos(ns.max(0) as u64)
}

/// Parses a Go duration into a std duration; negative values become zero.
pub fn parse_std(s: &str) -> Result<Duration, String> {
    Ok(to_std(parse_duration(s)?))
}

/// Formats a std duration as Go's `Duration.String` does (saturating at Go's maximum).
pub fn format_std(d: Duration) -> String {
    duration_string(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// A non-negative Go duration; a negative one is `Err(None)` so callers can word the error.
pub fn parse_nonneg(s: &str) -> Result<Duration, Option<String>> {
    let ns = parse_duration(s).map_err(Some)?;
    if ns < 0 {
        return Err(None);
    }
    Ok(Duration::from_nanos(ns as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

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
    fn parses_like_go() {
        assert_eq!(parse_duration("10s"), Ok(10_000_000_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_duration("0.5s"), Ok(500_000_000));
        assert_eq!(parse_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_duration("-2ms"), Ok(-2_000_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("100us"), Ok(100_000));
        assert_eq!(parse_duration("1"), Err("time: missing unit in duration \"1\"".to_string()));
        assert_eq!(parse_duration("foo"), Err("time: invalid duration \"foo\"".to_string()));
        assert_eq!(parse_duration("1x"), Err("time: unknown unit \"x\" in duration \"1x\"".to_string()));
        assert_eq!(parse_duration(""), Err("time: invalid duration \"\"".to_string()));
        assert_eq!(parse_duration("."), Err("time: invalid duration \".\"".to_string()));
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(duration_string(60_000_000_000), "1m0s");
        assert_eq!(duration_string(5_000_000_000), "5s");
        assert_eq!(duration_string(1_500_000_000), "1.5s");
        assert_eq!(duration_string(3_600_000_000_000), "1h0m0s");
        assert_eq!(duration_string(300_000_000), "300ms");
        assert_eq!(duration_string(1_500), "1.5\u{b5}s");
        assert_eq!(duration_string(0), "0s");
        assert_eq!(duration_string(-90_000_000_000), "-1m30s");
    }

    #[test]
    fn std_helpers() {
        assert_eq!(parse_std("-1s"), Ok(Duration::ZERO));
        assert_eq!(parse_std("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_std("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_std("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_std("abc"), Err("time: invalid duration \"abc\"".to_string()));
        assert_eq!(format_std(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format_std(Duration::from_micros(1500)), "1.5ms");
    }

    #[test]
    fn go_syntax_edge_cases() {
        assert_eq!(parse_duration("1.2.3s"), Err("time: missing unit in duration \"1.2.3s\"".to_string()));
        assert_eq!(parse_duration("+1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("1.0000000009s"), Ok(1_000_000_000));
    }

    #[test]
    fn nonneg_and_more_forms() {
        assert_eq!(parse_nonneg("1h20m"), Ok(Duration::from_secs(80 * 60)));
        assert_eq!(parse_nonneg("-20m"), Err(None));
        assert_eq!(parse_nonneg("20"), Err(Some("time: missing unit in duration \"20\"".to_string())));
        assert_eq!(parse_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_duration("1.5ms"), Ok(1_500_000));
        assert_eq!(parse_duration("-2s"), Ok(-2_000_000_000));
        assert_eq!(parse_duration("no_rec"), Err("time: invalid duration \"no_rec\"".to_string()));
        assert_eq!(duration_string(25 * 3_600_000_000_000), "25h0m0s");
        assert_eq!(duration_string(3_720_000_000_000), "1h2m0s");
        assert_eq!(duration_string(-1_500_000_000), "-1.5s");
        assert_eq!(format_std(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_std(Duration::from_millis(500)), "500ms");
    }
}
