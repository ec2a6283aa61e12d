//! `template CLASS TYPE [ZONES...] { match; answer; additional; authority; rcode; ederror;
//! fallthrough }` syntax, with CoreDNS's argument checks and messages.

use std::any::Any;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use regex::Regex;

use super::common::{origins_from_args_or_block, Fall};
use super::expr::{Program, BUILTINS, ENV_NAMES, KEYWORDS};
use super::gotmpl::Template as GoTemplate;
use crate::corefile::{CorefileError, Dispenser};
use crate::plugin::{BuildContext, Plugin, PluginConfig, SetupContext};

/// Longest regex accepted by `match` (CoreDNS's guard against huge compilations).
pub const MAX_REGEX_LEN: usize = 10000;

/// One `template` stanza.
#[derive(Debug, Clone)]
pub struct TemplateSpec {
    /// Query class to match (255 = ANY).
    pub qclass: u16,
    /// Query type to match (255 = ANY).
    pub qtype: u16,
    /// Zones this template covers.
    pub zones: Vec<String>,
    /// Regexes tried in order (default `.*`).
    pub regex: Vec<Regex>,
    /// Answer-section templates.
    pub answer: Vec<GoTemplate>,
    /// Additional-section templates.
    pub additional: Vec<GoTemplate>,
    /// Authority-section templates.
    pub authority: Vec<GoTemplate>,
    /// Reply rcode.
    pub rcode: u16,
    /// Extended DNS error (code, reason).
    pub ederror: Option<(u16, String)>,
    /// Fallthrough zones.
    pub fall: Fall,
    /// `var NAME EXPR` declarations, in order.
    pub vars: Vec<(String, Program)>,
    /// `expr EXPR` conditions.
    pub exprs: Vec<Program>,
}

/// Parsed `template` configuration (every occurrence in the block).
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// All zones of all templates (the handler's first filter).
    pub zones: Vec<String>,
    /// Templates in Corefile order.
    pub templates: Vec<TemplateSpec>,
}

impl PluginConfig for Config {
    fn name(&self) -> &'static str {
        "template"
    }

    fn describe(&self) -> String {
        let mut out = Vec::new();
        for t in &self.templates {
            let regex: Vec<&str> = t.regex.iter().map(|r| r.as_str()).collect();
            out.push(format!(
                "template {} {} {} match={:?} answer={:?} additional={:?} authority={:?} rcode={} ederror={:?} fallthrough={:?}",
                class_to_string(t.qclass),
                type_to_string(t.qtype),
                t.zones.join(" "),
                regex,
                t.answer.iter().map(|a| a.source()).collect::<Vec<_>>(),
                t.additional.iter().map(|a| a.source()).collect::<Vec<_>>(),
                t.authority.iter().map(|a| a.source()).collect::<Vec<_>>(),
                rcode_to_string(t.rcode),
                t.ederror,
                t.fall.zones,
            ));
        }
        out.join("\n")
    }

    fn build(&self, ctx: &BuildContext) -> Result<Option<Arc<dyn Plugin>>, String> {
        let upstream = ctx
            .servers
            .first()
            .and_then(|label| crate::plugin::loop_detect::handler::probe_target(label))
            .map(|(addr, _)| addr);
        Ok(Some(Arc::new(super::handler::TemplateHandler::with_upstream(self.clone(), upstream))))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// miekg's `StringToClass` (case-sensitive).
pub fn class_from_str(s: &str) -> Option<u16> {
    crate::gocompat::names::class_from_name(s)
}

/// miekg's `ClassToString` (empty for unknown classes).
pub fn class_to_string(c: u16) -> String {
    crate::gocompat::names::class_mnemonic(c).unwrap_or_default().to_string()
}

/// miekg's `StringToType` (case-sensitive mnemonics).
pub fn type_from_str(s: &str) -> Option<u16> {
    if s == "ANY" {
        return Some(255);
    }
    if s.is_empty() || s.to_ascii_uppercase() != s || s.starts_with("TYPE") {
        return None;
    }
    let t: hickory_proto::rr::RecordType = s.parse().ok()?;
    let code = u16::from(t);
    // hickory accepts some names miekg does not know and vice versa; require a round trip.
    (t.to_string() == s).then_some(code)
}

/// miekg's `TypeToString` (empty when unknown).
pub fn type_to_string(t: u16) -> String {
    if t == 255 {
        return "ANY".into();
    }
    let rt = hickory_proto::rr::RecordType::from(t);
    let s = rt.to_string();
    if s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-') {
        s
    } else {
        String::new()
    }
}

/// miekg's `StringToRcode`.
pub fn rcode_from_str(s: &str) -> Option<u16> {
    crate::gocompat::names::rcode_from_name(s)
}

/// miekg's `RcodeToString`.
pub fn rcode_to_string(c: u16) -> String {
    crate::gocompat::names::rcode_name(c).map_or_else(|| c.to_string(), str::to_string)
}

/// The rcode as hickory's type.
pub fn rcode_value(c: u16) -> ResponseCode {
    ResponseCode::from((c >> 4) as u8, (c & 0x0f) as u8)
}

fn match_all() -> &'static Regex {
    static ALL: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    ALL.get_or_init(|| Regex::new(".*").unwrap_or_else(|_| unreachable!("static regex")))
}

fn compile_section(d: &Dispenser, section: &str, args: &[String]) -> Result<Vec<GoTemplate>, CorefileError> {
    let mut out = Vec::new();
    for a in args {
        let t = GoTemplate::parse(section, a)
            .map_err(|e| d.err(format!("could not compile template: {}, {}", d.val(), e)))?;
        out.push(t);
    }
    Ok(out)
}

/// Parses every `template` occurrence in a block.
pub fn parse(d: &mut Dispenser, ctx: &SetupContext) -> Result<Box<dyn PluginConfig>, CorefileError> {
    parse_config(d, ctx).map(|c| Box::new(c) as Box<dyn PluginConfig>).map_err(|e| e.in_plugin("template"))
}

/// Parses into the concrete configuration.
pub fn parse_config(d: &mut Dispenser, ctx: &SetupContext) -> Result<Config, CorefileError> {
    let mut cfg = Config::default();
    while d.next() {
        if !d.next_arg() {
            return Err(d.arg_err());
        }
        let qclass = class_from_str(d.val()).ok_or_else(|| d.err(format!("invalid query class {}", d.val())))?;
        if !d.next_arg() {
            return Err(d.arg_err());
        }
        let qtype = type_from_str(d.val()).ok_or_else(|| d.err(format!("invalid RR class {}", d.val())))?;
        let zones = origins_from_args_or_block(&d.remaining_args(), &ctx.zones);
        cfg.zones.extend(zones.iter().cloned());
        let mut t = TemplateSpec {
            qclass,
            qtype,
            zones,
            regex: Vec::new(),
            answer: Vec::new(),
            additional: Vec::new(),
            authority: Vec::new(),
            rcode: 0,
            ederror: None,
            fall: Fall::default(),
            vars: Vec::new(),
            exprs: Vec::new(),
        };
        while d.next_block() {
            match d.val() {
                "match" => {
                    let args = d.remaining_args();
                    if args.is_empty() {
                        return Err(d.arg_err());
                    }
                    for r in args {
                        if r.len() > MAX_REGEX_LEN {
                            return Err(d.err(format!("regex pattern too long: {} > {}", r.len(), MAX_REGEX_LEN)));
                        }
                        let re = Regex::new(&r).map_err(|e| d.err(format!("could not parse regex: {r}, {e}")))?;
                        t.regex.push(re);
                    }
                }
                section @ ("answer" | "additional" | "authority") => {
                    let section = section.to_string();
                    let args = d.remaining_args();
                    if args.is_empty() {
                        return Err(d.arg_err());
                    }
                    let compiled = compile_section(d, &section, &args)?;
                    match section.as_str() {
                        "answer" => t.answer.extend(compiled),
                        "additional" => t.additional.extend(compiled),
                        _ => t.authority.extend(compiled),
                    }
                }
                "var" => {
                    let args = d.remaining_args();
                    if args.len() < 2 {
                        return Err(d.arg_err());
                    }
                    let name = &args[0];
                    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if !valid {
                        return Err(d.err(format!("invalid variable name {name:?}")));
                    }
                    if ENV_NAMES.contains(&name.as_str())
                        || BUILTINS.contains(&name.as_str())
                        || KEYWORDS.contains(&name.as_str())
                        || t.vars.iter().any(|(n, _)| n == name)
                    {
                        return Err(d.err(format!("variable name {name:?} is reserved")));
                    }
                    let declared = &t.vars;
                    let known = |n: &str| declared.iter().find(|(v, _)| v == n).map(|(_, p)| p.ty());
                    let prog = Program::compile(&args[1..].join(" "), &known)
                        .map_err(|e| d.err(format!("could not compile expression: {name}, {e}")))?;
                    t.vars.push((name.clone(), prog));
                }
                "expr" => {
                    let args = d.remaining_args();
                    if args.is_empty() {
                        return Err(d.arg_err());
                    }
                    let declared = &t.vars;
                    let known = |n: &str| declared.iter().find(|(v, _)| v == n).map(|(_, p)| p.ty());
                    let prog = Program::compile(&args.join(" "), &known)
                        .map_err(|e| d.err(format!("could not compile expression: {e}")))?;
                    t.exprs.push(prog);
                }
                "rcode" => {
                    if !d.next_arg() {
                        return Err(d.arg_err());
                    }
                    t.rcode = rcode_from_str(d.val()).ok_or_else(|| d.err(format!("unknown rcode {}", d.val())))?;
                }
                "ederror" => {
                    let args = d.remaining_args();
                    if args.len() != 1 && args.len() != 2 {
                        return Err(d.arg_err());
                    }
                    let code: u16 = args[0].parse().map_err(|_| {
                        d.err(format!(
                            "error parsing extended DNS error code {}, strconv.ParseUint: parsing {:?}: {}",
                            d.val(),
                            args[0],
                            if args[0].chars().all(|c| c.is_ascii_digit()) && !args[0].is_empty() {
                                "value out of range"
                            } else {
                                "invalid syntax"
                            }
                        ))
                    })?;
                    t.ederror = Some((code, args.get(1).cloned().unwrap_or_default()));
                }
                "fallthrough" => {
                    let args = d.remaining_args();
                    t.fall.set_from_args(&args);
                }
                "upstream" => {
                    d.remaining_args();
                }
                _ => return Err(d.arg_err()),
            }
        }
        if t.regex.is_empty() {
            t.regex.push(match_all().clone());
        }
        cfg.templates.push(t);
    }
    Ok(cfg)
}
