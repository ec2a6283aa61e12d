//! Wire acceptance of incoming queries: what is ignored, rejected (FORMERR/NOTIMP), answered
//! BADVERS, or accepted, with the question and the client's OPT extracted.

use hickory_proto::op::Message;
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
}

/// Applies CoreDNS's (miekg/dns's) acceptance rules to `buf`.
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
    let qend = wire::question_end(buf);
    if Message::from_vec(buf).is_err() {
        return Accepted::Reply(reject(buf, plain_question_end(buf), 1));
    }
    let Some(qend) = qend else {
        return Accepted::Reply(reject(buf, None, 1));
    };
    let mut decoder = BinDecoder::new(&buf[wire::HEADER_LEN..qend]);
    let Ok(q) = hickory_proto::op::Query::read(&mut decoder) else {
        return Accepted::Reply(reject(buf, None, 1));
    };
    let qname = q.name().to_string();
    let qname_lower = qname.to_ascii_lowercase();
    let mut edns = None;
    let mut opt_ttl = 0;
    if let Some(rrs) = wire::records(buf) {
        for rr in rrs.iter().filter(|r| r.rtype == wire::TYPE_OPT) {
            let f = rr.fixed;
            let udp_size = u16::from_be_bytes([buf[f + 2], buf[f + 3]]);
            let ttl = u32::from_be_bytes([buf[f + 4], buf[f + 5], buf[f + 6], buf[f + 7]]);
            opt_ttl = ttl;
            edns = Some(ClientEdns {
                udp_size,
                dnssec_ok: ttl & 0x8000 != 0,
                version: ((ttl >> 16) & 0xff) as u8,
                options: buf[rr.rdata..rr.end()].to_vec(),
            });
        }
    }
    Accepted::Query(Box::new(ParsedQuery {
        qname,
        qname_lower,
        qtype: u16::from(q.query_type()),
        qclass: u16::from(q.query_class()),
        edns,
        opt_ttl,
        question_end: qend,
    }))
}

/// The offset just past the question when it is plain enough to copy into a reply as is:
/// uncompressed labels of at most 63 bytes, a name of at most 255 bytes, then type and class.
/// None otherwise (a pointer, a reserved label type, a name too long or cut short, no type or
/// class), so that a FORMERR reply never carries a question its reader cannot parse.
fn plain_question_end(buf: &[u8]) -> Option<usize> {
    const MAX_NAME: usize = 255;
    let mut off = wire::HEADER_LEN;
    loop {
        let len = usize::from(*buf.get(off)?);
        if len == 0 {
            off += 1;
            break;
        }
        // 0x40, 0x80 and 0xc0 mark pointers and reserved label types; 63 is the longest label.
        if len > 63 {
            return None;
        }
        off += 1 + len;
        if off - wire::HEADER_LEN >= MAX_NAME {
            // Even the root label that must follow would make the name longer than 255.
            return None;
        }
    }
    let end = off + 4;
    (end <= buf.len()).then_some(end)
}

/// miekg's reject reply: the request header turned into a response with `rcode`, Z cleared,
/// no records; the question only when it was read (`question_end`).
fn reject(buf: &[u8], question_end: Option<usize>, rcode: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(question_end.unwrap_or(wire::HEADER_LEN));
    out.extend_from_slice(&buf[..wire::HEADER_LEN]);
    let flags = (wire::flags(buf) | bits::QR) & !bits::Z & !0x000f | rcode;
    wire::set_flags(&mut out, flags);
    let qd: u16 = u16::from(question_end.is_some());
    out[4..6].copy_from_slice(&qd.to_be_bytes());
    out[6..12].fill(0);
    if let Some(end) = question_end {
        out.extend_from_slice(&buf[wire::HEADER_LEN..end]);
    }
    out
}

/// The BADVERS reply CoreDNS sends for an EDNS version other than 0: no question, an OPT with
/// version 0 and the extended rcode, UDP size 0.
pub fn badvers(buf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(wire::HEADER_LEN + 11);
    out.extend_from_slice(&buf[..wire::HEADER_LEN]);
    let req = wire::flags(buf);
    let opcode_bits = req & 0x7800;
    let mut flags = bits::QR | opcode_bits;
    if opcode_bits == 0 {
        flags |= req & (bits::RD | bits::CD);
    }
    wire::set_flags(&mut out, flags);
    out[4..12].copy_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
    wire::encode_opt(0, 16u32 >> 4 << 24, &[], &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
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
            ("pointer into the header", [&[0xc0u8, 0x04][..], &tail].concat()),
            ("reserved label type", [&[0x40u8, b'a', 0][..], &tail].concat()),
            ("name over 255", [&long_name[..], &tail].concat()),
            ("no class", vec![1, b'a', 0, 0, 1]),
            ("no type", vec![1, b'a', 0]),
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
        let r = badvers(&query(0x0110, [1, 0, 0, 1], Q));
        let m = Message::from_vec(&r).expect("parses");
        assert!(m.queries.is_empty());
        assert_eq!(u16::from(m.metadata.response_code), 16);
        assert!(m.metadata.recursion_desired && m.metadata.checking_disabled);
    }
}
