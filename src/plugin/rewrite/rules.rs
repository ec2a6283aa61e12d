//! Rewrite rules: construction from directive arguments (CoreDNS's `newRule` and friends, with
//! their error messages) and application to a question and to response records.

use regex::Regex;

use crate::dnsname;
use crate::plugin::template::setup::{class_from_str, rcode_from_str, type_from_str};

/// Longest accepted regex.
const MAX_REGEX_LEN: usize = 10000;

/// What happens after a rule applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Stop evaluating further rules (default).
    Stop,
    /// Evaluate the next rules too.
    Continue,
}

/// Rewrites a string (a record owner or value) in a response.
#[derive(Debug, Clone)]
pub enum StringRewriter {
    /// Regex with `{N}` group substitution.
    Regex(Regex, String),
    /// Exact name, or a name ending in `.` + `orig`, gets `orig` replaced.
    Remap(String, String),
    /// A trailing `suffix` is replaced.
    Suffix(String, String),
}

impl StringRewriter {
    /// Applies the rewriter.
    pub fn rewrite(&self, src: &str) -> String {
        match self {
            StringRewriter::Regex(re, repl) => match re.captures(src) {
                Some(caps) => substitute_groups(repl, &caps),
                None => src.to_string(),
            },
            StringRewriter::Remap(orig, repl) => {
                if src == orig {
                    return repl.clone();
                }
                if src.len() > orig.len() {
                    let i = src.len() - orig.len();
                    if src.is_char_boundary(i) && src.as_bytes()[i - 1] == b'.' && &src[i..] == orig {
                        return format!("{}{}", &src[..i], repl);
                    }
                }
                src.to_string()
            }
            StringRewriter::Suffix(suffix, repl) => match src.strip_suffix(suffix.as_str()) {
                Some(before) => format!("{before}{repl}"),
                None => src.to_string(),
            },
        }
    }
}

fn substitute_groups(template: &str, caps: &regex::Captures<'_>) -> String {
    let mut s = template.to_string();
    for (i, m) in caps.iter().enumerate() {
        s = s.replace(&format!("{{{i}}}"), m.map(|m| m.as_str()).unwrap_or(""));
    }
    s
}

/// A rule applied to the response.
#[derive(Debug, Clone)]
pub enum ResponseRule {
    /// Rewrite record owner names.
    Name(StringRewriter),
    /// Rewrite record values (targets of CNAME, MX, SRV, NS, PTR, DNAME, NAPTR, SOA MNAME).
    Value(StringRewriter),
    /// Clamp TTLs into `[min, max]`.
    Ttl(u32, u32),
    /// Replace the rcode `old` by `new`.
    Rcode(u16, u16),
    /// Rewrite a CNAME target and resolve the new target (`cname` rule).
    Cname(CnameTarget),
    /// Undo an edns0 change in the response OPT.
    Edns0(super::edns0::Revert),
}

/// A `cname` rule: which CNAME targets to replace, and by what.
#[derive(Debug, Clone)]
pub struct CnameTarget {
    /// exact, prefix, suffix, substring or regex.
    pub kind: String,
    /// Source text (lower case; FQDN for exact).
    pub from: String,
    /// Replacement (may hold `{N}` for regex).
    pub to: String,
    /// Compiled `from` for regex.
    pub pattern: Option<Regex>,
}

impl CnameTarget {
    /// CoreDNS's `getFromAndToTarget`: the (from, to) pair for a CNAME target, if it applies.
    pub fn from_and_to(&self, target: &str) -> Option<(String, String)> {
        match self.kind.as_str() {
            "exact" => Some((self.from.clone(), self.to.clone())),
            "prefix" => {
                target.strip_prefix(self.from.as_str()).map(|rest| (target.to_string(), format!("{}{rest}", self.to)))
            }
            "suffix" => target
                .strip_suffix(self.from.as_str())
                .map(|before| (target.to_string(), format!("{before}{}", self.to))),
            "substring" => target
                .contains(self.from.as_str())
                .then(|| (target.to_string(), target.replace(self.from.as_str(), &self.to))),
            "regex" => {
                let caps = self.pattern.as_ref()?.captures(target)?;
                Some((target.to_string(), substitute_groups(&self.to, &caps)))
            }
            _ => None,
        }
    }
}

/// How a name-based rule selects queries.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Equal.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// Ends with.
    Suffix(String),
    /// Contains.
    Substring(String),
    /// Regex match.
    Regex(Regex),
}

impl Matcher {
    fn matches(&self, name: &str) -> bool {
        match self {
            Matcher::Exact(s) => name == s,
            Matcher::Prefix(s) => name.starts_with(s.as_str()),
            Matcher::Suffix(s) => name.ends_with(s.as_str()),
            Matcher::Substring(s) => name.contains(s.as_str()),
            Matcher::Regex(r) => r.is_match(name),
        }
    }
}

/// One `rewrite` rule.
#[derive(Debug, Clone)]
pub enum Rule {
    /// `name [exact|prefix|suffix|substring|regex] FROM TO [answer ...]`.
    Name {
        /// After a match.
        mode: Mode,
        /// Match kind and source.
        matcher: Matcher,
        /// Replacement (may hold `{N}` for regex).
        to: String,
        /// Add automatic name/value reversal from the rewritten name to the original.
        auto: bool,
        /// Explicit response rules.
        answers: Vec<ResponseRule>,
    },
    /// `type FROM TO`.
    Type(Mode, u16, u16),
    /// `class FROM TO`.
    Class(Mode, u16, u16),
    /// `ttl [MATCH] NAME TTL` and `rcode [MATCH] NAME OLD NEW`: a response-only rule.
    Response(Mode, Matcher, ResponseRule),
    /// `edns0 ...`: changes the query's OPT (applied by the handler, which has the message).
    Edns0(Mode, super::edns0::Edns0Rule),
}

/// The question a rule may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// Name as currently in the query.
    pub name: String,
    /// Type.
    pub qtype: u16,
    /// Class.
    pub qclass: u16,
}

impl Rule {
    /// The rule's mode.
    pub fn mode(&self) -> Mode {
        match self {
            Rule::Name { mode, .. }
            | Rule::Type(mode, ..)
            | Rule::Class(mode, ..)
            | Rule::Response(mode, ..)
            | Rule::Edns0(mode, _) => *mode,
        }
    }

    /// Applies the rule to `q`; returns the response rules it adds when it applied.
    pub fn apply(&self, q: &mut Question) -> Option<Vec<ResponseRule>> {
        let lower = q.name.to_ascii_lowercase();
        match self {
            Rule::Type(_, from, to) => (q.qtype == *from).then(|| {
                q.qtype = *to;
                Vec::new()
            }),
            Rule::Class(_, from, to) => (q.qclass == *from).then(|| {
                q.qclass = *to;
                Vec::new()
            }),
            Rule::Response(_, m, r) => m.matches(&lower).then(|| vec![r.clone()]),
            Rule::Edns0(..) => None,
            Rule::Name { matcher, to, auto, answers, .. } => {
                let new = match matcher {
                    Matcher::Exact(from) => (lower == *from).then(|| to.clone()),
                    Matcher::Prefix(p) => lower.strip_prefix(p.as_str()).map(|rest| format!("{to}{rest}")),
                    Matcher::Suffix(s) => lower.strip_suffix(s.as_str()).map(|before| format!("{before}{to}")),
                    Matcher::Substring(s) => lower.contains(s.as_str()).then(|| lower.replace(s.as_str(), to)),
                    Matcher::Regex(re) => re.captures(&lower).map(|caps| substitute_groups(to, &caps)),
                }?;
                q.name = new.clone();
                let mut rules = Vec::new();
                if *auto {
                    // As CoreDNS: the rule's text as written against record names in printed
                    // form, so `a\032b.` (printed `a\ b.`) is not mapped back.
                    let rw = StringRewriter::Remap(new, lower);
                    rules.push(ResponseRule::Name(rw.clone()));
                    rules.push(ResponseRule::Value(rw));
                }
                rules.extend(answers.iter().cloned());
                Some(rules)
            }
        }
    }
}

fn sub_expr_usage(s: &str) -> usize {
    (0..=100).filter(|i| s.contains(&format!("{{{i}}}"))).count()
}

fn valid_regex(from: &str, to: &str) -> Result<Regex, String> {
    if from.len() > MAX_REGEX_LEN {
        return Err(format!("regex pattern too long: {} > {}", from.len(), MAX_REGEX_LEN));
    }
    // Go's RE2 reads `\0`, `\012`, `\101` as octal escapes (an exact rule's target such as
    // `a\032b.` is checked as a pattern too).
    let re = regex::RegexBuilder::new(from)
        .octal(true)
        .build()
        .map_err(|_| format!("invalid regex matching pattern: {from}"))?;
    if sub_expr_usage(to) > re.captures_len() - 1 {
        return Err(format!(
            "the rewrite regex pattern ({to}) uses more subexpressions than its corresponding matching regex pattern ({from})"
        ));
    }
    Ok(re)
}

/// Builds a rule from one directive's arguments (CoreDNS's `newRule`).
pub fn new_rule(args: &[String]) -> Result<Rule, String> {
    let first = args.first().ok_or("no rule type specified for rewrite")?.to_ascii_lowercase();
    let (mode, rule_type, expect, start) = match first.as_str() {
        "continue" | "stop" => {
            let mode = if first == "continue" { Mode::Continue } else { Mode::Stop };
            let t = args.get(1).ok_or_else(|| format!("{first} rule must begin with a rule type"))?;
            (mode, t.to_ascii_lowercase(), args.len() - 1, 2)
        }
        _ => (Mode::Stop, first.clone(), args.len(), 1),
    };
    let rest = &args[start..];
    match rule_type.as_str() {
        "answer" => Err("response rewrites must begin with a name rule".into()),
        "name" => new_name_rule(mode, rest),
        "class" | "type" => {
            if expect != 3 {
                return Err(format!("{rule_type} rules must have exactly two arguments"));
            }
            let lookup = |s: &str| {
                let up = s.to_ascii_uppercase();
                let v = if rule_type == "class" { class_from_str(&up) } else { type_from_str(&up) };
                v.ok_or_else(|| format!("invalid {rule_type} {up:?}"))
            };
            let (from, to) = (lookup(&rest[0])?, lookup(&rest[1])?);
            Ok(if rule_type == "class" { Rule::Class(mode, from, to) } else { Rule::Type(mode, from, to) })
        }
        "ttl" => new_ttl_rule(mode, rest),
        "rcode" => new_rcode_rule(mode, rest),
        "cname" => new_cname_rule(mode, rest),
        "edns0" => super::edns0::new_rule(rest).map(|r| Rule::Edns0(mode, r)),
        _ => Err(format!("invalid rule type {:?}", args[0])),
    }
}

fn new_name_rule(mode: Mode, args: &[String]) -> Result<Rule, String> {
    if args.len() < 2 {
        return Err("too few arguments for a name rule".into());
    }
    let (kind, mut from, mut to) = if args.len() == 2 {
        ("exact".to_string(), dnsname::normalize_escaped(&args[0]), dnsname::normalize_escaped(&args[1]))
    } else {
        let kind = args[0].to_ascii_lowercase();
        if kind == "regex" {
            (kind, args[1].clone(), args[2].clone())
        } else {
            (kind, dnsname::normalize_escaped(&args[1]), dnsname::normalize_escaped(&args[2]))
        }
    };
    if kind == "exact" || kind == "suffix" {
        from = dnsname::fqdn(&from);
        to = dnsname::fqdn(&to);
    }
    let (mut auto, mut answers) = (false, Vec::new());
    if args.len() > 3 {
        (auto, answers) = parse_answer_rules(&kind, &args[3..])?;
    }
    let matcher = match kind.as_str() {
        "exact" => {
            valid_regex(&to, &from)?;
            auto = true;
            Matcher::Exact(from)
        }
        "prefix" => Matcher::Prefix(from),
        "suffix" => {
            let mut statics = Vec::new();
            if auto {
                let rw = StringRewriter::Suffix(to.clone(), from.clone());
                statics.push(ResponseRule::Name(rw.clone()));
                statics.push(ResponseRule::Value(rw));
            }
            statics.extend(answers);
            answers = statics;
            auto = false;
            Matcher::Suffix(from)
        }
        "substring" => Matcher::Substring(from),
        "regex" => {
            let re = valid_regex(&from, &to)?;
            to = dnsname::normalize_escaped(&args[2]);
            Matcher::Regex(re)
        }
        other => {
            return Err(format!(
                "name rule supports only exact, prefix, suffix, substring, and regex name matching, received: {other}"
            ))
        }
    };
    Ok(Rule::Name { mode, matcher, to, auto, answers })
}

fn parse_answer_rules(name: &str, args: &[String]) -> Result<(bool, Vec<ResponseRule>), String> {
    if args.len() < 2 {
        return Err(format!("invalid arguments for {name} rule"));
    }
    let (mut auto, mut rules, mut name_rules) = (false, Vec::new(), 0);
    let mut last = String::new();
    let mut i = 0;
    while i < args.len() {
        if last.is_empty() && args[i] != "answer" {
            return Err(format!("exceeded the number of arguments for a non-answer rule argument for {name} rule"));
        }
        if args[i] == "answer" {
            i += 1;
        }
        if i >= args.len() {
            return Err(format!("type missing for answer rule for {name} rule"));
        }
        last = args[i].clone();
        i += 1;
        match last.as_str() {
            "auto" => auto = true,
            "name" | "value" => {
                if args.len() - i < 2 {
                    return Err(format!("{last} answer rule for {name} rule: 2 arguments required"));
                }
                let re = valid_regex(&args[i], &args[i + 1])
                    .map_err(|e| format!("{last} answer rule for {name} rule: {e}"))?;
                let rw = StringRewriter::Regex(re, dnsname::normalize_escaped(&args[i + 1]));
                if last == "name" {
                    rules.push(ResponseRule::Name(rw));
                    name_rules += 1;
                } else {
                    rules.push(ResponseRule::Value(rw));
                }
                i += 2;
            }
            other => return Err(format!("invalid type {other:?} for answer rule for {name} rule")),
        }
    }
    if auto && name_rules > 0 {
        return Err("auto name answer rule cannot be combined with explicit name anwer rules".into());
    }
    Ok((auto, rules))
}

fn matcher_for(kind: &str, arg: &str, rule: &str) -> Result<Matcher, String> {
    Ok(match kind.to_ascii_lowercase().as_str() {
        "exact" => Matcher::Exact(dnsname::normalize_escaped(arg)),
        "prefix" => Matcher::Prefix(dnsname::normalize_escaped(arg)),
        "suffix" => Matcher::Suffix(dnsname::normalize_escaped(arg)),
        "substring" => Matcher::Substring(dnsname::normalize_escaped(arg)),
        "regex" => {
            if arg.len() > MAX_REGEX_LEN {
                return Err(format!("regex pattern too long in a {rule} rule: {} > {}", arg.len(), MAX_REGEX_LEN));
            }
            Matcher::Regex(Regex::new(arg).map_err(|_| format!("invalid regex pattern in a {rule} rule: {arg}"))?)
        }
        _ => {
            return Err(format!("{rule} rule supports only exact, prefix, suffix, substring, and regex name matching"))
        }
    })
}

fn new_cname_rule(mode: Mode, args: &[String]) -> Result<Rule, String> {
    let (kind, mut from, mut to) = match args.len() {
        3 => {
            let kind = args[0].to_ascii_lowercase();
            if !["exact", "prefix", "suffix", "substring", "regex"].contains(&kind.as_str()) {
                return Err(format!("unknown cname rewrite type: {kind}"));
            }
            (kind, args[1].to_ascii_lowercase(), args[2].to_ascii_lowercase())
        }
        2 => ("exact".to_string(), args[0].to_ascii_lowercase(), args[1].to_ascii_lowercase()),
        n => return Err(format!("too few ({n}) arguments for a cname rule")),
    };
    if kind == "exact" {
        from = dnsname::normalize_escaped(&from);
        to = dnsname::normalize_escaped(&to);
    }
    let mut pattern = None;
    if kind == "regex" {
        if from.len() > MAX_REGEX_LEN {
            return Err(format!("regex pattern too long in a cname rule: {} > {}", from.len(), MAX_REGEX_LEN));
        }
        pattern = Some(Regex::new(&from).map_err(|e| format!("invalid cname rewrite regex pattern: {e}"))?);
    }
    Ok(Rule::Response(
        mode,
        Matcher::Substring(String::new()),
        ResponseRule::Cname(CnameTarget { kind, from, to, pattern }),
    ))
}

fn valid_ttl(v: &str) -> Option<(u32, u32)> {
    let parts: Vec<&str> = v.split('-').collect();
    let num = |s: &str| -> Option<u32> {
        if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match parts.as_slice() {
        [one] => num(one).map(|n| (n, n)),
        [lo, hi] => {
            let min = if lo.is_empty() { 0 } else { num(lo)? };
            let max = if hi.is_empty() {
                if lo.is_empty() {
                    return None;
                }
                2147483647
            } else {
                num(hi)?
            };
            (min <= max).then_some((min, max))
        }
        _ => None,
    }
}

fn new_ttl_rule(mode: Mode, args: &[String]) -> Result<Rule, String> {
    if args.len() < 2 {
        return Err(format!("too few ({}) arguments for a ttl rule", args.len()));
    }
    let s = match args.len() {
        2 => args[1].as_str(),
        3 => args[2].as_str(),
        _ => "",
    };
    let (min, max) = valid_ttl(s).ok_or_else(|| format!("invalid TTL '{s}' for a ttl rule"))?;
    let matcher = match args.len() {
        3 => matcher_for(&args[0], &args[1], "ttl")?,
        2 => Matcher::Exact(dnsname::normalize_escaped(&args[0])),
        _ => return Err("many few arguments for a ttl rule".into()),
    };
    Ok(Rule::Response(mode, matcher, ResponseRule::Ttl(min, max)))
}

fn valid_rcode(v: &str) -> Option<u16> {
    if let Ok(n) = v.parse::<u32>() {
        if n <= 23 && v.chars().all(|c| c.is_ascii_digit()) {
            return Some(n as u16);
        }
    }
    rcode_from_str(&v.to_ascii_uppercase())
}

fn new_rcode_rule(mode: Mode, args: &[String]) -> Result<Rule, String> {
    if args.len() < 3 {
        return Err(format!("too few ({}) arguments for a rcode rule", args.len()));
    }
    let (old, new) = match args.len() {
        3 => (&args[1], &args[2]),
        4 => (&args[2], &args[3]),
        _ => return Err("many few arguments for a rcode rule".into()),
    };
    let o = valid_rcode(old).ok_or_else(|| format!("invalid matching RCODE '{old}' for a rcode rule"))?;
    let n = valid_rcode(new).ok_or_else(|| format!("invalid replacement RCODE '{new}' for a rcode rule"))?;
    let matcher = if args.len() == 4 {
        matcher_for(&args[0], &args[1], "rcode")?
    } else {
        Matcher::Exact(dnsname::normalize_escaped(&args[0]))
    };
    Ok(Rule::Response(mode, matcher, ResponseRule::Rcode(o, n)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn q(name: &str) -> Question {
        Question { name: name.into(), qtype: 1, qclass: 1 }
    }

    fn rule(text: &str) -> Result<Rule, String> {
        new_rule(&text.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn name_rules_rewrite_questions() {
        let mut x = q("Foo.Example.org.");
        assert!(rule("name foo.example.org bar.example.org").unwrap().apply(&mut x).is_some());
        assert_eq!(x.name, "bar.example.org.");
        let mut x = q("a.example.org.");
        rule("name suffix example.org example.net").unwrap().apply(&mut x);
        assert_eq!(x.name, "a.example.net.");
        let mut x = q("sub.a.example.org.");
        rule(r"name regex (.*)\.a\.example\.org {1}.b.example.org").unwrap().apply(&mut x);
        assert_eq!(x.name, "sub.b.example.org.");
        let mut x = q("www.example.org.");
        assert!(rule("name exact other.org x.org").unwrap().apply(&mut x).is_none());
        assert_eq!(x.name, "www.example.org.");
    }

    #[test]
    fn rule_errors() {
        assert_eq!(rule("").unwrap_err(), "no rule type specified for rewrite");
        assert_eq!(rule("continue").unwrap_err(), "continue rule must begin with a rule type");
        assert_eq!(rule("foo a b").unwrap_err(), "invalid rule type \"foo\"");
        assert_eq!(rule("type A").unwrap_err(), "type rules must have exactly two arguments");
        assert_eq!(rule("type A XX").unwrap_err(), "invalid type \"XX\"");
        assert_eq!(rule("class IN XX").unwrap_err(), "invalid class \"XX\"");
        assert_eq!(rule("name a").unwrap_err(), "too few arguments for a name rule");
        assert_eq!(rule("ttl a.org x").unwrap_err(), "invalid TTL 'x' for a ttl rule");
        assert_eq!(rule("answer name a b").unwrap_err(), "response rewrites must begin with a name rule");
        assert!(rule("name regex (a) {1}{2}").unwrap_err().contains("uses more subexpressions"));
        assert_eq!(
            rule("name exact a.org b.org answer auto answer name x y").unwrap_err(),
            "auto name answer rule cannot be combined with explicit name anwer rules"
        );
        assert_eq!(rule("name exact a.org b.org junk").unwrap_err(), "invalid arguments for exact rule");
    }

    #[test]
    fn ttl_ranges() {
        assert_eq!(valid_ttl("30"), Some((30, 30)));
        assert_eq!(valid_ttl("10-20"), Some((10, 20)));
        assert_eq!(valid_ttl("-20"), Some((0, 20)));
        assert_eq!(valid_ttl("10-"), Some((10, 2147483647)));
        assert_eq!(valid_ttl("20-10"), None);
        assert_eq!(valid_ttl("-"), None);
    }
}
