//! Tokens with their source position.

use std::sync::Arc;

/// One Corefile token: its text (quotes removed) and where it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// The token text after quote removal and environment substitution.
    pub text: String,
    /// The file the token was read from (as given, or absolute for imports).
    pub file: Arc<str>,
    /// 1-based line of the token's first character.
    pub line: u32,
    /// 1-based column (in characters) of the token's first character.
    pub col: u32,
    /// Number of `\n` characters inside the token (quoted tokens may span lines).
    pub newlines: u32,
}

impl Token {
    /// A token at a given position; handy for tests and synthesised tokens.
    pub fn new(text: impl Into<String>, file: Arc<str>, line: u32, col: u32) -> Token {
        let text = text.into();
        let newlines = text.matches('\n').count() as u32;
        Token { text, file, line, col, newlines }
    }

    /// True when `next` starts a new line relative to this token (CoreDNS's rule: a later line
    /// than this token's line plus the line breaks inside it, or another file).
    pub fn is_line_break_before(&self, next: &Token) -> bool {
        next.file != self.file || next.line > self.line + self.newlines
    }
}

/// Splits text on whitespace into tokens with line/column, without quotes, comments or
/// substitution. Only for tests of plugin setup code that need a token stream quickly.
pub fn simple_tokens(text: &str, file: &str) -> Vec<Token> {
    let file: Arc<str> = Arc::from(file);
    let mut out = Vec::new();
    for (ln, line) in text.lines().enumerate() {
        let mut col = 0u32;
        let mut start: Option<(u32, String)> = None;
        for ch in line.chars() {
            col += 1;
            if ch.is_whitespace() {
                if let Some((c, t)) = start.take() {
                    out.push(Token::new(t, file.clone(), ln as u32 + 1, c));
                }
            } else {
                match &mut start {
                    Some((_, t)) => t.push(ch),
                    None => start = Some((col, ch.to_string())),
                }
            }
        }
        if let Some((c, t)) = start.take() {
            out.push(Token::new(t, file.clone(), ln as u32 + 1, c));
        }
    }
    out
}
