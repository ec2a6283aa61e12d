//! Go `flag` package command-line grammar, shared by both binaries: `-f` and `--f`, values as
//! `-f=v` or `-f v`, booleans only as `-f` or `-f=<bool>`, parsing stops at the first non-flag
//! or after `--`, the last repeat wins, names are case-sensitive.

use std::collections::BTreeMap;

/// A flag's value type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Boolean flag.
    Bool,
    /// Takes a value.
    Value,
}

/// One flag definition.
#[derive(Clone, Copy, Debug)]
pub struct Def {
    /// Name without dashes.
    pub name: &'static str,
    /// Value type.
    pub kind: Kind,
    /// Another name this flag stores into (e.g. `p` → `dns.port`), if any.
    pub alias_of: Option<&'static str>,
}

/// Parse result.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Values by (canonical) name and the leftover positional arguments.
    Flags {
        /// Set values; booleans as `true`/`false`.
        values: BTreeMap<&'static str, String>,
        /// Arguments after the flags.
        rest: Vec<String>,
    },
    /// `-h` or `-help` was given.
    Help,
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Parses `args` (without argv0) against `defs`. Errors carry Go's wording, e.g.
/// `flag provided but not defined: -x`.
pub fn parse(defs: &[Def], args: &[String]) -> Result<Parsed, String> {
    let mut values = BTreeMap::new();
    let mut i = 0;
    while i < args.len() {
        let s = &args[i];
        if s.len() < 2 || !s.starts_with('-') {
            break;
        }
        let body = match s.strip_prefix("--") {
            Some("") => {
                i += 1;
                break;
            }
            Some(b) => b,
            None => &s[1..],
        };
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(format!("bad flag syntax: {s}"));
        }
        i += 1;
        let (name, inline) = match body.find('=') {
            Some(p) => (&body[..p], Some(body[p + 1..].to_string())),
            None => (body, None),
        };
        let Some(def) = defs.iter().find(|d| d.name == name) else {
            if name == "h" || name == "help" {
                return Ok(Parsed::Help);
            }
            return Err(format!("flag provided but not defined: -{name}"));
        };
        let key = def.alias_of.unwrap_or(def.name);
        match def.kind {
            Kind::Bool => {
                let v = inline.unwrap_or_else(|| "true".to_string());
                let b =
                    parse_bool(&v).ok_or_else(|| format!("invalid boolean value {v:?} for -{name}: parse error"))?;
                values.insert(key, b.to_string());
            }
            Kind::Value => {
                let v = match inline {
                    Some(v) => v,
                    None => {
                        let v = args.get(i).cloned().ok_or_else(|| format!("flag needs an argument: -{name}"))?;
                        i += 1;
                        v
                    }
                };
                values.insert(key, v);
            }
        }
    }
    Ok(Parsed::Flags { values, rest: args[i..].to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    const DEFS: &[Def] = &[
        Def { name: "conf", kind: Kind::Value, alias_of: None },
        Def { name: "dns.port", kind: Kind::Value, alias_of: None },
        Def { name: "p", kind: Kind::Value, alias_of: Some("dns.port") },
        Def { name: "quiet", kind: Kind::Bool, alias_of: None },
    ];

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn flags(a: &[&str]) -> (Vec<(&'static str, String)>, Vec<String>) {
        match parse(DEFS, &args(a)).expect("parses") {
            Parsed::Flags { values, rest } => (values.into_iter().collect(), rest),
            Parsed::Help => panic!("help"),
        }
    }

    #[test]
    fn forms_and_last_wins() {
        let (v, rest) = flags(&["--conf=a", "-p", "5300", "-dns.port=53", "-quiet", "x", "-conf", "b"]);
        assert_eq!(v, vec![("conf", "a".to_string()), ("dns.port", "53".to_string()), ("quiet", "true".to_string())]);
        assert_eq!(rest, args(&["x", "-conf", "b"]));
    }

    #[test]
    fn booleans_do_not_take_the_next_argument() {
        let (v, rest) = flags(&["-quiet", "false"]);
        assert_eq!(v, vec![("quiet", "true".to_string())]);
        assert_eq!(rest, args(&["false"]));
        assert_eq!(flags(&["-quiet=F"]).0, vec![("quiet", "false".to_string())]);
    }

    #[test]
    fn errors_and_help() {
        assert_eq!(parse(DEFS, &args(&["-x"])), Err("flag provided but not defined: -x".to_string()));
        assert_eq!(parse(DEFS, &args(&["-conf"])), Err("flag needs an argument: -conf".to_string()));
        assert!(parse(DEFS, &args(&["-quiet=maybe"])).is_err());
        assert_eq!(parse(DEFS, &args(&["-help"])), Ok(Parsed::Help));
        assert_eq!(flags(&["--", "-conf"]).1, args(&["-conf"]));
    }
}
