//! Type, class and rcode names as CoreDNS (miekg/dns) prints them in logs and metrics.

/// The mnemonic of a record type, or `TYPEnnn` (miekg's `dns.Type.String`).
pub fn type_name(t: u16) -> String {
    let name = match t {
        0 => "None",
        1 => "A",
        2 => "NS",
        3 => "MD",
        4 => "MF",
        5 => "CNAME",
        6 => "SOA",
        7 => "MB",
        8 => "MG",
        9 => "MR",
        10 => "NULL",
        12 => "PTR",
        13 => "HINFO",
        14 => "MINFO",
        15 => "MX",
        16 => "TXT",
        17 => "RP",
        18 => "AFSDB",
        19 => "X25",
        20 => "ISDN",
        21 => "RT",
        23 => "NSAP-PTR",
        24 => "SIG",
        25 => "KEY",
        26 => "PX",
        27 => "GPOS",
        28 => "AAAA",
        29 => "LOC",
        30 => "NXT",
        31 => "EID",
        32 => "NIMLOC",
        33 => "SRV",
        34 => "ATMA",
        35 => "NAPTR",
        36 => "KX",
        37 => "CERT",
        39 => "DNAME",
        41 => "OPT",
        42 => "APL",
        43 => "DS",
        44 => "SSHFP",
        45 => "IPSECKEY",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        49 => "DHCID",
        50 => "NSEC3",
        51 => "NSEC3PARAM",
        52 => "TLSA",
        53 => "SMIMEA",
        55 => "HIP",
        56 => "NINFO",
        57 => "RKEY",
        58 => "TALINK",
        59 => "CDS",
        60 => "CDNSKEY",
        61 => "OPENPGPKEY",
        62 => "CSYNC",
        63 => "ZONEMD",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        100 => "UINFO",
        101 => "UID",
        102 => "GID",
        103 => "UNSPEC",
        104 => "NID",
        105 => "L32",
        106 => "L64",
        107 => "LP",
        108 => "EUI48",
        109 => "EUI64",
        128 => "NXNAME",
        249 => "TKEY",
        250 => "TSIG",
        251 => "IXFR",
        252 => "AXFR",
        253 => "MAILB",
        254 => "MAILA",
        255 => "ANY",
        256 => "URI",
        257 => "CAA",
        258 => "AVC",
        260 => "AMTRELAY",
        261 => "RESINFO",
        32768 => "TA",
        32769 => "DLV",
        65535 => "Reserved",
        _ => return format!("TYPE{t}"),
    };
    name.to_string()
}

/// The mnemonic of a class, or `CLASSnnn`.
pub fn class_name(c: u16) -> String {
    class_mnemonic(c).map_or_else(|| format!("CLASS{c}"), str::to_string)
}

/// miekg's `ClassToString` entry for a class, if it has one.
pub fn class_mnemonic(c: u16) -> Option<&'static str> {
    Some(match c {
        1 => "IN",
        2 => "CS",
        3 => "CH",
        4 => "HS",
        254 => "NONE",
        255 => "ANY",
        _ => return None,
    })
}

/// miekg's `StringToClass` (case-sensitive).
pub fn class_from_name(s: &str) -> Option<u16> {
    [1, 2, 3, 4, 254, 255].into_iter().find(|&c| class_mnemonic(c) == Some(s))
}

/// The mnemonic of an rcode, or None for codes miekg/dns has no name for.
pub fn rcode_name(r: u16) -> Option<&'static str> {
    Some(match r {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        11 => "DSOTYPENI",
        16 => "BADSIG",
        17 => "BADKEY",
        18 => "BADTIME",
        19 => "BADMODE",
        20 => "BADNAME",
        21 => "BADALG",
        22 => "BADTRUNC",
        23 => "BADCOOKIE",
        _ => return None,
    })
}

/// miekg's `StringToRcode`: the rcode with this exact (upper-case) mnemonic.
pub fn rcode_from_name(s: &str) -> Option<u16> {
    (0..=23).find(|&r| rcode_name(r) == Some(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn names() {
        assert_eq!(type_name(1), "A");
        assert_eq!(type_name(23), "NSAP-PTR");
        assert_eq!(type_name(65280), "TYPE65280");
        assert_eq!(class_name(1), "IN");
        assert_eq!(class_name(3), "CH");
        assert_eq!(class_name(7), "CLASS7");
        assert_eq!(class_from_name("CH"), Some(3));
        assert_eq!(class_from_name("NONE"), Some(254));
        assert_eq!(class_from_name("in"), None);
        assert_eq!(rcode_name(3), Some("NXDOMAIN"));
        assert_eq!(rcode_name(12), None);
        assert_eq!(rcode_name(11), Some("DSOTYPENI"));
        assert_eq!(rcode_from_name("BADCOOKIE"), Some(23));
        assert_eq!(rcode_from_name("DSOTYPENI"), Some(11));
        assert_eq!(rcode_from_name("nxdomain"), None);
    }
}
