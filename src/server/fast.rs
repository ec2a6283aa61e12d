//! The fast path: a plain query (one question of simple labels, at most an OPT) routed to a
//! block with a planned [`crate::plugin::fast::FastBlock`] is answered from the block's answerer (the cache) without
//! running the chain, with the metrics the chain would have recorded. A miss in a block whose
//! fast path has an upstream is sent there directly and completed when the reply arrives: a
//! UDP client's reply is sent from the listener socket, a TCP client's handed to its
//! connection. Anything else takes the full path. This module names no plugin: it uses only
//! the capabilities of [`crate::plugin::fast`].

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use crate::observe::dns_metrics::{self, Observation};
use crate::plugin::fast::{Completion, Datagram, DirectOutcome, DirectTarget, FastLookup, FastQuery};

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

/// Where a cache miss taken on the fast path by a UDP client sends its reply, and how it falls
/// back to the chain: the UDP socket the query came in on, the listener's address and the
/// runtime.
#[derive(Clone)]
pub struct UdpReturn {
    /// The listener socket (replies are sent from it).
    pub sock: Arc<UdpSocket>,
    /// Its local address.
    pub local: SocketAddr,
    /// The runtime that runs the chain when the fast path gives up.
    pub rt: tokio::runtime::Handle,
}

/// How the fast path may complete a miss it sends upstream directly.
pub enum MissRoute<'a> {
    /// It may not: cache hits only.
    HitsOnly,
    /// A UDP client: the reply goes out from the listener socket.
    Udp(&'a Arc<ListenerRuntime>, &'a UdpReturn),
    /// A TCP client: the reply is handed to the connection (accepted on this local address).
    Tcp(&'a Arc<ListenerRuntime>, SocketAddr),
}

/// What the fast path did with a query.
pub enum Fast {
    /// Answered from the cache: send these bytes.
    Reply(Vec<u8>),
    /// A UDP client's miss sent upstream directly; the reply goes out when it arrives.
    Forwarded,
    /// A TCP client's miss sent upstream directly: the reply arrives here; None (or a dropped
    /// sender) means the direct path gave up and the chain must run.
    Waiting(oneshot::Receiver<Option<Vec<u8>>>),
    /// Not handled: run the chain.
    Slow,
}

/// The fast path: a cache hit is answered; a miss in a block whose fast path has an upstream
/// is sent there directly when `route` allows (see [`forward_miss`]).
pub fn try_serve(lr: &ListenerRuntime, buf: &[u8], client: SocketAddr, proto: Proto, route: MissRoute<'_>) -> Fast {
    let started = Instant::now();
    let mut lower = [0u8; 256];
    let Some(q) = parse(buf, &mut lower) else { return Fast::Slow };
    if q.qclass != 1 || q.qtype == 43 {
        return Fast::Slow;
    }
    let Some((_, entry)) = lr.table.route(q.name, false) else { return Fast::Slow };
    let Some(fast) = entry.block.fast.as_ref() else { return Fast::Slow };
    let do_bit = q.edns.is_some_and(|e| e.1 & 0x8000 != 0);
    let size = client_size(proto, &q);
    let fq = FastQuery {
        server: &lr.label,
        query: buf,
        qname_lower: q.name,
        qtype: q.qtype,
        qclass: q.qclass,
        do_bit,
        now: started,
    };
    let mut out = match fast.answer.lookup_fast(&fq) {
        FastLookup::Hit(out) => out,
        FastLookup::Pass => return Fast::Slow,
        FastLookup::Absent => {
            let target = match route {
                MissRoute::HitsOnly => None,
                MissRoute::Udp(..) | MissRoute::Tcp(..) => {
                    fast.upstream_for(q.qtype).and_then(|up| up.direct_target(q.name, proto))
                }
            };
            let Some(target) = target else { return Fast::Slow };
            fast.answer.count_fast_miss(&lr.label);
            let miss = Miss { entry: entry.clone(), query: buf.to_vec(), client, proto, size, started };
            return match route {
                MissRoute::Udp(lr, ret) => forward_miss(target, lr, miss, MissReply::Udp(ret.clone())),
                MissRoute::Tcp(lr, local) => {
                    let (tx, rx) = oneshot::channel();
                    forward_miss(target, lr, miss, MissReply::Tcp(local, tx));
                    Fast::Waiting(rx)
                }
                MissRoute::HitsOnly => Fast::Slow,
            };
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
            plugin: fast.answer_name,
            duration: started.elapsed(),
        });
    }
    Fast::Reply(out)
}

/// The largest reply the client takes: 64 KiB over TCP, its OPT's size (at least 512) or 512
/// over UDP.
fn client_size(proto: Proto, q: &SimpleQuery<'_>) -> usize {
    match (proto, q.edns) {
        (Proto::Tcp, _) => 65535,
        (Proto::Udp, Some((s, _, _))) => (s as usize).max(512),
        (Proto::Udp, None) => 512,
    }
}

/// A miss on its way upstream: what its completion needs.
struct Miss {
    entry: Arc<ZoneEntry>,
    /// The client's query as it sent it.
    query: Vec<u8>,
    client: SocketAddr,
    proto: Proto,
    /// The client's reply size limit.
    size: usize,
    started: Instant,
}

/// Where a directly forwarded miss's reply goes.
enum MissReply {
    /// Sent from the UDP listener socket (or, on failure, the chain runs on the runtime).
    Udp(UdpReturn),
    /// Handed to the TCP connection (None: the connection runs the chain).
    Tcp(SocketAddr, oneshot::Sender<Option<Vec<u8>>>),
}

/// Sends a cache miss to the upstream the block's fast path chose, as the cache would (AD
/// set). When the reply arrives (on the upstream's responder thread) it is stored and
/// processed by the cache, scrubbed, counted and handed to the client, as the chain would have
/// done. If the direct path fails, the query runs through the chain instead. The query's
/// concurrency place is held until it ends, and given back before a hand-over (the chain
/// counts anew).
fn forward_miss(target: DirectTarget<'_>, lr: &Arc<ListenerRuntime>, miss: Miss, back: MissReply) -> Fast {
    let mut upstream_query = miss.query.clone();
    let flags = wire::flags(&upstream_query);
    wire::set_flags(&mut upstream_query, flags | bits::AD);
    let lr = lr.clone();
    let DirectTarget { path, conn, slot } = target;
    let size = miss.size;
    let done: Completion = Box::new(move |outcome| {
        let answered = match outcome {
            DirectOutcome::Reply(reply) => {
                let local = match &back {
                    MissReply::Udp(ret) => ret.local,
                    MissReply::Tcp(local, _) => *local,
                };
                answer_miss(&lr, &miss, local, reply)
            }
            DirectOutcome::Failed => None,
        };
        drop(slot);
        match (back, answered) {
            (MissReply::Udp(ret), Some(bytes)) => Some(Datagram { sock: ret.sock.clone(), to: miss.client, bytes }),
            (MissReply::Udp(ret), None) => {
                run_chain(lr, ret, miss.query, miss.client);
                None
            }
            (MissReply::Tcp(_, tx), answered) => {
                let _ = tx.send(answered);
                None
            }
        }
    });
    if let Err(done) = path.send(conn, upstream_query, size, done) {
        let _ = done(DirectOutcome::Failed);
    }
    Fast::Forwarded
}

/// Finishes a directly forwarded miss with the upstream's `reply` (client ID already set);
/// returns the client's reply.
fn answer_miss(lr: &ListenerRuntime, miss: &Miss, local: SocketAddr, reply: Vec<u8>) -> Option<Vec<u8>> {
    let mut lower = [0u8; 256];
    let query = &miss.query;
    let q = parse(query, &mut lower)?;
    let fast = miss.entry.block.fast.as_ref()?;
    let do_bit = q.edns.is_some_and(|e| e.1 & 0x8000 != 0);
    let fq = FastQuery {
        server: &lr.label,
        query,
        qname_lower: q.name,
        qtype: q.qtype,
        qclass: q.qclass,
        do_bit,
        now: miss.started,
    };
    let processed = fast.answer.store_miss_reply(&fq, reply);
    let (rcode, response_size) = (wire::rcode(&processed), processed.len());
    // Without OPT a reply that fits needs nothing from the scrub (its ID is the client's).
    let out = if q.edns.is_none() && processed.len() <= miss.size {
        processed
    } else {
        reply::scrub_wire(&scrub_request(&q, miss, local, lr), processed)
    };
    if let Some(rec) = &miss.entry.recorder {
        rec.record(&Observation {
            proto: miss.proto,
            family: dns_metrics::family_of(&miss.client),
            qtype: q.qtype,
            do_bit,
            request_size: query.len(),
            response_size,
            rcode,
            plugin: fast.upstream_name,
            duration: miss.started.elapsed(),
        });
    }
    Some(out)
}

/// The request the scrub needs (ID, flags, question, the client's OPT, transport).
fn scrub_request(q: &SimpleQuery<'_>, miss: &Miss, local: SocketAddr, lr: &ListenerRuntime) -> Request {
    Request {
        wire: miss.query.clone(),
        received_len: miss.query.len(),
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
        client: miss.client,
        local,
        proto: miss.proto,
        server: lr.label.clone(),
        zone: miss.entry.zone.clone(),
        started: miss.started,
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
