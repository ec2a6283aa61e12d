//! The cache key: CoreDNS's FNV-64 hash over DO, CD, qtype, qclass and the lower-cased qname.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h = h.wrapping_mul(FNV_PRIME);
        h ^= b as u64;
    }
    h
}

/// The key CoreDNS computes for a query: FNV-1 (64-bit) of `'1'`/`'0'` for DO, the same for CD,
/// qtype and qclass as 2 big-endian bytes each, then the lower-cased presentation qname.
/// `qname_lower` must already be lower case (e.g. `Request::qname_lower`).
pub fn hash(qname_lower: &str, qtype: u16, qclass: u16, do_bit: bool, cd: bool) -> u64 {
    let flag = |b: bool| if b { b'1' } else { b'0' };
    let mut h = fnv1(FNV_OFFSET, &[flag(do_bit), flag(cd)]);
    h = fnv1(h, &qtype.to_be_bytes());
    h = fnv1(h, &qclass.to_be_bytes());
    fnv1(h, qname_lower.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn fnv64_reference_values() {
        // Go's hash/fnv New64 (FNV-1) of the empty input and of "a".
        assert_eq!(fnv1(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1(FNV_OFFSET, b"a"), 0xaf63_bd4c_8601_b7be);
    }

    #[test]
    fn every_field_changes_the_key() {
        let base = hash("miek.nl.", 1, 1, false, false);
        assert_ne!(base, hash("miek.nl.", 1, 1, true, false));
        assert_ne!(base, hash("miek.nl.", 1, 1, false, true));
        assert_ne!(base, hash("miek.nl.", 28, 1, false, false));
        assert_ne!(base, hash("miek.nl.", 1, 3, false, false));
        assert_ne!(base, hash("miek.com.", 1, 1, false, false));
        assert_eq!(base, hash("miek.nl.", 1, 1, false, false));
    }
}
