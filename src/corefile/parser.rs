//! The Corefile parser: groups tokens into server blocks the way coredns/caddy does, expanding
//! environment variables, `import` (files, globs, snippets) while it goes.
//!
//! The algorithm is a token cursor over a sequence that imports splice into, with the same
//! cursor moves as CoreDNS's parser so that its quirks (brace-less single block, missing `}`
//! not noticed after a nested block, glued snippet lines, ...) come out the same. It is
//! iterative: import depth never grows the call stack.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::ast::ServerBlock;
use super::env::Env;
use super::error::{CorefileError, ErrorKind};
use super::import::{ImportError, Importer};
use super::lexer;
use super::token::Token;
use crate::config::order;

/// Cap on snippet expansions in one parse.
pub const MAX_SNIPPET_EXPANSIONS: usize = 10_000;
/// Cap on file/glob expansions in one parse.
pub const MAX_FILE_EXPANSIONS: usize = 100_000;

/// How history below the cursor is kept: the parser never rewinds further than a few tokens
/// below the last non-import token, so older tokens can be dropped.
const HISTORY_KEEP: usize = 64;
const HISTORY_MAX: usize = 4096;

/// Parser settings.
#[derive(Clone, Debug)]
pub struct ParseOptions {
    /// Reject directives that are not in CoreDNS's plugin list (`Unknown directive 'x'`).
    pub validate_directives: bool,
    /// Values for `{$VAR}`/`{%VAR%}`; `None` reads the process environment.
    pub env: Option<HashMap<String, String>>,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions { validate_directives: true, env: None }
    }
}

/// Parses Corefile text read from `file` (the name used in tokens and errors; relative imports
/// resolve against its directory, or the current directory when `file` is empty).
pub fn parse_str(text: &str, file: &str, opts: &ParseOptions) -> Result<Vec<ServerBlock>, CorefileError> {
    let name: Arc<str> = Arc::from(file);
    let tokens = lexer::lex(text, &name);
    Parser::new(tokens, name, opts).parse_all()
}

/// Parses raw Corefile bytes; invalid UTF-8 is an error naming the position.
pub fn parse_bytes(bytes: &[u8], file: &str, opts: &ParseOptions) -> Result<Vec<ServerBlock>, CorefileError> {
    let name: Arc<str> = Arc::from(file);
    let text = lexer::decode(bytes, &name)?;
    parse_str(text, file, opts)
}

/// Reads and parses the Corefile at `path`.
pub fn parse_file(path: &Path, opts: &ParseOptions) -> Result<Vec<ServerBlock>, CorefileError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| CorefileError::plain(format!("unable to read {shown}: {e}")))?;
    parse_bytes(&bytes, &shown, opts)
}

/// The block being assembled.
#[derive(Default)]
struct BlockBuilder {
    keys: Vec<Token>,
    directives: Vec<(String, Vec<Token>)>,
    index: HashMap<String, usize>,
}

impl BlockBuilder {
    /// The slot for directive `dir`, created on first use.
    fn slot(&mut self, dir: &str) -> usize {
        match self.index.get(dir) {
            Some(&i) => i,
            None => {
                self.directives.push((dir.to_string(), Vec::new()));
                self.index.insert(dir.to_string(), self.directives.len() - 1);
                self.directives.len() - 1
            }
        }
    }

    fn push(&mut self, slot: usize, tok: Token) {
        if let Some((_, toks)) = self.directives.get_mut(slot) {
            toks.push(tok);
        }
    }

    fn finish(self) -> ServerBlock {
        ServerBlock { keys: self.keys, directives: self.directives }
    }
}

struct Parser<'o> {
    /// Tokens at positions `offset .. offset + done.len()` (the cursor is at the last one).
    done: Vec<Token>,
    offset: usize,
    /// Tokens after the cursor, in reverse order.
    rest: Vec<Token>,
    cursor: isize,
    filename: Arc<str>,
    validate: bool,
    env: Env<'o>,
    snippets: HashMap<String, Vec<Token>>,
    snippet_expansions: usize,
    file_expansions: usize,
    importer: Importer,
    block: BlockBuilder,
    eof: bool,
}

impl<'o> Parser<'o> {
    fn new(mut tokens: Vec<Token>, filename: Arc<str>, opts: &'o ParseOptions) -> Parser<'o> {
        tokens.reverse();
        Parser {
            done: Vec::new(),
            offset: 0,
            rest: tokens,
            cursor: -1,
            filename,
            validate: opts.validate_directives,
            env: Env::new(opts.env.as_ref()),
            snippets: HashMap::new(),
            snippet_expansions: 0,
            file_expansions: 0,
            importer: Importer::default(),
            block: BlockBuilder::default(),
            eof: false,
        }
    }

    // ----- cursor -----

    fn total(&self) -> usize {
        self.offset + self.done.len() + self.rest.len()
    }

    /// Moves tokens between `done` and `rest` so that `done` ends at the cursor.
    fn sync(&mut self) {
        let target = (self.cursor + 1).max(0) as usize;
        let target = target.min(self.total());
        while self.offset + self.done.len() < target {
            match self.rest.pop() {
                Some(t) => self.done.push(t),
                None => break,
            }
        }
        while self.offset + self.done.len() > target {
            match self.done.pop() {
                Some(t) => self.rest.push(t),
                None => break,
            }
        }
        if self.done.len() > HISTORY_MAX {
            let drop = self.done.len() - HISTORY_KEEP;
            self.done.drain(..drop);
            self.offset += drop;
        }
    }

    fn next(&mut self) -> bool {
        if self.cursor < self.total() as isize - 1 {
            self.cursor += 1;
            self.sync();
            true
        } else {
            false
        }
    }

    fn back(&mut self) {
        self.cursor -= 1;
        self.sync();
    }

    /// The token under the cursor, if the cursor is on one.
    fn cur(&self) -> Option<&Token> {
        if self.cursor < 0 || self.cursor as usize >= self.total() {
            return None;
        }
        self.done.last()
    }

    fn prev(&self) -> Option<&Token> {
        self.done.len().checked_sub(2).and_then(|i| self.done.get(i))
    }

    fn val(&self) -> &str {
        self.cur().map(|t| t.text.as_str()).unwrap_or("")
    }

    /// CoreDNS's "new line": first token, or later line than the previous token's end, or
    /// another file.
    fn is_new_line(&self) -> bool {
        if self.cursor < 1 {
            return true;
        }
        let (Some(cur), Some(prev)) = (self.cur(), self.prev()) else { return false };
        prev.file != cur.file || prev.line + prev.newlines < cur.line
    }

    /// Advances only onto a token on exactly the same line.
    fn next_arg(&mut self) -> bool {
        if self.cursor < 0 {
            self.cursor += 1;
            self.sync();
            return true;
        }
        let Some(cur) = self.cur() else { return false };
        let Some(next) = self.rest.last() else { return false };
        if cur.file == next.file && cur.line + cur.newlines == next.line {
            self.cursor += 1;
            self.sync();
            return true;
        }
        false
    }

    // ----- errors -----

    fn err_kind(&self, kind: ErrorKind, msg: String) -> CorefileError {
        match self.cur() {
            Some(t) => CorefileError::at(kind, t, msg),
            None => CorefileError::at_pos(kind, self.filename.clone(), 0, 0, msg),
        }
    }

    fn err(&self, msg: impl Into<String>) -> CorefileError {
        self.err_kind(ErrorKind::Parse, msg.into())
    }

    fn syntax_err(&self, expected: &str) -> CorefileError {
        self.err_kind(ErrorKind::Syntax, format!("Unexpected token '{}', expecting '{expected}'", self.val()))
    }

    fn arg_err(&self) -> CorefileError {
        if self.val() == "{" {
            return self.err("Unexpected token '{', expecting argument");
        }
        self.err(format!("Wrong argument count or unexpected line ending after '{}'", self.val()))
    }

    // ----- grammar -----

    fn parse_all(mut self) -> Result<Vec<ServerBlock>, CorefileError> {
        let mut blocks = Vec::new();
        while self.next() {
            self.block = BlockBuilder::default();
            self.begin()?;
            let block = std::mem::take(&mut self.block);
            if !block.keys.is_empty() {
                blocks.push(block.finish());
            }
        }
        Ok(blocks)
    }

    fn begin(&mut self) -> Result<(), CorefileError> {
        if self.total() == 0 {
            return Ok(());
        }
        self.addresses()?;
        if self.eof {
            return Ok(());
        }
        if let Some(name) = self.snippet_name() {
            if self.snippets.contains_key(&name) {
                return Err(self.err(format!("redeclaration of previously declared snippet {name}")));
            }
            let tokens = self.snippet_tokens()?;
            let self_import = tokens.windows(2).enumerate().any(|(i, w)| {
                let at_line_start = i == 0 || {
                    let p = &tokens[i - 1];
                    p.file != w[0].file || p.line != w[0].line
                };
                w[0].text == "import" && at_line_start && self.env.expand(&w[1].text) == name
            });
            if self_import {
                return Err(self.err(format!("maximum snippet import depth ({MAX_SNIPPET_EXPANSIONS}) exceeded")));
            }
            self.snippets.insert(name, tokens);
            self.block.keys.clear();
            return Ok(());
        }
        self.block_contents()
    }

    fn addresses(&mut self) -> Result<(), CorefileError> {
        let mut expecting_another = false;
        loop {
            let tkn = self.env.expand_cow(self.val()).into_owned();
            if tkn == "import" && self.is_new_line() {
                self.do_import()?;
                continue;
            }
            if tkn == "{" {
                if expecting_another {
                    return Err(self.err("Expected another address but had '{' - check for extra comma"));
                }
                break;
            }
            if !tkn.is_empty() {
                let mut key = tkn;
                expecting_another = key.ends_with(',');
                if expecting_another {
                    key.pop();
                }
                if let Some(t) = self.cur() {
                    let mut t = t.clone();
                    t.newlines = key.matches('\n').count() as u32;
                    t.text = key;
                    self.block.keys.push(t);
                }
            }
            let has_next = self.next();
            if expecting_another && !has_next {
                return Err(self.err("Unexpected EOF"));
            }
            if !has_next {
                self.eof = true;
                break;
            }
            if !expecting_another && self.is_new_line() {
                break;
            }
        }
        Ok(())
    }

    fn snippet_name(&self) -> Option<String> {
        match self.block.keys.as_slice() {
            [k] if k.text.starts_with('(') && k.text.ends_with(')') => {
                let inner = &k.text[1..];
                Some(inner.strip_suffix(')').unwrap_or(inner).to_string())
            }
            _ => None,
        }
    }

    fn snippet_tokens(&mut self) -> Result<Vec<Token>, CorefileError> {
        if self.val() != "{" {
            return Err(self.syntax_err("{"));
        }
        let mut depth = 1usize;
        let mut tokens = Vec::new();
        while self.next() {
            match self.val() {
                "}" => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                "{" => depth += 1,
                _ => {}
            }
            if let Some(t) = self.cur() {
                tokens.push(t.clone());
            }
        }
        if depth != 0 {
            return Err(self.syntax_err("}"));
        }
        Ok(tokens)
    }

    fn block_contents(&mut self) -> Result<(), CorefileError> {
        let opened = self.val() == "{";
        if !opened {
            // A Corefile may hold one server block without braces.
            self.back();
        }
        self.directives()?;
        if opened && self.val() != "}" {
            return Err(self.syntax_err("}"));
        }
        Ok(())
    }

    fn directives(&mut self) -> Result<(), CorefileError> {
        while self.next() {
            if self.val() == "}" {
                break;
            }
            if self.val() == "import" {
                self.do_import()?;
                self.back();
                continue;
            }
            self.directive()?;
        }
        Ok(())
    }

    fn unknown_directive(&self, dir: &str) -> CorefileError {
        let hint = order::nearest(dir).map(|n| format!(" (did you mean '{n}'?)")).unwrap_or_default();
        self.err(format!("Unknown directive '{dir}'{hint}"))
    }

    fn directive(&mut self) -> Result<(), CorefileError> {
        let dir = self.env.expand(self.val());
        if self.validate && !order::is_directive(&dir) {
            return Err(self.unknown_directive(&dir));
        }
        let slot = self.block.slot(&dir);
        if let Some(t) = self.cur() {
            let mut t = t.clone();
            if t.text != dir {
                t.text.clone_from(&dir);
            }
            self.block.push(slot, t);
        }
        let mut nesting = 0usize;
        while self.next() {
            let v = self.val();
            if v == "{" {
                nesting += 1;
            } else if nesting == 0 && self.is_new_line() {
                self.back();
                break;
            } else if v == "}" && nesting > 0 {
                nesting -= 1;
            } else if v == "}" {
                return Err(self.err("Unexpected '}' because no matching opening brace"));
            } else if v == "import" && self.is_new_line() {
                self.do_import()?;
                self.back();
                continue;
            }
            let env = self.env;
            if let Some(t) = self.done.last_mut() {
                if let Cow::Owned(text) = env.expand_cow(&t.text) {
                    t.newlines = text.matches('\n').count() as u32;
                    t.text = text;
                }
                let t = t.clone();
                self.block.push(slot, t);
            }
        }
        if nesting > 0 {
            return Err(self.err("Unexpected EOF"));
        }
        Ok(())
    }

    /// Replaces `import PATTERN` (the cursor is on `import`) with the snippet's or files'
    /// tokens, leaving the cursor on the first replacement token.
    fn do_import(&mut self) -> Result<(), CorefileError> {
        if !self.next_arg() {
            return Err(self.arg_err());
        }
        let pattern = self.env.expand(self.val());
        if pattern.is_empty() {
            return Err(self.err("Import requires a non-empty filepath"));
        }
        if self.next_arg() {
            return Err(self.err("Import takes only one argument (glob pattern or file)"));
        }
        let imported = if let Some(tokens) = self.snippets.get(&pattern) {
            if self.snippet_expansions >= MAX_SNIPPET_EXPANSIONS {
                return Err(self.err(format!("maximum snippet import depth ({MAX_SNIPPET_EXPANSIONS}) exceeded")));
            }
            self.snippet_expansions += 1;
            tokens.clone()
        } else {
            if self.file_expansions >= MAX_FILE_EXPANSIONS {
                // CoreDNS prints the snippet cap here; keep its wording.
                return Err(self.err(format!("maximum file import depth ({MAX_SNIPPET_EXPANSIONS}) exceeded")));
            }
            self.file_expansions += 1;
            let from = self.cur().map(|t| t.file.clone()).unwrap_or_else(|| self.filename.clone());
            match self.importer.import(&pattern, &from) {
                Ok(t) => t,
                Err(ImportError::Message(m)) => return Err(self.err(m)),
                Err(ImportError::Corefile(e)) => return Err(e),
            }
        };
        // Remove `import` and its argument, splice the new tokens in after the cursor.
        self.done.pop();
        self.done.pop();
        self.cursor -= 2;
        self.rest.extend(imported.into_iter().rev());
        self.cursor += 1;
        self.sync();
        Ok(())
    }
}
