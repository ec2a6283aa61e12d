//! Small helpers on raw DNS messages (header fields), so hot paths need not parse.

/// Length of the DNS header.
pub const HEADER_LEN: usize = 12;

/// The message ID, if the buffer holds a header.
pub fn id(buf: &[u8]) -> Option<u16> {
    (buf.len() >= HEADER_LEN).then(|| u16::from_be_bytes([buf[0], buf[1]]))
}

/// Writes the message ID; no-op on a buffer shorter than a header.
pub fn set_id(buf: &mut [u8], id: u16) {
    if buf.len() >= HEADER_LEN {
        buf[..2].copy_from_slice(&id.to_be_bytes());
    }
}

/// The 16 flag bits (QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode).
pub fn flags(buf: &[u8]) -> u16 {
    if buf.len() >= HEADER_LEN {
        u16::from_be_bytes([buf[2], buf[3]])
    } else {
        0
    }
}

/// Overwrites the 16 flag bits.
pub fn set_flags(buf: &mut [u8], flags: u16) {
    if buf.len() >= HEADER_LEN {
        buf[2..4].copy_from_slice(&flags.to_be_bytes());
    }
}

/// Header-only response code (low 4 bits; extended rcodes live in OPT).
pub fn rcode(buf: &[u8]) -> u16 {
    flags(buf) & 0x000f
}

/// Section counts: (QD, AN, NS, AR).
pub fn counts(buf: &[u8]) -> (u16, u16, u16, u16) {
    if buf.len() < HEADER_LEN {
        return (0, 0, 0, 0);
    }
    let c = |i: usize| u16::from_be_bytes([buf[i], buf[i + 1]]);
    (c(4), c(6), c(8), c(10))
}

/// Flag bit masks within [`flags`].
pub mod bits {
    /// Response.
    pub const QR: u16 = 0x8000;
    /// Authoritative answer.
    pub const AA: u16 = 0x0400;
    /// Truncated.
    pub const TC: u16 = 0x0200;
    /// Recursion desired.
    pub const RD: u16 = 0x0100;
    /// Recursion available.
    pub const RA: u16 = 0x0080;
    /// Reserved Z bit.
    pub const Z: u16 = 0x0040;
    /// Authentic data.
    pub const AD: u16 = 0x0020;
    /// Checking disabled.
    pub const CD: u16 = 0x0010;
}

/// The opcode field.
pub fn opcode(buf: &[u8]) -> u8 {
    ((flags(buf) >> 11) & 0x0f) as u8
}

/// Returns the offset just past the (possibly compressed) name starting at `off`, or None if
/// the name runs past the buffer or has a reserved label type.
pub fn skip_name(buf: &[u8], mut off: usize) -> Option<usize> {
    let mut steps = 0;
    loop {
        let len = *buf.get(off)? as usize;
        match len & 0xc0 {
            0x00 if len == 0 => return Some(off + 1),
            0x00 => off += 1 + len,
            0xc0 => {
                buf.get(off + 1)?;
                return Some(off + 2);
            }
            _ => return None,
        }
        steps += 1;
        if steps > 128 {
            return None;
        }
    }
}

/// One resource record's position in a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RrPos {
    /// Offset of the owner name.
    pub start: usize,
    /// Offset of the TYPE field (just past the owner name).
    pub fixed: usize,
    /// Record type.
    pub rtype: u16,
    /// Offset of RDATA.
    pub rdata: usize,
    /// RDATA length.
    pub rdlen: usize,
}

impl RrPos {
    /// Offset just past the record.
    pub fn end(&self) -> usize {
        self.rdata + self.rdlen
    }
}

/// The offset just past the question section, or None if malformed.
pub fn question_end(buf: &[u8]) -> Option<usize> {
    let (qd, _, _, _) = counts(buf);
    let mut off = HEADER_LEN;
    for _ in 0..qd {
        off = skip_name(buf, off)? + 4;
        if off > buf.len() {
            return None;
        }
    }
    Some(off)
}

/// Positions of every record after the question, in order (answer, authority, additional),
/// or None if the message is malformed.
pub fn records(buf: &[u8]) -> Option<Vec<RrPos>> {
    let (_, an, ns, ar) = counts(buf);
    let mut off = question_end(buf)?;
    let total = an as usize + ns as usize + ar as usize;
    let mut out = Vec::with_capacity(total.min(256));
    for _ in 0..total {
        let fixed = skip_name(buf, off)?;
        let hdr = buf.get(fixed..fixed + 10)?;
        let rtype = u16::from_be_bytes([hdr[0], hdr[1]]);
        let rdlen = u16::from_be_bytes([hdr[8], hdr[9]]) as usize;
        let rdata = fixed + 10;
        if rdata + rdlen > buf.len() {
            return None;
        }
        out.push(RrPos { start: off, fixed, rtype, rdata, rdlen });
        off = rdata + rdlen;
    }
    Some(out)
}

/// The EDNS OPT record type.
pub const TYPE_OPT: u16 = 41;

/// Encodes an OPT record: root owner, `udp_size` in CLASS, `ttl` as given, `rdata` options.
pub fn encode_opt(udp_size: u16, ttl: u32, rdata: &[u8], out: &mut Vec<u8>) {
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&udp_size.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
}

/// Sets the additional-section count.
pub fn set_arcount(buf: &mut [u8], n: u16) {
    if buf.len() >= HEADER_LEN {
        buf[10..12].copy_from_slice(&n.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_name_handles_pointers_and_garbage() {
        let buf = [3, b'w', b'w', b'w', 0, 0xc0, 0x00];
        assert_eq!(skip_name(&buf, 0), Some(5));
        assert_eq!(skip_name(&buf, 5), Some(7));
        assert_eq!(skip_name(&buf[..6], 5), None);
        assert_eq!(skip_name(&[0x40], 0), None);
        assert_eq!(skip_name(&[5, b'a'], 0), None);
    }
}
