//! `log [NAMES...] [FORMAT] { class success|denial|error|all... }`.

use std::any::Any;
use std::sync::Arc;

use crate::corefile::{CorefileError, Dispenser, ErrorKind, Token};
use crate::dnsname;
use crate::plugin::{BuildContext, Plugin, PluginConfig, SetupContext};

use super::format::Format;
use super::handler::LogHandler;

/// CoreDNS's common log format.
pub const COMMON_FORMAT: &str =
    "{remote}:{port} - {>id} \"{type} {class} {name} {proto} {size} {>do} {>bufsize}\" {rcode} {>rflags} {rsize} {duration}";

/// The combined format: common plus the opcode.
pub fn combined_format() -> String {
    format!("{COMMON_FORMAT} \"{{>opcode}}\"")
}

/// A response class a rule can select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Every response.
    All,
    /// NOERROR with data, and delegations.
    Success,
    /// NXDOMAIN and NODATA.
    Denial,
    /// Everything else.
    Error,
}

impl Class {
    /// Parses a class word, with CoreDNS's error text.
    pub fn from_word(s: &str) -> Result<Class, String> {
        match s {
            "all" => Ok(Class::All),
            "success" => Ok(Class::Success),
            "denial" => Ok(Class::Denial),
            "error" => Ok(Class::Error),
            _ => Err(format!("invalid Class: {s}")),
        }
    }

    /// The class word (also the `log/class` metadata value).
    pub fn as_str(self) -> &'static str {
        match self {
            Class::All => "all",
            Class::Success => "success",
            Class::Denial => "denial",
            Class::Error => "error",
        }
    }
}

/// One logging rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The name scope (FQDN as written); queries at or below it match.
    pub name_scope: String,
    /// The scope lower-cased, for matching.
    pub scope_lower: String,
    /// The line format after `{common}`/`{combined}` expansion.
    pub format: String,
    /// The classes logged (`All` when none were given).
    pub classes: Vec<Class>,
    /// The parsed format.
    pub parsed: Arc<Format>,
}

/// Parsed `log` configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Rules in order; the first whose scope matches decides.
    pub rules: Vec<Rule>,
}

impl PluginConfig for Config {
    fn name(&self) -> &'static str {
        "log"
    }
    fn describe(&self) -> String {
        self.rules
            .iter()
            .map(|r| {
                let classes: Vec<&str> = r.classes.iter().map(|c| c.as_str()).collect();
                format!("{} class {} format {:?}", r.name_scope, classes.join(","), r.format)
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
    fn build(&self, _ctx: &BuildContext) -> Result<Option<Arc<dyn Plugin>>, String> {
        Ok(Some(Arc::new(LogHandler::new(self.rules.clone()))))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn rule(scope: &str, format: &str) -> Rule {
    Rule {
        name_scope: dnsname::fqdn(scope),
        scope_lower: dnsname::fqdn(scope).to_lowercase(),
        format: format.to_string(),
        classes: Vec::new(),
        parsed: Arc::new(Format::parse(format)),
    }
}

/// Parses every `log` occurrence in a block.
pub fn parse(d: &mut Dispenser, _ctx: &SetupContext) -> Result<Box<dyn PluginConfig>, CorefileError> {
    parse_config(d).map(|c| Box::new(c) as Box<dyn PluginConfig>).map_err(|e| e.in_plugin("log"))
}

fn parse_config(d: &mut Dispenser) -> Result<Config, CorefileError> {
    let mut rules: Vec<Rule> = Vec::new();
    while d.next() {
        let mut args = d.remaining_args();
        let first_new = rules.len();
        match args.len() {
            0 => rules.push(rule(".", COMMON_FORMAT)),
            1 => rules.push(rule(&args[0], COMMON_FORMAT)),
            _ => {
                let mut format = COMMON_FORMAT.to_string();
                if args.last().is_some_and(|a| a.contains('{')) {
                    let last = args.pop().unwrap_or_default();
                    format = last.replace("{common}", COMMON_FORMAT).replace("{combined}", &combined_format());
                }
                for a in &args {
                    rules.push(rule(a, &format));
                }
            }
        }
        let mut classes: Vec<Class> = Vec::new();
        while d.next_block() {
            match d.val() {
                "class" => {
                    let words = d.remaining_args();
                    if words.is_empty() {
                        return Err(d.arg_err());
                    }
                    for w in words {
                        let c = Class::from_word(&w).map_err(|m| {
                            let tok = d.token().cloned().unwrap_or_else(|| Token::new("", Arc::from(""), 0, 0));
                            CorefileError::at(ErrorKind::Plain, &tok, m)
                        })?;
                        if !classes.contains(&c) {
                            classes.push(c);
                        }
                    }
                }
                other => {
                    let msg = format!("unknown property '{other}'");
                    return Err(d.err(msg));
                }
            }
        }
        if classes.is_empty() {
            classes.push(Class::All);
        }
        for r in &mut rules[first_new..] {
            r.classes = classes.clone();
        }
    }
    Ok(Config { rules })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn rules(text: &str) -> Result<Vec<(String, String, Vec<Class>)>, String> {
        let mut d = Dispenser::from_text(text);
        parse(&mut d, &SetupContext::default())
            .map(|c| {
                c.as_any()
                    .downcast_ref::<Config>()
                    .map(|c| {
                        c.rules.iter().map(|r| (r.name_scope.clone(), r.format.clone(), r.classes.clone())).collect()
                    })
                    .unwrap_or_default()
            })
            .map_err(|e| e.coredns_message())
    }

    fn r(scope: &str, format: &str, classes: &[Class]) -> (String, String, Vec<Class>) {
        (scope.to_string(), format.to_string(), classes.to_vec())
    }

    #[test]
    fn accepted() {
        assert_eq!(rules("log"), Ok(vec![r(".", COMMON_FORMAT, &[Class::All])]));
        assert_eq!(rules("log example.org"), Ok(vec![r("example.org.", COMMON_FORMAT, &[Class::All])]));
        // One argument is always a name, even with braces.
        assert_eq!(rules("log {type}"), Ok(vec![r("{type}.", COMMON_FORMAT, &[Class::All])]));
        assert_eq!(rules("log example.org {type}"), Ok(vec![r("example.org.", "{type}", &[Class::All])]));
        assert_eq!(
            rules("log a.org b.org {combined}"),
            Ok(vec![r("a.org.", &combined_format(), &[Class::All]), r("b.org.", &combined_format(), &[Class::All])])
        );
        assert_eq!(
            rules("log a.org b.org"),
            Ok(vec![r("a.org.", COMMON_FORMAT, &[Class::All]), r("b.org.", COMMON_FORMAT, &[Class::All])])
        );
        assert_eq!(rules("log . {common}-x"), Ok(vec![r(".", &format!("{COMMON_FORMAT}-x"), &[Class::All])]));
        assert_eq!(
            rules("log {\nclass denial error\n}"),
            Ok(vec![r(".", COMMON_FORMAT, &[Class::Denial, Class::Error])])
        );
        assert_eq!(
            rules("log a.org {\nclass success\n}\nlog b.org"),
            Ok(vec![r("a.org.", COMMON_FORMAT, &[Class::Success]), r("b.org.", COMMON_FORMAT, &[Class::All])])
        );
    }

    #[test]
    fn rejected() {
        assert_eq!(rules("log {\nclass foo\n}"), Err("plugin/log: invalid Class: foo".into()));
        assert_eq!(
            rules("log {\nclass\n}"),
            Err("plugin/log: Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'class'"
                .into())
        );
        assert_eq!(
            rules("log {\nformat x\n}"),
            Err("plugin/log: Corefile:2 - Error during parsing: unknown property 'format'".into())
        );
    }
}
