//! A plain HTTP/1.1 GET over std TCP, and Prometheus text-format sums.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Status and body of one GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// Body (chunked encoding removed).
    pub body: String,
}

/// GETs `url` (`http://host:port/path`), waiting up to `wait` for the whole reply.
pub fn get(url: &str, wait: Duration) -> Result<HttpReply, String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("only http:// URLs: {url}"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = hostport
        .to_socket_addrs()
        .map_err(|e| format!("{hostport}: {e}"))?
        .next()
        .ok_or_else(|| format!("{hostport}: no address"))?;
    let mut conn = TcpStream::connect_timeout(&addr, wait).map_err(|e| format!("connect {hostport}: {e}"))?;
    conn.set_read_timeout(Some(wait)).map_err(|e| e.to_string())?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {hostport}\r\nUser-Agent: conformance\r\nAccept: */*\r\nConnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Result<HttpReply, String> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| "incomplete HTTP reply".to_string())?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked { dechunk(body) } else { body.to_vec() };
    Ok(HttpReply { status, body: String::from_utf8_lossy(&body).to_string() })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]).to_string();
        let size_text = size_text.split(';').next().unwrap_or("").trim().to_string();
        let Ok(size) = usize::from_str_radix(&size_text, 16) else { break };
        data = &data[eol + 2..];
        if size == 0 || size > data.len() {
            out.extend_from_slice(&data[..size.min(data.len())]);
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or(&[]);
    }
    out
}

/// The sum over all label sets of the samples named exactly `name`; None when no sample has that name.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut sum = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        if &line[..end] != name {
            continue;
        }
        let after = match line[end..].strip_prefix('{') {
            Some(labels) => match labels.rfind('}') {
                Some(close) => &labels[close + 1..],
                None => continue,
            },
            None => &line[end..],
        };
        let Some(value) = after.split_whitespace().next() else { continue };
        let v = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => match v.parse::<f64>() {
                Ok(v) => v,
                Err(_) => continue,
            },
        };
        sum = Some(sum.unwrap_or(0.0) + v);
    }
    sum
}

/// Checks `value` against `>=N`, `<=N`, `==N`, `>N`, `<N` or `N` (equality).
pub fn compare(value: f64, spec: &str) -> Result<bool, String> {
    let spec = spec.trim();
    let (op, num) = ["==", ">=", "<=", ">", "<", "="]
        .iter()
        .find_map(|op| spec.strip_prefix(op).map(|rest| (*op, rest)))
        .unwrap_or(("==", spec));
    let n: f64 = num.trim().parse().map_err(|_| format!("bad metric comparison {spec:?}"))?;
    Ok(match op {
        ">=" => value >= n,
        "<=" => value <= n,
        ">" => value > n,
        "<" => value < n,
        _ => (value - n).abs() < 1e-9,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn sums_over_label_sets_and_compares() {
        let text = "# HELP x y\n# TYPE coredns_cache_hits_total counter\n\
coredns_cache_hits_total{server=\"dns://:53\",type=\"success\"} 2\n\
coredns_cache_hits_total{server=\"dns://:53\",type=\"denial\"} 3\n\
coredns_cache_hits_total_other 100\ncoredns_panics_total 0\nweird{a=\"}\"} 1\n";
        assert_eq!(metric_sum(text, "coredns_cache_hits_total"), Some(5.0));
        assert_eq!(metric_sum(text, "coredns_panics_total"), Some(0.0));
        assert_eq!(metric_sum(text, "absent"), None);
        assert_eq!(metric_sum(text, "weird"), Some(1.0));
        assert!(compare(5.0, ">=5").unwrap());
        assert!(!compare(5.0, ">5").unwrap());
        assert!(compare(5.0, "5").unwrap());
        assert!(compare(5.0, "==5").unwrap());
        assert!(compare(4.0, "<5").unwrap());
        assert!(!compare(6.0, "<=5").unwrap());
        assert!(compare(1.0, "x").is_err());
    }

    #[test]
    fn chunked_bodies_are_joined() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nOK\r\n3\r\n!!!\r\n0\r\n\r\n";
        assert_eq!(parse_response(raw).unwrap(), HttpReply { status: 200, body: "OK!!!".into() });
    }
}
