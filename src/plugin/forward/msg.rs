//! Wire-level helpers for forwarding: validating upstream replies without a full parse,
//! comparing questions, and building the small messages forward writes itself.

use crate::server::wire::{self, bits, HEADER_LEN};

pub use crate::dnsmsg::skip_name;

/// Offset just past the question section, if the message is well formed that far.
pub fn question_end(buf: &[u8]) -> Option<usize> {
    let (qd, ..) = wire::counts(buf);
    if buf.len() < HEADER_LEN {
        return None;
    }
    let mut pos = HEADER_LEN;
    for _ in 0..qd {
        pos = skip_name(buf, pos)? + 4;
        if pos > buf.len() {
            return None;
        }
    }
    Some(pos)
}

/// Checks that every record of the message lies within the buffer (names, fixed fields and
/// RDATA lengths), as a full unpack would require.
pub fn well_formed(buf: &[u8]) -> bool {
    let Some(start) = question_end(buf) else { return false };
    crate::dnsmsg::records(buf, start).all(|rr| rr.is_some_and(|rr| rr.end() <= buf.len()))
}

/// The labels of the name at a position, following compression pointers (bounded); the
/// root label is yielded last as an empty slice. `bad` is set on malformed input.
struct Labels<'a> {
    buf: &'a [u8],
    pos: usize,
    hops: usize,
    done: bool,
    bad: bool,
}

impl<'a> Labels<'a> {
    fn new(buf: &'a [u8], pos: usize) -> Labels<'a> {
        Labels { buf, pos, hops: 0, done: false, bad: false }
    }
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        while !self.done {
            let Some(&len) = self.buf.get(self.pos) else { break };
            let len = len as usize;
            match len & 0xC0 {
                0x00 => {
                    let Some(label) = self.buf.get(self.pos + 1..self.pos + 1 + len) else { break };
                    self.pos += 1 + len;
                    self.done = len == 0;
                    return Some(label);
                }
                0xC0 => {
                    let Some(&lo) = self.buf.get(self.pos + 1) else { break };
                    self.hops += 1;
                    if self.hops > 64 {
                        break;
                    }
                    self.pos = ((len & 0x3F) << 8) | lo as usize;
                }
                _ => break,
            }
        }
        if !self.done {
            self.bad = true;
            self.done = true;
        }
        None
    }
}

/// CoreDNS's `request.Match`: the reply is a response with exactly one question whose name
/// (case-insensitively) and type equal the query's.
pub fn question_matches(query: &[u8], reply: &[u8]) -> bool {
    if wire::flags(reply) & bits::QR == 0 || wire::counts(reply).0 != 1 {
        return false;
    }
    let mut a = Labels::new(query, HEADER_LEN);
    let mut b = Labels::new(reply, HEADER_LEN);
    loop {
        match (a.next(), b.next()) {
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(y) => {
                if x.is_empty() {
                    break;
                }
            }
            _ => return false,
        }
    }
    let (Some(qe), Some(re)) = (skip_name(query, HEADER_LEN), skip_name(reply, HEADER_LEN)) else { return false };
    match (query.get(qe..qe + 4), reply.get(re..re + 4)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The empty truncated reply CoreDNS makes from a UDP reply that overflowed the client's
/// buffer: header and question kept, all other sections dropped, TC set.
pub fn truncated_reply(reply: &[u8]) -> Option<Vec<u8>> {
    let end = question_end(reply)?;
    let mut out = reply.get(..end)?.to_vec();
    let flags = wire::flags(&out) | bits::TC;
    wire::set_flags(&mut out, flags);
    out[6..12].fill(0);
    Some(out)
}

/// A reply to `query` carrying only its question and `rcode` (miekg's `SetRcode`): ID, opcode,
/// RD and CD copied, QR set, no OPT.
pub fn rcode_reply(query: &[u8], rcode: u16) -> Vec<u8> {
    let qend = skip_name(query, HEADER_LEN).map(|p| p + 4).filter(|&p| p <= query.len() && wire::counts(query).0 > 0);
    let mut out = Vec::with_capacity(qend.unwrap_or(HEADER_LEN));
    out.extend_from_slice(query.get(..HEADER_LEN).unwrap_or(&[0; HEADER_LEN]));
    let qflags = wire::flags(query);
    let mut flags = bits::QR | (qflags & 0x7800) | (qflags & bits::CD) | (rcode & 0x0f);
    if qflags & 0x7800 == 0 {
        flags |= qflags & bits::RD;
    }
    wire::set_flags(&mut out, flags);
    out[4..12].fill(0);
    if let Some(q) = qend {
        out.extend_from_slice(&query[HEADER_LEN..q]);
        out[5] = 1;
    }
    out
}

/// Encodes a presentation-form domain name (`example.org.`) to wire labels.
pub fn encode_name(name: &str, out: &mut Vec<u8>) -> Result<(), String> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            let bytes = label.as_bytes();
            if bytes.is_empty() || bytes.len() > 63 {
                return Err(format!("invalid domain name {name}"));
            }
            out.push(bytes.len() as u8);
            out.extend_from_slice(bytes);
        }
    }
    out.push(0);
    Ok(())
}

/// A query for `name`/`qtype` class IN with the given ID and RD bit.
pub fn build_query(id: u16, name: &str, qtype: u16, rd: bool) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(32 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&(if rd { bits::RD } else { 0 }).to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    encode_name(name, &mut out)?;
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    Ok(out)
}

/// True when the reply has an empty answer section (`next_on_nodata`).
pub fn answer_empty(reply: &[u8]) -> bool {
    wire::counts(reply).1 == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn question_match_is_case_insensitive_and_follows_pointers() {
        let q = build_query(1, "Example.ORG.", 1, true).unwrap();
        let mut r = build_query(1, "example.org.", 1, true).unwrap();
        wire::set_flags(&mut r, bits::QR);
        assert!(question_matches(&q, &r));
        let other = build_query(1, "example.org.", 28, true).unwrap();
        let mut other = other;
        wire::set_flags(&mut other, bits::QR);
        assert!(!question_matches(&q, &other));
        // not a response
        assert!(!question_matches(&q, &q));
    }

    #[test]
    fn truncated_reply_keeps_question_only() {
        let mut r = build_query(7, "a.b.", 1, true).unwrap();
        r[7] = 1; // ANCOUNT 1
        r.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 1, 2, 3, 4]);
        assert!(well_formed(&r));
        let t = truncated_reply(&r).unwrap();
        assert_eq!(wire::counts(&t), (1, 0, 0, 0));
        assert_eq!(wire::flags(&t) & bits::TC, bits::TC);
        assert_eq!(t.len(), question_end(&r).unwrap());
        assert!(!well_formed(&r[..r.len() - 1]));
    }

    #[test]
    fn rcode_reply_copies_id_rd_question() {
        let q = build_query(0x1234, "x.", 16, true).unwrap();
        let r = rcode_reply(&q, 1);
        assert_eq!(wire::id(&r), Some(0x1234));
        assert_eq!(wire::rcode(&r), 1);
        assert_eq!(wire::flags(&r) & (bits::QR | bits::RD), bits::QR | bits::RD);
        assert_eq!(&r[12..], &q[12..]);
    }
}
