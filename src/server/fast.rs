//! The cache-hit fast path: a plain query (one question of simple labels, at most an OPT)
//! routed to a block whose `cache` may answer without running the chain is answered straight
//! from the cache's wire store, with the metrics the chain would have recorded. Anything else
//! returns None and takes the full path.

use std::net::SocketAddr;
use std::time::Instant;

use crate::observe::dns_metrics::{self, Observation};
use crate::plugin::cache::handler::Cache;

use super::reply;
use super::request::Proto;
use super::runtime::ListenerRuntime;
use super::wire::{self, bits};

/// A query simple enough for the fast path.
struct SimpleQuery<'a> {
    name: &'a str,
    qtype: u16,
    qclass: u16,
    /// (UDP size, DO, options) of the client's OPT.
    edns: Option<(u16, bool, &'a [u8])>,
}

/// Reads the question into `lower` (lower-cased, presentation form). None for anything the
/// full path must judge: compression, unusual characters, trailing data, EDNS version ≠ 0.
fn parse<'a>(buf: &'a [u8], lower: &'a mut [u8; 256]) -> Option<SimpleQuery<'a>> {
    if buf.len() < wire::HEADER_LEN {
        return None;
    }
    let flags = wire::flags(buf);
    if flags & bits::QR != 0 || wire::opcode(buf) != 0 {
        return None;
    }
    let (qd, an, ns, ar) = wire::counts(buf);
    if qd != 1 || an != 0 || ns != 0 || ar > 1 {
        return None;
    }
    let mut off = wire::HEADER_LEN;
    let mut n = 0usize;
    loop {
        let len = *buf.get(off)? as usize;
        off += 1;
        if len == 0 {
            break;
        }
        if len > 63 || n + len + 1 > 254 {
            return None;
        }
        let label = buf.get(off..off + len)?;
        for &c in label {
            let c = c.to_ascii_lowercase();
            if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_' || c == b'*') {
                return None;
            }
            lower[n] = c;
            n += 1;
        }
        lower[n] = b'.';
        n += 1;
        off += len;
    }
    if n == 0 {
        lower[0] = b'.';
        n = 1;
    }
    let fixed = buf.get(off..off + 4)?;
    let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
    off += 4;
    let edns = if ar == 1 {
        let opt = buf.get(off..off + 11)?;
        if opt[0] != 0 || u16::from_be_bytes([opt[1], opt[2]]) != wire::TYPE_OPT || opt[6] != 0 {
            return None;
        }
        let rdlen = u16::from_be_bytes([opt[9], opt[10]]) as usize;
        if off + 11 + rdlen != buf.len() {
            return None;
        }
        let size = u16::from_be_bytes([opt[3], opt[4]]);
        Some((size, opt[7] & 0x80 != 0, &buf[off + 11..]))
    } else {
        if off != buf.len() {
            return None;
        }
        None
    };
    let name = std::str::from_utf8(&lower[..n]).ok()?;
    Some(SimpleQuery { name, qtype, qclass, edns })
}

/// Answers `buf` from a block's cache if possible.
pub fn try_answer(lr: &ListenerRuntime, buf: &[u8], client: SocketAddr, proto: Proto) -> Option<Vec<u8>> {
    let started = Instant::now();
    let mut lower = [0u8; 256];
    let q = parse(buf, &mut lower)?;
    if q.qclass != 1 || q.qtype == 43 {
        return None;
    }
    let (_, entry) = lr.table.route(q.name, false)?;
    let cache = entry.block.fast_cache.as_ref()?.as_any()?.downcast_ref::<Cache>()?;
    let do_bit = q.edns.is_some_and(|e| e.1);
    let size = match (proto, q.edns) {
        (Proto::Tcp, _) => 65535,
        (Proto::Udp, Some((s, _, _))) => (s as usize).max(512),
        (Proto::Udp, None) => 512,
    };
    let mut out = cache.lookup_wire(&lr.label, buf, q.name, q.qtype, q.qclass, do_bit, started)?;
    if let Some((udp_size, dnssec_ok, options)) = q.edns {
        let (_, _, _, ar) = wire::counts(&out);
        reply::encode_client_opt(udp_size, dnssec_ok, options, &mut out);
        wire::set_arcount(&mut out, ar.saturating_add(1));
    }
    if out.len() > size {
        return None;
    }
    if let Some(rec) = &entry.recorder {
        rec.record(&Observation {
            proto,
            family: dns_metrics::family_of(&client),
            qtype: q.qtype,
            do_bit,
            request_size: buf.len(),
            response_size: out.len(),
            rcode: wire::rcode(&out),
            plugin: "cache",
            duration: started.elapsed(),
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn query(name: &[u8], ar: u16, tail: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, ar as u8];
        v.extend_from_slice(name);
        v.extend_from_slice(&[0, 1, 0, 1]);
        v.extend_from_slice(tail);
        v
    }

    #[test]
    fn simple_names_are_lowered() {
        let q = query(&[3, b'W', b'w', b'W', 3, b'C', b'o', b'm', 0], 0, &[]);
        let mut buf = [0u8; 256];
        let p = parse(&q, &mut buf).expect("simple");
        assert_eq!((p.name, p.qtype, p.qclass), ("www.com.", 1, 1));
        assert!(p.edns.is_none());
    }

    #[test]
    fn edns_parts_are_read() {
        let mut opt = Vec::new();
        wire::encode_opt(1232, 0x8000, &[], &mut opt);
        let q = query(&[1, b'a', 0], 1, &opt);
        let mut buf = [0u8; 256];
        let p = parse(&q, &mut buf).expect("simple");
        assert_eq!(p.edns.map(|e| (e.0, e.1)), Some((1232, true)));
    }

    #[test]
    fn unusual_queries_take_the_full_path() {
        let mut buf = [0u8; 256];
        assert!(parse(&query(&[1, b'.', 0], 0, &[]), &mut buf).is_none());
        assert!(parse(&query(&[0xc0, 12], 0, &[]), &mut buf).is_none());
        assert!(parse(&query(&[1, b'a', 0], 0, &[9]), &mut buf).is_none());
        let mut opt = Vec::new();
        wire::encode_opt(1232, 0x0001_0000, &[], &mut opt);
        assert!(parse(&query(&[1, b'a', 0], 1, &opt), &mut buf).is_none());
        assert!(parse(&query(&[1, b'a'], 0, &[]), &mut buf).is_none());
    }
}
