//! A compact evaluator for the subset of the expr language that template `var` and `expr`
//! lines use: literals, arrays, `and`/`or`/`not`, comparisons, `in`, `matches`, `contains`,
//! `startsWith`, `endsWith`, arithmetic, the ternary, calls to the query functions CoreDNS
//! provides (`type()`, `name()`, `client_ip()`, `incidr(ip, cidr)`, `group(n)`, ...) and the
//! usual builtins (`len`, `upper`, `lower`, `trim`, `split`, `join`, `replace`, `any`, `all`,
//! `none`, `filter`, `map`, `count` with `#` as the element).

use std::collections::BTreeMap;
use std::net::IpAddr;

use regex::Regex;

/// A value produced by an expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    /// nil.
    Nil,
    /// Boolean.
    Bool(bool),
    /// Integer.
    Int(i64),
    /// Float.
    Float(f64),
    /// String.
    Str(String),
    /// Array.
    List(Vec<Val>),
}

impl Val {
    fn truthy(&self) -> Result<bool, String> {
        match self {
            Val::Bool(b) => Ok(*b),
            other => Err(format!("expected bool, got {}", other.kind())),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Val::Nil => "nil",
            Val::Bool(_) => "bool",
            Val::Int(_) => "int",
            Val::Float(_) => "float",
            Val::Str(_) => "string",
            Val::List(_) => "array",
        }
    }

    /// Text form (for `.Var` in templates).
    pub fn to_text(&self) -> String {
        match self {
            Val::Nil => "<nil>".into(),
            Val::Bool(b) => b.to_string(),
            Val::Int(i) => i.to_string(),
            Val::Float(f) => f.to_string(),
            Val::Str(s) => s.clone(),
            Val::List(l) => format!("[{}]", l.iter().map(Val::to_text).collect::<Vec<_>>().join(" ")),
        }
    }
}

#[derive(Clone, Debug)]
enum Ast {
    Lit(Val),
    Ident(String),
    Elem,
    Array(Vec<Ast>),
    Call(String, Vec<Ast>),
    Unary(String, Box<Ast>),
    Binary(String, Box<Ast>, Box<Ast>),
    Index(Box<Ast>, Box<Ast>),
    Cond(Box<Ast>, Box<Ast>, Box<Ast>),
}

/// A static type, as the expr compiler checks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    /// Unknown until run time.
    Any,
    /// nil.
    Nil,
    /// bool.
    Bool,
    /// int.
    Int,
    /// float.
    Float,
    /// string.
    Str,
    /// array.
    List,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Any => "interface {}",
            Ty::Nil => "nil",
            Ty::Bool => "bool",
            Ty::Int => "int",
            Ty::Float => "float64",
            Ty::Str => "string",
            Ty::List => "[]interface {}",
        }
    }

    fn numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Float | Ty::Any)
    }
}

/// A compiled expression.
#[derive(Clone, Debug)]
pub struct Program {
    ast: Ast,
    source: String,
    ty: Ty,
}

/// Words the expr language reserves (not usable as variable names).
pub const KEYWORDS: &[&str] = &[
    "let",
    "if",
    "else",
    "in",
    "not",
    "and",
    "or",
    "matches",
    "contains",
    "startsWith",
    "endsWith",
    "true",
    "false",
    "nil",
];

/// Names the query environment provides (CoreDNS's `expression.DefaultEnv` plus `group`).
pub const ENV_NAMES: &[&str] = &[
    "incidr",
    "metadata",
    "type",
    "name",
    "class",
    "proto",
    "size",
    "client_ip",
    "port",
    "id",
    "opcode",
    "do",
    "bufsize",
    "server_ip",
    "server_port",
    "group",
];

/// Builtin function names.
pub const BUILTINS: &[&str] = &[
    "len",
    "upper",
    "lower",
    "trim",
    "trimPrefix",
    "trimSuffix",
    "split",
    "join",
    "replace",
    "any",
    "all",
    "none",
    "one",
    "filter",
    "map",
    "count",
    "string",
    "int",
    "float",
    "abs",
    "min",
    "max",
    "hasPrefix",
    "hasSuffix",
    "indexOf",
    "first",
    "last",
    "reverse",
    "type",
];

/// The per-query facts expressions can read.
#[derive(Clone, Debug, Default)]
pub struct Env {
    /// Query type mnemonic.
    pub qtype: String,
    /// Lower-cased query name.
    pub name: String,
    /// Class mnemonic.
    pub class: String,
    /// `udp` or `tcp`.
    pub proto: String,
    /// Query length in bytes.
    pub size: i64,
    /// Client IP.
    pub client_ip: String,
    /// Client port.
    pub port: String,
    /// Message ID.
    pub id: i64,
    /// Opcode.
    pub opcode: i64,
    /// DO bit.
    pub dnssec_ok: bool,
    /// Client's buffer size.
    pub bufsize: i64,
    /// Local IP.
    pub server_ip: String,
    /// Local port.
    pub server_port: String,
    /// Regex groups (numeric and named).
    pub groups: BTreeMap<String, String>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Variables declared so far.
    pub vars: BTreeMap<String, Val>,
}

// ------------------------------------------------------------------ lexer

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(Val),
    Str(String),
    Ident(String),
    Op(String),
    Hash,
}

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let c: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
            continue;
        }
        if ch.is_ascii_digit() {
            let s = i;
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.' || c[i] == '_') {
                if c[i] == '.' && c.get(i + 1) == Some(&'.') {
                    break;
                }
                i += 1;
            }
            let t: String = c[s..i].iter().filter(|&&x| x != '_').collect();
            let v = if let Some(h) = t.strip_prefix("0x") {
                Val::Int(i64::from_str_radix(h, 16).map_err(|_| format!("invalid number {t}"))?)
            } else if t.contains('.') || t.contains('e') {
                Val::Float(t.parse().map_err(|_| format!("invalid number {t}"))?)
            } else {
                Val::Int(t.parse().map_err(|_| format!("invalid number {t}"))?)
            };
            out.push(Tok::Num(v));
            continue;
        }
        if ch == '\'' || ch == '"' {
            let q = ch;
            i += 1;
            let mut s = String::new();
            loop {
                let Some(&x) = c.get(i) else { return Err("literal not terminated".into()) };
                i += 1;
                if x == q {
                    break;
                }
                if x == '\\' {
                    let e = *c.get(i).ok_or("literal not terminated")?;
                    i += 1;
                    s.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                } else {
                    s.push(x);
                }
            }
            out.push(Tok::Str(s));
            continue;
        }
        if ch.is_alphabetic() || ch == '_' || ch == '$' {
            let s = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || c[i] == '$') {
                i += 1;
            }
            out.push(Tok::Ident(c[s..i].iter().collect()));
            continue;
        }
        if ch == '#' {
            out.push(Tok::Hash);
            i += 1;
            continue;
        }
        let two: String = c[i..(i + 2).min(c.len())].iter().collect();
        if ["==", "!=", "<=", ">=", "&&", "||", "**", "??"].contains(&two.as_str()) {
            out.push(Tok::Op(two));
            i += 2;
            continue;
        }
        if "+-*/%<>!()[],?:.".contains(ch) {
            out.push(Tok::Op(ch.to_string()));
            i += 1;
            continue;
        }
        return Err(format!("unexpected token {ch:?}"));
    }
    Ok(out)
}

// ------------------------------------------------------------------ parser

struct P<'a> {
    t: &'a [Tok],
    i: usize,
    known: &'a dyn Fn(&str) -> Option<Ty>,
}

impl P<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.t.get(self.i)
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Some(Tok::Op(o)) if o == op)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(o)) if o == w)
    }

    fn expect(&mut self, op: &str) -> Result<(), String> {
        if self.is_op(op) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected {op}"))
        }
    }

    fn expr(&mut self) -> Result<Ast, String> {
        let cond = self.or()?;
        if self.is_op("?") {
            self.i += 1;
            let a = self.expr()?;
            self.expect(":")?;
            let b = self.expr()?;
            return Ok(Ast::Cond(Box::new(cond), Box::new(a), Box::new(b)));
        }
        Ok(cond)
    }

    fn or(&mut self) -> Result<Ast, String> {
        let mut l = self.and()?;
        while self.is_op("||") || self.is_word("or") || self.is_op("??") {
            let op = if self.is_op("??") { "??" } else { "or" };
            self.i += 1;
            let r = self.and()?;
            l = Ast::Binary(op.into(), Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn and(&mut self) -> Result<Ast, String> {
        let mut l = self.cmp()?;
        while self.is_op("&&") || self.is_word("and") {
            self.i += 1;
            let r = self.cmp()?;
            l = Ast::Binary("and".into(), Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn cmp(&mut self) -> Result<Ast, String> {
        let mut l = self.add()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Op(o)) if ["==", "!=", "<", ">", "<=", ">="].contains(&o.as_str()) => o.clone(),
                Some(Tok::Ident(w))
                    if ["in", "matches", "contains", "startsWith", "endsWith"].contains(&w.as_str()) =>
                {
                    w.clone()
                }
                Some(Tok::Ident(w))
                    if w == "not" && matches!(self.t.get(self.i + 1), Some(Tok::Ident(x)) if x == "in") =>
                {
                    self.i += 1;
                    "not in".into()
                }
                _ => return Ok(l),
            };
            self.i += 1;
            let r = self.add()?;
            l = Ast::Binary(op, Box::new(l), Box::new(r));
        }
    }

    fn add(&mut self) -> Result<Ast, String> {
        let mut l = self.mul()?;
        while self.is_op("+") || self.is_op("-") {
            let Some(Tok::Op(op)) = self.peek().cloned() else { break };
            self.i += 1;
            let r = self.mul()?;
            l = Ast::Binary(op, Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn mul(&mut self) -> Result<Ast, String> {
        let mut l = self.unary()?;
        while self.is_op("*") || self.is_op("/") || self.is_op("%") {
            let Some(Tok::Op(op)) = self.peek().cloned() else { break };
            self.i += 1;
            let r = self.unary()?;
            l = Ast::Binary(op, Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn unary(&mut self) -> Result<Ast, String> {
        if self.is_op("!") || self.is_word("not") {
            self.i += 1;
            return Ok(Ast::Unary("not".into(), Box::new(self.unary()?)));
        }
        if self.is_op("-") {
            self.i += 1;
            return Ok(Ast::Unary("-".into(), Box::new(self.unary()?)));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Ast, String> {
        let mut a = self.primary()?;
        loop {
            if self.is_op("[") {
                self.i += 1;
                let idx = self.expr()?;
                self.expect("]")?;
                a = Ast::Index(Box::new(a), Box::new(idx));
            } else if self.is_op(".") {
                self.i += 1;
                let Some(Tok::Ident(f)) = self.peek().cloned() else { return Err("expected member name".into()) };
                self.i += 1;
                a = Ast::Index(Box::new(a), Box::new(Ast::Lit(Val::Str(f))));
            } else {
                return Ok(a);
            }
        }
    }

    fn primary(&mut self) -> Result<Ast, String> {
        let t = self.peek().cloned().ok_or("unexpected end of expression")?;
        self.i += 1;
        match t {
            Tok::Num(v) => Ok(Ast::Lit(v)),
            Tok::Str(s) => Ok(Ast::Lit(Val::Str(s))),
            Tok::Hash => Ok(Ast::Elem),
            Tok::Op(o) if o == "(" => {
                let e = self.expr()?;
                self.expect(")")?;
                Ok(e)
            }
            Tok::Op(o) if o == "[" => {
                let mut items = Vec::new();
                while !self.is_op("]") {
                    items.push(self.expr()?);
                    if self.is_op(",") {
                        self.i += 1;
                    } else {
                        break;
                    }
                }
                self.expect("]")?;
                Ok(Ast::Array(items))
            }
            Tok::Ident(w) => match w.as_str() {
                "true" => Ok(Ast::Lit(Val::Bool(true))),
                "false" => Ok(Ast::Lit(Val::Bool(false))),
                "nil" => Ok(Ast::Lit(Val::Nil)),
                _ if self.is_op("(") => {
                    self.i += 1;
                    let mut args = Vec::new();
                    while !self.is_op(")") {
                        args.push(self.expr()?);
                        if self.is_op(",") {
                            self.i += 1;
                        } else {
                            break;
                        }
                    }
                    self.expect(")")?;
                    if !ENV_NAMES.contains(&w.as_str()) && !BUILTINS.contains(&w.as_str()) {
                        return Err(format!("unknown func {w}"));
                    }
                    Ok(Ast::Call(w, args))
                }
                _ => {
                    if (self.known)(&w).is_none() {
                        return Err(format!("unknown name {w}"));
                    }
                    Ok(Ast::Ident(w))
                }
            },
            Tok::Op(o) => Err(format!("unexpected token Operator({o:?})")),
        }
    }
}

fn call_type(f: &str) -> Ty {
    match f {
        "incidr" | "do" | "any" | "all" | "none" | "one" | "hasPrefix" | "hasSuffix" => Ty::Bool,
        "size" | "id" | "opcode" | "bufsize" | "len" | "count" | "int" | "indexOf" => Ty::Int,
        "float" => Ty::Float,
        "split" | "filter" | "map" | "reverse" => Ty::List,
        "abs" | "min" | "max" | "first" | "last" => Ty::Any,
        _ => Ty::Str,
    }
}

/// Static type of `a`, with expr's compile-time errors for mismatched operands.
fn check(a: &Ast, known: &dyn Fn(&str) -> Option<Ty>) -> Result<Ty, String> {
    let mismatch =
        |op: &str, l: Ty, r: Ty| format!("invalid operation: {op} (mismatched types {} and {})", l.name(), r.name());
    Ok(match a {
        Ast::Lit(v) => match v {
            Val::Nil => Ty::Nil,
            Val::Bool(_) => Ty::Bool,
            Val::Int(_) => Ty::Int,
            Val::Float(_) => Ty::Float,
            Val::Str(_) => Ty::Str,
            Val::List(_) => Ty::List,
        },
        Ast::Ident(n) => known(n).unwrap_or(Ty::Any),
        Ast::Elem | Ast::Index(..) => Ty::Any,
        Ast::Array(items) => {
            for i in items {
                check(i, known)?;
            }
            Ty::List
        }
        Ast::Call(f, args) => {
            for x in args {
                check(x, known)?;
            }
            call_type(f)
        }
        Ast::Cond(c, x, y) => {
            check(c, known)?;
            let (tx, ty) = (check(x, known)?, check(y, known)?);
            if tx == ty {
                tx
            } else {
                Ty::Any
            }
        }
        Ast::Unary(op, x) => {
            let t = check(x, known)?;
            if op == "not" {
                if !matches!(t, Ty::Bool | Ty::Any) {
                    return Err(format!("invalid operation: ! ({})", t.name()));
                }
                Ty::Bool
            } else {
                if !t.numeric() {
                    return Err(format!("invalid operation: - ({})", t.name()));
                }
                t
            }
        }
        Ast::Binary(op, l, r) => {
            let (lt, rt) = (check(l, known)?, check(r, known)?);
            let any = lt == Ty::Any || rt == Ty::Any;
            match op.as_str() {
                "and" | "or" => {
                    for t in [lt, rt] {
                        if !matches!(t, Ty::Bool | Ty::Any) {
                            return Err(mismatch(op, lt, rt));
                        }
                    }
                    Ty::Bool
                }
                "==" | "!=" | "in" | "not in" => Ty::Bool,
                "??" => lt,
                "<" | ">" | "<=" | ">=" => {
                    if !(any || (lt.numeric() && rt.numeric()) || (lt == Ty::Str && rt == Ty::Str)) {
                        return Err(mismatch(op, lt, rt));
                    }
                    Ty::Bool
                }
                "matches" | "contains" | "startsWith" | "endsWith" => {
                    for t in [lt, rt] {
                        if !matches!(t, Ty::Str | Ty::Any) {
                            return Err(mismatch(op, lt, rt));
                        }
                    }
                    Ty::Bool
                }
                "+" => match (lt, rt) {
                    _ if any => Ty::Any,
                    (Ty::Int, Ty::Int) => Ty::Int,
                    (Ty::Str, Ty::Str) => Ty::Str,
                    (Ty::List, Ty::List) => Ty::List,
                    (a, b) if a.numeric() && b.numeric() => Ty::Float,
                    _ => return Err(mismatch(op, lt, rt)),
                },
                _ => {
                    if !(lt.numeric() && rt.numeric()) {
                        return Err(mismatch(op, lt, rt));
                    }
                    match (op.as_str(), lt, rt) {
                        _ if any => Ty::Any,
                        ("/", _, _) => Ty::Float,
                        (_, Ty::Int, Ty::Int) => Ty::Int,
                        _ => Ty::Float,
                    }
                }
            }
        }
    })
}

impl Program {
    /// Compiles `src`; `known` gives the type of a declared variable (None = undeclared).
    pub fn compile(src: &str, known: &dyn Fn(&str) -> Option<Ty>) -> Result<Program, String> {
        let toks = lex(src)?;
        let mut p = P { t: &toks, i: 0, known };
        let ast = p.expr()?;
        if p.i != toks.len() {
            return Err(format!("unexpected token {:?}", toks[p.i]));
        }
        let ty = check(&ast, known)?;
        Ok(Program { ast, source: src.to_string(), ty })
    }

    /// The expression's static type.
    pub fn ty(&self) -> Ty {
        self.ty
    }

    /// The source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates against `env`.
    pub fn run(&self, env: &Env) -> Result<Val, String> {
        eval(&self.ast, env, None)
    }
}

fn num(v: &Val) -> Option<f64> {
    match v {
        Val::Int(i) => Some(*i as f64),
        Val::Float(f) => Some(*f),
        _ => None,
    }
}

fn s_arg(v: &Val) -> Result<&str, String> {
    match v {
        Val::Str(s) => Ok(s),
        other => Err(format!("expected string, got {}", other.kind())),
    }
}

fn incidr(ip: &str, cidr: &str) -> Result<bool, String> {
    let ip: IpAddr = ip.parse().map_err(|_| "first argument is not an IP address".to_string())?;
    let (net, len) = cidr.split_once('/').ok_or_else(|| format!("invalid CIDR address: {cidr}"))?;
    let net: IpAddr = net.parse().map_err(|_| format!("invalid CIDR address: {cidr}"))?;
    let len: u32 = len.parse().map_err(|_| format!("invalid CIDR address: {cidr}"))?;
    Ok(match (ip.to_canonical(), net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if len <= 32 => {
            let m = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & m == u32::from(n) & m
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if len <= 128 => {
            let m = if len == 0 { 0 } else { u128::MAX << (128 - len) };
            u128::from(a) & m == u128::from(n) & m
        }
        (_, IpAddr::V4(_)) if len > 32 => return Err(format!("invalid CIDR address: {cidr}")),
        _ => false,
    })
}

fn eval(a: &Ast, env: &Env, elem: Option<&Val>) -> Result<Val, String> {
    Ok(match a {
        Ast::Lit(v) => v.clone(),
        Ast::Elem => elem.cloned().ok_or("# used outside of a predicate")?,
        Ast::Ident(n) => env.vars.get(n).cloned().ok_or_else(|| format!("unknown name {n}"))?,
        Ast::Array(items) => Val::List(items.iter().map(|i| eval(i, env, elem)).collect::<Result<_, _>>()?),
        Ast::Cond(c, x, y) => {
            if eval(c, env, elem)?.truthy()? {
                eval(x, env, elem)?
            } else {
                eval(y, env, elem)?
            }
        }
        Ast::Unary(op, x) => {
            let v = eval(x, env, elem)?;
            match (op.as_str(), v) {
                ("not", v) => Val::Bool(!v.truthy()?),
                ("-", Val::Int(i)) => Val::Int(-i),
                ("-", Val::Float(f)) => Val::Float(-f),
                (_, v) => return Err(format!("invalid operation: - ({})", v.kind())),
            }
        }
        Ast::Index(x, i) => {
            let v = eval(x, env, elem)?;
            let idx = eval(i, env, elem)?;
            match (v, idx) {
                (Val::List(l), Val::Int(n)) => {
                    let n = if n < 0 { l.len() as i64 + n } else { n };
                    l.get(n as usize).cloned().ok_or_else(|| format!("index out of range: {n}"))?
                }
                (Val::Str(s), Val::Int(n)) => {
                    s.chars().nth(n.max(0) as usize).map(|c| Val::Str(c.to_string())).ok_or("index out of range")?
                }
                (v, _) => return Err(format!("cannot index {}", v.kind())),
            }
        }
        Ast::Binary(op, l, r) => {
            if op == "and" {
                return Ok(Val::Bool(eval(l, env, elem)?.truthy()? && eval(r, env, elem)?.truthy()?));
            }
            if op == "or" {
                return Ok(Val::Bool(eval(l, env, elem)?.truthy()? || eval(r, env, elem)?.truthy()?));
            }
            let lv = eval(l, env, elem)?;
            if op == "??" {
                return if lv == Val::Nil { eval(r, env, elem) } else { Ok(lv) };
            }
            let rv = eval(r, env, elem)?;
            binary(op, lv, rv)?
        }
        Ast::Call(f, args) => call(f, args, env, elem)?,
    })
}

fn binary(op: &str, l: Val, r: Val) -> Result<Val, String> {
    use Val::*;
    Ok(match op {
        "==" => Bool(match (num(&l), num(&r)) {
            (Some(a), Some(b)) => a == b,
            _ => l == r,
        }),
        "!=" => Bool(match (num(&l), num(&r)) {
            (Some(a), Some(b)) => a != b,
            _ => l != r,
        }),
        "<" | ">" | "<=" | ">=" => {
            let ord = match (&l, &r) {
                (Str(a), Str(b)) => a.cmp(b),
                _ => {
                    let (a, b) = (num(&l).ok_or("invalid comparison")?, num(&r).ok_or("invalid comparison")?);
                    a.partial_cmp(&b).ok_or("invalid comparison")?
                }
            };
            Bool(match op {
                "<" => ord.is_lt(),
                ">" => ord.is_gt(),
                "<=" => ord.is_le(),
                _ => ord.is_ge(),
            })
        }
        "in" | "not in" => {
            let found = match &r {
                List(items) => items.iter().any(|i| binary("==", l.clone(), i.clone()) == Ok(Bool(true))),
                Str(s) => s.contains(s_arg(&l)?),
                other => return Err(format!("invalid operation: in {}", other.kind())),
            };
            Bool(if op == "in" { found } else { !found })
        }
        "matches" => {
            let re = Regex::new(s_arg(&r)?).map_err(|e| e.to_string())?;
            Bool(re.is_match(s_arg(&l)?))
        }
        "contains" => Bool(s_arg(&l)?.contains(s_arg(&r)?)),
        "startsWith" => Bool(s_arg(&l)?.starts_with(s_arg(&r)?)),
        "endsWith" => Bool(s_arg(&l)?.ends_with(s_arg(&r)?)),
        "+" => match (l, r) {
            (Int(a), Int(b)) => Int(a.wrapping_add(b)),
            (Str(a), Str(b)) => Str(a + &b),
            (List(mut a), List(b)) => {
                a.extend(b);
                List(a)
            }
            (a, b) => Float(num(&a).ok_or("invalid operation +")? + num(&b).ok_or("invalid operation +")?),
        },
        "-" | "*" | "/" | "%" => match (op, &l, &r) {
            ("-", Int(a), Int(b)) => Int(a.wrapping_sub(*b)),
            ("*", Int(a), Int(b)) => Int(a.wrapping_mul(*b)),
            ("%", Int(a), Int(b)) => Int(a.checked_rem(*b).ok_or("integer divide by zero")?),
            _ => {
                let (a, b) = (num(&l).ok_or("invalid operation")?, num(&r).ok_or("invalid operation")?);
                Float(match op {
                    "-" => a - b,
                    "*" => a * b,
                    "/" => a / b,
                    _ => a % b,
                })
            }
        },
        other => return Err(format!("unknown operator {other}")),
    })
}

fn call(f: &str, args: &[Ast], env: &Env, elem: Option<&Val>) -> Result<Val, String> {
    // Predicate builtins take an unevaluated second argument.
    if ["any", "all", "none", "one", "filter", "map", "count"].contains(&f) {
        let [list, pred] = args else { return Err(format!("invalid number of arguments to {f}")) };
        let Val::List(items) = eval(list, env, elem)? else { return Err(format!("{f}: expected array")) };
        let mut results = Vec::with_capacity(items.len());
        for it in &items {
            results.push(eval(pred, env, Some(it))?);
        }
        let bools = || results.iter().map(Val::truthy).collect::<Result<Vec<bool>, String>>();
        return Ok(match f {
            "any" => Val::Bool(bools()?.into_iter().any(|b| b)),
            "all" => Val::Bool(bools()?.into_iter().all(|b| b)),
            "none" => Val::Bool(!bools()?.into_iter().any(|b| b)),
            "one" => Val::Bool(bools()?.into_iter().filter(|b| *b).count() == 1),
            "count" => Val::Int(bools()?.into_iter().filter(|b| *b).count() as i64),
            "filter" => {
                let keep = bools()?;
                Val::List(items.into_iter().zip(keep).filter(|(_, k)| *k).map(|(v, _)| v).collect())
            }
            _ => Val::List(results),
        });
    }
    let v: Vec<Val> = args.iter().map(|a| eval(a, env, elem)).collect::<Result<_, _>>()?;
    let want = |n: usize| {
        if v.len() == n {
            Ok(())
        } else {
            Err(format!("invalid number of arguments (expected {n}, got {})", v.len()))
        }
    };
    let s = |s: &str| Val::Str(s.to_string());
    Ok(match f {
        "incidr" => {
            want(2)?;
            Val::Bool(incidr(s_arg(&v[0])?, s_arg(&v[1])?)?)
        }
        "metadata" => {
            want(1)?;
            s(env.metadata.get(s_arg(&v[0])?).map(String::as_str).unwrap_or(""))
        }
        "group" => {
            want(1)?;
            let key = match &v[0] {
                Val::Int(i) => i.to_string(),
                Val::Str(k) => k.clone(),
                _ => String::new(),
            };
            s(env.groups.get(&key).map(String::as_str).unwrap_or(""))
        }
        "type" if v.is_empty() => s(&env.qtype),
        "type" => {
            want(1)?;
            s(v[0].kind())
        }
        "name" => s(&env.name),
        "class" => s(&env.class),
        "proto" => s(&env.proto),
        "size" => Val::Int(env.size),
        "client_ip" => s(&env.client_ip),
        "port" => s(&env.port),
        "id" => Val::Int(env.id),
        "opcode" => Val::Int(env.opcode),
        "do" => Val::Bool(env.dnssec_ok),
        "bufsize" => Val::Int(env.bufsize),
        "server_ip" => s(&env.server_ip),
        "server_port" => s(&env.server_port),
        "len" => {
            want(1)?;
            Val::Int(match &v[0] {
                Val::Str(x) => x.chars().count() as i64,
                Val::List(l) => l.len() as i64,
                other => return Err(format!("invalid argument for len (type {})", other.kind())),
            })
        }
        "upper" => s(&s_arg(v.first().ok_or("missing argument")?)?.to_uppercase()),
        "lower" => s(&s_arg(v.first().ok_or("missing argument")?)?.to_lowercase()),
        "trim" => {
            let x = s_arg(v.first().ok_or("missing argument")?)?;
            match v.get(1) {
                Some(c) => {
                    let set = s_arg(c)?;
                    s(x.trim_matches(|ch| set.contains(ch)))
                }
                None => s(x.trim()),
            }
        }
        "trimPrefix" => {
            want(2)?;
            let (x, p) = (s_arg(&v[0])?, s_arg(&v[1])?);
            s(x.strip_prefix(p).unwrap_or(x))
        }
        "trimSuffix" => {
            want(2)?;
            let (x, p) = (s_arg(&v[0])?, s_arg(&v[1])?);
            s(x.strip_suffix(p).unwrap_or(x))
        }
        "hasPrefix" => {
            want(2)?;
            Val::Bool(s_arg(&v[0])?.starts_with(s_arg(&v[1])?))
        }
        "hasSuffix" => {
            want(2)?;
            Val::Bool(s_arg(&v[0])?.ends_with(s_arg(&v[1])?))
        }
        "indexOf" => {
            want(2)?;
            Val::Int(s_arg(&v[0])?.find(s_arg(&v[1])?).map(|i| i as i64).unwrap_or(-1))
        }
        "split" => {
            want(2)?;
            Val::List(s_arg(&v[0])?.split(s_arg(&v[1])?).map(|p| Val::Str(p.to_string())).collect())
        }
        "join" => {
            let Some(Val::List(l)) = v.first() else { return Err("join: expected array".into()) };
            let sep = match v.get(1) {
                Some(x) => s_arg(x)?.to_string(),
                None => String::new(),
            };
            s(&l.iter().map(Val::to_text).collect::<Vec<_>>().join(&sep))
        }
        "replace" => {
            want(3)?;
            s(&s_arg(&v[0])?.replace(s_arg(&v[1])?, s_arg(&v[2])?))
        }
        "string" => {
            want(1)?;
            s(&v[0].to_text())
        }
        "int" => {
            want(1)?;
            Val::Int(match &v[0] {
                Val::Int(i) => *i,
                Val::Float(f) => *f as i64,
                Val::Str(x) => x.trim().parse().map_err(|e| format!("{e}"))?,
                other => return Err(format!("invalid operation: int({})", other.kind())),
            })
        }
        "float" => {
            want(1)?;
            Val::Float(match &v[0] {
                Val::Str(x) => x.trim().parse().map_err(|e| format!("{e}"))?,
                other => num(other).ok_or("invalid operation: float")?,
            })
        }
        "abs" => match v.first() {
            Some(Val::Int(i)) => Val::Int(i.abs()),
            Some(Val::Float(f)) => Val::Float(f.abs()),
            _ => return Err("invalid argument for abs".into()),
        },
        "min" | "max" => {
            let mut best: Option<Val> = None;
            for x in v {
                best = Some(match best {
                    None => x,
                    Some(b) => {
                        let take = binary(if f == "min" { "<" } else { ">" }, x.clone(), b.clone())? == Val::Bool(true);
                        if take {
                            x
                        } else {
                            b
                        }
                    }
                });
            }
            best.ok_or("not enough arguments")?
        }
        "first" | "last" => match v.first() {
            Some(Val::List(l)) => (if f == "first" { l.first() } else { l.last() }).cloned().unwrap_or(Val::Nil),
            _ => return Err(format!("{f}: expected array")),
        },
        "reverse" => match v.first() {
            Some(Val::List(l)) => Val::List(l.iter().rev().cloned().collect()),
            _ => return Err("reverse: expected array".into()),
        },
        other => return Err(format!("unknown func {other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn run(src: &str, env: &Env) -> Result<Val, String> {
        Program::compile(src, &|n| env.vars.contains_key(n).then_some(Ty::Any))?.run(env)
    }

    #[test]
    fn readme_example() {
        let mut env = Env::default();
        env.groups.insert("ip".into(), "10-1-2-3".into());
        let ip = run("replace(group('ip'), '-', '.')", &env).unwrap();
        assert_eq!(ip, Val::Str("10.1.2.3".into()));
        env.vars.insert("ip".into(), ip);
        let cond = "any(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'], incidr(ip, #))";
        assert_eq!(run(cond, &env).unwrap(), Val::Bool(true));
        env.vars.insert("ip".into(), Val::Str("8.8.8.8".into()));
        assert_eq!(run(cond, &env).unwrap(), Val::Bool(false));
    }

    #[test]
    fn operators() {
        let env = Env { qtype: "A".into(), name: "a.example.".into(), ..Env::default() };
        assert_eq!(run("type() == 'A' && name() endsWith 'example.'", &env).unwrap(), Val::Bool(true));
        assert_eq!(run("1 + 2 * 3 == 7 and not (2 > 3)", &env).unwrap(), Val::Bool(true));
        assert_eq!(run("'b' in ['a', 'b'] ? 'yes' : 'no'", &env).unwrap(), Val::Str("yes".into()));
        assert_eq!(run("name() matches '^a\\\\.'", &env).unwrap(), Val::Bool(true));
        assert!(Program::compile("nosuch + 1", &|_| None).is_err());
        assert!(Program::compile("nosuchfunc(1)", &|_| None).is_err());
        assert!(Program::compile("1 +", &|_| None).is_err());
        assert!(Program::compile("'x' + 1", &|_| None).unwrap_err().contains("mismatched types string and int"));
    }
}
