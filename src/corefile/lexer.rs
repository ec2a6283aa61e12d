//! The Corefile lexer: splits text into [`Token`]s with file, line and column, following the
//! rules of the coredns/caddy lexer (whitespace separation, `#` comments, `"` quoting).
//!
//! Behaviour worth knowing (all deliberate, to match CoreDNS):
//! - a leading byte order mark is dropped;
//! - outside quotes `\r` is deleted wherever it appears, even inside a word;
//! - `#` at the start of a word comments out the rest of the line; a `#` in the middle of a
//!   word ends the word and hides the characters up to the next whitespace only;
//! - a word that *starts* with `"` runs to the next unescaped `"` (or end of input), may span
//!   lines, and knows only the escape `\"`; a `"` inside a word is an ordinary character;
//! - an unterminated quoted string that collected nothing produces no token.

use std::sync::Arc;

use nom::branch::alt;
use nom::bytes::complete::{tag, take_till, take_till1, take_while1};
use nom::character::complete::{anychar, char};
use nom::combinator::{eof, map, opt, value};
use nom::multi::fold_many0;
use nom::{IResult, Parser};

use super::error::{CorefileError, ErrorKind};
use super::token::Token;

/// One lexical piece of input.
#[derive(Clone)]
enum Piece {
    /// Whitespace or a comment: nothing to emit.
    Skip,
    /// A token with its text; `None` for an unterminated, empty quoted string.
    Token(Option<String>),
}

/// True for characters that end an unquoted word (Unicode whitespace other than `\r`).
fn is_separator(c: char) -> bool {
    c.is_whitespace() && c != '\r'
}

/// Whitespace, including `\r` and `\n`.
fn space(input: &str) -> IResult<&str, Piece> {
    value(Piece::Skip, take_while1(char::is_whitespace)).parse(input)
}

/// A `#` at the start of a word: everything up to the end of the line.
fn line_comment(input: &str) -> IResult<&str, Piece> {
    value(Piece::Skip, (char('#'), take_till(|c| c == '\n'))).parse(input)
}

/// The body of a quoted string: `\"` is a quote, any other backslash pair is kept verbatim,
/// a lone backslash at the end of input vanishes.
fn quoted_body(input: &str) -> IResult<&str, String> {
    fold_many0(
        alt((
            value("\"".to_string(), tag("\\\"")),
            map((char('\\'), anychar), |(_, c)| format!("\\{c}")),
            value(String::new(), (char('\\'), eof)),
            map(take_till1(|c| c == '"' || c == '\\'), |s: &str| s.to_string()),
        )),
        String::new,
        |mut acc, part| {
            acc.push_str(&part);
            acc
        },
    )
    .parse(input)
}

/// A token starting with `"`.
fn quoted(input: &str) -> IResult<&str, Piece> {
    let (rest, (_, body, close)) = (char('"'), quoted_body, opt(char('"'))).parse(input)?;
    let text = if close.is_some() || !body.is_empty() { Some(body) } else { None };
    Ok((rest, Piece::Token(text)))
}

/// An unquoted word; `\r` is removed from it, and a `#` inside it hides the rest of the word.
fn word(input: &str) -> IResult<&str, Piece> {
    let (rest, raw) = take_till1(|c| is_separator(c) || c == '#').parse(input)?;
    let (rest, _) = opt((char('#'), take_till(is_separator))).parse(rest)?;
    let text = if raw.contains('\r') { raw.replace('\r', "") } else { raw.to_string() };
    Ok((rest, Piece::Token(Some(text))))
}

fn piece(input: &str) -> IResult<&str, Piece> {
    alt((space, line_comment, quoted, word)).parse(input)
}

/// Splits `text` into tokens attributed to `file`. Never fails on valid UTF-8.
pub fn lex(text: &str, file: &Arc<str>) -> Vec<Token> {
    let mut input = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut out = Vec::new();
    let (mut line, mut col) = (1u32, 1u32);
    while !input.is_empty() {
        let Ok((rest, piece)) = piece(input) else {
            // Unreachable: every non-empty input starts with one of the alternatives. Stop
            // rather than loop if that ever changes.
            break;
        };
        let consumed = &input[..input.len() - rest.len()];
        if consumed.is_empty() {
            break;
        }
        if let Piece::Token(Some(t)) = piece {
            let newlines = t.matches('\n').count() as u32;
            out.push(Token { text: t, file: file.clone(), line, col, newlines });
        }
        match consumed.rfind('\n') {
            None => col = col.saturating_add(consumed.chars().count() as u32),
            Some(i) => {
                line = line.saturating_add(consumed.matches('\n').count() as u32);
                col = consumed[i + 1..].chars().count() as u32 + 1;
            }
        }
        input = rest;
    }
    out
}

/// Decodes `bytes` as UTF-8, or reports where the first invalid sequence is.
pub fn decode<'a>(bytes: &'a [u8], file: &Arc<str>) -> Result<&'a str, CorefileError> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s),
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            // The valid prefix decodes by construction.
            let prefix = std::str::from_utf8(good).unwrap_or_default();
            let line = prefix.matches('\n').count() as u32 + 1;
            let col = prefix.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) as u32 + 1;
            let bad = bytes.get(e.valid_up_to()).copied().unwrap_or(0);
            Err(CorefileError::at_pos(
                ErrorKind::Parse,
                file.clone(),
                line,
                col,
                format!("invalid UTF-8 in Corefile (byte 0x{bad:02x}); Corefiles must be UTF-8 text"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn toks(s: &str) -> Vec<(String, u32)> {
        lex(s, &Arc::from("Corefile")).into_iter().map(|t| (t.text, t.line)).collect()
    }

    fn texts(s: &str) -> Vec<String> {
        lex(s, &Arc::from("Corefile")).into_iter().map(|t| t.text).collect()
    }

    fn owned(v: &[(&str, u32)]) -> Vec<(String, u32)> {
        v.iter().map(|(s, l)| (s.to_string(), *l)).collect()
    }

    #[test]
    fn case1_four_tokens_on_line_one() {
        assert_eq!(toks("host:123 { directive }"), owned(&[("host:123", 1), ("{", 1), ("directive", 1), ("}", 1)]));
    }

    #[test]
    fn case2_comments_keep_line_count() {
        let src = "host:123 {\n\t#comment\n\tdirective\n\t# comment\n\tfoobar # another comment\n\tfoobar\n}";
        assert_eq!(
            toks(src),
            owned(&[("host:123", 1), ("{", 1), ("directive", 3), ("foobar", 5), ("foobar", 6), ("}", 7)])
        );
        assert_eq!(texts("foobar # c"), vec!["foobar"]);
    }

    #[test]
    fn case3_quoted_value_is_one_token() {
        assert_eq!(texts("a \"quoted value\" b"), vec!["a", "quoted value", "b"]);
    }

    #[test]
    fn case4_escaped_quotes() {
        assert_eq!(texts(r#""quoted \"value\" inside""#), vec![r#"quoted "value" inside"#]);
    }

    #[test]
    fn case5_other_backslashes_stay() {
        assert_eq!(texts(r#""don't\escape""#), vec![r"don't\escape"]);
        assert_eq!(texts(r#""C:\php\php-cgi.exe""#), vec![r"C:\php\php-cgi.exe"]);
        assert_eq!(texts(r#""a\\b""#), vec![r"a\\b"]);
    }

    #[test]
    fn case6_quoted_newline() {
        let t = lex("\"quoted\nvalue\" next", &Arc::from("f"));
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].text.as_str(), t[0].line, t[0].newlines), ("quoted\nvalue", 1, 1));
        assert_eq!((t[1].text.as_str(), t[1].line), ("next", 2));
    }

    #[test]
    fn case7_empty_quoted_token() {
        assert_eq!(texts("empty \"\" string"), vec!["empty", "", "string"]);
    }

    #[test]
    fn case8_crlf() {
        assert_eq!(
            toks("skip those\r\nCR characters"),
            owned(&[("skip", 1), ("those", 1), ("CR", 2), ("characters", 2)])
        );
        assert_eq!(texts("ab\rcd"), vec!["abcd"]);
    }

    #[test]
    fn case9_bom_dropped() {
        assert_eq!(texts("\u{FEFF}:8080"), vec![":8080"]);
        // Only a leading BOM is special.
        assert_eq!(texts("a \u{FEFF}b"), vec!["a", "\u{FEFF}b"]);
    }

    #[test]
    fn mid_word_comment_hides_only_rest_of_word() {
        assert_eq!(texts("foo#bar"), vec!["foo"]);
        assert_eq!(texts("foo#bar baz\nqux"), vec!["foo", "baz", "qux"]);
        assert_eq!(texts("#foo bar\nqux"), vec!["qux"]);
    }

    #[test]
    fn mid_word_quote_is_literal() {
        assert_eq!(texts("a\"b c\""), vec!["a\"b", "c\""]);
        assert_eq!(texts("\"a\"b"), vec!["a", "b"]);
        assert_eq!(texts("\"a\"\"b\""), vec!["a", "b"]);
    }

    #[test]
    fn unterminated_quotes() {
        assert_eq!(texts("\"abc"), vec!["abc"]);
        assert_eq!(texts("x \""), vec!["x"]);
        assert_eq!(texts("\"ab\\"), vec!["ab"]);
        assert_eq!(texts("\"# not a comment\""), vec!["# not a comment"]);
    }

    #[test]
    fn unicode_whitespace_separates() {
        assert_eq!(texts("a\u{00A0}b\u{2003}c\u{0085}d\u{000B}e"), vec!["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn columns_are_character_based() {
        let t = lex("  é \"x y\"\n\tz", &Arc::from("f"));
        let pos: Vec<(u32, u32)> = t.iter().map(|t| (t.line, t.col)).collect();
        assert_eq!(pos, vec![(1, 3), (1, 5), (2, 2)]);
    }

    #[test]
    fn empty_inputs() {
        for s in ["", "\n", " ", "\t\n", "\u{FEFF}", "# only"] {
            assert_eq!(texts(s), Vec::<String>::new(), "{s:?}");
        }
    }

    #[test]
    fn invalid_utf8_reports_position() {
        let err = decode(b"ok\nab\xffc", &Arc::from("Corefile")).unwrap_err();
        assert_eq!((err.line, err.col), (2, 3));
        assert!(err.message.contains("invalid UTF-8"), "{}", err.message);
        assert!(err.message.contains("0xff"), "{}", err.message);
    }
}
