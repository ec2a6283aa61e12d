//! Environment-variable substitution in tokens: `{$NAME}` and the Windows-style `{%NAME%}`,
//! applied after lexing (so a value never splits into several tokens).

use std::borrow::Cow;
use std::collections::HashMap;

/// Upper bound on substitutions in one token; a variable whose value names itself would
/// otherwise substitute forever.
const MAX_SUBSTITUTIONS: usize = 1000;

/// Upper bound on the length a token may grow to through substitution.
const MAX_LEN: usize = 1 << 20;

/// Where variable values come from: a fixed map, or the process environment.
#[derive(Clone, Copy, Debug)]
pub struct Env<'a> {
    map: Option<&'a HashMap<String, String>>,
}

impl<'a> Env<'a> {
    /// Values from `map`, or from the process environment when `None`.
    pub fn new(map: Option<&'a HashMap<String, String>>) -> Env<'a> {
        Env { map }
    }

    /// The value of `name`; unset (or unrepresentable) variables are empty.
    pub fn get(&self, name: &str) -> String {
        match self.map {
            Some(m) => m.get(name).cloned().unwrap_or_default(),
            None => {
                if name.is_empty() || name.contains('=') || name.contains('\0') {
                    return String::new();
                }
                std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()).unwrap_or_default()
            }
        }
    }

    /// Replaces `{%NAME%}` references, then `{$NAME}` references, in `s`.
    pub fn expand(&self, s: &str) -> String {
        self.expand_cow(s).into_owned()
    }

    /// Like [`Env::expand`], borrowing `s` when it holds no reference.
    pub fn expand_cow<'s>(&self, s: &'s str) -> Cow<'s, str> {
        if !s.contains("{%") && !s.contains("{$") {
            return Cow::Borrowed(s);
        }
        let s = self.replace_refs(s.to_string(), "{%", "%}");
        Cow::Owned(self.replace_refs(s, "{$", "}"))
    }

    /// One pass, CoreDNS-style: find the first `start`, the first `end` after it; an empty name
    /// stops the pass, otherwise every occurrence of that reference is replaced and the search
    /// starts again from the beginning.
    fn replace_refs(&self, mut s: String, start: &str, end: &str) -> String {
        let mut rounds = 0;
        while let Some(i) = s.find(start) {
            let Some(rel) = s[i..].find(end) else { break };
            let j = i + rel;
            if j <= i + start.len() {
                return s;
            }
            let reference = s[i..j + end.len()].to_string();
            let value = self.get(&reference[start.len()..reference.len() - end.len()]);
            s = s.replace(&reference, &value);
            rounds += 1;
            if rounds >= MAX_SUBSTITUTIONS || s.len() > MAX_LEN {
                break;
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn env() -> HashMap<String, String> {
        [
            ("PORT", "8080"),
            ("ADDRESS", "servername.com"),
            ("FOOBAR", "foobar"),
            ("PARTIAL_DIR", "r1"),
            ("SELF", "{$SELF}"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn case15_substitution_forms() {
        let m = env();
        let e = Env::new(Some(&m));
        assert_eq!(e.expand("{$ADDRESS}:{$PORT}"), "servername.com:8080");
        assert_eq!(e.expand("{%ADDRESS%}:{$PORT}"), "servername.com:8080");
        assert_eq!(e.expand("{$ADDRESS}:{%PORT%}"), "servername.com:8080");
        assert_eq!(e.expand("di{$PARTIAL_DIR}"), "dir1");
        assert_eq!(e.expand("{%ADDRESS}"), "{%ADDRESS}");
        assert_eq!(e.expand(":{$PORT$}"), ":");
        assert_eq!(e.expand("{%ADDRESS%}/{%FOOBAR%}"), "servername.com/foobar");
    }

    #[test]
    fn case16_template_text() {
        let m = env();
        let e = Env::new(Some(&m));
        assert_eq!(e.expand("{{ .Name }} {$FOOBAR}"), "{{ .Name }} foobar");
        assert_eq!(e.expand("{{$x}}"), "{}");
        assert_eq!(e.expand("{{ $x }}"), "{{ $x }}");
    }

    #[test]
    fn empty_reference_stops_the_pass() {
        let m = env();
        let e = Env::new(Some(&m));
        assert_eq!(e.expand("{$}{$PORT}"), "{$}{$PORT}");
        assert_eq!(e.expand("{%}"), "{%}");
        assert_eq!(e.expand("{%%}"), "{%%}");
        assert_eq!(e.expand("{$$}"), "");
    }

    #[test]
    fn self_reference_terminates() {
        let m = env();
        assert_eq!(Env::new(Some(&m)).expand("{$SELF}"), "{$SELF}");
    }

    #[test]
    fn process_env_is_default() {
        // PATH is set in any test environment; an unset name expands to nothing.
        let e = Env::new(None);
        assert_eq!(e.expand("{$PATH}"), std::env::var("PATH").unwrap_or_default());
        assert_eq!(e.expand("x{$NODECACHE_SURELY_UNSET_VARIABLE}y"), "xy");
    }
}
