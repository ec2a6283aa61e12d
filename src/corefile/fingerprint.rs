//! A stable digest of parsed server blocks, for reload change detection.
//!
//! CoreDNS's reload plugin hashes (SHA-512) the JSON encoding of the parsed server blocks:
//! `[{"Keys":[...],"Tokens":{"<directive>":[{"File":..,"Line":..,"Text":..}]}}]`, with directive
//! names sorted (Go encodes maps with sorted keys). This module produces the same shape, so
//! whitespace and comment edits that keep every token's line give the same fingerprint,
//! while moving a token to another line changes it. Columns are not part of it.

use std::fmt::Write;

use sha2::{Digest, Sha512};

use super::ast::ServerBlock;

/// SHA-512 (lower-case hex) over a canonical serialisation of `blocks`.
pub fn fingerprint(blocks: &[ServerBlock]) -> String {
    hex::encode(Sha512::digest(canonical_json(blocks).as_bytes()))
}

/// The canonical serialisation: Go `encoding/json` output for CoreDNS's `[]ServerBlock`.
pub fn canonical_json(blocks: &[ServerBlock]) -> String {
    if blocks.is_empty() {
        return "null".to_string();
    }
    let mut out = String::from("[");
    for (i, b) in blocks.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"Keys\":[");
        for (j, k) in b.keys.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            go_string(&mut out, &k.text);
        }
        out.push_str("],\"Tokens\":{");
        let mut dirs: Vec<_> = b.directives.iter().collect();
        dirs.sort_by(|a, b| a.0.cmp(&b.0));
        for (j, (name, toks)) in dirs.into_iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            go_string(&mut out, name);
            out.push_str(":[");
            for (n, t) in toks.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str("{\"File\":");
                go_string(&mut out, &t.file);
                let _ = write!(out, ",\"Line\":{},\"Text\":", t.line);
                go_string(&mut out, &t.text);
                out.push('}');
            }
            out.push(']');
        }
        out.push_str("}}");
    }
    out.push(']');
    out
}

/// A JSON string the way Go's `encoding/json` writes it (HTML-safe escaping included).
fn go_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corefile::{parse_str, ParseOptions};
    use pretty_assertions::{assert_eq, assert_ne};

    fn fp(text: &str) -> String {
        fingerprint(&parse_str(text, "Corefile", &ParseOptions::default()).unwrap())
    }

    #[test]
    fn json_shape_matches_go() {
        let blocks =
            parse_str(".:53 {\n  forward . <a&b>\n  cache 30\n}\n", "Corefile", &ParseOptions::default()).unwrap();
        assert_eq!(
            canonical_json(&blocks),
            concat!(
                r#"[{"Keys":[".:53"],"Tokens":{"cache":[{"File":"Corefile","Line":3,"Text":"cache"},"#,
                r#"{"File":"Corefile","Line":3,"Text":"30"}],"forward":[{"File":"Corefile","Line":2,"Text":"forward"},"#,
                r#"{"File":"Corefile","Line":2,"Text":"."},{"File":"Corefile","Line":2,"Text":"\u003ca\u0026b\u003e"}]}}]"#
            )
        );
        assert_eq!(canonical_json(&[]), "null");
    }

    #[test]
    fn whitespace_and_comments_on_same_lines_do_not_matter() {
        let a = fp(".:53 {\n  errors\n  cache 30\n}\n");
        let b = fp(".:53   {   # main\n\terrors    # log errors\n  cache   30\n}");
        assert_eq!(a, b);
        assert_eq!(a.len(), 128);
    }

    #[test]
    fn token_lines_and_values_matter() {
        let a = fp(".:53 {\n  errors\n  cache 30\n}\n");
        let swapped = fp(".:53 {\n  cache 30\n  errors\n}\n");
        let shifted = fp("\n.:53 {\n  errors\n  cache 30\n}\n");
        let changed = fp(".:53 {\n  errors\n  cache 31\n}\n");
        assert_ne!(a, swapped, "lines of tokens changed");
        assert_ne!(a, shifted);
        assert_ne!(a, changed);
        let same_again = fp(".:53 {\n  errors\n  cache 30\n}\n");
        assert_eq!(a, same_again);
    }
}
