//! Walking a DNS message in wire form without parsing it: names, the question section and the
//! resource records of the answer, authority and additional sections. Shared by the plugins
//! that only need a few fields of a message (`log`'s response type, `forward`'s sanity check,
//! finding the OPT record for `bufsize` and `rewrite`).
//!
//! Nothing here allocates; malformed input gives `None`, never a panic.

/// Length of the fixed message header.
pub const HEADER_LEN: usize = 12;

/// The OPT pseudo-record type.
pub const TYPE_OPT: u16 = 41;

/// The header's section counts (question, answer, authority, additional); all zero when the
/// buffer is shorter than a header.
pub fn counts(buf: &[u8]) -> (u16, u16, u16, u16) {
    if buf.len() < HEADER_LEN {
        return (0, 0, 0, 0);
    }
    let c = |i: usize| u16::from_be_bytes([buf[i], buf[i + 1]]);
    (c(4), c(6), c(8), c(10))
}

/// Offset just past the (possibly compressed) name at `off`, without following pointers.
/// None when the name runs past the buffer or uses a reserved label type (`0x40`, `0x80`).
pub fn skip_name(buf: &[u8], mut off: usize) -> Option<usize> {
    loop {
        let len = *buf.get(off)? as usize;
        match len & 0xc0 {
            0x00 if len == 0 => return Some(off + 1),
            0x00 => {
                off += 1 + len;
                if off > buf.len() {
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
}

/// Where the question section ends, as far as a lenient walk can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Questions {
    /// Offset just past the last question (may lie past the buffer's end when the last
    /// question's type and class are cut off; reading a record from there then fails).
    pub end: usize,
    /// The first question's type, if the buffer holds it.
    pub first_qtype: Option<u16>,
}

/// Skips the header's question count of questions. Only the names must be complete; the
/// four type and class bytes are stepped over unchecked.
pub fn skip_questions(buf: &[u8]) -> Option<Questions> {
    let (qd, ..) = counts(buf);
    let mut q = Questions { end: HEADER_LEN, first_qtype: None };
    for n in 0..qd {
        q.end = skip_name(buf, q.end)?;
        if n == 0 {
            q.first_qtype = u16_at(buf, q.end);
        }
        q.end += 4;
    }
    Some(q)
}

/// The section a record belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// Answer section.
    Answer,
    /// Authority section.
    Authority,
    /// Additional section.
    Additional,
}

/// One resource record's place and fixed fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rr {
    /// Section it belongs to.
    pub section: Section,
    /// Offset of the TYPE field (just past the owner name).
    pub fixed: usize,
    /// Record type.
    pub rtype: u16,
    /// Record class (the advertised UDP size for OPT).
    pub class: u16,
    /// TTL (extended rcode, version and flags for OPT).
    pub ttl: u32,
    /// Offset of RDATA.
    pub rdata: usize,
    /// RDATA length as the record states it (not checked against the buffer).
    pub rdlen: usize,
}

impl Rr {
    /// Offset just past the record.
    pub fn end(&self) -> usize {
        self.rdata + self.rdlen
    }
}

/// Iterator over the records after the question section; see [`records`].
pub struct Records<'a> {
    buf: &'a [u8],
    off: usize,
    an: u32,
    ns: u32,
    total: u32,
    n: u32,
}

impl Iterator for Records<'_> {
    /// `Some(rr)` per record; one `None` (and then the end) when a record's owner name or
    /// fixed fields do not fit the buffer.
    type Item = Option<Rr>;

    fn next(&mut self) -> Option<Option<Rr>> {
        if self.n >= self.total {
            return None;
        }
        let Some(rr) = self.read() else {
            self.n = self.total;
            return Some(None);
        };
        self.n += 1;
        self.off = rr.end();
        Some(Some(rr))
    }
}

impl Records<'_> {
    fn read(&self) -> Option<Rr> {
        let fixed = skip_name(self.buf, self.off)?;
        let hdr = self.buf.get(fixed..fixed + 10)?;
        let section = if self.n < self.an {
            Section::Answer
        } else if self.n < self.an + self.ns {
            Section::Authority
        } else {
            Section::Additional
        };
        Some(Rr {
            section,
            fixed,
            rtype: u16::from_be_bytes([hdr[0], hdr[1]]),
            class: u16::from_be_bytes([hdr[2], hdr[3]]),
            ttl: u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]),
            rdata: fixed + 10,
            rdlen: usize::from(u16::from_be_bytes([hdr[8], hdr[9]])),
        })
    }
}

/// The answer, authority and additional records of `buf` (counts from its header), starting at
/// `off`, the end of the question section. Each record's RDATA length is trusted to find the
/// next one; callers that need every record inside the buffer check [`Rr::end`].
pub fn records(buf: &[u8], off: usize) -> Records<'_> {
    let (_, an, ns, ar) = counts(buf);
    let (an, ns) = (u32::from(an), u32::from(ns));
    Records { buf, off, an, ns, total: an + ns + u32::from(ar), n: 0 }
}

/// Offset of the OPT record's CLASS field (the advertised UDP size), if the additional section
/// has an OPT record.
pub fn opt_class_offset(buf: &[u8]) -> Option<usize> {
    let q = skip_questions(buf)?;
    for rr in records(buf, q.end) {
        let rr = rr?;
        if rr.section == Section::Additional && rr.rtype == TYPE_OPT {
            return Some(rr.fixed + 2);
        }
    }
    None
}

fn u16_at(buf: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*buf.get(i)?, *buf.get(i + 1)?]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `example.` A query with one answer (pointer owner), one SOA-typed authority record and
    /// an OPT record.
    fn message() -> Vec<u8> {
        let mut w = vec![0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 1, 0, 1];
        w.extend_from_slice(&[7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0, 0, 1, 0, 1]);
        w.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
        w.extend_from_slice(&[0xc0, 12, 0, 6, 0, 1, 0, 0, 0, 60, 0, 0]);
        w.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0]);
        w
    }

    #[test]
    fn names_are_skipped_without_following_pointers() {
        let buf = [3, b'w', b'w', b'w', 0, 0xc0, 0x00];
        assert_eq!(skip_name(&buf, 0), Some(5));
        assert_eq!(skip_name(&buf, 5), Some(7));
        assert_eq!(skip_name(&buf[..6], 5), None);
        assert_eq!(skip_name(&[0x40], 0), None);
        assert_eq!(skip_name(&[5, b'a'], 0), None);
    }

    #[test]
    fn walks_sections_in_order() {
        let w = message();
        let q = skip_questions(&w).unwrap();
        assert_eq!(q, Questions { end: 25, first_qtype: Some(1) });
        let rrs: Vec<Rr> = records(&w, q.end).map(Option::unwrap).collect();
        let kinds: Vec<(Section, u16)> = rrs.iter().map(|r| (r.section, r.rtype)).collect();
        assert_eq!(kinds, [(Section::Answer, 1), (Section::Authority, 6), (Section::Additional, 41)]);
        assert_eq!((rrs[0].ttl, rrs[0].rdlen, rrs[0].end()), (60, 4, 41));
        assert_eq!((rrs[2].class, rrs[2].ttl), (1232, 0x8000));
        assert_eq!(rrs[2].end(), w.len());
        assert_eq!(opt_class_offset(&w), Some(w.len() - 8));
    }

    #[test]
    fn malformed_input_stops_the_walk() {
        let w = message();
        let cut = &w[..w.len() - 5];
        let items: Vec<Option<Rr>> = records(cut, 25).collect();
        assert_eq!(items.len(), 3);
        assert!(items[2].is_none());
        assert_eq!(opt_class_offset(cut), None);
        assert_eq!(skip_questions(&w[..15]), None);
        assert_eq!(counts(&w[..11]), (0, 0, 0, 0));
        assert_eq!(opt_class_offset(&[]), None);
    }
}
