//! The fast path: a plain query (one question of simple labels, at most an OPT) routed to a
//! block whose `cache` may answer without running the chain is answered straight from the
//! cache's wire store, with the metrics the chain would have recorded. A UDP miss in a block
//! whose chain is just `cache` and `forward` goes to the upstream over the forward plugin's
//! direct path and is completed when the reply arrives. Anything else takes the full path.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Instant;

use crate::observe::dns_metrics::{self, Observation};
use crate::plugin::cache::handler::{Cache, FastLookup, FastQuery};
use crate::plugin::forward::direct::{Completion, Datagram, DirectOutcome};
use crate::plugin::forward::handler::{DirectTarget, ForwardChain};

use super::handle::handle;
use super::reply;
use super::request::{ClientEdns, Proto, Request};
use super::runtime::{ListenerRuntime, ZoneEntry};
use super::wire::{self, bits};

/// A query simple enough for the fast path.
struct SimpleQuery<'a> {
    name: &'a str,
    qtype: u16,
    qclass: u16,
    /// (UDP size, DO and Z bits of the TTL, options) of the client's OPT.
    edns: Option<(u16, u16, &'a [u8])>,
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
        // Options miekg cannot unpack make the query a FORMERR: the full path answers it.
        if !super::query::options_valid(&buf[off + 11..]) {
            return None;
        }
        let size = u16::from_be_bytes([opt[3], opt[4]]);
        Some((size, u16::from_be_bytes([opt[7], opt[8]]) & 0xff00, &buf[off + 11..]))
    } else {
        if off != buf.len() {
            return None;
        }
        None
    };
    let name = std::str::from_utf8(&lower[..n]).ok()?;
    Some(SimpleQuery { name, qtype, qclass, edns })
}

/// Where a cache miss taken on the fast path sends its reply, and how it falls back to the
/// chain: the UDP socket the query came in on, the listener's address and the runtime.
#[derive(Clone)]
pub struct UdpReturn {
    /// The listener socket (replies are sent from it).
    pub sock: Arc<UdpSocket>,
    /// Its local address.
    pub local: SocketAddr,
    /// The runtime that runs the chain when the fast path gives up.
    pub rt: tokio::runtime::Handle,
}

/// What the fast path did with a query.
pub enum Fast {
    /// Answered from the cache: send these bytes.
    Reply(Vec<u8>),
    /// A cache miss sent upstream directly; the reply goes out when it arrives.
    Forwarded,
    /// Not handled: run the chain.
    Slow,
}

/// Answers `buf` from a block's cache if possible.
pub fn try_answer(lr: &ListenerRuntime, buf: &[u8], client: SocketAddr, proto: Proto) -> Option<Vec<u8>> {
    match try_serve(lr, buf, client, proto, None) {
        Fast::Reply(r) => Some(r),
        Fast::Forwarded | Fast::Slow => None,
    }
}

/// The fast path: a cache hit is answered; with `udp`, a miss in a block whose chain is only
/// `cache` then `forward` is sent to the upstream directly (see [`forward_miss`]).
pub fn try_serve(
    lr: &ListenerRuntime,
    buf: &[u8],
    client: SocketAddr,
    proto: Proto,
    udp: Option<(&Arc<ListenerRuntime>, &UdpReturn)>,
) -> Fast {
    let started = Instant::now();
    let mut lower = [0u8; 256];
    let Some(q) = parse(buf, &mut lower) else { return Fast::Slow };
    if q.qclass != 1 || q.qtype == 43 {
        return Fast::Slow;
    }
    let Some((_, entry)) = lr.table.route(q.name, false) else { return Fast::Slow };
    let Some(cache) = entry.block.fast_cache.as_ref().and_then(|c| c.as_any()?.downcast_ref::<Cache>()) else {
        return Fast::Slow;
    };
    let do_bit = q.edns.is_some_and(|e| e.1 & 0x8000 != 0);
    let size = match (proto, q.edns) {
        (Proto::Tcp, _) => 65535,
        (Proto::Udp, Some((s, _, _))) => (s as usize).max(512),
        (Proto::Udp, None) => 512,
    };
    let fq = FastQuery {
        server: &lr.label,
        query: buf,
        qname_lower: q.name,
        qtype: q.qtype,
        qclass: q.qclass,
        do_bit,
        now: started,
    };
    let mut out = match cache.lookup_fast(&fq) {
        FastLookup::Hit(out) => out,
        FastLookup::Pass => return Fast::Slow,
        FastLookup::Absent => {
            // HINFO is the `loop` plugin's probe type: it must go through the chain.
            let target = match (udp, &entry.block.fast_forward) {
                (Some(_), Some(fwd)) if q.qtype != 13 => {
                    fwd.as_any().and_then(|a| a.downcast_ref::<ForwardChain>()).and_then(|f| f.direct_target(q.name))
                }
                _ => None,
            };
            let (Some(direct), Some((lr, ret))) = (target, udp) else { return Fast::Slow };
            cache.count_fast_miss(&lr.label);
            return forward_miss(direct, lr, entry, ret, buf, client, size, started);
        }
    };
    let response_size = out.len();
    if let Some((udp_size, flags, options)) = q.edns {
        let (_, _, _, ar) = wire::counts(&out);
        reply::encode_client_opt(udp_size, flags, options, &mut out);
        wire::set_arcount(&mut out, ar.saturating_add(1));
    }
    if out.len() > size {
        return Fast::Slow;
    }
    if let Some(rec) = &entry.recorder {
        rec.record(&Observation {
            proto,
            family: dns_metrics::family_of(&client),
            qtype: q.qtype,
            do_bit,
            request_size: buf.len(),
            response_size,
            rcode: wire::rcode(&out),
            plugin: "cache",
            duration: started.elapsed(),
        });
    }
    Fast::Reply(out)
}

/// Sends a cache miss to the upstream `forward` would try first, as the cache would (AD set).
/// When the reply arrives (on the upstream's responder thread) it is stored and processed by
/// the cache, scrubbed, counted and sent to the client, as the chain would have done. If the
/// direct path fails, the query runs through the chain instead. The query's `max_concurrent`
/// place is held until it ends, and given back before a hand-over (the chain counts anew).
#[allow(clippy::too_many_arguments)]
fn forward_miss(
    direct: DirectTarget<'_>,
    lr: &Arc<ListenerRuntime>,
    entry: &Arc<ZoneEntry>,
    ret: &UdpReturn,
    buf: &[u8],
    client: SocketAddr,
    size: usize,
    started: Instant,
) -> Fast {
    let mut upstream_query = buf.to_vec();
    let flags = wire::flags(&upstream_query);
    wire::set_flags(&mut upstream_query, flags | bits::AD);
    let query = buf.to_vec();
    let (lr, entry, ret) = (lr.clone(), entry.clone(), ret.clone());
    let DirectTarget { path, slot } = direct;
    let done: Completion = Box::new(move |outcome| match outcome {
        DirectOutcome::Reply(reply) => {
            let out = answer_miss(&lr, &entry, &ret, query, client, started, reply);
            drop(slot);
            out
        }
        DirectOutcome::Failed => {
            drop(slot);
            run_chain(lr, ret, query, client);
            None
        }
    });
    if let Err(done) = path.send(upstream_query, size, done) {
        let _ = done(DirectOutcome::Failed);
    }
    Fast::Forwarded
}

/// Finishes a directly forwarded miss with the upstream's `reply` (client ID already set);
/// returns the client's reply.
fn answer_miss(
    lr: &ListenerRuntime,
    entry: &ZoneEntry,
    ret: &UdpReturn,
    query: Vec<u8>,
    client: SocketAddr,
    started: Instant,
    reply: Vec<u8>,
) -> Option<Datagram> {
    let mut lower = [0u8; 256];
    let q = parse(&query, &mut lower)?;
    let cache = entry.block.fast_cache.as_ref().and_then(|c| c.as_any()?.downcast_ref::<Cache>())?;
    let do_bit = q.edns.is_some_and(|e| e.1 & 0x8000 != 0);
    let fq = FastQuery {
        server: &lr.label,
        query: &query,
        qname_lower: q.name,
        qtype: q.qtype,
        qclass: q.qclass,
        do_bit,
        now: started,
    };
    let processed = cache.store_miss_reply(&fq, reply);
    let (rcode, response_size) = (wire::rcode(&processed), processed.len());
    // Without OPT a reply that fits needs nothing from the scrub (its ID is the client's).
    let out = if q.edns.is_none() && processed.len() <= 512 {
        processed
    } else {
        reply::scrub_wire(&scrub_request(&query, &q, client, ret.local, lr, entry, started), processed)
    };
    if let Some(rec) = &entry.recorder {
        rec.record(&Observation {
            proto: Proto::Udp,
            family: dns_metrics::family_of(&client),
            qtype: q.qtype,
            do_bit,
            request_size: query.len(),
            response_size,
            rcode,
            plugin: "forward",
            duration: started.elapsed(),
        });
    }
    Some(Datagram { sock: ret.sock.clone(), to: client, bytes: out })
}

/// The request the scrub needs (ID, flags, question, the client's OPT, transport).
fn scrub_request(
    query: &[u8],
    q: &SimpleQuery<'_>,
    client: SocketAddr,
    local: SocketAddr,
    lr: &ListenerRuntime,
    entry: &ZoneEntry,
    started: Instant,
) -> Request {
    Request {
        wire: query.to_vec(),
        received_len: query.len(),
        qname: q.name.to_string(),
        qname_lower: q.name.to_string(),
        qtype: q.qtype,
        qclass: q.qclass,
        edns: q.edns.map(|(udp_size, flags, options)| ClientEdns {
            udp_size,
            dnssec_ok: flags & 0x8000 != 0,
            version: 0,
            options: options.to_vec(),
        }),
        client,
        local,
        proto: Proto::Udp,
        server: lr.label.clone(),
        zone: entry.zone.clone(),
        started,
        metadata: Vec::new(),
    }
}

/// Runs `query` through the chain on the runtime and sends the reply.
fn run_chain(lr: Arc<ListenerRuntime>, ret: UdpReturn, query: Vec<u8>, client: SocketAddr) {
    let UdpReturn { sock, local, rt } = ret;
    let guard = super::drain::InFlight::start();
    rt.spawn(async move {
        if let Some(reply) = handle(&lr, query, client, local, Proto::Udp).await {
            let _ = sock.send_to(&reply, client);
        }
        drop(guard);
    });
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
        assert_eq!(p.edns.map(|e| (e.0, e.1)), Some((1232, 0x8000)));
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
        // An ECS miekg cannot unpack (family 3): FORMERR on the full path.
        let mut opt = Vec::new();
        wire::encode_opt(1232, 0, &[0, 8, 0, 4, 0, 3, 0, 0], &mut opt);
        assert!(parse(&query(&[1, b'a', 0], 1, &opt), &mut buf).is_none());
    }
}
