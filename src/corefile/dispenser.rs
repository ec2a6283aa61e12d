//! The token cursor plugins use to read their directive, with CoreDNS's dispenser semantics.

use std::sync::Arc;

use super::error::{CorefileError, ErrorKind};
use super::token::Token;

/// A cursor over the tokens of one directive in one server block (all occurrences of the
/// directive, concatenated in order). The cursor starts before the first token.
#[derive(Clone, Debug)]
pub struct Dispenser {
    tokens: Vec<Token>,
    cursor: isize,
    nesting: usize,
    file: Arc<str>,
}

impl Dispenser {
    /// A dispenser over `tokens`; `file` names the source when there are no tokens.
    pub fn new(tokens: Vec<Token>, file: Arc<str>) -> Dispenser {
        Dispenser { tokens, cursor: -1, nesting: 0, file }
    }

    /// A dispenser over tokens made by [`super::token::simple_tokens`] (tests only).
    pub fn from_text(text: &str) -> Dispenser {
        Dispenser::new(super::token::simple_tokens(text, "Corefile"), Arc::from("Corefile"))
    }

    /// All tokens this dispenser covers.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// Advances to the next token, on any line. False at the end.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> bool {
        if self.cursor < self.tokens.len() as isize - 1 {
            self.cursor += 1;
            true
        } else {
            false
        }
    }

    /// Advances only if the next token is on the same line (a `{` counts as an argument).
    pub fn next_arg(&mut self) -> bool {
        if self.cursor < 0 {
            self.cursor += 1;
            return !self.tokens.is_empty();
        }
        let c = self.cursor as usize;
        if c + 1 < self.tokens.len() && !self.tokens[c].is_line_break_before(&self.tokens[c + 1]) {
            self.cursor += 1;
            return true;
        }
        false
    }

    /// Advances only if the next token starts a new line.
    pub fn next_line(&mut self) -> bool {
        if self.cursor < 0 {
            self.cursor += 1;
            return !self.tokens.is_empty();
        }
        let c = self.cursor as usize;
        if c + 1 < self.tokens.len() && self.tokens[c].is_line_break_before(&self.tokens[c + 1]) {
            self.cursor += 1;
            return true;
        }
        false
    }

    /// Enters or continues a `{ ... }` block that opens on the current line. Returns true while
    /// positioned on a token inside the block (the first token of each inner line is where
    /// plugins read their option name); false after the closing `}` or when no block opens.
    pub fn next_block(&mut self) -> bool {
        if self.nesting > 0 {
            self.next();
            if self.val() == "}" {
                self.nesting -= 1;
                return false;
            }
            return true;
        }
        if !self.next_arg() {
            return false;
        }
        if self.val() != "{" {
            self.cursor -= 1;
            return false;
        }
        self.next();
        if self.val() == "}" {
            return false;
        }
        self.nesting += 1;
        true
    }

    /// Current nesting depth of [`Dispenser::next_block`].
    pub fn nesting(&self) -> usize {
        self.nesting
    }

    /// The current token's text, or empty before the first / after the last token.
    pub fn val(&self) -> &str {
        self.token().map(|t| t.text.as_str()).unwrap_or("")
    }

    /// The current token, if the cursor is on one.
    pub fn token(&self) -> Option<&Token> {
        if self.cursor < 0 {
            return None;
        }
        self.tokens.get(self.cursor as usize)
    }

    /// The current token's line (0 before the first token).
    pub fn line(&self) -> u32 {
        self.token().map(|t| t.line).unwrap_or(0)
    }

    /// Reads the remaining arguments on the current line, stopping before a `{`.
    pub fn remaining_args(&mut self) -> Vec<String> {
        let mut args = Vec::new();
        while self.next_arg() {
            if self.val() == "{" {
                self.cursor -= 1;
                break;
            }
            args.push(self.val().to_string());
        }
        args
    }

    /// Reads exactly `n` arguments from the current line; None if the line has fewer.
    pub fn args(&mut self, n: usize) -> Option<Vec<String>> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            if !self.next_arg() {
                return None;
            }
            out.push(self.val().to_string());
        }
        Some(out)
    }

    fn current_or_last(&self) -> Token {
        if let Some(t) = self.token() {
            return t.clone();
        }
        if let Some(t) = self.tokens.last().filter(|_| self.cursor >= 0) {
            return t.clone();
        }
        self.tokens.first().cloned().unwrap_or_else(|| Token::new("", self.file.clone(), 0, 0))
    }

    /// `Error during parsing: MSG` at the current token.
    pub fn err(&self, msg: impl Into<String>) -> CorefileError {
        CorefileError::at(ErrorKind::Parse, &self.current_or_last(), msg)
    }

    /// CoreDNS's argument error: `Wrong argument count or unexpected line ending after 'X'`,
    /// or `Unexpected token '{', expecting argument` when positioned on a `{`.
    pub fn arg_err(&self) -> CorefileError {
        if self.val() == "{" {
            return self.err("Unexpected token '{', expecting argument");
        }
        self.err(format!("Wrong argument count or unexpected line ending after '{}'", self.val()))
    }

    /// `Syntax error: Unexpected token 'X', expecting 'EXPECTED'` at the current token.
    pub fn syntax_err(&self, expected: &str) -> CorefileError {
        CorefileError::at(
            ErrorKind::Syntax,
            &self.current_or_last(),
            format!("Unexpected token '{}', expecting '{}'", self.val(), expected),
        )
    }

    /// `Error during parsing: Unexpected EOF`.
    pub fn eof_err(&self) -> CorefileError {
        self.err("Unexpected EOF")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn next_arg_stays_on_line() {
        let mut d = Dispenser::from_text("cache 30 example.org\nforward . 1.1.1.1");
        assert!(d.next());
        assert_eq!(d.val(), "cache");
        assert_eq!(d.remaining_args(), vec!["30", "example.org"]);
        assert!(!d.next_arg());
        assert!(d.next());
        assert_eq!(d.val(), "forward");
    }

    #[test]
    fn next_block_walks_inner_lines() {
        let mut d = Dispenser::from_text("cache {\n success 10\n denial 5 1\n}\n");
        assert!(d.next());
        let mut seen = Vec::new();
        while d.next_block() {
            let name = d.val().to_string();
            seen.push((name, d.remaining_args()));
        }
        assert_eq!(
            seen,
            vec![("success".to_string(), vec!["10".to_string()]), ("denial".to_string(), vec!["5".into(), "1".into()])]
        );
        assert!(!d.next());
    }

    #[test]
    fn arg_err_wording() {
        let mut d = Dispenser::from_text("errors a b");
        d.next();
        assert_eq!(d.arg_err().message, "Wrong argument count or unexpected line ending after 'errors'");
    }
}
