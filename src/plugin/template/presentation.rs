//! Domain names and character strings in presentation format, with the escapes miekg/dns uses
//! (and therefore CoreDNS): `\DDD` (three decimal digits) and `\X` for any other byte. Labels may
//! hold any octets; only the wire limits apply (labels of 1–63 octets, names of at most 255).

use hickory_proto::rr::Name;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use crate::server::Request;

/// The longest name on the wire, length octets and the root label included.
const MAX_NAME_WIRE: usize = 255;
/// The longest label.
const MAX_LABEL: usize = 63;

fn is_ddd(s: &[u8]) -> bool {
    s.len() >= 3 && s[..3].iter().all(u8::is_ascii_digit)
}

/// miekg's `dddToByte`: the decimal value, wrapping past 255 as a Go `byte` does.
fn ddd_to_byte(s: &[u8]) -> u8 {
    let d = |i: usize| s[i].wrapping_sub(b'0');
    d(0).wrapping_mul(100).wrapping_add(d(1).wrapping_mul(10)).wrapping_add(d(2))
}

/// The labels (raw octets) of a presentation-format name, decoding escapes as miekg's
/// `packDomainName` does. A name without a final dot is taken as fully qualified. Errors on an
/// empty label, a label longer than 63 octets or a name longer than 255 octets on the wire.
pub fn name_labels(s: &str) -> Result<Vec<Vec<u8>>, String> {
    if s.is_empty() {
        return Err("empty name".into());
    }
    if s == "." {
        return Ok(Vec::new());
    }
    let b = s.as_bytes();
    let mut labels = Vec::new();
    let mut label = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                let rest = &b[i + 1..];
                if is_ddd(rest) {
                    label.push(ddd_to_byte(rest));
                    i += 4;
                } else if let Some(&c) = rest.first() {
                    label.push(c);
                    i += 2;
                } else {
                    // A dangling backslash is dropped, as packDomainName does.
                    i += 1;
                }
            }
            b'.' => {
                if label.is_empty() {
                    return Err(format!("empty label in {s}"));
                }
                labels.push(std::mem::take(&mut label));
                i += 1;
            }
            c => {
                label.push(c);
                i += 1;
            }
        }
    }
    if !label.is_empty() {
        labels.push(label);
    }
    if labels.iter().any(|l| l.len() > MAX_LABEL) {
        return Err(format!("label longer than 63 octets in {s}"));
    }
    if labels.iter().map(|l| l.len() + 1).sum::<usize>() + 1 > MAX_NAME_WIRE {
        return Err(format!("name longer than 255 octets: {s}"));
    }
    Ok(labels)
}

/// miekg's `IsDomainName`: any octets, labels of 1–63 octets, at most 255 octets on the wire.
pub fn is_domain_name(s: &str) -> bool {
    name_labels(s).is_ok()
}

/// A fully qualified [`Name`] from presentation text (see [`name_labels`]).
pub fn name_from_text(s: &str) -> Result<Name, String> {
    let labels = name_labels(s)?;
    if labels.is_empty() {
        return Ok(Name::root());
    }
    Name::from_labels(labels.iter().map(Vec::as_slice)).map_err(|e| format!("{s}: {e}"))
}

/// Appends the presentation form of one label's octets to `out` (miekg's `sprintName`):
/// `. space ' @ ; ( ) " \` as `\X`, bytes outside `' '..='~'` as `\DDD`.
fn push_label(out: &mut String, label: &[u8]) {
    for &b in label {
        match b {
            b'.' | b' ' | b'\'' | b'@' | b';' | b'(' | b')' | b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            b if !(b' '..=b'~').contains(&b) => out.push_str(&format!("\\{b:03}")),
            b => out.push(char::from(b)),
        }
    }
}

/// The presentation form of `name` as miekg/dns prints it, always fully qualified.
pub fn name_to_text(name: &Name) -> String {
    if name.is_root() {
        return ".".into();
    }
    let mut out = String::with_capacity(name.len() + 1);
    for label in name.iter() {
        push_label(&mut out, label);
        out.push('.');
    }
    out
}

/// True for a byte that `dns.Name.String()` prints as itself.
fn prints_plain(b: u8) -> bool {
    (b'!'..=b'~').contains(&b) && !matches!(b, b'\'' | b'@' | b';' | b'(' | b')' | b'"' | b'\\')
}

/// The query's name as CoreDNS's `state.Name()` gives it before lower-casing:
/// `dns.Name(q.Name).String()`, i.e. miekg's escapes, case as sent. That holds for a name read
/// from the query and for one a `rewrite` rule wrote (`a\032b.` and `x;y.` print as `a\ b.` and
/// `x\;y.`). Names of plain bytes are taken as they are; others are read from the query bytes.
pub fn request_qname(req: &Request) -> String {
    if req.qname.bytes().all(prints_plain) {
        return req.qname.clone();
    }
    let mut decoder = BinDecoder::new(&req.wire);
    if decoder.read_slice(12).is_err() {
        return req.qname.clone();
    }
    match Name::read(&mut decoder) {
        Ok(n) => name_to_text(&n),
        Err(_) => req.qname.clone(),
    }
}

/// Decodes a character string in presentation form (without its quotes) to octets, as miekg's
/// `packTxtString` does: `\DDD` is one octet, `\X` is `X`, a dangling backslash is dropped.
pub fn decode_string(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let rest = &b[i + 1..];
            if is_ddd(rest) {
                out.push(ddd_to_byte(rest));
                i += 4;
            } else if let Some(&c) = rest.first() {
                out.push(c);
                i += 2;
            } else {
                i += 1;
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn names_take_any_octets() {
        for (text, labels) in [
            ("-a.example.", vec![b"-a".to_vec(), b"example".to_vec()]),
            ("a\\000b.", vec![b"a\0b".to_vec()]),
            ("a\\ b.", vec![b"a b".to_vec()]),
            ("\\;\\(\\@.", vec![b";(@".to_vec()]),
            ("x\\128.", vec![vec![b'x', 128]]),
            ("a\\.b.c", vec![b"a.b".to_vec(), b"c".to_vec()]),
            (";@(.", vec![b";@(".to_vec()]),
        ] {
            assert_eq!(name_labels(text), Ok(labels), "{text}");
        }
        assert!(name_labels("a..b.").is_err());
        assert!(name_labels(".a.").is_err());
        assert!(name_labels("").is_err());
        assert_eq!(name_labels("."), Ok(vec![]));
        let long = "a".repeat(64);
        assert!(!is_domain_name(&format!("{long}.")));
        assert!(is_domain_name(&format!("{}.", "a".repeat(63))));
        // \000 counts as one octet: 63 of them make a valid label.
        assert!(is_domain_name(&format!("{}.", "\\000".repeat(63))));
        let label = "a".repeat(63);
        assert!(is_domain_name(&format!("{label}.{label}.{label}.{}.", "a".repeat(61))));
        assert!(!is_domain_name(&format!("{label}.{label}.{label}.{}.", "a".repeat(62))));
    }

    #[test]
    fn names_print_as_miekg_does() {
        for text in ["-a.example.", "a\\000b.", "a\\ b.", "\\;\\(\\@\\).", "x\\128.", "a\\.b.c.", "\\\"\\\\\\'."] {
            let name = name_from_text(text).unwrap();
            assert_eq!(name_to_text(&name), text);
        }
        assert_eq!(name_to_text(&name_from_text("x\\065").unwrap()), "xA.");
        // 300 wraps to 44 (`,`), as a Go byte does.
        assert_eq!(name_to_text(&name_from_text("\\300.").unwrap()), ",.");
        assert_eq!(name_to_text(&Name::root()), ".");
    }

    #[test]
    fn plain_bytes_print_as_themselves() {
        assert!(b"az-_*.09!,/".iter().all(|&b| prints_plain(b)));
        assert!(b" ;@()\"\\'\x7f\x80\0".iter().all(|&b| !prints_plain(b)));
    }

    #[test]
    fn strings_decode_escapes() {
        assert_eq!(decode_string("x\\065y"), b"xAy".to_vec());
        assert_eq!(decode_string("\\\"\\\\\\z"), b"\"\\z".to_vec());
        assert_eq!(decode_string("a\\"), b"a".to_vec());
    }
}
