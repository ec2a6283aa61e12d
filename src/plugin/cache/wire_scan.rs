//! A bounded scanner over DNS messages in wire form: finds the question, every resource record's
//! header fields and the offset of its TTL, without building a parsed message. Malformed input
//! yields `None`, never a panic.

/// Most compression pointers followed while reading one name.
const MAX_POINTER_JUMPS: usize = 64;
/// Most labels in one name (a 255-byte name has at most 127).
const MAX_LABELS: usize = 128;

/// Record type numbers the cache looks at.
pub mod rtype {
    /// NS.
    pub const NS: u16 = 2;
    /// CNAME.
    pub const CNAME: u16 = 5;
    /// SOA.
    pub const SOA: u16 = 6;
    /// OPT pseudo-record.
    pub const OPT: u16 = 41;
    /// RRSIG.
    pub const RRSIG: u16 = 46;
    /// IXFR.
    pub const IXFR: u16 = 251;
    /// AXFR.
    pub const AXFR: u16 = 252;
    /// ANY (also the class ANY value).
    pub const ANY: u16 = 255;
}

/// Message section of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// Answer.
    Answer,
    /// Authority.
    Authority,
    /// Additional.
    Additional,
}

/// One resource record's header, located in the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rr {
    /// Section the record is in.
    pub section: Section,
    /// Offset of the owner name.
    pub owner: usize,
    /// Record type.
    pub rtype: u16,
    /// Record class.
    pub class: u16,
    /// TTL as sent.
    pub ttl: u32,
    /// Offset of the 4 TTL bytes.
    pub ttl_off: usize,
    /// Offset of the RDATA.
    pub rdata: usize,
    /// RDATA length.
    pub rdlen: usize,
}

impl Rr {
    /// Offset just past the record.
    pub fn end(&self) -> usize {
        self.rdata + self.rdlen
    }
}

/// The first question of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Question {
    /// Offset of the question name (12 for any well-formed message).
    pub name: usize,
    /// Offset just past the question name.
    pub name_end: usize,
    /// Question type.
    pub qtype: u16,
    /// Question class.
    pub qclass: u16,
}

/// The located parts of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan {
    /// Header flag bits.
    pub flags: u16,
    /// QDCOUNT.
    pub qdcount: u16,
    /// The first question, if the message has one.
    pub question: Option<Question>,
    /// Offset where the answer section starts.
    pub records_start: usize,
    /// Every record of the answer, authority and additional sections, in order.
    pub rrs: Vec<Rr>,
    /// Index into `rrs` of the OPT record, if any.
    pub opt: Option<usize>,
    /// Offset just past the last record.
    pub end: usize,
}

impl Scan {
    /// The full response code: header bits plus the OPT extended bits.
    pub fn rcode(&self) -> u16 {
        let ext = self.opt.and_then(|i| self.rrs.get(i)).map(|o| (o.ttl >> 24) as u16).unwrap_or(0);
        (ext << 4) | (self.flags & 0x000f)
    }

    /// The DO bit of the message's own OPT record.
    pub fn dnssec_ok(&self) -> bool {
        self.opt.and_then(|i| self.rrs.get(i)).is_some_and(|o| o.ttl & 0x8000 != 0)
    }

    /// The opcode.
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0x0f) as u8
    }

    /// Records of one section.
    pub fn section(&self, s: Section) -> impl Iterator<Item = &Rr> + '_ {
        self.rrs.iter().filter(move |r| r.section == s)
    }

    /// Number of records in one section.
    pub fn count(&self, s: Section) -> usize {
        self.section(s).count()
    }
}

fn u16_at(buf: &[u8], off: usize) -> Option<u16> {
    let b = buf.get(off..off.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

fn u32_at(buf: &[u8], off: usize) -> Option<u32> {
    let b = buf.get(off..off.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reads a big-endian u32 at `off` (None when out of bounds).
pub fn read_u32(buf: &[u8], off: usize) -> Option<u32> {
    u32_at(buf, off)
}

/// Offset just past the name at `off`, without following pointers.
pub fn skip_name(buf: &[u8], mut off: usize) -> Option<usize> {
    for _ in 0..MAX_LABELS {
        let len = *buf.get(off)?;
        match len & 0xc0 {
            0x00 if len == 0 => return Some(off + 1),
            0x00 => {
                off = off.checked_add(1 + len as usize)?;
                if off >= buf.len() {
                    return None;
                }
            }
            0xc0 => {
                buf.get(off + 1)?;
                return Some(off + 2);
            }
            _ => return None,
        }
    }
    None
}

/// Appends the name at `off` to `out` as lower-cased, uncompressed wire labels (ending with the
/// root byte), following compression pointers. None on malformed names.
pub fn name_lower(buf: &[u8], mut off: usize, out: &mut Vec<u8>) -> Option<()> {
    let mut jumps = 0;
    let mut total = 0usize;
    for _ in 0..MAX_LABELS + MAX_POINTER_JUMPS {
        let len = *buf.get(off)?;
        match len & 0xc0 {
            0x00 if len == 0 => {
                out.push(0);
                return Some(());
            }
            0x00 => {
                let label = buf.get(off + 1..off + 1 + len as usize)?;
                total += 1 + len as usize;
                if total > 255 {
                    return None;
                }
                out.push(len);
                out.extend(label.iter().map(|b| b.to_ascii_lowercase()));
                off += 1 + len as usize;
            }
            0xc0 => {
                jumps += 1;
                if jumps > MAX_POINTER_JUMPS {
                    return None;
                }
                let target = (u16_at(buf, off)? & 0x3fff) as usize;
                off = target;
            }
            _ => return None,
        }
    }
    None
}

/// The name at `off` as lower-cased uncompressed wire labels.
pub fn name_key(buf: &[u8], off: usize) -> Option<Vec<u8>> {
    let mut v = Vec::with_capacity(32);
    name_lower(buf, off, &mut v)?;
    Some(v)
}

/// Converts lower-cased wire labels (as from [`name_key`]) to presentation form with a trailing
/// dot. Bytes outside printable ASCII are escaped as `\DDD`, and `.` / `\` inside labels are
/// escaped, as CoreDNS prints names.
pub fn key_to_text(key: &[u8]) -> String {
    let mut s = String::with_capacity(key.len() + 1);
    let mut i = 0;
    while let Some(&len) = key.get(i) {
        if len == 0 {
            break;
        }
        let Some(label) = key.get(i + 1..i + 1 + len as usize) else { break };
        for &b in label {
            match b {
                b'.' | b'\\' => {
                    s.push('\\');
                    s.push(b as char);
                }
                0x21..=0x7e => s.push(b as char),
                _ => s.push_str(&format!("\\{b:03}")),
            }
        }
        s.push('.');
        i += 1 + len as usize;
    }
    if s.is_empty() {
        s.push('.');
    }
    s
}

/// Scans a whole message. None when the header, question or any record is malformed or the
/// counts overrun the buffer.
pub fn scan(buf: &[u8]) -> Option<Scan> {
    if buf.len() < 12 {
        return None;
    }
    let flags = u16_at(buf, 2)?;
    let qdcount = u16_at(buf, 4)?;
    let an = u16_at(buf, 6)? as usize;
    let ns = u16_at(buf, 8)? as usize;
    let ar = u16_at(buf, 10)? as usize;
    let mut off = 12;
    let mut question = None;
    for i in 0..qdcount {
        let name_end = skip_name(buf, off)?;
        let qtype = u16_at(buf, name_end)?;
        let qclass = u16_at(buf, name_end + 2)?;
        if i == 0 {
            question = Some(Question { name: off, name_end, qtype, qclass });
        }
        off = name_end + 4;
    }
    let records_start = off;
    // Every record takes at least 11 bytes; refuse counts the buffer cannot hold before allocating.
    let total = an + ns + ar;
    if total > (buf.len().saturating_sub(off)) / 11 {
        return None;
    }
    let mut rrs = Vec::with_capacity(total);
    let mut opt = None;
    for (section, n) in [(Section::Answer, an), (Section::Authority, ns), (Section::Additional, ar)] {
        for _ in 0..n {
            let owner = off;
            let h = skip_name(buf, off)?;
            let rtype = u16_at(buf, h)?;
            let class = u16_at(buf, h + 2)?;
            let ttl = u32_at(buf, h + 4)?;
            let rdlen = u16_at(buf, h + 8)? as usize;
            let rdata = h + 10;
            if rdata + rdlen > buf.len() {
                return None;
            }
            if rtype == rtype::OPT && section == Section::Additional && opt.is_none() {
                opt = Some(rrs.len());
            }
            rrs.push(Rr { section, owner, rtype, class, ttl, ttl_off: h + 4, rdata, rdlen });
            off = rdata + rdlen;
        }
    }
    Some(Scan { flags, qdcount, question, records_start, rrs, opt, end: off })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn pointer_loop_is_rejected() {
        // Header with one question whose name points at itself.
        let mut buf = vec![0u8; 12];
        buf[5] = 1;
        buf.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        let s = scan(&buf).expect("question pointer is skipped, not followed");
        assert_eq!(s.question.map(|q| q.name_end), Some(14));
        assert_eq!(name_key(&buf, 12), None);
    }

    #[test]
    fn truncated_buffers_never_panic() {
        let mut buf = vec![0u8; 12];
        buf[5] = 1;
        buf[7] = 1;
        buf.extend_from_slice(&[
            3, b'f', b'o', b'o', 0, 0, 1, 0, 1, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 9, 0, 4, 1, 2, 3, 4,
        ]);
        assert!(scan(&buf).is_some());
        for cut in 0..buf.len() {
            assert_eq!(scan(&buf[..cut]), None, "cut at {cut}");
        }
    }

    #[test]
    fn names_lower_and_text() {
        let buf = [3, b'W', b'w', b'W', 7, b'E', b'x', b'a', b'm', b'p', b'l', b'e', 0];
        let k = name_key(&buf, 0).unwrap();
        assert_eq!(key_to_text(&k), "www.example.");
        assert_eq!(key_to_text(&[0]), ".");
    }
}
