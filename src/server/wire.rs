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
