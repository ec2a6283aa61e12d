//! Helpers shared by the plugins of the "plugins" area (template, hosts, whoami, ...): zone
//! lists and matching, `fallthrough` zones, and building a reply to a query.

use hickory_proto::op::{Message, MessageType, OpCode};

use crate::dnsname;
use crate::server::Request;

/// Normalises a zone-like name: lower case, trailing dot (`.` stays `.`).
pub fn normalize_zone(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    dnsname::normalize(lower.strip_prefix("dns://").unwrap_or(&lower))
}

/// Zones from directive arguments, or the server block's zones when there are none.
pub fn origins_from_args_or_block(args: &[String], block: &[String]) -> Vec<String> {
    if args.is_empty() {
        return block.iter().map(|z| normalize_zone(z)).collect();
    }
    args.iter().map(|z| normalize_zone(z)).collect()
}

/// CoreDNS's `Zones.Matches`: the longest zone `name` lies in, if any.
pub fn zone_match<'a>(zones: &'a [String], name: &str) -> Option<&'a str> {
    zones.iter().filter(|z| dnsname::in_zone_ignore_case(z, name)).max_by_key(|z| z.len()).map(|z| z.as_str())
}

/// A `fallthrough [ZONES...]` setting: which names may pass to the next plugin.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fall {
    /// Zones covered; empty = never fall through.
    pub zones: Vec<String>,
}

impl Fall {
    /// Sets the zones from `fallthrough`'s arguments; none means the root (everything).
    pub fn set_from_args(&mut self, args: &[String]) {
        self.zones =
            if args.is_empty() { vec![".".to_string()] } else { args.iter().map(|a| normalize_zone(a)).collect() };
    }

    /// True when `name` may fall through.
    pub fn through(&self, name: &str) -> bool {
        zone_match(&self.zones, name).is_some()
    }
}

/// A reply skeleton for `req` (miekg's `SetReply`): same ID and opcode, QR set, RD and CD
/// copied for queries, NOERROR, the first question copied.
pub fn reply_to(req: &Request) -> Result<Message, String> {
    let q = req.message()?;
    let mut m = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
    if q.metadata.op_code == OpCode::Query {
        m.metadata.recursion_desired = q.metadata.recursion_desired;
        m.metadata.checking_disabled = q.metadata.checking_disabled;
    }
    if let Some(first) = q.queries.into_iter().next() {
        m.queries.push(first);
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn subdomain_rules() {
        assert_eq!(
            zone_match(&["org.".to_string(), "example.org.".to_string()], "www.example.org."),
            Some("example.org.")
        );
    }
}
