//! Checking a step's expectations against what was observed.

use std::collections::BTreeMap;

use hickory_proto::rr::Record;
use serde::Serialize;

use crate::case::Expect;
use crate::client::Reply;
use crate::http::{metric_sum, HttpReply};
use crate::records::{flags, match_records, parse_all, question, rcode_name, render_actual, render_expected};

/// One expectation that did not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// Which expectation (`rcode`, `answer`, `upstream_queries.main`, ...).
    pub field: String,
    /// What the case wanted.
    pub expected: String,
    /// What was seen.
    pub actual: String,
}

impl Mismatch {
    /// Builds a mismatch.
    pub fn new(field: impl Into<String>, expected: impl Into<String>, actual: impl Into<String>) -> Self {
        Self { field: field.into(), expected: expected.into(), actual: actual.into() }
    }
}

/// What a query step observed.
pub enum DnsOutcome {
    /// A reply arrived.
    Reply(Reply),
    /// Nothing arrived in time.
    NoReply,
    /// The exchange failed (connection refused, bad reply, ...).
    Error(String),
}

/// Checks DNS expectations.
pub fn check_dns(e: &Expect, outcome: &DnsOutcome) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let reply = match outcome {
        DnsOutcome::Reply(r) => r,
        DnsOutcome::NoReply | DnsOutcome::Error(_) => {
            let what = match outcome {
                DnsOutcome::Error(err) => format!("no reply ({err})"),
                _ => "no reply".to_string(),
            };
            if e.timeout != Some(true) {
                out.push(Mismatch::new("reply", "a reply", what));
            }
            return out;
        }
    };
    let msg = &reply.msg;
    if e.timeout == Some(true) {
        out.push(Mismatch::new("timeout", "no reply within 2s", crate::records::render_message(msg)));
        return out;
    }
    if let Some(want) = &e.rcode {
        let got = rcode_name(msg.metadata.response_code);
        if !want.eq_ignore_ascii_case(&got) {
            out.push(Mismatch::new("rcode", want.to_ascii_uppercase(), got));
        }
    }
    exact_set(&mut out, "answer", e.answer.as_deref(), &msg.answers);
    exact_set(&mut out, "authority", e.authority.as_deref(), &msg.authorities);
    exact_set(&mut out, "additional", e.additional.as_deref(), &msg.additionals);
    contains(&mut out, "answer_contains", e.answer_contains.as_deref(), &msg.answers);
    contains(&mut out, "additional_contains", e.additional_contains.as_deref(), &msg.additionals);
    if let Some(n) = e.answer_count {
        if msg.answers.len() != n {
            out.push(Mismatch::new("answer_count", n.to_string(), msg.answers.len().to_string()));
        }
    }
    let ttls: Vec<&Record> = msg.answers.iter().chain(msg.authorities.iter()).collect();
    if let Some(max) = e.ttl_max {
        let over: Vec<String> = ttls.iter().filter(|r| r.ttl > max).map(|r| r.to_string()).collect();
        if !over.is_empty() {
            out.push(Mismatch::new("ttl_max", format!("every TTL <= {max}"), over.join("\n")));
        }
    }
    if let Some(min) = e.ttl_min {
        let under: Vec<String> = ttls.iter().filter(|r| r.ttl < min).map(|r| r.to_string()).collect();
        if !under.is_empty() {
            out.push(Mismatch::new("ttl_min", format!("every TTL >= {min}"), under.join("\n")));
        }
    }
    let got_flags = flags(msg);
    if let Some(want) = &e.flags {
        let mut w: Vec<String> = want.iter().map(|f| f.to_ascii_lowercase()).collect();
        w.sort_by_key(|f| flag_rank(f));
        let mut g = got_flags.clone();
        g.sort_by_key(|f| flag_rank(f));
        if w != g {
            out.push(Mismatch::new("flags", w.join(" "), g.join(" ")));
        }
    }
    if let Some(want) = &e.flags_include {
        let missing: Vec<&String> = want.iter().filter(|f| !got_flags.contains(&f.to_ascii_lowercase())).collect();
        if !missing.is_empty() {
            out.push(Mismatch::new("flags_include", want.join(" "), got_flags.join(" ")));
        }
    }
    if let Some(want) = &e.flags_exclude {
        let present: Vec<&String> = want.iter().filter(|f| got_flags.contains(&f.to_ascii_lowercase())).collect();
        if !present.is_empty() {
            out.push(Mismatch::new("flags_exclude", format!("none of: {}", want.join(" ")), got_flags.join(" ")));
        }
    }
    if let Some(want) = &e.question {
        let got = question(msg);
        if want.split_whitespace().collect::<Vec<_>>() != got.split_whitespace().collect::<Vec<_>>() {
            out.push(Mismatch::new("question", want.clone(), got));
        }
    }
    if let Some(want) = e.edns {
        let got = msg.edns.is_some();
        if want != got {
            out.push(Mismatch::new("edns", want.to_string(), got.to_string()));
        }
    }
    if let Some(want) = &e.opcode {
        let got = opcode_name(msg.metadata.op_code);
        if !want.eq_ignore_ascii_case(&got) {
            out.push(Mismatch::new("opcode", want.to_ascii_uppercase(), got));
        }
    }
    if let Some(want) = e.edns_udp_size {
        let got = msg.edns.as_ref().map(|o| o.max_payload().to_string()).unwrap_or_else(|| "no OPT".into());
        if got != want.to_string() {
            out.push(Mismatch::new("edns_udp_size", want.to_string(), got));
        }
    }
    if let Some(want) = &e.edns_options {
        let got: Vec<u16> = msg
            .edns
            .as_ref()
            .map(|o| o.options().as_ref().iter().map(|(code, _)| u16::from(*code)).collect())
            .unwrap_or_default();
        if *want != got {
            out.push(Mismatch::new("edns_options", format!("{want:?}"), format!("{got:?}")));
        }
    }
    out
}

/// The opcode's name as `dig` prints it, or its number.
fn opcode_name(op: hickory_proto::op::OpCode) -> String {
    match u8::from(op) {
        0 => "QUERY".into(),
        1 => "IQUERY".into(),
        2 => "STATUS".into(),
        4 => "NOTIFY".into(),
        5 => "UPDATE".into(),
        n => n.to_string(),
    }
}

fn flag_rank(f: &str) -> usize {
    ["qr", "aa", "tc", "rd", "ra", "ad", "cd"].iter().position(|x| *x == f).unwrap_or(99)
}

fn exact_set(out: &mut Vec<Mismatch>, field: &str, want: Option<&[String]>, got: &[Record]) {
    let Some(want) = want else { return };
    let expected = match parse_all(want) {
        Ok(e) => e,
        Err(err) => {
            out.push(Mismatch::new(field, err, ""));
            return;
        }
    };
    let (missing, used) = match_records(&expected, got);
    if !missing.is_empty() || used.iter().any(|u| u.is_none()) {
        out.push(Mismatch::new(field, render_expected(&expected).join("\n"), render_actual(&expected, got).join("\n")));
    }
}

fn contains(out: &mut Vec<Mismatch>, field: &str, want: Option<&[String]>, got: &[Record]) {
    let Some(want) = want else { return };
    let expected = match parse_all(want) {
        Ok(e) => e,
        Err(err) => {
            out.push(Mismatch::new(field, err, ""));
            return;
        }
    };
    let (missing, _) = match_records(&expected, got);
    if !missing.is_empty() {
        let lines: Vec<String> = missing.iter().map(|i| expected[*i].render()).collect();
        out.push(Mismatch::new(
            field,
            format!("among them:\n{}", lines.join("\n")),
            render_actual(&expected, got).join("\n"),
        ));
    }
}

/// Checks HTTP expectations.
pub fn check_http(e: &Expect, got: &Result<HttpReply, String>) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let reply = match got {
        Ok(r) => r,
        Err(err) => {
            if e.has_http() {
                out.push(Mismatch::new("http", "a reply", err.clone()));
            }
            return out;
        }
    };
    if let Some(s) = e.status {
        if s != reply.status {
            out.push(Mismatch::new("status", s.to_string(), reply.status.to_string()));
        }
    }
    if let Some(b) = &e.body {
        if *b != reply.body {
            out.push(Mismatch::new("body", b.clone(), reply.body.clone()));
        }
    }
    for want in e.body_contains.iter().flatten() {
        if !reply.body.contains(want.as_str()) {
            out.push(Mismatch::new("body_contains", want.clone(), excerpt(&reply.body)));
        }
    }
    for (name, want) in e.metric.iter().flatten() {
        let sum = metric_sum(&reply.body, name);
        match want.holds(sum.unwrap_or(0.0)) {
            Ok(true) => {}
            Ok(false) => out.push(Mismatch::new(
                format!("metric {name}"),
                want.to_string(),
                sum.map(|v| v.to_string()).unwrap_or_else(|| "absent".into()),
            )),
            Err(err) => out.push(Mismatch::new(format!("metric {name}"), want.to_string(), err)),
        }
    }
    out
}

fn excerpt(body: &str) -> String {
    if body.len() <= 2000 {
        return body.to_string();
    }
    let mut end = 2000;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n... ({} bytes in all)", &body[..end], body.len())
}

/// Checks fixture counters: `counts` maps fixture name to (total, tcp).
pub fn check_upstreams(e: &Expect, counts: &BTreeMap<String, (usize, usize)>) -> Vec<Mismatch> {
    let mut out = Vec::new();
    for (kind, want) in [("upstream_queries", &e.upstream_queries), ("upstream_tcp", &e.upstream_tcp)] {
        for (name, n) in want.iter().flatten() {
            let got = counts.get(name).map(|(t, tcp)| if kind == "upstream_tcp" { *tcp } else { *t });
            match got.map(|g| (g, n.holds(g as f64))) {
                Some((_, Ok(true))) => {}
                Some((g, Ok(false))) => out.push(Mismatch::new(format!("{kind}.{name}"), n.to_string(), g.to_string())),
                Some((_, Err(err))) => out.push(Mismatch::new(format!("{kind}.{name}"), n.to_string(), err)),
                None => out.push(Mismatch::new(format!("{kind}.{name}"), n.to_string(), "no such upstream")),
            }
        }
    }
    out
}
