//! Domain-name text helpers shared by the configuration and the plugins: making a name fully
//! qualified, normalising its case, and asking whether a name lies in a zone.
//!
//! Some helpers come in two flavours because their callers must keep CoreDNS's exact
//! behaviour, and CoreDNS itself is not uniform:
//! - a trailing dot is either checked plainly (`ends_with('.')`) or escape-aware like miekg's
//!   `dns.Fqdn` (`a\.` is not qualified, `a\\.` is);
//! - case folding is either ASCII-only or Unicode (Go's `strings.ToLower`);
//! - zone membership is either an exact byte comparison (callers pass names they already
//!   lower-cased, the per-query hot path) or ASCII-case-insensitive.
//!
//! The zone checks never allocate.

/// True when `s` ends in a dot that is not escaped (miekg's `dns.IsFqdn`): `a.` and `a\\.` are
/// fully qualified, `a\.` and `a` are not.
pub fn is_fqdn(s: &str) -> bool {
    let Some(body) = s.strip_suffix('.') else {
        return false;
    };
    let backslashes = body.bytes().rev().take_while(|b| *b == b'\\').count();
    backslashes % 2 == 0
}

/// `s` with a dot appended unless it already ends in one; escapes are not looked at, so `a\.`
/// stays as is.
pub fn fqdn(s: &str) -> String {
    if s.ends_with('.') {
        s.to_string()
    } else {
        format!("{s}.")
    }
}

/// `s` with a dot appended unless it ends in an unescaped one (miekg's `dns.Fqdn`): `a\.`
/// becomes `a\..`.
pub fn fqdn_escaped(s: &str) -> String {
    if is_fqdn(s) {
        s.to_string()
    } else {
        format!("{s}.")
    }
}

/// ASCII lower case and fully qualified by a plain trailing-dot check ([`fqdn`]). The form
/// zone arguments of `cache`, `forward` and the "plugins" area take.
pub fn normalize(s: &str) -> String {
    let mut out = s.to_ascii_lowercase();
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// ASCII lower case and fully qualified escape-aware ([`fqdn_escaped`]); `rewrite`'s names.
/// Differs from [`normalize`] only for a name ending in an escaped dot.
pub fn normalize_escaped(s: &str) -> String {
    let mut out = s.to_ascii_lowercase();
    if !is_fqdn(&out) {
        out.push('.');
    }
    out
}

/// Fully qualified escape-aware, then lower case with Unicode folding (Go's
/// `strings.ToLower`), as server block keys are. Differs from [`normalize_escaped`] only for
/// non-ASCII letters.
pub fn normalize_unicode(s: &str) -> String {
    fqdn_escaped(s).to_lowercase()
}

/// True when `name` equals `zone` or lies below it, comparing bytes exactly; the root zone `.`
/// holds every name. Both are FQDNs the caller already lower-cased (the per-query path).
pub fn in_zone(zone: &str, name: &str) -> bool {
    if zone == "." || zone == name {
        return true;
    }
    name.len() > zone.len() && name.ends_with(zone) && name.as_bytes()[name.len() - zone.len() - 1] == b'.'
}

/// [`in_zone`] ignoring ASCII case, for callers whose zone or name may still hold upper case.
pub fn in_zone_ignore_case(zone: &str, name: &str) -> bool {
    let (z, n) = (zone.as_bytes(), name.as_bytes());
    if z == b"." {
        return true;
    }
    if n.len() == z.len() {
        return n.eq_ignore_ascii_case(z);
    }
    n.len() > z.len() && n[n.len() - z.len() - 1] == b'.' && n[n.len() - z.len()..].eq_ignore_ascii_case(z)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fqdn_checks() {
        assert!(is_fqdn("a.") && is_fqdn(".") && is_fqdn("a\\\\."));
        assert!(!is_fqdn("a") && !is_fqdn("a\\.") && !is_fqdn(""));
        assert_eq!(fqdn("a"), "a.");
        assert_eq!(fqdn("a."), "a.");
        assert_eq!(fqdn("a\\."), "a\\.");
        assert_eq!(fqdn_escaped("a\\."), "a\\..");
        assert_eq!(fqdn_escaped("a\\\\."), "a\\\\.");
        assert_eq!(fqdn_escaped("Ex"), "Ex.");
    }

    #[test]
    fn normalising() {
        assert_eq!(normalize("Example.ORG"), "example.org.");
        assert_eq!(normalize("."), ".");
        assert_eq!(normalize("a\\."), "a\\.");
        assert_eq!(normalize("É.org"), "É.org.");
        assert_eq!(normalize_escaped("A\\."), "a\\..");
        assert_eq!(normalize_escaped("Example.org."), "example.org.");
        assert_eq!(normalize_unicode("É.ORG"), "é.org.");
        assert_eq!(normalize_unicode("a\\."), "a\\..");
    }

    #[test]
    fn zone_membership() {
        assert!(in_zone(".", "anything.example."));
        assert!(in_zone("example.org.", "example.org."));
        assert!(in_zone("example.org.", "www.example.org."));
        assert!(!in_zone("example.org.", "badexample.org."));
        assert!(!in_zone("example.org.", "org."));
        assert!(!in_zone("example.org.", "WWW.Example.ORG."));

        assert!(in_zone_ignore_case(".", "anything.example."));
        assert!(in_zone_ignore_case("example.org.", "WWW.Example.ORG."));
        assert!(in_zone_ignore_case("Example.org.", "example.ORG."));
        assert!(!in_zone_ignore_case("example.org.", "badexample.org."));
        assert!(!in_zone_ignore_case("example.org.", "org."));
        assert!(!in_zone_ignore_case("example.org.", "é.xample.org."));
    }
}
