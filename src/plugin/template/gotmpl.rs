//! A small interpreter for the Go `text/template` forms that Corefile templates use:
//! text with `{{ ... }}` actions (trim markers `{{-`/`-}}`, comments), field chains
//! (`.Name`, `.Group.b`, `(index .Message.Question 0).Name`), variables (`$x := ...`, `$`),
//! pipelines (`a | b`), `if`/`else if`/`else`/`end`, `range`, `with`, and the functions
//! `index`, `printf`, `print`, `println`, `len`, `eq`, `ne`, `lt`, `le`, `gt`, `ge`, `and`,
//! `or`, `not`, `slice` and `parseInt` (Go's `strconv.ParseUint`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A value seen by a template.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// An absent value (missing map key through a field): prints `<no value>`.
    NoValue,
    /// Go's nil.
    Nil,
    /// A string.
    Str(String),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    Uint(u64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A slice.
    List(Vec<Value>),
    /// A map with string keys; `zero` is the element type's zero value (for `index`).
    Map(BTreeMap<String, Value>, Box<Value>),
    /// A struct: Go type name (for errors), fields, and its `String()` form if it has one.
    Struct(Box<Struct>),
}

/// A struct value.
#[derive(Clone, Debug, PartialEq)]
pub struct Struct {
    /// The Go type name, for error messages.
    pub type_name: String,
    /// Fields in declaration order.
    pub fields: Vec<(String, Value)>,
    /// Printed form when the Go type implements `Stringer`.
    pub stringer: Option<String>,
    /// Methods taking one string argument (e.g. `Meta`): name → (argument → result).
    pub methods: Vec<(String, BTreeMap<String, String>)>,
}

impl Value {
    /// A string value.
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    fn truth(&self) -> bool {
        match self {
            Value::NoValue | Value::Nil => false,
            Value::Str(s) => !s.is_empty(),
            Value::Int(i) => *i != 0,
            Value::Uint(u) => *u != 0,
            Value::Float(f) => *f != 0.0,
            Value::Bool(b) => *b,
            Value::List(l) => !l.is_empty(),
            Value::Map(m, _) => !m.is_empty(),
            Value::Struct(_) => true,
        }
    }

    fn type_name(&self) -> String {
        match self {
            Value::NoValue => "<invalid>".into(),
            Value::Nil => "nil".into(),
            Value::Str(_) => "string".into(),
            Value::Int(_) => "int".into(),
            Value::Uint(_) => "uint64".into(),
            Value::Float(_) => "float64".into(),
            Value::Bool(_) => "bool".into(),
            Value::List(_) => "[]interface {}".into(),
            Value::Map(..) => "map[string]string".into(),
            Value::Struct(s) => s.type_name.clone(),
        }
    }

    /// Go's `fmt.Sprint` form of the value.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write_text(&mut out, true);
        out
    }

    fn write_text(&self, out: &mut String, top: bool) {
        match self {
            Value::NoValue => out.push_str("<no value>"),
            Value::Nil => out.push_str("<nil>"),
            Value::Str(s) => out.push_str(s),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Uint(u) => {
                let _ = write!(out, "{u}");
            }
            Value::Float(f) => out.push_str(&format_float(*f)),
            Value::Bool(b) => {
                let _ = write!(out, "{b}");
            }
            Value::List(l) => {
                out.push('[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.write_text(out, false);
                }
                out.push(']');
            }
            Value::Map(m, _) => {
                out.push_str("map[");
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.write_text(out, false);
                }
                out.push(']');
            }
            Value::Struct(s) => {
                if let Some(st) = &s.stringer {
                    out.push_str(st);
                    return;
                }
                if top && s.type_name.starts_with('*') {
                    out.push('&');
                }
                out.push('{');
                for (i, (_, v)) in s.fields.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.write_text(out, false);
                }
                out.push('}');
            }
        }
    }
}

fn format_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{f:.0}")
    } else {
        format!("{f}")
    }
}

// ---------------------------------------------------------------------------------------
// Lexing

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Dot,
    Field(String),
    Var(String),
    Ident(String),
    Str(String),
    Char(char),
    Num(String),
    LParen,
    RParen,
    Pipe,
    Declare,
    Assign,
    Comma,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    /// True when whitespace precedes the token (a field directly after `)` or a variable
    /// chains onto it).
    spaced: bool,
}

fn lex_action(src: &str) -> Result<Vec<Token>, String> {
    let b: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let mut spaced = true;
    let ident_char = |c: char| c.is_alphanumeric() || c == '_';
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() {
            spaced = true;
            i += 1;
            continue;
        }
        let tok = match c {
            '(' => {
                i += 1;
                Tok::LParen
            }
            ')' => {
                i += 1;
                Tok::RParen
            }
            '|' => {
                i += 1;
                Tok::Pipe
            }
            ',' => {
                i += 1;
                Tok::Comma
            }
            ':' if b.get(i + 1) == Some(&'=') => {
                i += 2;
                Tok::Declare
            }
            '=' => {
                i += 1;
                Tok::Assign
            }
            '.' if b.get(i + 1).is_some_and(|c| c.is_ascii_digit()) && spaced => {
                let start = i;
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '.') {
                    i += 1;
                }
                Tok::Num(b[start..i].iter().collect())
            }
            '.' => {
                i += 1;
                let start = i;
                while i < b.len() && ident_char(b[i]) {
                    i += 1;
                }
                if start == i {
                    Tok::Dot
                } else {
                    Tok::Field(b[start..i].iter().collect())
                }
            }
            '$' => {
                i += 1;
                let start = i;
                while i < b.len() && ident_char(b[i]) {
                    i += 1;
                }
                Tok::Var(b[start..i].iter().collect())
            }
            '"' => {
                i += 1;
                let mut s = String::new();
                loop {
                    let Some(&c) = b.get(i) else { return Err("unterminated quoted string".into()) };
                    i += 1;
                    match c {
                        '"' => break,
                        '\n' => return Err("unterminated quoted string".into()),
                        '\\' => {
                            let Some(&e) = b.get(i) else { return Err("unterminated quoted string".into()) };
                            i += 1;
                            match e {
                                'n' => s.push('\n'),
                                't' => s.push('\t'),
                                'r' => s.push('\r'),
                                '\\' => s.push('\\'),
                                '"' => s.push('"'),
                                '\'' => s.push('\''),
                                'x' => {
                                    let hex: String = b.iter().skip(i).take(2).collect();
                                    let v = u8::from_str_radix(&hex, 16).map_err(|_| "invalid syntax".to_string())?;
                                    s.push(char::from(v));
                                    i += 2;
                                }
                                _ => return Err("invalid syntax".into()),
                            }
                        }
                        c => s.push(c),
                    }
                }
                Tok::Str(s)
            }
            '`' => {
                i += 1;
                let start = i;
                while i < b.len() && b[i] != '`' {
                    i += 1;
                }
                if i >= b.len() {
                    return Err("unterminated raw quoted string".into());
                }
                let s: String = b[start..i].iter().collect();
                i += 1;
                Tok::Str(s)
            }
            '\'' => {
                let c = *b.get(i + 1).ok_or("unterminated character constant")?;
                if b.get(i + 2) != Some(&'\'') {
                    return Err("unterminated character constant".into());
                }
                i += 3;
                Tok::Char(c)
            }
            c if c.is_ascii_digit() || ((c == '-' || c == '+') && b.get(i + 1).is_some_and(|d| d.is_ascii_digit())) => {
                let start = i;
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '.' || b[i] == '_') {
                    i += 1;
                }
                Tok::Num(b[start..i].iter().collect())
            }
            c if ident_char(c) => {
                let start = i;
                while i < b.len() && ident_char(b[i]) {
                    i += 1;
                }
                Tok::Ident(b[start..i].iter().collect())
            }
            c => return Err(format!("unexpected {c:?} in command")),
        };
        out.push(Token { tok, spaced });
        spaced = false;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Parse tree

#[derive(Clone, Debug)]
enum Operand {
    Dot,
    /// `.A.B` on dot.
    Field(Vec<String>),
    /// `$x.A.B`.
    Var(String, Vec<String>),
    /// A literal.
    Lit(Value),
    /// A function name.
    Func(String),
    /// `(pipeline).A.B`.
    Sub(Box<Pipeline>, Vec<String>),
}

#[derive(Clone, Debug)]
struct Command {
    args: Vec<Operand>,
}

#[derive(Clone, Debug)]
struct Pipeline {
    decl: Vec<String>,
    assign: bool,
    cmds: Vec<Command>,
}

#[derive(Clone, Debug)]
enum Node {
    Text(String),
    Action(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
}

/// A parsed template.
#[derive(Clone, Debug)]
pub struct Template {
    name: String,
    nodes: Vec<Node>,
    source: String,
}

const FUNCS: &[&str] = &[
    "index", "printf", "print", "println", "len", "eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not", "slice",
    "parseInt", "html", "urlquery", "js", "call",
];

enum Piece {
    Text(String),
    Action(String, usize),
}

fn split_pieces(src: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = src;
    let mut line = 1;
    let mut trim_next = false;
    while let Some(pos) = rest.find("{{") {
        let mut text = &rest[..pos];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[pos + 2..];
        let trim_left = after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n");
        if trim_left {
            text = text.trim_end();
        }
        line += rest[..pos].matches('\n').count();
        pieces.push(Piece::Text(text.to_string()));
        let body_start = if trim_left { 2 } else { 0 };
        let body = &after[body_start..];
        let end = find_action_end(body).ok_or_else(|| format!("{line}: unclosed action"))?;
        let mut inner = &body[..end];
        let trim_right = inner.ends_with(" -") || inner.ends_with("\t-") || inner.ends_with("\n-");
        if trim_right {
            inner = &inner[..inner.len() - 1];
        }
        line += inner.matches('\n').count();
        pieces.push(Piece::Action(inner.to_string(), line));
        rest = &body[end + 2..];
        trim_next = trim_right;
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    pieces.push(Piece::Text(text.to_string()));
    Ok(pieces)
}

/// Finds the `}}` closing an action, skipping quoted strings.
fn find_action_end(body: &str) -> Option<usize> {
    let b = body.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

enum Ctl {
    Else(Option<Pipeline>),
    End,
}

struct Parser<'a> {
    name: &'a str,
    pieces: std::iter::Peekable<std::vec::IntoIter<Piece>>,
    vars: Vec<String>,
}

impl Parser<'_> {
    fn err(&self, line: usize, msg: impl std::fmt::Display) -> String {
        format!("template: {}:{}: {}", self.name, line, msg)
    }

    /// Parses nodes until `{{else}}`/`{{end}}` (returned) or the end of input (None).
    fn parse_list(&mut self) -> Result<(Vec<Node>, Option<Ctl>, usize), String> {
        let mut nodes = Vec::new();
        while let Some(piece) = self.pieces.next() {
            match piece {
                Piece::Text(t) => {
                    if !t.is_empty() {
                        nodes.push(Node::Text(t));
                    }
                }
                Piece::Action(body, line) => {
                    let trimmed = body.trim();
                    if trimmed.starts_with("/*") {
                        if !trimmed.ends_with("*/") {
                            return Err(self.err(line, "unclosed comment"));
                        }
                        continue;
                    }
                    let toks = lex_action(&body).map_err(|e| self.err(line, e))?;
                    match toks.first().map(|t| &t.tok) {
                        None => return Err(self.err(line, "missing value for command")),
                        Some(Tok::Ident(k)) if k == "end" => {
                            if toks.len() > 1 {
                                return Err(self.err(line, "unexpected token in end"));
                            }
                            return Ok((nodes, Some(Ctl::End), line));
                        }
                        Some(Tok::Ident(k)) if k == "else" => {
                            if toks.len() == 1 {
                                return Ok((nodes, Some(Ctl::Else(None)), line));
                            }
                            if matches!(toks.get(1).map(|t| &t.tok), Some(Tok::Ident(k)) if k == "if") {
                                let p = self.parse_pipeline(&toks[2..], line)?;
                                return Ok((nodes, Some(Ctl::Else(Some(p))), line));
                            }
                            return Err(self.err(line, "unexpected token in else"));
                        }
                        Some(Tok::Ident(k)) if k == "if" || k == "with" || k == "range" => {
                            let kind = k.clone();
                            let depth = self.vars.len();
                            let p = self.parse_pipeline(&toks[1..], line)?;
                            let node = self.parse_control(&kind, p, line)?;
                            self.vars.truncate(depth);
                            nodes.push(node);
                        }
                        Some(Tok::Ident(k))
                            if ["define", "template", "block", "break", "continue"].contains(&k.as_str()) =>
                        {
                            return Err(self.err(line, format!("unsupported action {k:?}")));
                        }
                        _ => {
                            let p = self.parse_pipeline(&toks, line)?;
                            nodes.push(Node::Action(p));
                        }
                    }
                }
            }
        }
        Ok((nodes, None, 0))
    }

    fn parse_control(&mut self, kind: &str, p: Pipeline, line: usize) -> Result<Node, String> {
        let (body, ctl, l2) = self.parse_list()?;
        let else_body = match ctl {
            None => return Err(self.err(line, format!("unexpected EOF in {kind}"))),
            Some(Ctl::End) => Vec::new(),
            Some(Ctl::Else(None)) => {
                let (eb, ctl2, l3) = self.parse_list()?;
                match ctl2 {
                    Some(Ctl::End) => eb,
                    _ => return Err(self.err(l3.max(l2), "expected end; found else or EOF")),
                }
            }
            Some(Ctl::Else(Some(p2))) => {
                if kind != "if" {
                    return Err(self.err(l2, "else if only allowed in if"));
                }
                vec![self.parse_control("if", p2, l2)?]
            }
        };
        Ok(match kind {
            "if" => Node::If(p, body, else_body),
            "with" => Node::With(p, body, else_body),
            _ => Node::Range(p, body, else_body),
        })
    }

    fn parse_pipeline(&mut self, toks: &[Token], line: usize) -> Result<Pipeline, String> {
        let mut decl = Vec::new();
        let mut assign = false;
        let mut start = 0;
        // `$x :=` / `$x =` / `$i, $e :=`
        let mut j = 0;
        let mut names = Vec::new();
        while let Some(Token { tok: Tok::Var(v), .. }) = toks.get(j) {
            names.push(v.clone());
            match toks.get(j + 1).map(|t| &t.tok) {
                Some(Tok::Comma) => j += 2,
                Some(Tok::Declare) | Some(Tok::Assign) => {
                    assign = matches!(toks[j + 1].tok, Tok::Assign);
                    start = j + 2;
                    decl = names.clone();
                    break;
                }
                _ => break,
            }
        }
        if !decl.is_empty() && !assign {
            self.vars.extend(decl.iter().cloned());
        }
        let mut cmds = Vec::new();
        let mut i = start;
        while i < toks.len() {
            let (cmd, next) = self.parse_command(toks, i, line)?;
            cmds.push(cmd);
            i = next;
            if i < toks.len() {
                if toks[i].tok != Tok::Pipe {
                    return Err(self.err(line, "unexpected token in pipeline"));
                }
                i += 1;
                if i >= toks.len() {
                    return Err(self.err(line, "missing command after |"));
                }
            }
        }
        if cmds.is_empty() {
            return Err(self.err(line, "missing value for command"));
        }
        Ok(Pipeline { decl, assign, cmds })
    }

    /// Parses one command starting at `i`; returns it and the index of the `|`/end after it.
    fn parse_command(&mut self, toks: &[Token], mut i: usize, line: usize) -> Result<(Command, usize), String> {
        let mut args = Vec::new();
        while i < toks.len() && toks[i].tok != Tok::Pipe && toks[i].tok != Tok::RParen {
            let (op, next) = self.parse_operand(toks, i, line)?;
            args.push(op);
            i = next;
        }
        if args.is_empty() {
            return Err(self.err(line, "empty command"));
        }
        Ok((Command { args }, i))
    }

    fn chain(toks: &[Token], mut i: usize) -> (Vec<String>, usize) {
        let mut fields = Vec::new();
        while let Some(Token { tok: Tok::Field(f), spaced: false }) = toks.get(i) {
            fields.push(f.clone());
            i += 1;
        }
        (fields, i)
    }

    fn parse_operand(&mut self, toks: &[Token], i: usize, line: usize) -> Result<(Operand, usize), String> {
        let t = &toks[i];
        Ok(match &t.tok {
            Tok::Dot => (Operand::Dot, i + 1),
            Tok::Field(f) => {
                let (mut rest, next) = Self::chain(toks, i + 1);
                rest.insert(0, f.clone());
                (Operand::Field(rest), next)
            }
            Tok::Var(v) => {
                if !v.is_empty() && !self.vars.contains(v) {
                    return Err(self.err(line, format!("undefined variable \"${v}\"")));
                }
                let (rest, next) = Self::chain(toks, i + 1);
                (Operand::Var(v.clone(), rest), next)
            }
            Tok::Str(s) => (Operand::Lit(Value::Str(s.clone())), i + 1),
            Tok::Char(c) => (Operand::Lit(Value::Int(*c as i64)), i + 1),
            Tok::Num(n) => (
                Operand::Lit(parse_number(n).ok_or_else(|| self.err(line, format!("bad number syntax: {n:?}")))?),
                i + 1,
            ),
            Tok::Ident(id) => match id.as_str() {
                "true" => (Operand::Lit(Value::Bool(true)), i + 1),
                "false" => (Operand::Lit(Value::Bool(false)), i + 1),
                "nil" => (Operand::Lit(Value::Nil), i + 1),
                f if FUNCS.contains(&f) => (Operand::Func(f.to_string()), i + 1),
                f => return Err(self.err(line, format!("function {f:?} not defined"))),
            },
            Tok::LParen => {
                let depth_start = i + 1;
                // find the matching paren
                let mut depth = 0;
                let mut j = i;
                loop {
                    match toks.get(j).map(|t| &t.tok) {
                        Some(Tok::LParen) => depth += 1,
                        Some(Tok::RParen) => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        None => return Err(self.err(line, "unclosed left paren")),
                        _ => {}
                    }
                    j += 1;
                }
                let p = self.parse_pipeline(&toks[depth_start..j], line)?;
                let (rest, next) = Self::chain(toks, j + 1);
                (Operand::Sub(Box::new(p), rest), next)
            }
            Tok::RParen => return Err(self.err(line, "unexpected right paren")),
            _ => return Err(self.err(line, "unexpected token in operand")),
        })
    }
}

fn parse_number(n: &str) -> Option<Value> {
    let s = n.replace('_', "");
    let (neg, body) = match s.strip_prefix('-') {
        Some(r) => (true, r.to_string()),
        None => (false, s.trim_start_matches('+').to_string()),
    };
    let parsed = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = body.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(b) = body.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()
    } else if body.len() > 1 && body.starts_with('0') && body.chars().all(|c| c.is_ascii_digit()) {
        i64::from_str_radix(&body[1..], 8).ok()
    } else {
        body.parse::<i64>().ok()
    };
    if let Some(v) = parsed {
        return Some(Value::Int(if neg { -v } else { v }));
    }
    s.parse::<f64>().ok().map(Value::Float)
}

impl Template {
    /// Parses `text` as a template called `name` (the name appears in error messages).
    pub fn parse(name: &str, text: &str) -> Result<Template, String> {
        let pieces = split_pieces(text).map_err(|e| format!("template: {name}:{e}"))?;
        let mut p = Parser { name, pieces: pieces.into_iter().peekable(), vars: Vec::new() };
        let (nodes, ctl, line) = p.parse_list()?;
        match ctl {
            None => Ok(Template { name: name.to_string(), nodes, source: text.to_string() }),
            Some(Ctl::End) => Err(p.err(line, "unexpected {{end}}")),
            Some(Ctl::Else(_)) => Err(p.err(line, "unexpected {{else}}")),
        }
    }

    /// The template's source text (metrics label `template`).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Runs the template against `data` (the value of dot and `$`).
    pub fn execute(&self, data: &Value) -> Result<String, String> {
        let mut ex = Exec { name: &self.name, root: data, vars: Vec::new(), out: String::new() };
        ex.vars.push((String::new(), data.clone()));
        ex.walk(&self.nodes, data)?;
        Ok(ex.out)
    }
}

// ---------------------------------------------------------------------------------------
// Execution

struct Exec<'a> {
    name: &'a str,
    root: &'a Value,
    vars: Vec<(String, Value)>,
    out: String,
}

impl Exec<'_> {
    fn err(&self, msg: impl std::fmt::Display) -> String {
        format!("template: {}: executing \"{}\": {}", self.name, self.name, msg)
    }

    fn walk(&mut self, nodes: &[Node], dot: &Value) -> Result<(), String> {
        for n in nodes {
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipeline(p, dot)?;
                    if p.decl.is_empty() {
                        self.out.push_str(&v.to_text());
                    }
                }
                Node::If(p, a, b) => {
                    let depth = self.vars.len();
                    let v = self.pipeline(p, dot)?;
                    let r = if v.truth() { self.walk(a, dot) } else { self.walk(b, dot) };
                    self.vars.truncate(depth);
                    r?;
                }
                Node::With(p, a, b) => {
                    let depth = self.vars.len();
                    let v = self.pipeline(p, dot)?;
                    let r = if v.truth() { self.walk(a, &v) } else { self.walk(b, dot) };
                    self.vars.truncate(depth);
                    r?;
                }
                Node::Range(p, a, b) => {
                    let depth = self.vars.len();
                    let v = self.pipeline(p, dot)?;
                    let items: Vec<(Value, Value)> = match &v {
                        Value::List(l) => {
                            l.iter().enumerate().map(|(i, v)| (Value::Int(i as i64), v.clone())).collect()
                        }
                        Value::Map(m, _) => m.iter().map(|(k, v)| (Value::Str(k.clone()), v.clone())).collect(),
                        Value::Int(n) => (0..*n).map(|i| (Value::Int(i), Value::Int(i))).collect(),
                        Value::Nil | Value::NoValue => Vec::new(),
                        other => return Err(self.err(format!("range can't iterate over {}", other.to_text()))),
                    };
                    if items.is_empty() {
                        self.walk(b, dot)?;
                    }
                    for (k, item) in items {
                        let inner = self.vars.len();
                        match p.decl.len() {
                            1 => self.set_var(&p.decl[0], item.clone(), false, depth),
                            2 => {
                                self.set_var(&p.decl[0], k, false, depth);
                                self.set_var(&p.decl[1], item.clone(), false, depth);
                            }
                            _ => {}
                        }
                        self.walk(a, &item)?;
                        self.vars.truncate(inner);
                    }
                    self.vars.truncate(depth);
                }
            }
        }
        Ok(())
    }

    fn set_var(&mut self, name: &str, v: Value, assign: bool, _depth: usize) {
        if assign {
            if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                slot.1 = v;
                return;
            }
        }
        self.vars.push((name.to_string(), v));
    }

    fn pipeline(&mut self, p: &Pipeline, dot: &Value) -> Result<Value, String> {
        let mut prev: Option<Value> = None;
        for cmd in &p.cmds {
            prev = Some(self.command(cmd, dot, prev)?);
        }
        let v = prev.unwrap_or(Value::NoValue);
        if p.decl.len() == 1 {
            self.set_var(&p.decl[0], v.clone(), p.assign, 0);
        }
        Ok(v)
    }

    fn command(&mut self, cmd: &Command, dot: &Value, piped: Option<Value>) -> Result<Value, String> {
        let first = &cmd.args[0];
        if let Operand::Func(f) = first {
            let mut args = Vec::with_capacity(cmd.args.len());
            // `and`/`or` short-circuit
            if f == "and" || f == "or" {
                let mut last = Value::Nil;
                let mut all: Vec<&Operand> = cmd.args[1..].iter().collect();
                let piped_ref = piped.clone();
                if all.is_empty() && piped_ref.is_none() {
                    return Err(self.err(format!("wrong number of args for {f}: want at least 1 got 0")));
                }
                for op in all.drain(..) {
                    last = self.operand(op, dot)?;
                    if (f == "and") != last.truth() {
                        return Ok(last);
                    }
                }
                if let Some(p) = piped_ref {
                    last = p;
                }
                return Ok(last);
            }
            for op in &cmd.args[1..] {
                args.push(self.operand(op, dot)?);
            }
            if let Some(p) = piped {
                args.push(p);
            }
            return self.call(f, args);
        }
        if cmd.args.len() > 1 || piped.is_some() {
            // method call with arguments, e.g. `.Meta "name"`
            if let Operand::Field(chain) = first {
                let mut args = Vec::new();
                for op in &cmd.args[1..] {
                    args.push(self.operand(op, dot)?);
                }
                if let Some(p) = piped {
                    args.push(p);
                }
                return self.method_call(dot, chain, args);
            }
            return Err(self.err(format!("can't give argument to non-function {}", self.describe(first))));
        }
        self.operand(first, dot)
    }

    fn describe(&self, op: &Operand) -> String {
        match op {
            Operand::Dot => ".".into(),
            Operand::Field(c) => format!(".{}", c.join(".")),
            Operand::Var(v, c) => format!("${v}{}", c.iter().map(|f| format!(".{f}")).collect::<String>()),
            Operand::Lit(v) => v.to_text(),
            Operand::Func(f) => f.clone(),
            Operand::Sub(..) => "(...)".into(),
        }
    }

    fn method_call(&self, dot: &Value, chain: &[String], args: Vec<Value>) -> Result<Value, String> {
        let (last, head) = chain.split_last().ok_or_else(|| self.err("empty field chain"))?;
        let recv = self.fields(dot.clone(), head)?;
        if let Value::Struct(s) = &recv {
            if let Some((_, table)) = s.methods.iter().find(|(n, _)| n == last) {
                if args.len() != 1 {
                    return Err(self.err(format!("wrong number of args for {last}: want 1 got {}", args.len())));
                }
                let key = match &args[0] {
                    Value::Str(k) => k.clone(),
                    other => {
                        return Err(
                            self.err(format!("wrong type for value; expected string; got {}", other.type_name()))
                        )
                    }
                };
                return Ok(Value::Str(table.get(&key).cloned().unwrap_or_default()));
            }
        }
        Err(self.err(format!("can't give argument to non-function .{}", chain.join("."))))
    }

    fn operand(&mut self, op: &Operand, dot: &Value) -> Result<Value, String> {
        match op {
            Operand::Dot => Ok(dot.clone()),
            Operand::Field(chain) => self.fields(dot.clone(), chain),
            Operand::Var(name, chain) => {
                let v = if name.is_empty() {
                    self.root.clone()
                } else {
                    self.vars
                        .iter()
                        .rev()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.clone())
                        .ok_or_else(|| self.err(format!("undefined variable: ${name}")))?
                };
                self.fields(v, chain)
            }
            Operand::Lit(v) => Ok(v.clone()),
            Operand::Func(f) => self.call(f, Vec::new()),
            Operand::Sub(p, chain) => {
                let v = self.pipeline(p, dot)?;
                self.fields(v, chain)
            }
        }
    }

    fn fields(&self, mut v: Value, chain: &[String]) -> Result<Value, String> {
        for f in chain {
            v = match v {
                Value::Struct(s) => match s.fields.iter().find(|(n, _)| n == f) {
                    Some((_, fv)) => fv.clone(),
                    None if s.methods.iter().any(|(n, _)| n == f) => {
                        return Err(self.err(format!("wrong number of args for {f}: want 1 got 0")))
                    }
                    None => return Err(self.err(format!("can't evaluate field {f} in type {}", s.type_name))),
                },
                Value::Map(m, _) => m.get(f).cloned().unwrap_or(Value::NoValue),
                Value::Nil | Value::NoValue => return Err(self.err(format!("nil pointer evaluating .{f}"))),
                other => {
                    return Err(self.err(format!("can't evaluate field {f} in type {}", other.type_name())));
                }
            };
        }
        Ok(v)
    }

    fn call(&self, f: &str, args: Vec<Value>) -> Result<Value, String> {
        let want = |n: usize| -> Result<(), String> {
            if args.len() != n {
                return Err(self.err(format!("wrong number of args for {f}: want {n} got {}", args.len())));
            }
            Ok(())
        };
        match f {
            "index" => {
                let mut it = args.into_iter();
                let mut v =
                    it.next().ok_or_else(|| self.err("wrong number of args for index: want at least 1 got 0"))?;
                for key in it {
                    v = match (&v, &key) {
                        (Value::List(l), k) => {
                            let i = as_index(k).ok_or_else(|| {
                                self.err("error calling index: cannot index slice/array with type string")
                            })?;
                            l.get(i).cloned().ok_or_else(|| {
                                self.err(format!("error calling index: index out of range: {}", key.to_text()))
                            })?
                        }
                        (Value::Str(s), k) => {
                            let i = as_index(k)
                                .ok_or_else(|| self.err("error calling index: cannot index string with non-integer"))?;
                            Value::Uint(*s.as_bytes().get(i).ok_or_else(|| {
                                self.err(format!("error calling index: index out of range: {}", key.to_text()))
                            })? as u64)
                        }
                        (Value::Map(m, zero), Value::Str(k)) => m.get(k).cloned().unwrap_or_else(|| (**zero).clone()),
                        (Value::Map(..), other) => {
                            return Err(self.err(format!(
                                "error calling index: value has type {}; should be string",
                                other.type_name()
                            )))
                        }
                        (Value::Nil | Value::NoValue, _) => {
                            return Err(self.err("error calling index: index of untyped nil"))
                        }
                        (other, _) => {
                            return Err(self
                                .err(format!("error calling index: can't index item of type {}", other.type_name())))
                        }
                    };
                }
                Ok(v)
            }
            "slice" => {
                let mut it = args.into_iter();
                let v = it.next().ok_or_else(|| self.err("wrong number of args for slice: want at least 1 got 0"))?;
                let idx: Vec<usize> = it
                    .map(|a| as_index(&a))
                    .collect::<Option<_>>()
                    .ok_or_else(|| self.err("error calling slice: bad index"))?;
                match v {
                    Value::Str(s) => {
                        let a = idx.first().copied().unwrap_or(0);
                        let b = idx.get(1).copied().unwrap_or(s.len());
                        s.get(a..b).map(Value::str).ok_or_else(|| self.err("error calling slice: index out of range"))
                    }
                    Value::List(l) => {
                        let a = idx.first().copied().unwrap_or(0);
                        let b = idx.get(1).copied().unwrap_or(l.len());
                        l.get(a..b)
                            .map(|s| Value::List(s.to_vec()))
                            .ok_or_else(|| self.err("error calling slice: index out of range"))
                    }
                    other => {
                        Err(self.err(format!("error calling slice: can't slice item of type {}", other.type_name())))
                    }
                }
            }
            "len" => {
                want(1)?;
                match &args[0] {
                    Value::Str(s) => Ok(Value::Int(s.len() as i64)),
                    Value::List(l) => Ok(Value::Int(l.len() as i64)),
                    Value::Map(m, _) => Ok(Value::Int(m.len() as i64)),
                    other => Err(self.err(format!("error calling len: len of type {}", other.type_name()))),
                }
            }
            "not" => {
                want(1)?;
                Ok(Value::Bool(!args[0].truth()))
            }
            "eq" => {
                let (a, rest) =
                    args.split_first().ok_or_else(|| self.err("wrong number of args for eq: want at least 1 got 0"))?;
                if rest.is_empty() {
                    return Err(self.err("error calling eq: missing argument for comparison"));
                }
                for b in rest {
                    if self.compare(a, b)? == std::cmp::Ordering::Equal {
                        return Ok(Value::Bool(true));
                    }
                }
                Ok(Value::Bool(false))
            }
            "ne" | "lt" | "le" | "gt" | "ge" => {
                want(2)?;
                let o = self.compare(&args[0], &args[1])?;
                use std::cmp::Ordering::*;
                Ok(Value::Bool(match f {
                    "ne" => o != Equal,
                    "lt" => o == Less,
                    "le" => o != Greater,
                    "gt" => o == Greater,
                    _ => o != Less,
                }))
            }
            "print" => Ok(Value::Str(sprint(&args))),
            "println" => {
                let parts: Vec<String> = args.iter().map(Value::to_text).collect();
                Ok(Value::Str(parts.join(" ") + "\n"))
            }
            "printf" => {
                let (fmt, rest) = args
                    .split_first()
                    .ok_or_else(|| self.err("wrong number of args for printf: want at least 1 got 0"))?;
                let Value::Str(fmt) = fmt else {
                    return Err(self.err(format!("wrong type for value; expected string; got {}", fmt.type_name())));
                };
                Ok(Value::Str(sprintf(fmt, rest)))
            }
            "parseInt" => {
                want(3)?;
                let Value::Str(s) = &args[0] else {
                    return Err(self.err(format!("wrong type for value; expected string; got {}", args[0].type_name())));
                };
                let base = as_index(&args[1]).ok_or_else(|| self.err("wrong type for value; expected int"))?;
                let bits = as_index(&args[2]).ok_or_else(|| self.err("wrong type for value; expected int"))?;
                parse_uint(s, base, bits).map(Value::Uint).map_err(|e| self.err(format!("error calling parseInt: {e}")))
            }
            "html" | "urlquery" | "js" => Ok(Value::Str(sprint(&args))),
            other => Err(self.err(format!("{other} is not a defined function"))),
        }
    }

    fn compare(&self, a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
        use Value::*;
        let num = |v: &Value| -> Option<f64> {
            match v {
                Int(i) => Some(*i as f64),
                Uint(u) => Some(*u as f64),
                Float(f) => Some(*f),
                _ => None,
            }
        };
        match (a, b) {
            (Str(x), Str(y)) => Ok(x.cmp(y)),
            (Bool(x), Bool(y)) => Ok(x.cmp(y)),
            (Int(x), Int(y)) => Ok(x.cmp(y)),
            (Uint(x), Uint(y)) => Ok(x.cmp(y)),
            (Int(x), Uint(y)) => Ok(if *x < 0 { std::cmp::Ordering::Less } else { (*x as u64).cmp(y) }),
            (Uint(x), Int(y)) => Ok(if *y < 0 { std::cmp::Ordering::Greater } else { x.cmp(&(*y as u64)) }),
            (Nil, Nil) => Ok(std::cmp::Ordering::Equal),
            _ => match (num(a), num(b)) {
                (Some(x), Some(y)) => x.partial_cmp(&y).ok_or_else(|| self.err("error calling compare: NaN")),
                _ => Err(self.err("error calling eq: incompatible types for comparison")),
            },
        }
    }
}

fn as_index(v: &Value) -> Option<usize> {
    match v {
        Value::Int(i) if *i >= 0 => Some(*i as usize),
        Value::Uint(u) => usize::try_from(*u).ok(),
        _ => None,
    }
}

/// Go's `strconv.ParseUint(s, base, bitSize)`, with its error wording.
fn parse_uint(s: &str, base: usize, bits: usize) -> Result<u64, String> {
    let syntax = || format!("strconv.ParseUint: parsing {s:?}: invalid syntax");
    let bits = if bits == 0 { 64 } else { bits };
    if bits > 64 {
        return Err(format!("strconv.ParseUint: parsing {s:?}: invalid bit size {bits}"));
    }
    let (digits, radix) = if base == 0 {
        let t = s.replace('_', "");
        let lower = t.to_ascii_lowercase();
        if let Some(r) = lower.strip_prefix("0x") {
            (r.to_string(), 16)
        } else if let Some(r) = lower.strip_prefix("0b") {
            (r.to_string(), 2)
        } else if let Some(r) = lower.strip_prefix("0o") {
            (r.to_string(), 8)
        } else if lower.len() > 1 && lower.starts_with('0') {
            (lower[1..].to_string(), 8)
        } else {
            (lower, 10)
        }
    } else if (2..=36).contains(&base) {
        (s.to_string(), base as u32)
    } else {
        return Err(format!("strconv.ParseUint: parsing {s:?}: invalid base {base}"));
    };
    if digits.is_empty() || digits.starts_with('+') || digits.starts_with('-') {
        return Err(syntax());
    }
    let v = u64::from_str_radix(&digits, radix).map_err(|e| match e.kind() {
        std::num::IntErrorKind::PosOverflow => format!("strconv.ParseUint: parsing {s:?}: value out of range"),
        _ => syntax(),
    })?;
    if bits < 64 && v >= (1u64 << bits) {
        return Err(format!("strconv.ParseUint: parsing {s:?}: value out of range"));
    }
    Ok(v)
}

/// Go's `fmt.Sprint`: spaces only between operands when neither is a string.
fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Value::Str(_)) && !matches!(args[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        out.push_str(&a.to_text());
    }
    out
}

/// Go's `fmt.Sprintf` for the common verbs (`%v %s %d %x %X %o %b %c %q %t %f %e %g %%`) with
/// flags, width and precision.
pub fn sprintf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let chars: Vec<char> = fmt.chars().collect();
    let mut i = 0;
    let mut argi = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '%' {
            out.push(c);
            i += 1;
            continue;
        }
        i += 1;
        let (mut minus, mut plus, mut zero, mut space, mut sharp) = (false, false, false, false, false);
        while let Some(&f) = chars.get(i) {
            match f {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                ' ' => space = true,
                '#' => sharp = true,
                _ => break,
            }
            i += 1;
        }
        let mut width: Option<usize> = None;
        while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
            width = Some(width.unwrap_or(0) * 10 + d as usize);
            i += 1;
        }
        let mut prec: Option<usize> = None;
        if chars.get(i) == Some(&'.') {
            i += 1;
            prec = Some(0);
            while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
                prec = Some(prec.unwrap_or(0) * 10 + d as usize);
                i += 1;
            }
        }
        let Some(&verb) = chars.get(i) else {
            out.push_str("%!(NOVERB)");
            break;
        };
        i += 1;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argi) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        argi += 1;
        let body = format_verb(verb, arg, plus, space, sharp, prec);
        let body = match body {
            Some(b) => b,
            None => {
                let _ = write!(out, "%!{verb}({}={})", arg.type_name(), arg.to_text());
                continue;
            }
        };
        let len = body.chars().count();
        match width {
            Some(w) if w > len => {
                let pad = w - len;
                if minus {
                    out.push_str(&body);
                    out.push_str(&" ".repeat(pad));
                } else if zero && !matches!(arg, Value::Str(_)) {
                    let (sign, digits) = match body.strip_prefix('-').or_else(|| body.strip_prefix('+')) {
                        Some(d) => (&body[..1], d),
                        None => ("", body.as_str()),
                    };
                    out.push_str(sign);
                    out.push_str(&"0".repeat(pad));
                    out.push_str(digits);
                } else if zero {
                    out.push_str(&"0".repeat(pad));
                    out.push_str(&body);
                } else {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(&body);
                }
            }
            _ => out.push_str(&body),
        }
    }
    if argi < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[argi..].iter().map(|a| format!("{}={}", a.type_name(), a.to_text())).collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

fn format_verb(verb: char, arg: &Value, plus: bool, space: bool, sharp: bool, prec: Option<usize>) -> Option<String> {
    let signed = |s: String, neg: bool| -> String {
        if neg {
            s
        } else if plus {
            format!("+{s}")
        } else if space {
            format!(" {s}")
        } else {
            s
        }
    };
    Some(match (verb, arg) {
        ('v', _) => arg.to_text(),
        ('s', Value::Str(s)) => match prec {
            Some(p) => s.chars().take(p).collect(),
            None => s.clone(),
        },
        ('s', Value::List(_) | Value::Map(..) | Value::Struct(_)) => arg.to_text(),
        ('q', Value::Str(s)) => format!("{s:?}"),
        ('t', Value::Bool(b)) => b.to_string(),
        ('d', Value::Int(n)) => signed(n.to_string(), *n < 0),
        ('d', Value::Uint(n)) => signed(n.to_string(), false),
        ('x', Value::Int(n)) => signed(
            if *n < 0 { format!("-{:x}", n.unsigned_abs()) } else { format!("{}{n:x}", if sharp { "0x" } else { "" }) },
            *n < 0,
        ),
        ('x', Value::Uint(n)) => format!("{}{n:x}", if sharp { "0x" } else { "" }),
        ('X', Value::Int(n)) => {
            if *n < 0 {
                format!("-{:X}", n.unsigned_abs())
            } else {
                format!("{}{n:X}", if sharp { "0X" } else { "" })
            }
        }
        ('X', Value::Uint(n)) => format!("{}{n:X}", if sharp { "0X" } else { "" }),
        ('x', Value::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
        ('X', Value::Str(s)) => s.bytes().map(|b| format!("{b:02X}")).collect(),
        ('o', Value::Int(n)) => {
            if *n < 0 {
                format!("-{:o}", n.unsigned_abs())
            } else {
                format!("{n:o}")
            }
        }
        ('o', Value::Uint(n)) => format!("{n:o}"),
        ('b', Value::Int(n)) => {
            if *n < 0 {
                format!("-{:b}", n.unsigned_abs())
            } else {
                format!("{n:b}")
            }
        }
        ('b', Value::Uint(n)) => format!("{n:b}"),
        ('c', Value::Int(n)) => char::from_u32(*n as u32).unwrap_or('\u{FFFD}').to_string(),
        ('c', Value::Uint(n)) => char::from_u32(*n as u32).unwrap_or('\u{FFFD}').to_string(),
        ('f' | 'F', Value::Float(f)) => signed(format!("{:.*}", prec.unwrap_or(6), f), *f < 0.0),
        ('e', Value::Float(f)) => format!("{:.*e}", prec.unwrap_or(6), f),
        ('g', Value::Float(f)) => format_float(*f),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn data() -> Value {
        let mut group = BTreeMap::new();
        group.insert("0".to_string(), Value::str("ip-10-1-2-3.example."));
        group.insert("b".to_string(), Value::str("1"));
        Value::Struct(Box::new(Struct {
            type_name: "*template.templateData".into(),
            fields: vec![
                ("Name".into(), Value::str("ip-10-1-2-3.example.")),
                ("Zone".into(), Value::str("example.")),
                ("Match".into(), Value::List(vec![Value::str("ip-10-1-2-3.example."), Value::str("1")])),
                ("Group".into(), Value::Map(group, Box::new(Value::str("")))),
            ],
            stringer: None,
            methods: vec![("Meta".into(), BTreeMap::from([("k".to_string(), "v".to_string())]))],
        }))
    }

    fn run(t: &str) -> Result<String, String> {
        Template::parse("answer", t)?.execute(&data())
    }

    #[test]
    fn fields_index_groups() {
        assert_eq!(run("{{ .Name }} 60 IN A 10.{{ .Group.b }}").unwrap(), "ip-10-1-2-3.example. 60 IN A 10.1");
        assert_eq!(run("{{ index .Match 1 }}|{{ index .Group \"b\" }}|{{ index .Group \"zz\" }}").unwrap(), "1|1|");
        assert_eq!(run("{{ .Group.zz }}").unwrap(), "<no value>");
        assert_eq!(run("{{ .Meta \"k\" }}{{ .Meta \"none\" }}").unwrap(), "v");
    }

    #[test]
    fn pipelines_functions_and_trim() {
        assert_eq!(run("{{ printf \"%03d-%s\" 7 .Zone }}").unwrap(), "007-example.");
        assert_eq!(run("{{ .Group.b | printf \"x%sx\" }}").unwrap(), "x1x");
        assert_eq!(run("{{ parseInt \"ff\" 16 8 }}").unwrap(), "255");
        assert!(run("{{ parseInt \"1ff\" 16 8 }}").unwrap_err().contains("value out of range"));
        assert_eq!(run("a  {{- if eq .Group.b \"1\" -}}  yes {{- else -}} no {{- end }}").unwrap(), "ayes");
        assert_eq!(run("{{ if .Group.zz }}y{{ else if .Zone }}z{{ end }}").unwrap(), "z");
        assert_eq!(run("{{ $z := .Zone }}{{ $z }}{{/* c */}}").unwrap(), "example.");
        assert_eq!(
            run("{{ range $i, $m := .Match }}{{ $i }}={{ $m }};{{ end }}").unwrap(),
            "0=ip-10-1-2-3.example.;1=1;"
        );
        assert_eq!(run("{{ len .Match }} {{ (index .Match 1) }}").unwrap(), "2 1");
    }

    #[test]
    fn errors() {
        assert!(Template::parse("answer", "{{ nosuch .Name }}")
            .unwrap_err()
            .contains("function \"nosuch\" not defined"));
        assert!(Template::parse("answer", "{{ if .Name }}").is_err());
        assert!(Template::parse("answer", "{{ .Name ").is_err());
        assert!(run("{{ .Nope }}").unwrap_err().contains("can't evaluate field Nope"));
        assert!(run("{{ index .Match 5 }}").unwrap_err().contains("index out of range"));
    }
}
