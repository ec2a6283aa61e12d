//! One resource record in zone-file text, read the way miekg's zone parser (`dns.NewRR`) reads
//! it where that differs from hickory's: owner and target names may hold any octets (with `\DDD`
//! and `\X` escapes), TXT strings decode the same escapes and are split into 255-octet strings.
//! Record types whose data holds no name or string are left to hickory's parser.

use hickory_proto::rr::rdata::{CNAME, MX, NS, PTR, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::presentation::{decode_string, name_from_text};
use super::setup::{class_from_str, type_from_str};

/// miekg's default TTL for a record without one.
pub const DEFAULT_TTL: u32 = 3600;

/// One token of a zone-file line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    /// The text with its escapes kept (quotes removed).
    text: String,
    /// Whether the token was a quoted string.
    quoted: bool,
    /// Byte offset of the token (of its opening quote) in the line.
    start: usize,
}

/// Splits the first record of `text` into tokens as miekg's lexer does: blanks separate tokens,
/// `\` escapes the next character, `"..."` is one token, `;` starts a comment, `(` and `)` group
/// lines. None for forms left to hickory (a leading blank, a `$` directive).
fn tokenize(text: &str) -> Option<Result<Vec<Token>, String>> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    if chars.first().is_none_or(|&(_, c)| c.is_whitespace() || c == '$') {
        return None;
    }
    let mut tokens = Vec::new();
    let mut cur: Option<Token> = None;
    let mut depth = 0usize;
    let mut i = 0;
    let flush = |cur: &mut Option<Token>, tokens: &mut Vec<Token>| {
        if let Some(t) = cur.take() {
            tokens.push(t);
        }
    };
    while let Some(&(at, c)) = chars.get(i) {
        i += 1;
        match c {
            '\\' => {
                let t = cur.get_or_insert_with(|| Token { text: String::new(), quoted: false, start: at });
                t.text.push('\\');
                if let Some(&(_, next)) = chars.get(i) {
                    t.text.push(next);
                    i += 1;
                }
            }
            '"' => {
                flush(&mut cur, &mut tokens);
                let mut s = String::new();
                loop {
                    let Some(&(_, q)) = chars.get(i) else { return Some(Err("dns: unbalanced quotes".into())) };
                    i += 1;
                    match q {
                        '"' => break,
                        '\\' => {
                            s.push('\\');
                            if let Some(&(_, next)) = chars.get(i) {
                                s.push(next);
                                i += 1;
                            }
                        }
                        q => s.push(q),
                    }
                }
                tokens.push(Token { text: s, quoted: true, start: at });
            }
            ';' => {
                flush(&mut cur, &mut tokens);
                while chars.get(i).is_some_and(|&(_, c)| c != '\n') {
                    i += 1;
                }
            }
            '(' => {
                flush(&mut cur, &mut tokens);
                depth += 1;
            }
            ')' => {
                flush(&mut cur, &mut tokens);
                if depth == 0 {
                    return Some(Err("dns: extra closing brace".into()));
                }
                depth -= 1;
            }
            '\n' if depth == 0 => {
                flush(&mut cur, &mut tokens);
                break;
            }
            c if c.is_whitespace() => flush(&mut cur, &mut tokens),
            c => cur.get_or_insert_with(|| Token { text: String::new(), quoted: false, start: at }).text.push(c),
        }
    }
    flush(&mut cur, &mut tokens);
    if depth != 0 {
        return Some(Err("dns: unbalanced brace".into()));
    }
    Some(Ok(tokens))
}

/// miekg's `stringToTTL`: seconds, or numbers with `s m h d w` units (`1h30m`).
fn string_to_ttl(s: &str) -> Option<u32> {
    let mut total: u32 = 0;
    let mut num: u32 = 0;
    let mut digits = false;
    for c in s.bytes() {
        let unit = match c.to_ascii_lowercase() {
            b'0'..=b'9' => {
                num = num.checked_mul(10)?.checked_add(u32::from(c - b'0'))?;
                digits = true;
                continue;
            }
            b's' => 1,
            b'm' => 60,
            b'h' => 3600,
            b'd' => 86400,
            b'w' => 604800,
            _ => return None,
        };
        if !digits {
            return None;
        }
        total = total.checked_add(num.checked_mul(unit)?)?;
        num = 0;
        digits = false;
    }
    total.checked_add(num)
}

/// A name in record text: `@` is the origin (the root here), anything else presentation text.
fn name_token(t: &Token) -> Result<Name, String> {
    if t.quoted {
        return Err(format!("dns: bad name {:?}", t.text));
    }
    if t.text == "@" {
        return Ok(Name::root());
    }
    name_from_text(&t.text).map_err(|e| format!("dns: bad name: {e}"))
}

fn u16_token(t: Option<&Token>, what: &str) -> Result<u16, String> {
    t.filter(|t| !t.quoted).and_then(|t| t.text.parse().ok()).ok_or_else(|| format!("dns: bad {what}"))
}

/// TXT data as miekg's `endingToTxtSlice` builds it: each token one string, a string longer
/// than 255 octets split into 255-octet strings.
fn txt_strings(tokens: &[Token]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for t in tokens {
        let dangling = t.text.bytes().rev().take_while(|&c| c == b'\\').count() % 2 == 1;
        if dangling {
            return Err("dns: bad TXT Txt".into());
        }
        let bytes = decode_string(&t.text);
        if bytes.is_empty() {
            out.push(Vec::new());
            continue;
        }
        out.extend(bytes.chunks(255).map(<[u8]>::to_vec));
    }
    Ok(out)
}

/// Parses `text` when it is a form this reader handles; None to leave it to hickory's parser,
/// with the owner name and TTL read here for the caller to put on hickory's record.
pub enum Parsed {
    /// The record.
    Done(Record),
    /// A type whose data hickory reads: `rdata` is the text after the type.
    Other {
        /// Owner name.
        owner: Name,
        /// TTL.
        ttl: u32,
        /// Class mnemonic as written (upper case).
        class: String,
        /// Type mnemonic (upper case).
        rtype: String,
        /// The record data text.
        rdata: String,
    },
}

/// Reads one record (see the module comment); None when the text is a form left to hickory.
pub fn parse(text: &str) -> Option<Result<Parsed, String>> {
    let tokens = match tokenize(text)? {
        Ok(t) => t,
        Err(e) => return Some(Err(e)),
    };
    Some(parse_tokens(text, &tokens))
}

fn parse_tokens(text: &str, tokens: &[Token]) -> Result<Parsed, String> {
    let owner_tok = tokens.first().ok_or_else(|| "dns: no RR found".to_string())?;
    let owner = name_token(owner_tok)?;
    let mut ttl = None;
    let mut class: Option<(u16, String)> = None;
    let mut i = 1;
    let rtype = loop {
        let t = tokens.get(i).filter(|t| !t.quoted).ok_or_else(|| "dns: missing RR type".to_string())?;
        let upper = t.text.to_ascii_uppercase();
        i += 1;
        if let Some(code) = type_from_str(&upper) {
            break (code, upper);
        }
        if class.is_none() {
            if let Some(c) = class_from_str(&upper) {
                class = Some((c, upper));
                continue;
            }
        }
        if ttl.is_none() && t.text.starts_with(|c: char| c.is_ascii_digit()) {
            ttl = Some(string_to_ttl(&t.text).ok_or_else(|| format!("dns: not a TTL: {:?}", t.text))?);
            continue;
        }
        return Err(format!("dns: unknown RR type: {:?}", t.text));
    };
    let ttl = ttl.unwrap_or(DEFAULT_TTL);
    let (class_code, class_text) = class.unwrap_or((1, "IN".into()));
    let rdata = &tokens[i..];
    let data = match RecordType::from(rtype.0) {
        RecordType::TXT => RData::TXT(TXT::from_bytes(txt_strings(rdata)?.iter().map(Vec::as_slice).collect())),
        RecordType::CNAME | RecordType::NS | RecordType::PTR => {
            let [target] = rdata else { return Err(format!("dns: bad {} rdata", rtype.1)) };
            let target = name_token(target)?;
            match RecordType::from(rtype.0) {
                RecordType::CNAME => RData::CNAME(CNAME(target)),
                RecordType::NS => RData::NS(NS(target)),
                _ => RData::PTR(PTR(target)),
            }
        }
        RecordType::MX => {
            let [pref, exchange] = rdata else { return Err("dns: bad MX rdata".into()) };
            RData::MX(MX::new(u16_token(Some(pref), "MX Pref")?, name_token(exchange)?))
        }
        RecordType::SRV => {
            let [prio, weight, port, target] = rdata else { return Err("dns: bad SRV rdata".into()) };
            RData::SRV(SRV::new(
                u16_token(Some(prio), "SRV Priority")?,
                u16_token(Some(weight), "SRV Weight")?,
                u16_token(Some(port), "SRV Port")?,
                name_token(target)?,
            ))
        }
        _ => {
            let rest = rdata.first().map_or("", |t| &text[t.start..]);
            // Only this record's line (and its parenthesised continuation) is data.
            return Ok(Parsed::Other { owner, ttl, class: class_text, rtype: rtype.1, rdata: rest.to_string() });
        }
    };
    let mut rec = Record::from_rdata(owner, ttl, data);
    rec.dns_class = DNSClass::from(class_code);
    Ok(Parsed::Done(rec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn done(text: &str) -> Record {
        match parse(text) {
            Some(Ok(Parsed::Done(r))) => r,
            Some(Ok(Parsed::Other { .. })) => panic!("{text}: left to hickory"),
            Some(Err(e)) => panic!("{text}: {e}"),
            None => panic!("{text}: not read"),
        }
    }

    fn txt(r: &Record) -> Vec<Vec<u8>> {
        match &r.data {
            RData::TXT(t) => t.txt_data.iter().map(|s| s.to_vec()).collect(),
            other => panic!("not TXT: {other:?}"),
        }
    }

    #[test]
    fn tokens_follow_the_zone_lexer() {
        let toks =
            |s: &str| tokenize(s).and_then(Result::ok).map(|v| v.into_iter().map(|t| t.text).collect::<Vec<_>>());
        assert_eq!(
            toks("a\\ b. 60 IN TXT \"x y\" ; c"),
            Some(vec!["a\\ b.".into(), "60".into(), "IN".into(), "TXT".into(), "x y".into()])
        );
        assert_eq!(
            toks("a. IN TXT ( \"1\"\n \"2\" )"),
            Some(vec!["a.".into(), "IN".into(), "TXT".into(), "1".into(), "2".into()])
        );
        assert_eq!(toks(" a. IN A 1.2.3.4"), None);
        assert!(matches!(tokenize("a. TXT \"x"), Some(Err(_))));
    }

    #[test]
    fn txt_long_strings_are_split() {
        let long = "b".repeat(600);
        let r = done(&format!("a. 60 IN TXT \"{long}\""));
        assert_eq!(txt(&r).iter().map(Vec::len).collect::<Vec<_>>(), vec![255, 255, 90]);
        // An escape counts as one octet when splitting.
        let r = done(&format!("a. 60 IN TXT \"{}\\065\"", "c".repeat(255)));
        assert_eq!(txt(&r), vec![vec![b'c'; 255], b"A".to_vec()]);
        assert_eq!(txt(&done("a. 60 IN TXT \"\"")), vec![Vec::<u8>::new()]);
        assert_eq!(txt(&done("a. 60 IN TXT one two")), vec![b"one".to_vec(), b"two".to_vec()]);
    }

    #[test]
    fn txt_escapes_decode() {
        let r = done("a. 60 IN TXT \"x\\065y\" \"\\\"q\\\\\" \\z");
        assert_eq!(txt(&r), vec![b"xAy".to_vec(), b"\"q\\".to_vec(), b"z".to_vec()]);
        assert!(matches!(parse("a. 60 IN TXT x\\"), Some(Err(_))));
    }

    #[test]
    fn names_hold_any_octets() {
        let r = done("-a\\000\\ \\;\\(\\@\\128.example. 60 IN CNAME -t\\032x.example.");
        assert_eq!(r.name.iter().next(), Some(&b"-a\0 ;(@\x80"[..]));
        assert_eq!(r.ttl, 60);
        let RData::CNAME(c) = &r.data else { panic!("not CNAME") };
        assert_eq!(c.0.iter().next(), Some(&b"-t x"[..]));
        let r = done("_s._tcp.x. 1h IN SRV 0 5 80 -w.x.");
        assert_eq!(r.ttl, 3600);
        let r = done("x. CH 10 MX 5 @");
        assert_eq!((r.dns_class, r.ttl), (DNSClass::CH, 10));
        assert!(matches!(parse("x. 60 IN A 1.2.3.4"), Some(Ok(Parsed::Other { .. }))));
        assert!(matches!(parse("a..b. 60 IN A 1.2.3.4"), Some(Err(_))));
        assert!(matches!(parse("x. 60 IN MX x y."), Some(Err(_))));
        assert_eq!(string_to_ttl("1h30m"), Some(5400));
        assert_eq!(string_to_ttl("h"), None);
    }
}
