//! Wire acceptance of incoming queries: what is ignored, rejected (FORMERR/NOTIMP), answered
//! BADVERS, or accepted, with the question and the client's OPT extracted.

use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::request::ClientEdns;
use super::wire::{self, bits};

/// The result of accepting one incoming message.
#[derive(Debug)]
pub enum Accepted {
    /// No reply at all (a response, or a header that cannot be read).
    Ignore,
    /// Reply with these bytes without running any plugin.
    Reply(Vec<u8>),
    /// Reply with these bytes (no question reached the server: SERVFAIL), counted as CoreDNS's
    /// `errorAndMetricsFunc` counts it: `zone="dropped"`.
    Dropped(Vec<u8>),
    /// A query to route.
    Query(Box<ParsedQuery>),
}

/// A well-formed query's parts.
#[derive(Debug, Clone)]
pub struct ParsedQuery {
    /// Question name as sent, presentation form.
    pub qname: String,
    /// Lower-cased question name.
    pub qname_lower: String,
    /// Question type.
    pub qtype: u16,
    /// Question class.
    pub qclass: u16,
    /// The client's OPT, if any.
    pub edns: Option<ClientEdns>,
    /// Raw OPT TTL field (extended rcode, version, DO, Z).
    pub opt_ttl: u32,
    /// Offset just past the question in the query bytes.
    pub question_end: usize,
    /// The question in wire form as miekg re-packs it (name uncompressed, a missing type or
    /// class written as 0).
    pub question: Vec<u8>,
    /// The query re-encoded for the chain when it was accepted only through miekg's leniency
    /// (trailing bytes, header counts above the records present, a question without type or
    /// class or with a pointer, several OPTs, an OPT with a non-root owner); None when the
    /// bytes as received can be used.
    pub normalized: Option<Vec<u8>>,
}

/// EDNS option codes (miekg `edns.go`).
mod opt_code {
    pub const LLQ: u16 = 1;
    pub const UL: u16 = 2;
    pub const SUBNET: u16 = 8;
    pub const EXPIRE: u16 = 9;
    pub const TCP_KEEPALIVE: u16 = 11;
    pub const EDE: u16 = 15;
    pub const REPORTING: u16 = 18;
    pub const ZONEVERSION: u16 = 19;
}

/// Whether miekg unpacks OPT RDATA without error (`unpackDataOpt` and each option's `unpack`):
/// every option header and body inside the RDATA; ECS with a known family (0 only with a zero
/// source prefix), prefixes within the family's length and at least 4 octets; EXPIRE empty or
/// at least 4 octets; TCP-KEEPALIVE 0 or 2; UL 4 or 8; LLQ at least 18; EDE and ZONEVERSION at
/// least 2; REPORTING a readable name. Other codes, code 0 included, take any body.
pub fn options_valid(rdata: &[u8]) -> bool {
    let mut off = 0;
    while off < rdata.len() {
        let Some(h) = rdata.get(off..off + 4) else { return false };
        let code = u16::from_be_bytes([h[0], h[1]]);
        let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        let Some(body) = rdata.get(off + 4..off + 4 + len) else { return false };
        let ok = match code {
            opt_code::SUBNET => ecs_valid(body),
            opt_code::EXPIRE => body.is_empty() || body.len() >= 4,
            opt_code::TCP_KEEPALIVE => body.is_empty() || body.len() == 2,
            opt_code::UL => body.len() == 4 || body.len() == 8,
            opt_code::LLQ => body.len() >= 18,
            opt_code::EDE | opt_code::ZONEVERSION => body.len() >= 2,
            opt_code::REPORTING => unpack_name(body, 0).is_ok(),
            _ => true,
        };
        if !ok {
            return false;
        }
        off += 4 + len;
    }
    true
}

/// miekg `EDNS0_SUBNET.unpack`.
fn ecs_valid(body: &[u8]) -> bool {
    if body.len() < 4 {
        return false;
    }
    let family = u16::from_be_bytes([body[0], body[1]]);
    let (source, scope) = (body[2], body[3]);
    match family {
        0 => source == 0,
        1 => source <= 32 && scope <= 32,
        2 => source <= 128 && scope <= 128,
        _ => false,
    }
}

/// miekg's `maxCompressionPointers`.
const MAX_POINTERS: usize = 126;

/// Reads a name as miekg's `UnpackDomainName` does: pointers anywhere (at most 126), labels of
/// types 0x40/0x80 refused, at most 255 octets. Appends the uncompressed wire form to `out`;
/// returns the offset after the name (after its first pointer, if any).
fn unpack_name_into(buf: &[u8], mut off: usize, out: &mut Vec<u8>) -> Result<usize, ()> {
    let mut budget: isize = 255;
    let mut after = None;
    let mut ptrs = 0;
    loop {
        let c = usize::from(*buf.get(off).ok_or(())?);
        off += 1;
        match c & 0xc0 {
            0x00 if c == 0 => {
                out.push(0);
                break;
            }
            0x00 => {
                let label = buf.get(off..off + c).ok_or(())?;
                budget -= c as isize + 1;
                if budget <= 0 {
                    return Err(());
                }
                out.push(c as u8);
                out.extend_from_slice(label);
                off += c;
            }
            0xc0 => {
                let c1 = usize::from(*buf.get(off).ok_or(())?);
                off += 1;
                if after.is_none() {
                    after = Some(off);
                }
                ptrs += 1;
                if ptrs > MAX_POINTERS {
                    return Err(());
                }
                off = (c & 0x3f) << 8 | c1;
            }
            _ => return Err(()),
        }
    }
    Ok(after.unwrap_or(off))
}

fn unpack_name(buf: &[u8], off: usize) -> Result<usize, ()> {
    unpack_name_into(buf, off, &mut Vec::with_capacity(64))
}

/// A record's position as miekg reads it.
struct Rec {
    start: usize,
    owner_root: bool,
    rtype: u16,
    fixed: usize,
    rdata: usize,
    rdlen: usize,
}

/// What miekg's `Msg.unpack` makes of a query (header counts already accepted).
struct Unpacked {
    /// The question as re-packed, and the offset after it in `buf`; None when the message ends
    /// after the header.
    question: Option<(Vec<u8>, usize)>,
    /// Records per section (answer, authority, additional), as far as they were present.
    sections: [Vec<Rec>; 3],
}

/// Unpacks like miekg: the question may lack type and class, each section stops where the
/// message ends (header counts may be larger), trailing bytes are ignored, OPT RDATA must
/// unpack. On error, returns the question when it had been read (FORMERR echoes it).
fn unpack(buf: &[u8]) -> Result<Unpacked, Option<Vec<u8>>> {
    let (_, an, ns, ar) = wire::counts(buf);
    let mut off = wire::HEADER_LEN;
    if off == buf.len() {
        return Ok(Unpacked { question: None, sections: Default::default() });
    }
    let mut q = Vec::with_capacity(64);
    off = unpack_name_into(buf, off, &mut q).map_err(|_| None)?;
    for _ in 0..2 {
        match buf.len() - off {
            0 => q.extend_from_slice(&[0, 0]),
            1 => return Err(None),
            _ => {
                q.extend_from_slice(&buf[off..off + 2]);
                off += 2;
            }
        }
    }
    let mut sections: [Vec<Rec>; 3] = Default::default();
    for (i, count) in [an, ns, ar].into_iter().enumerate() {
        for _ in 0..count {
            if off == buf.len() {
                break;
            }
            let start = off;
            let fixed = unpack_name(buf, off).map_err(|_| Some(q.clone()))?;
            let hdr = buf.get(fixed..fixed + 10).ok_or_else(|| Some(q.clone()))?;
            let rtype = u16::from_be_bytes([hdr[0], hdr[1]]);
            let rdlen = usize::from(u16::from_be_bytes([hdr[8], hdr[9]]));
            let rdata = fixed + 10;
            let body = buf.get(rdata..rdata + rdlen).ok_or_else(|| Some(q.clone()))?;
            if rtype == wire::TYPE_OPT && !options_valid(body) {
                return Err(Some(q));
            }
            sections[i].push(Rec {
                start,
                owner_root: fixed == start + 1 && buf[start] == 0,
                rtype,
                fixed,
                rdata,
                rdlen,
            });
            off = rdata + rdlen;
        }
    }
    Ok(Unpacked { question: Some((q, off_after_question(buf))), sections })
}

/// The offset after the question in `buf` (name as stored, then as much of type and class as
/// there is).
fn off_after_question(buf: &[u8]) -> usize {
    let off = wire::skip_name(buf, wire::HEADER_LEN).unwrap_or(buf.len());
    (off + 4).min(buf.len())
}

/// Applies CoreDNS's (miekg/dns's) acceptance rules to `buf`: `DefaultMsgAcceptFunc`, then
/// `Msg.unpack`, then CoreDNS's check that a question reached the server.
pub fn accept(buf: &[u8]) -> Accepted {
    if buf.len() < wire::HEADER_LEN {
        return Accepted::Ignore;
    }
    let flags = wire::flags(buf);
    if flags & bits::QR != 0 {
        return Accepted::Ignore;
    }
    let opcode = wire::opcode(buf);
    if opcode != 0 && opcode != 4 {
        return Accepted::Reply(reject(buf, None, 4));
    }
    let (qd, an, ns, ar) = wire::counts(buf);
    if qd != 1 || an > 1 || ns > 1 || ar > 2 {
        return Accepted::Reply(reject(buf, None, 1));
    }
    let u = match unpack(buf) {
        Ok(u) => u,
        Err(question) => return Accepted::Reply(reject(buf, question.as_deref(), 1)),
    };
    let Some((question, qend)) = u.question else {
        // No question reached the server: CoreDNS's ServeDNS answers SERVFAIL (SetRcode: no
        // question, and the request has no OPT to echo).
        return Accepted::Dropped(no_question(buf));
    };
    let name_len = question.len() - 4;
    let mut decoder = BinDecoder::new(&question[..name_len]);
    let Ok(name) = hickory_proto::rr::Name::read(&mut decoder) else {
        return Accepted::Reply(reject(buf, Some(&question), 1));
    };
    let qname = name.to_string();
    let qname_lower = qname.to_ascii_lowercase();
    let qtype = u16::from_be_bytes([question[name_len], question[name_len + 1]]);
    let qclass = u16::from_be_bytes([question[name_len + 2], question[name_len + 3]]);
    // miekg's IsEdns0: the last OPT of the additional section, whatever its owner.
    let opts: Vec<&Rec> = u.sections[2].iter().filter(|r| r.rtype == wire::TYPE_OPT).collect();
    let (edns, opt_ttl) = match opts.last() {
        Some(rr) => {
            let f = rr.fixed;
            let udp_size = u16::from_be_bytes([buf[f + 2], buf[f + 3]]);
            let ttl = u32::from_be_bytes([buf[f + 4], buf[f + 5], buf[f + 6], buf[f + 7]]);
            let e = ClientEdns {
                udp_size,
                dnssec_ok: ttl & 0x8000 != 0,
                version: ((ttl >> 16) & 0xff) as u8,
                options: buf[rr.rdata..rr.rdata + rr.rdlen].to_vec(),
            };
            (Some(e), ttl)
        }
        None => (None, 0),
    };
    let end = u.sections.iter().flatten().map(|r| r.rdata + r.rdlen).max().unwrap_or(qend);
    let counts_exact = [an, ns, ar].iter().zip(&u.sections).all(|(c, s)| usize::from(*c) == s.len());
    let lenient = end != buf.len()
        || !counts_exact
        || buf.get(wire::HEADER_LEN..qend) != Some(&question[..])
        || opts.len() > 1
        || opts.iter().any(|r| !r.owner_root);
    let normalized = lenient.then(|| normalize(buf, &question, &u.sections, opts.last().map(|r| r.start)));
    Accepted::Query(Box::new(ParsedQuery {
        qname,
        qname_lower,
        qtype,
        qclass,
        edns,
        opt_ttl,
        question_end: wire::HEADER_LEN + question.len(),
        question,
        normalized,
    }))
}

/// The query re-encoded as the chain should see it: the question as miekg re-packs it, the
/// records read (only the last OPT, with a root owner), true counts, no trailing bytes.
fn normalize(buf: &[u8], question: &[u8], sections: &[Vec<Rec>; 3], last_opt: Option<usize>) -> Vec<u8> {
    let mut out = Vec::with_capacity(buf.len() + 4);
    out.extend_from_slice(&buf[..wire::HEADER_LEN]);
    out.extend_from_slice(question);
    let mut counts = [1u16, 0, 0, 0];
    for (i, section) in sections.iter().enumerate() {
        for r in section {
            if r.rtype == wire::TYPE_OPT && Some(r.start) != last_opt {
                continue;
            }
            if r.rtype == wire::TYPE_OPT {
                out.push(0);
            } else {
                out.extend_from_slice(&buf[r.start..r.fixed]);
            }
            out.extend_from_slice(&buf[r.fixed..r.rdata + r.rdlen]);
            counts[i + 1] += 1;
        }
    }
    for (i, c) in counts.iter().enumerate() {
        out[4 + 2 * i..6 + 2 * i].copy_from_slice(&c.to_be_bytes());
    }
    out
}

/// CoreDNS's answer when no question reached its ServeDNS: SERVFAIL made with `SetRcode` (ID,
/// opcode, RD and CD for QUERY), nothing else.
fn no_question(buf: &[u8]) -> Vec<u8> {
    let mut out = buf[..wire::HEADER_LEN].to_vec();
    let req = wire::flags(buf);
    let opcode_bits = req & 0x7800;
    let mut flags = bits::QR | opcode_bits | 2;
    if opcode_bits == 0 {
        flags |= req & (bits::RD | bits::CD);
    }
    wire::set_flags(&mut out, flags);
    out[4..12].fill(0);
    out
}

/// miekg's reject reply (`serveDNS`: `SetRcodeFormatError` on the request, Z cleared, records
/// dropped): the request's ID and TC/RD/RA/AD/CD bits, QR set, AA cleared, opcode QUERY for
/// FORMERR (NOTIMP keeps the request's), `rcode`; the question only when it was read.
fn reject(buf: &[u8], question: Option<&[u8]>, rcode: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(wire::HEADER_LEN + question.map_or(0, <[u8]>::len));
    out.extend_from_slice(&buf[..wire::HEADER_LEN]);
    let req = wire::flags(buf);
    let opcode_bits = if rcode == 4 { req & 0x7800 } else { 0 };
    let kept = req & (bits::TC | bits::RD | bits::RA | bits::AD | bits::CD);
    wire::set_flags(&mut out, bits::QR | opcode_bits | kept | rcode);
    let qd: u16 = u16::from(question.is_some());
    out[4..6].copy_from_slice(&qd.to_be_bytes());
    out[6..12].fill(0);
    if let Some(q) = question {
        out.extend_from_slice(q);
    }
    out
}

/// The BADVERS reply CoreDNS sends for an EDNS version other than 0 (`plugin/pkg/edns`
/// Version): made with `SetReply`, so the question is copied; an OPT with version 0, the
/// extended rcode and UDP size 0.
pub fn badvers(buf: &[u8], question: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(wire::HEADER_LEN + question.len() + 11);
    out.extend_from_slice(&buf[..wire::HEADER_LEN]);
    let req = wire::flags(buf);
    let opcode_bits = req & 0x7800;
    let mut flags = bits::QR | opcode_bits;
    if opcode_bits == 0 {
        flags |= req & (bits::RD | bits::CD);
    }
    wire::set_flags(&mut out, flags);
    let qd = u16::from(!question.is_empty());
    out[4..6].copy_from_slice(&qd.to_be_bytes());
    out[6..12].copy_from_slice(&[0, 0, 0, 0, 0, 1]);
    out.extend_from_slice(question);
    wire::encode_opt(0, 16u32 >> 4 << 24, &[], &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Message;
    use pretty_assertions::assert_eq;

    fn query(flags: u16, counts: [u16; 4], body: &[u8]) -> Vec<u8> {
        let mut v = vec![0x12, 0x34];
        v.extend_from_slice(&flags.to_be_bytes());
        for c in counts {
            v.extend_from_slice(&c.to_be_bytes());
        }
        v.extend_from_slice(body);
        v
    }

    const Q: &[u8] = &[3, b'W', b'w', b'W', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0, 0, 1, 0, 1];

    #[test]
    fn short_and_response_are_ignored() {
        assert!(matches!(accept(&[0; 5]), Accepted::Ignore));
        assert!(matches!(accept(&query(0x8000, [1, 0, 0, 0], Q)), Accepted::Ignore));
    }

    #[test]
    fn other_opcode_is_notimp_without_question() {
        let Accepted::Reply(r) = accept(&query(2 << 11 | 0x0100, [1, 0, 0, 0], Q)) else { panic!("expected reply") };
        assert_eq!(wire::rcode(&r), 4);
        assert_eq!(wire::opcode(&r), 2);
        assert_eq!(wire::counts(&r), (0, 0, 0, 0));
        assert_eq!(wire::flags(&r) & bits::QR, bits::QR);
    }

    #[test]
    fn qdcount_two_is_formerr() {
        let Accepted::Reply(r) = accept(&query(0x0100, [2, 0, 0, 0], Q)) else { panic!("expected reply") };
        assert_eq!(wire::rcode(&r), 1);
        assert_eq!(wire::id(&r), Some(0x1234));
    }

    #[test]
    fn truncated_question_is_formerr() {
        let Accepted::Reply(r) = accept(&query(0x0100, [1, 0, 0, 0], &Q[..6])) else { panic!("expected reply") };
        assert_eq!(wire::rcode(&r), 1);
        assert_eq!(wire::counts(&r).0, 0);
    }

    /// The FORMERR reply to `body` as a question, parsed with hickory.
    fn formerr_reply(body: &[u8], counts: [u16; 4]) -> Message {
        let Accepted::Reply(r) = accept(&query(0x0100, counts, body)) else { panic!("expected reply") };
        let m = Message::from_vec(&r).unwrap_or_else(|e| panic!("reply does not parse: {e}: {r:02x?}"));
        assert_eq!(u16::from(m.metadata.response_code), 1);
        assert_eq!(m.metadata.id, 0x1234);
        assert_eq!(wire::counts(&r).0 as usize, m.queries.len());
        m
    }

    #[test]
    fn unparsable_questions_get_a_formerr_without_question() {
        let tail = [0u8, 1, 0, 1];
        let mut long_name = Vec::new();
        for _ in 0..4 {
            long_name.push(63u8);
            long_name.extend(std::iter::repeat_n(b'b', 63));
        }
        // 4 * 64 = 256 bytes before the root label: one over the limit.
        long_name.push(0);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("pointer to itself", [&[0xc0u8, 0x0c][..], &tail].concat()),
            ("pointer after a label", [&[1u8, b'a', 0xc0, 0x0c][..], &tail].concat()),
            ("pointer past the end", [&[0xc0u8, 0xff][..], &tail].concat()),
            ("reserved label type", [&[0x40u8, b'a', 0][..], &tail].concat()),
            ("name over 255", [&long_name[..], &tail].concat()),
            ("one octet of type", vec![1, b'a', 0, 0]),
            ("three octets of type and class", vec![1, b'a', 0, 0, 1, 0]),
        ];
        for (what, body) in cases {
            let m = formerr_reply(&body, [1, 0, 0, 0]);
            assert!(m.queries.is_empty(), "{what}: {:?}", m.queries);
        }
    }

    #[test]
    fn a_plain_question_is_kept_when_a_later_record_is_broken() {
        // The question parses; the additional record is cut short.
        let mut body = Q.to_vec();
        body.extend_from_slice(&[0, 0, 41, 0x10]);
        let m = formerr_reply(&body, [1, 0, 0, 1]);
        assert_eq!(m.queries.len(), 1);
        assert_eq!(m.queries[0].name().to_string(), "WwW.example.");
        // The longest plain name (255 bytes on the wire) is still copied.
        let mut name = Vec::new();
        for _ in 0..3 {
            name.push(63u8);
            name.extend(std::iter::repeat_n(b'c', 63));
        }
        name.push(61);
        name.extend(std::iter::repeat_n(b'd', 61));
        name.push(0);
        assert_eq!(name.len(), 255);
        name.extend_from_slice(&[0, 1, 0, 1, 0, 0, 41]);
        let m = formerr_reply(&name, [1, 0, 0, 1]);
        assert_eq!(m.queries.len(), 1);
    }

    #[test]
    fn accepted_query_keeps_case_and_lowers() {
        let Accepted::Query(q) = accept(&query(0x0100, [1, 0, 0, 0], Q)) else { panic!("expected query") };
        assert_eq!(q.qname, "WwW.example.");
        assert_eq!(q.qname_lower, "www.example.");
        assert_eq!((q.qtype, q.qclass), (1, 1));
        assert!(q.edns.is_none());
    }

    #[test]
    fn edns_is_extracted() {
        let mut body = Q.to_vec();
        wire::encode_opt(4096, 0x0000_8000, &[], &mut body);
        let Accepted::Query(q) = accept(&query(0x0100, [1, 0, 0, 1], &body)) else { panic!("expected query") };
        let e = q.edns.expect("edns");
        assert_eq!((e.udp_size, e.dnssec_ok, e.version), (4096, true, 0));
    }

    #[test]
    fn badvers_shape() {
        let buf = query(0x0110, [1, 0, 0, 1], Q);
        let r = badvers(&buf, Q);
        let m = Message::from_vec(&r).expect("parses");
        // SetReply: the question is copied.
        assert_eq!(m.queries.len(), 1);
        assert_eq!(m.queries[0].name().to_string(), "WwW.example.");
        assert_eq!(u16::from(m.metadata.response_code), 16);
        assert!(m.metadata.recursion_desired && m.metadata.checking_disabled);
        assert_eq!(m.edns.as_ref().map(|e| e.version()), Some(0));
    }

    fn served(body: &[u8], counts: [u16; 4]) -> ParsedQuery {
        match accept(&query(0x0100, counts, body)) {
            Accepted::Query(q) => *q,
            other => panic!("expected the query to be served: {other:?}"),
        }
    }

    #[test]
    fn miekg_leniency_serves_the_query() {
        // Trailing bytes are ignored.
        let q = served(&[Q, &[1, 2, 3][..]].concat(), [1, 0, 0, 0]);
        assert_eq!(q.normalized.as_deref(), Some(&query(0x0100, [1, 0, 0, 0], Q)[..]));
        // Header counts larger than the records present.
        let q = served(Q, [1, 1, 1, 2]);
        assert_eq!(q.normalized.as_deref(), Some(&query(0x0100, [1, 0, 0, 0], Q)[..]));
        // A question without class, or without type and class: zeros.
        let q = served(&[1, b'a', 0, 0, 1], [1, 0, 0, 0]);
        assert_eq!((q.qname.as_str(), q.qtype, q.qclass), ("a.", 1, 0));
        assert_eq!(q.question, vec![1, b'a', 0, 0, 1, 0, 0]);
        let q = served(&[1, b'a', 0], [1, 0, 0, 0]);
        assert_eq!((q.qtype, q.qclass), (0, 0));
        // A pointer into the header that reads as the root name.
        let q = served(&[0xc0, 0x04, 0, 1, 0, 1], [1, 0, 0, 0]);
        assert_eq!(q.qname, ".");
        assert_eq!(q.question, vec![0, 0, 1, 0, 1]);
        // An OPT with a non-root owner is the client's OPT.
        let mut body = Q.to_vec();
        body.extend_from_slice(&[1, b'x', 0, 0, 41, 4, 0, 0, 0, 0x80, 0, 0, 0]);
        let q = served(&body, [1, 0, 0, 1]);
        assert_eq!(q.edns.as_ref().map(|e| (e.udp_size, e.dnssec_ok)), Some((1024, true)));
        let n = q.normalized.expect("re-encoded");
        assert_eq!(&n[wire::HEADER_LEN + Q.len()..], &[0, 0, 41, 4, 0, 0, 0, 0x80, 0, 0, 0]);
        // Two OPTs: the last one counts.
        let mut body = Q.to_vec();
        wire::encode_opt(512, 0, &[], &mut body);
        wire::encode_opt(1400, 0x8000, &[0, 0, 0, 1, 7], &mut body);
        let q = served(&body, [1, 0, 0, 2]);
        let e = q.edns.expect("edns");
        assert_eq!((e.udp_size, e.dnssec_ok, e.options), (1400, true, vec![0, 0, 0, 1, 7]));
        assert_eq!(wire::counts(&q.normalized.expect("re-encoded")), (1, 0, 0, 1));
        // A plain query is not re-encoded.
        assert!(served(Q, [1, 0, 0, 0]).normalized.is_none());
    }

    #[test]
    fn options_miekg_cannot_unpack_are_formerr() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("ecs family 3", vec![0, 8, 0, 4, 0, 3, 0, 0]),
            ("ecs short", vec![0, 8, 0, 3, 0, 1, 24]),
            ("ecs v4 prefix 33", vec![0, 8, 0, 5, 0, 1, 33, 0, 1]),
            ("ecs v6 scope 129", vec![0, 8, 0, 4, 0, 2, 0, 129]),
            ("ecs family 0 with a prefix", vec![0, 8, 0, 4, 0, 0, 8, 0]),
            ("expire 2 octets", vec![0, 9, 0, 2, 0, 0]),
            ("keepalive 1 octet", vec![0, 11, 0, 1, 0]),
            ("option cut short", vec![0, 10, 0, 8, 1, 2]),
            ("option header cut short", vec![0, 10, 0]),
        ];
        for (what, opts) in cases {
            let mut body = Q.to_vec();
            wire::encode_opt(1232, 0, &opts, &mut body);
            let Accepted::Reply(r) = accept(&query(0x0100, [1, 0, 0, 1], &body)) else { panic!("{what}: served") };
            assert_eq!(wire::rcode(&r), 1, "{what}");
            assert_eq!(&r[wire::HEADER_LEN..], Q, "{what}: the question read is echoed");
            assert!(!options_valid(&opts), "{what}");
        }
        for ok in [vec![0, 8, 0, 7, 0, 1, 24, 0, 192, 0, 2], vec![0, 8, 0, 4, 0, 0, 0, 0], vec![0, 0, 0, 0]] {
            assert!(options_valid(&ok), "{ok:?}");
        }
    }

    #[test]
    fn question_count_one_without_question_is_servfail() {
        let Accepted::Dropped(r) = accept(&query(0x0110, [1, 0, 0, 0], &[])) else { panic!("expected reply") };
        assert_eq!(r, vec![0x12, 0x34, 0x81, 0x12, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn formerr_header_is_set_rcode_format_error() {
        // NOTIFY with AA, TC, RD, RA, Z, AD, CD and a broken additional record.
        let flags = 4 << 11 | 0x0400 | 0x0200 | 0x0100 | 0x0080 | 0x0040 | 0x0020 | 0x0010;
        let body = [Q, &[0, 0, 41][..]].concat();
        let Accepted::Reply(r) = accept(&query(flags, [1, 0, 0, 1], &body)) else { panic!("expected reply") };
        assert_eq!(wire::flags(&r), 0x8000 | 0x0200 | 0x0100 | 0x0080 | 0x0020 | 0x0010 | 1);
        assert_eq!(wire::counts(&r), (1, 0, 0, 0));
        // NOTIMP keeps the opcode, clears AA and Z.
        let Accepted::Reply(r) = accept(&query(5 << 11 | 0x0400 | 0x0140, [1, 0, 0, 0], Q)) else { panic!() };
        assert_eq!(wire::flags(&r), 0x8000 | 5 << 11 | 0x0100 | 4);
    }
}
