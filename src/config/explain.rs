//! A readable rendering of the plan: listeners, the zones each serves, and every block's
//! chain in execution order.

use std::fmt::Write;

use super::plan::Plan;

/// Directives that configure the server but add no query handler.
const SETUP_ONLY: &[&str] = &["reload", "bind", "health", "ready"];

/// Renders `plan` for `-explain`.
pub fn explain(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Listeners ({}):", plan.listeners.len());
    for l in &plan.listeners {
        let bind = if l.wildcard { "all addresses".to_string() } else { l.addr.ip().to_string() };
        let _ = writeln!(out, "  {}  (udp+tcp on {}, port {})", l.label, bind, l.addr.port());
        for (zone, bi) in &l.zones {
            let _ = writeln!(out, "    {zone:<30} -> block #{}", bi + 1);
        }
    }
    for (i, b) in plan.blocks.iter().enumerate() {
        let keys: Vec<String> = b.keys.iter().map(|k| k.to_uri()).collect();
        let _ = writeln!(out);
        let _ = writeln!(out, "Block #{}: {}", i + 1, keys.join(" "));
        if b.plugins.iter().any(|p| p.name() == "bind") {
            let hosts = if b.listen_hosts.is_empty() { "(none)".to_string() } else { b.listen_hosts.join(", ") };
            let _ = writeln!(out, "  listen hosts: {hosts}");
        }
        if b.plugins.is_empty() {
            let _ = writeln!(out, "  chain: (empty: every query is REFUSED)");
            continue;
        }
        let _ = writeln!(out, "  chain (execution order):");
        for (n, p) in b.plugins.iter().enumerate() {
            let desc = p.describe();
            let role = if SETUP_ONLY.contains(&p.name()) { " (setup only, not in the query path)" } else { "" };
            let _ = writeln!(out, "    {}. {}{role}: {}", n + 1, p.name(), desc.replace('\n', "\n       "));
        }
    }
    out
}

/// What CoreDNS prints at startup for each listener (unless `-quiet`): every zone, sorted,
/// as `ZONE:PORT` or `ZONE:PORT on IP` (non-DNS transports prefixed with `scheme://`),
/// preceded by a warning for zones that do not follow RFC 1035's preferred syntax.
pub fn startup_text(plan: &Plan) -> String {
    let mut out = String::new();
    for l in &plan.listeners {
        let prefix = match l.transport {
            super::plan::Transport::Dns => String::new(),
            t => format!("{}://", t.scheme()),
        };
        let mut zones: Vec<&str> = l.zones.iter().map(|(z, _)| z.as_str()).collect();
        zones.sort_unstable();
        zones.dedup();
        let host = l.label.split_once("://").map(|(_, hp)| hp).unwrap_or(&l.label);
        let ip = host.rsplit_once(':').map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']')).unwrap_or("");
        for z in zones {
            if !preferred_syntax(z) {
                let _ = writeln!(out, "Warning: Domain {z:?} does not follow RFC1035 preferred syntax");
            }
            if ip.is_empty() {
                let _ = writeln!(out, "{prefix}{z}:{}", l.addr.port());
            } else {
                let _ = writeln!(out, "{prefix}{z}:{} on {ip}", l.addr.port());
            }
        }
    }
    out
}

/// RFC 1035 preferred syntax (letters, digits, inner hyphens, labels starting with a letter);
/// the root and reverse zones always pass.
fn preferred_syntax(zone: &str) -> bool {
    if zone == "." || zone.ends_with(".in-addr.arpa.") || zone.ends_with(".ip6.arpa.") {
        return true;
    }
    let Some(body) = zone.strip_suffix('.') else { return false };
    body.split('.').all(|label| {
        let b = label.as_bytes();
        match (b.first(), b.last()) {
            (Some(f), Some(l)) => {
                f.is_ascii_alphabetic()
                    && l.is_ascii_alphanumeric()
                    && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
            }
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{build_plan, PlanOptions};
    use crate::corefile::token::simple_tokens;
    use crate::corefile::ServerBlock;

    #[test]
    fn lists_listeners_zones_and_chain() {
        let toks = simple_tokens("log\nwhoami", "Corefile");
        let block = ServerBlock {
            keys: simple_tokens("example.org:1053 example.net:1053", "Corefile"),
            directives: vec![("whoami".into(), vec![toks[1].clone()]), ("log".into(), vec![toks[0].clone()])],
        };
        let text = build_plan(&[block], &PlanOptions::default()).map(|p| explain(&p)).unwrap_or_default();
        assert!(text.contains("dns://:1053"), "{text}");
        assert!(text.contains("example.net."), "{text}");
        assert!(text.contains("Block #1: dns://example.org.:1053 dns://example.net.:1053"), "{text}");
        let log_at = text.find("1. log").unwrap_or(usize::MAX);
        let whoami_at = text.find("2. whoami").unwrap_or(0);
        assert!(log_at < whoami_at, "{text}");
    }

    #[test]
    fn startup_lines_like_coredns() {
        let toks = simple_tokens("whoami\nbind 127.0.0.1", "Corefile");
        let bound = ServerBlock {
            keys: simple_tokens("example.org:1053 1-bad.org:1053", "Corefile"),
            directives: vec![("whoami".into(), vec![toks[0].clone()]), ("bind".into(), toks[1..].to_vec())],
        };
        let open = ServerBlock {
            keys: simple_tokens("10.0.0.0/15:1054", "Corefile"),
            directives: vec![("whoami".into(), vec![toks[0].clone()])],
        };
        let text = build_plan(&[bound, open], &PlanOptions::default()).map(|p| startup_text(&p)).unwrap_or_default();
        assert_eq!(
            text,
            "Warning: Domain \"1-bad.org.\" does not follow RFC1035 preferred syntax\n\
             1-bad.org.:1053 on 127.0.0.1\n\
             example.org.:1053 on 127.0.0.1\n\
             0.10.in-addr.arpa.:1054\n\
             1.10.in-addr.arpa.:1054\n"
        );
    }
}
