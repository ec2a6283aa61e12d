//! Corefile errors: a position, CoreDNS-equivalent wording, and compiler-style rendering.

use std::fmt;
use std::sync::Arc;

use super::token::Token;

/// The message for a second occurrence of a once-per-block plugin.
pub const ONCE_PER_BLOCK: &str = "this plugin can only be used once per Server Block";

/// Which CoreDNS message shape an error takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// `FILE:LINE - Error during parsing: MSG`.
    Parse,
    /// `FILE:LINE - Syntax error: Unexpected token 'X', expecting 'Y'` (message holds the tail).
    Syntax,
    /// A message without CoreDNS's file/line wrapper (key inspection, plan building).
    Plain,
}

/// An error found while reading, expanding or interpreting a Corefile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorefileError {
    /// Message shape.
    pub kind: ErrorKind,
    /// `Some("forward")` for errors raised by a plugin's setup; rendered as `plugin/forward: `.
    pub plugin: Option<String>,
    /// The message in CoreDNS's words, e.g. `Unknown directive 'foobar'`.
    pub message: String,
    /// File name, or empty when the error has no position.
    pub file: Arc<str>,
    /// 1-based line, 0 when unknown.
    pub line: u32,
    /// 1-based column, 0 when unknown.
    pub col: u32,
    /// The offending token text (may be empty).
    pub token: String,
}

impl CorefileError {
    /// An `Error during parsing` error at `tok`.
    pub fn parse(tok: &Token, message: impl Into<String>) -> Self {
        Self::at(ErrorKind::Parse, tok, message)
    }

    /// A syntax error at `tok`; `message` is e.g. `Unexpected token 'x', expecting '}'`.
    pub fn syntax(tok: &Token, message: impl Into<String>) -> Self {
        Self::at(ErrorKind::Syntax, tok, message)
    }

    /// An error with the given shape at `tok`.
    pub fn at(kind: ErrorKind, tok: &Token, message: impl Into<String>) -> Self {
        CorefileError {
            kind,
            plugin: None,
            message: message.into(),
            file: tok.file.clone(),
            line: tok.line,
            col: tok.col,
            token: tok.text.clone(),
        }
    }

    /// An error with a file and line but no token (e.g. unexpected end of file).
    pub fn at_pos(kind: ErrorKind, file: Arc<str>, line: u32, col: u32, message: impl Into<String>) -> Self {
        CorefileError { kind, plugin: None, message: message.into(), file, line, col, token: String::new() }
    }

    /// An error without a position.
    pub fn plain(message: impl Into<String>) -> Self {
        CorefileError {
            kind: ErrorKind::Plain,
            plugin: None,
            message: message.into(),
            file: Arc::from(""),
            line: 0,
            col: 0,
            token: String::new(),
        }
    }

    /// CoreDNS's error for a second occurrence of a once-per-block plugin (cache, errors,
    /// prometheus, loop, hosts, ready).
    pub fn once_per_block() -> Self {
        Self::plain(ONCE_PER_BLOCK)
    }

    /// Marks the error as raised by `plugin`'s setup.
    pub fn in_plugin(mut self, plugin: &str) -> Self {
        if self.plugin.is_none() {
            self.plugin = Some(plugin.to_string());
        }
        self
    }

    /// The message as CoreDNS prints it, e.g.
    /// `plugin/forward: Corefile:3 - Error during parsing: unknown property 'x'`.
    pub fn coredns_message(&self) -> String {
        let prefix = self.plugin.as_ref().map(|p| format!("plugin/{p}: ")).unwrap_or_default();
        match self.kind {
            ErrorKind::Parse => format!("{prefix}{}:{} - Error during parsing: {}", self.file, self.line, self.message),
            ErrorKind::Syntax => format!("{prefix}{}:{} - Syntax error: {}", self.file, self.line, self.message),
            ErrorKind::Plain => format!("{prefix}{}", self.message),
        }
    }

    /// Compiler-style rendering: `FILE:LINE:COL: message`, the source line with a caret under the
    /// token, and CoreDNS's own wording. `source` is the text of `self.file`, when available.
    pub fn render(&self, source: Option<&str>) -> String {
        let mut out = String::new();
        let prefix = self.plugin.as_ref().map(|p| format!("plugin/{p}: ")).unwrap_or_default();
        if self.line > 0 {
            out.push_str(&format!("{}:{}:{}: {prefix}{}", self.file, self.line, self.col, self.message));
        } else {
            out.push_str(&format!("{prefix}{}", self.message));
        }
        if !self.token.is_empty() && self.line > 0 {
            out.push_str(&format!(" (at token '{}')", self.token));
        }
        out.push('\n');
        if let Some(src) = source {
            if let Some(text) = src.lines().nth(self.line.saturating_sub(1) as usize).filter(|_| self.line > 0) {
                let text = text.trim_end_matches('\r');
                let gutter = self.line.to_string();
                out.push_str(&format!("{} |\n{} | {}\n", " ".repeat(gutter.len()), gutter, text));
                let col = self.col.max(1) as usize - 1;
                let pad: String = text.chars().take(col).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
                let width = self.token.chars().count().clamp(1, 80);
                out.push_str(&format!("{} | {}{}\n", " ".repeat(gutter.len()), pad, "^".repeat(width)));
            }
        }
        out.push_str(&format!("  = coredns: {}\n", self.coredns_message()));
        out
    }
}

impl fmt::Display for CorefileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = self.plugin.as_ref().map(|p| format!("plugin/{p}: ")).unwrap_or_default();
        if self.line > 0 {
            write!(f, "{}:{}:{}: {prefix}{}", self.file, self.line, self.col, self.message)
        } else {
            write!(f, "{prefix}{}", self.message)
        }
    }
}

impl std::error::Error for CorefileError {}
