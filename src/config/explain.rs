//! A readable rendering of the plan: listeners, the zones each serves, and every block's
//! chain in execution order.

use std::fmt::Write;

use super::plan::Plan;

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
            let _ = writeln!(out, "    {}. {}: {}", n + 1, p.name(), desc.replace('\n', "\n       "));
        }
    }
    out
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
}
