//! Record text as written in cases, and how replies are rendered and compared.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, Record};
use hickory_proto::serialize::txt::Parser;

/// A record from a case; `ttl` is None when the text gave no TTL (then TTL is not compared).
#[derive(Debug, Clone)]
pub struct ExpectedRecord {
    /// Parsed record (TTL 0 when none was written).
    pub record: Record,
    /// TTL to compare, if written.
    pub ttl: Option<u32>,
}

impl ExpectedRecord {
    /// Parses `"name [ttl] [class] type rdata"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let split = t.find(char::is_whitespace).ok_or_else(|| format!("record {text:?}: too short"))?;
        let (owner, rest) = (&t[..split], t[split..].trim_start());
        let second = rest.split_whitespace().next().unwrap_or("");
        let ttl = second.parse::<u32>().ok();
        let line = if ttl.is_some() { t.to_string() } else { format!("{owner} 0 {rest}") };
        let (_, sets) = Parser::new(format!("$ORIGIN .\n{line}\n"), None, Some(Name::root()))
            .parse()
            .map_err(|e| format!("record {text:?}: {e}"))?;
        let record = sets
            .values()
            .flat_map(|s| s.records_without_rrsigs())
            .next()
            .cloned()
            .ok_or_else(|| format!("record {text:?}: nothing parsed"))?;
        Ok(Self { record, ttl })
    }

    /// True when `actual` is this record (name case-insensitive; TTL only when written).
    pub fn matches(&self, actual: &Record) -> bool {
        self.record == *actual
            && self.record.record_type() == actual.record_type()
            && self.ttl.is_none_or(|t| t == actual.ttl)
    }

    /// Text as a case would write it.
    pub fn render(&self) -> String {
        match self.ttl {
            Some(_) => self.record.to_string(),
            None => render_without_ttl(&self.record),
        }
    }
}

/// `name class type rdata`.
pub fn render_without_ttl(r: &Record) -> String {
    format!("{} {} {} {}", r.name, r.dns_class, r.record_type(), r.data)
}

/// Parses every string; errors name the bad one.
pub fn parse_all(texts: &[String]) -> Result<Vec<ExpectedRecord>, String> {
    texts.iter().map(|t| ExpectedRecord::parse(t)).collect()
}

/// Multiset matching: returns (expected left unmatched, actual indexes matched by which expected).
pub fn match_records(expected: &[ExpectedRecord], actual: &[Record]) -> (Vec<usize>, Vec<Option<usize>>) {
    let mut used: Vec<Option<usize>> = vec![None; actual.len()];
    let mut missing = Vec::new();
    // TTL-specific expectations first, so TTL-less ones cannot steal their records.
    let mut order: Vec<usize> = (0..expected.len()).collect();
    order.sort_by_key(|i| expected[*i].ttl.is_none());
    for i in order {
        match (0..actual.len()).find(|j| used[*j].is_none() && expected[i].matches(&actual[*j])) {
            Some(j) => used[j] = Some(i),
            None => missing.push(i),
        }
    }
    (missing, used)
}

/// Renders actual records for a diff; records matched by a TTL-less expectation are shown without TTL.
pub fn render_actual(expected: &[ExpectedRecord], actual: &[Record]) -> Vec<String> {
    let (_, used) = match_records(expected, actual);
    let mut lines: Vec<String> = actual
        .iter()
        .zip(used)
        .map(|(r, u)| match u {
            Some(i) if expected[i].ttl.is_none() => render_without_ttl(r),
            _ => r.to_string(),
        })
        .collect();
    lines.sort();
    lines
}

/// Expected records rendered and sorted.
pub fn render_expected(expected: &[ExpectedRecord]) -> Vec<String> {
    let mut lines: Vec<String> = expected.iter().map(|e| e.render()).collect();
    lines.sort();
    lines
}

/// The rcode name CoreDNS prints (`NOERROR`, `NXDOMAIN`, ...), or the number.
pub fn rcode_name(code: ResponseCode) -> String {
    let n = u16::from(code);
    match n {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        16 => "BADVERS",
        _ => return n.to_string(),
    }
    .to_string()
}

/// Parses an rcode name (or number) for fixtures.
pub fn parse_rcode(text: &str) -> Result<ResponseCode, String> {
    let up = text.trim().to_ascii_uppercase();
    if let Ok(n) = up.parse::<u16>() {
        return Ok(code_from(n));
    }
    (0u16..24).map(code_from).find(|c| rcode_name(*c) == up).ok_or_else(|| format!("unknown rcode {text:?}"))
}

/// An rcode from its 12-bit number.
pub fn code_from(n: u16) -> ResponseCode {
    ResponseCode::from(((n >> 4) & 0xff) as u8, (n & 0xf) as u8)
}

/// Header flags that are set, in the order qr aa tc rd ra ad cd.
pub fn flags(msg: &Message) -> Vec<String> {
    let m = &msg.metadata;
    let all = [
        ("qr", m.message_type == hickory_proto::op::MessageType::Response),
        ("aa", m.authoritative),
        ("tc", m.truncation),
        ("rd", m.recursion_desired),
        ("ra", m.recursion_available),
        ("ad", m.authentic_data),
        ("cd", m.checking_disabled),
    ];
    all.iter().filter(|(_, on)| *on).map(|(n, _)| n.to_string()).collect()
}

/// The question as `name TYPE` (or `name CLASS TYPE` outside IN), spelled as on the wire.
pub fn question(msg: &Message) -> String {
    match msg.queries.first() {
        Some(q) if q.query_class == hickory_proto::rr::DNSClass::IN => format!("{} {}", q.name, q.query_type),
        Some(q) => format!("{} {} {}", q.name, q.query_class, q.query_type),
        None => String::new(),
    }
}

/// The whole reply in dig-like text, for reports.
pub fn render_message(msg: &Message) -> String {
    let mut out = format!(
        "rcode {} flags [{}] question {:?}",
        rcode_name(msg.metadata.response_code),
        flags(msg).join(" "),
        question(msg)
    );
    if let Some(e) = &msg.edns {
        out.push_str(&format!(" edns(size {}, do {})", e.max_payload(), e.flags().dnssec_ok));
    }
    for (name, sec) in [("answer", &msg.answers), ("authority", &msg.authorities), ("additional", &msg.additionals)] {
        for r in sec.iter() {
            out.push_str(&format!("\n  {name}: {r}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn expected_records_with_and_without_ttl() {
        let with = ExpectedRecord::parse("www.example.org. 300 IN A 192.0.2.1").unwrap();
        let without = ExpectedRecord::parse("WWW.example.org. IN A 192.0.2.1").unwrap();
        let other = ExpectedRecord::parse("www.example.org. 30 IN A 192.0.2.1").unwrap();
        assert_eq!(with.ttl, Some(300));
        assert_eq!(without.ttl, None);
        assert!(without.matches(&with.record.clone()));
        assert!(!other.matches(&with.record.clone()));
        assert_eq!(without.render(), "www.example.org. IN A 192.0.2.1");
        let txt = ExpectedRecord::parse("t.example. 60 IN TXT \"a b\"").unwrap();
        assert_eq!(txt.record.to_string(), "t.example. 60 IN TXT a b");
        let (missing, _) = match_records(&[with, without], std::slice::from_ref(&other.record));
        assert_eq!(missing, vec![0]);
        assert_eq!(rcode_name(parse_rcode("servfail").unwrap()), "SERVFAIL");
    }
}
