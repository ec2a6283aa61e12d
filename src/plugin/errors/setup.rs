//! `errors [stdout] { stacktrace; consolidate DURATION REGEXP [LEVEL] [show_first] }`.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;

use crate::corefile::{CorefileError, Dispenser, ErrorKind, Token};
use crate::gocompat::duration;
use crate::plugin::{BuildContext, Plugin, PluginConfig, SetupContext};

use super::handler::ErrorsHandler;

/// Longest accepted consolidate pattern.
const MAX_REGEXP_LEN: usize = 10000;

/// Log level of a consolidation summary (and of `show_first` lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `[ERROR]` (the default).
    Error,
    /// `[WARNING]`.
    Warning,
    /// `[INFO]`.
    Info,
    /// `[DEBUG]`.
    Debug,
}

impl Level {
    /// The level word as written in a Corefile.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }

    fn from_word(s: &str) -> Option<Level> {
        match s {
            "error" => Some(Level::Error),
            "warning" => Some(Level::Warning),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            _ => None,
        }
    }
}

/// One `consolidate` rule.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// Summary period.
    pub period: Duration,
    /// The pattern matched against the error text.
    pub regex: Regex,
    /// Level of the summary.
    pub level: Level,
    /// Log the first matching error at once.
    pub show_first: bool,
}

/// Parsed `errors` configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Log stacks on recovered panics.
    pub stacktrace: bool,
    /// Consolidation rules; the first matching one wins.
    pub patterns: Vec<Pattern>,
}

impl PluginConfig for Config {
    fn name(&self) -> &'static str {
        "errors"
    }
    fn describe(&self) -> String {
        let mut parts = vec!["log chain errors to stdout".to_string()];
        if self.stacktrace {
            parts.push("stacktrace".into());
        }
        for p in &self.patterns {
            parts.push(format!(
                "consolidate {} '{}' {}{}",
                duration::format_std(p.period),
                p.regex.as_str(),
                p.level.as_str(),
                if p.show_first { " show_first" } else { "" }
            ));
        }
        parts.join("; ")
    }
    fn build(&self, _ctx: &BuildContext) -> Result<Option<Arc<dyn Plugin>>, String> {
        Ok(Some(Arc::new(ErrorsHandler::new(self.patterns.clone()))))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Parses the block's `errors` directive (only one allowed).
pub fn parse(d: &mut Dispenser, _ctx: &SetupContext) -> Result<Box<dyn PluginConfig>, CorefileError> {
    parse_config(d).map(|c| Box::new(c) as Box<dyn PluginConfig>).map_err(|e| e.in_plugin("errors"))
}

fn plain(d: &Dispenser, msg: &str) -> CorefileError {
    let tok = d.token().cloned().unwrap_or_else(|| Token::new("", Arc::from(""), 0, 0));
    CorefileError::at(ErrorKind::Plain, &tok, msg)
}

fn parse_config(d: &mut Dispenser) -> Result<Config, CorefileError> {
    let mut cfg = Config::default();
    let mut seen = false;
    while d.next() {
        if seen {
            return Err(plain(d, crate::corefile::error::ONCE_PER_BLOCK));
        }
        seen = true;
        let args = d.remaining_args();
        match args.len() {
            0 => {}
            1 if args[0] == "stdout" => {}
            1 => return Err(d.err(format!("invalid log file: {}", args[0]))),
            _ => return Err(d.arg_err()),
        }
        while d.next_block() {
            match d.val() {
                "stacktrace" => cfg.stacktrace = true,
                "consolidate" => cfg.patterns.push(parse_consolidate(d)?),
                other => {
                    let expected = format!("Unknown field {other}");
                    return Err(d.syntax_err(&expected));
                }
            }
        }
    }
    Ok(cfg)
}

fn parse_consolidate(d: &mut Dispenser) -> Result<Pattern, CorefileError> {
    let args = d.remaining_args();
    if args.len() < 2 || args.len() > 4 {
        return Err(d.arg_err());
    }
    let period = duration::parse_duration(&args[0]).map_err(|e| d.err(e))?;
    if args[1].len() > MAX_REGEXP_LEN {
        return Err(d.err(format!("regex pattern too long: {} > {MAX_REGEXP_LEN}", args[1].len())));
    }
    let regex = Regex::new(&args[1]).map_err(|e| d.err(go_regexp_error(&args[1], &e)))?;
    let mut level = None;
    let mut show_first = false;
    for a in &args[2..] {
        if let Some(l) = Level::from_word(a) {
            if level.is_some() {
                return Err(d.err("multiple log levels specified in consolidate"));
            }
            if show_first {
                return Err(d.err("log level must come before show_first in consolidate"));
            }
            level = Some(l);
        } else if a == "show_first" {
            show_first = true;
        } else {
            return Err(d.err(format!("unknown option in consolidate: {a}")));
        }
    }
    Ok(Pattern {
        period: Duration::from_nanos(period.max(0) as u64),
        regex,
        level: level.unwrap_or(Level::Error),
        show_first,
    })
}

/// Shapes a regex compile error like Go's `error parsing regexp: <reason>: `<pattern>``.
fn go_regexp_error(pattern: &str, e: &regex::Error) -> String {
    let text = e.to_string();
    let reason =
        text.lines().rev().find_map(|l| l.trim().strip_prefix("error: ")).unwrap_or("invalid pattern").to_string();
    format!("error parsing regexp: {reason}: `{pattern}`")
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn parse_text(text: &str) -> Result<Config, String> {
        let mut d = Dispenser::from_text(text);
        parse(&mut d, &SetupContext::default())
            .map(|c| c.as_any().downcast_ref::<Config>().cloned().unwrap_or_default())
            .map_err(|e| e.coredns_message())
    }

    fn err_of(text: &str) -> Result<(), String> {
        parse_text(text).map(|_| ())
    }

    #[test]
    fn case_44_accepted() {
        assert_eq!(parse_text("errors").map(|c| c.patterns.len()), Ok(0));
        assert_eq!(parse_text("errors stdout").map(|c| c.patterns.len()), Ok(0));
        let c = parse_text("errors {\nstacktrace\n}").expect("stacktrace");
        assert!(c.stacktrace);
        let c = parse_text("errors {\nstacktrace\nconsolidate 1m ^exact$\n}").expect("consolidate");
        assert_eq!(c.patterns.len(), 1);
        assert_eq!(c.patterns[0].period, Duration::from_secs(60));
        assert_eq!(c.patterns[0].level, Level::Error);
        let c = parse_text("errors {\nconsolidate 1m error1\nconsolidate 5s error2\n}").expect("two");
        assert_eq!(c.patterns.len(), 2);
        let c = parse_text("errors {\nconsolidate 1m error show_first\n}").expect("show_first");
        assert!(c.patterns[0].show_first);
        let c = parse_text("errors {\nconsolidate 1m error warning show_first\n}").expect("level");
        assert_eq!((c.patterns[0].level, c.patterns[0].show_first), (Level::Warning, true));
        assert_eq!(c.patterns[0].regex.as_str(), "error");
    }

    #[test]
    fn case_44_rejected() {
        assert_eq!(
            err_of("errors a.txt"),
            Err("plugin/errors: Corefile:1 - Error during parsing: invalid log file: a.txt".into())
        );
        assert_eq!(
            err_of("errors a b"),
            Err("plugin/errors: Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after 'b'"
                .into())
        );
        assert_eq!(
            err_of("errors {\nlog visible\n}"),
            Err("plugin/errors: Corefile:2 - Syntax error: Unexpected token 'log', expecting 'Unknown field log'"
                .into())
        );
        assert_eq!(
            err_of("errors\nerrors"),
            Err("plugin/errors: this plugin can only be used once per Server Block".into())
        );
        for bad in
            ["consolidate", "consolidate 1m", "consolidate 1m .* extra", "consolidate 1m .* warning show_first x"]
        {
            let r = err_of(&format!("errors {{\n{bad}\n}}"));
            assert!(r.is_err(), "{bad} should fail");
        }
        assert_eq!(
            err_of("errors {\nconsolidate 1 .*\n}"),
            Err("plugin/errors: Corefile:2 - Error during parsing: time: missing unit in duration \"1\"".into())
        );
        assert_eq!(
            err_of("errors {\nconsolidate abc .*\n}"),
            Err("plugin/errors: Corefile:2 - Error during parsing: time: invalid duration \"abc\"".into())
        );
        let e = err_of("errors {\nconsolidate 1m ())\n}").err().unwrap_or_default();
        assert!(e.starts_with("plugin/errors: Corefile:2 - Error during parsing: error parsing regexp: "), "{e}");
        assert_eq!(
            err_of("errors {\nconsolidate 1m error invalid_option\n}"),
            Err("plugin/errors: Corefile:2 - Error during parsing: unknown option in consolidate: invalid_option"
                .into())
        );
        for two in ["error warning error", "error info debug"] {
            assert_eq!(
                err_of(&format!("errors {{\nconsolidate 1m {two}\n}}")),
                Err("plugin/errors: Corefile:2 - Error during parsing: multiple log levels specified in consolidate"
                    .into())
            );
        }
        assert_eq!(
            err_of("errors {\nconsolidate 1m error show_first warning\n}"),
            Err("plugin/errors: Corefile:2 - Error during parsing: log level must come before show_first in consolidate"
                .into())
        );
        let long = "a".repeat(MAX_REGEXP_LEN + 1);
        let e = err_of(&format!("errors {{\nconsolidate 1m {long}\n}}")).err().unwrap_or_default();
        assert!(e.ends_with("regex pattern too long: 10001 > 10000"), "{e}");
    }
}
