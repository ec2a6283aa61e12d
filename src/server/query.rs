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
        return Accepted::Reply(reject(buf, qend.filter(|e| *e <= buf.len()), 1));
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
