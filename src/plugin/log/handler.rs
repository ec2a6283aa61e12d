//! The `log` handler: runs the rest of the chain, then writes one line for the first rule
//! whose name scope matches the query (if the response's class is selected).

use std::fmt::Write;
use std::net::IpAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use hickory_proto::op::Message;
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use crate::dnsmsg::{self, Section};
use crate::dnsname;
use crate::plugin::{Next, Plugin};
use crate::server::wire::{self, bits};
use crate::server::{Outcome, Reply, Request};

use super::format::{Format, Label, Part};
use super::setup::{Class, Rule};
use crate::gocompat::names::{class_name, rcode_name, type_name};

/// The log plugin's handler.
pub struct LogHandler {
    rules: Vec<Rule>,
}

impl LogHandler {
    /// A handler for `rules` (in order).
    pub fn new(rules: Vec<Rule>) -> LogHandler {
        LogHandler { rules }
    }
}

/// What the log line knows about the response, as CoreDNS's recorder sees it.
pub struct Recorded {
    /// The reply in wire form (the server-written error reply when the chain wrote none).
    pub wire: Option<Vec<u8>>,
    /// The rcode the reply carries (extended rcode included).
    pub rcode: u16,
    /// Uncompressed reply length, 0 without a reply.
    pub len: usize,
}

impl Recorded {
    /// Records `outcome` for `req`: a written reply as is; for an unwritten SERVFAIL, REFUSED,
    /// FORMERR or NOTIMP, the minimal error reply the server will send.
    pub fn new(req: &Request, outcome: &Outcome, want_len: bool) -> Recorded {
        match &outcome.reply {
            Some(reply) => {
                let wire = reply.to_wire().ok();
                let rcode = wire.as_deref().map(full_rcode).unwrap_or_else(|| reply.rcode());
                let len = if want_len { uncompressed_len(reply, wire.as_deref()) } else { 0 };
                Recorded { wire, rcode, len }
            }
            None => {
                let rc = u16::from(outcome.rcode);
                if matches!(rc, 1 | 2 | 4 | 5) {
                    let wire = error_reply(req, rc);
                    let len = wire.len();
                    Recorded { wire: Some(wire), rcode: rc, len }
                } else {
                    Recorded { wire: None, rcode: rc, len: 0 }
                }
            }
        }
    }
}

/// The server's error reply: the query's ID, opcode, RD and CD (for QUERY), QR, the rcode and
/// the question — no OPT, as miekg's `SetRcode` builds it.
fn error_reply(req: &Request, rcode: u16) -> Vec<u8> {
    let q = &req.wire;
    let opcode = u16::from(wire::opcode(q));
    let qflags = wire::flags(q);
    let mut flags = bits::QR | (opcode << 11) | (rcode & 0xf);
    if opcode == 0 {
        flags |= qflags & (bits::RD | bits::CD);
    }
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&req.id().to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    let question = question_bytes(q);
    let qd: u16 = u16::from(question.is_some());
    out.extend_from_slice(&qd.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    if let Some(qb) = question {
        out.extend_from_slice(qb);
    }
    out
}

/// The first question's bytes (uncompressed name + type + class) from a query.
fn question_bytes(q: &[u8]) -> Option<&[u8]> {
    if wire::counts(q).0 == 0 {
        return None;
    }
    let mut i = wire::HEADER_LEN;
    loop {
        let len = *q.get(i)? as usize;
        if len == 0 {
            i += 1;
            break;
        }
        if len & 0xc0 != 0 {
            return None;
        }
        i += 1 + len;
    }
    q.get(wire::HEADER_LEN..i + 4)
}

/// Header rcode plus the OPT's extended bits.
fn full_rcode(w: &[u8]) -> u16 {
    let base = wire::rcode(w) & 0xf;
    let ext = scan(w).map(|s| s.ext_rcode).unwrap_or(0);
    (u16::from(ext) << 4) | base
}

/// The reply's length with no name compression (what CoreDNS's recorder counts).
fn uncompressed_len(reply: &Reply, wire: Option<&[u8]>) -> usize {
    let msg = match reply {
        Reply::Message(m) => Some((**m).clone()),
        Reply::Wire(w) => Message::from_vec(w).ok(),
    };
    let encoded = msg.and_then(|m| {
        let mut buf = Vec::with_capacity(512);
        let mut enc = BinEncoder::new(&mut buf);
        enc.set_name_encoding(NameEncoding::Uncompressed);
        m.emit(&mut enc).ok()?;
        Some(buf.len())
    });
    encoded.or_else(|| wire.map(<[u8]>::len)).unwrap_or(0)
}

/// What typifying a reply needs, read straight from its wire form.
#[derive(Default)]
struct Scan {
    qtype: Option<u16>,
    answers: u16,
    soa_in_authority: bool,
    ns_in_authority: bool,
    dnssec_ok: bool,
    ext_rcode: u8,
    expired_rrsig: bool,
}

fn u32_at(w: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_be_bytes([*w.get(i)?, *w.get(i + 1)?, *w.get(i + 2)?, *w.get(i + 3)?]))
}

/// RRSIG validity with serial arithmetic, as miekg's `ValidityPeriod`.
fn rrsig_valid(inception: u32, expiration: u32, now: i64) -> bool {
    const YEAR68: i64 = 1 << 31;
    let (inc, exp) = (i64::from(inception), i64::from(expiration));
    let ti = inc + ((inc - now) / YEAR68) * YEAR68;
    let te = exp + ((exp - now) / YEAR68) * YEAR68;
    ti <= now && now <= te
}

fn scan(w: &[u8]) -> Option<Scan> {
    let (_, an, ..) = dnsmsg::counts(w);
    let q = dnsmsg::skip_questions(w)?;
    let mut s = Scan { answers: an, qtype: q.first_qtype, ..Scan::default() };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let mut rrsigs: Vec<(u32, u32)> = Vec::new();
    for rr in dnsmsg::records(w, q.end) {
        let rr = rr?;
        let in_authority = rr.section == Section::Authority;
        match rr.rtype {
            6 if in_authority => s.soa_in_authority = true,
            2 if in_authority => s.ns_in_authority = true,
            41 => {
                s.ext_rcode = (rr.ttl >> 24) as u8;
                s.dnssec_ok = rr.ttl & 0x8000 != 0;
            }
            46 => rrsigs.push((u32_at(w, rr.rdata + 12)?, u32_at(w, rr.rdata + 8)?)),
            _ => {}
        }
    }
    s.expired_rrsig = rrsigs.iter().any(|(inc, exp)| !rrsig_valid(*inc, *exp, now));
    Some(s)
}

/// CoreDNS's response type name (the `log/type` metadata) and its class.
pub fn typify(wire_reply: Option<&[u8]>) -> (&'static str, Class) {
    let Some(w) = wire_reply else { return ("OTHERERROR", Class::Error) };
    let Some(s) = scan(w) else { return ("OTHERERROR", Class::Error) };
    let opcode = wire::opcode(w);
    let rcode = full_rcode(w);
    let t = if opcode == 5 {
        "UPDATE"
    } else if opcode == 4 || matches!(s.qtype, Some(251 | 252)) {
        "META"
    } else if s.dnssec_ok && s.expired_rrsig {
        "OTHERERROR"
    } else if s.answers > 0 && rcode == 0 {
        "NOERROR"
    } else if s.answers > 0 && rcode == 3 {
        "OTHERERROR"
    } else if s.soa_in_authority && rcode == 0 {
        "NODATA"
    } else if rcode == 3 {
        "NXDOMAIN"
    } else if rcode == 2 || rcode == 4 {
        "SERVERERROR"
    } else if s.ns_in_authority && rcode == 0 {
        "DELEGATION"
    } else if rcode == 0 {
        "NOERROR"
    } else {
        "OTHERERROR"
    };
    let class = match t {
        "NOERROR" | "DELEGATION" => Class::Success,
        "NXDOMAIN" | "NODATA" => Class::Denial,
        _ => Class::Error,
    };
    (t, class)
}

fn push_addr(out: &mut String, ip: IpAddr) {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            let _ = write!(out, "{v4}");
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "[{v6}]");
        }
    }
}

fn push_flags(out: &mut String, flags: u16) {
    let names = [
        (bits::QR, "qr"),
        (bits::AA, "aa"),
        (bits::TC, "tc"),
        (bits::RD, "rd"),
        (bits::RA, "ra"),
        (bits::Z, "z"),
        (bits::AD, "ad"),
        (bits::CD, "cd"),
    ];
    let set: Vec<&str> = names.iter().filter(|(b, _)| flags & b != 0).map(|(_, n)| *n).collect();
    out.push_str(&set.join(","));
}

/// Renders one log line for `req` and its recorded response.
pub fn render(format: &Format, req: &Request, rec: &Recorded, started: Instant) -> String {
    let mut out = String::with_capacity(128);
    for part in &format.parts {
        match part {
            Part::Literal(s) => out.push_str(s),
            Part::Metadata(key) => out.push_str(req.get_metadata(key).unwrap_or("-")),
            Part::Label(label) => match label {
                Label::Rcode => match (&rec.wire, rcode_name(rec.rcode)) {
                    (None, _) => out.push('-'),
                    (Some(_), Some(n)) => out.push_str(n),
                    (Some(_), None) => {
                        let _ = write!(out, "{}", rec.rcode);
                    }
                },
                Label::Rsize => {
                    let _ = write!(out, "{}", rec.len);
                }
                Label::Duration => {
                    let _ = write!(out, "{}s", started.elapsed().as_secs_f64());
                }
                Label::Rflags => match &rec.wire {
                    Some(w) => push_flags(&mut out, wire::flags(w)),
                    None => out.push('-'),
                },
                Label::Type => out.push_str(&type_name(req.qtype)),
                Label::Name => out.push_str(&req.qname_lower),
                Label::Class => out.push_str(&class_name(req.qclass)),
                Label::Proto => out.push_str(req.proto.as_str()),
                Label::Size => {
                    let _ = write!(out, "{}", req.received_len);
                }
                Label::Remote => push_addr(&mut out, req.client.ip()),
                Label::Port => {
                    let _ = write!(out, "{}", req.client.port());
                }
                Label::Local => push_addr(&mut out, req.local.ip()),
                Label::Id => {
                    let _ = write!(out, "{}", req.id());
                }
                Label::Opcode => {
                    let _ = write!(out, "{}", wire::opcode(&req.wire));
                }
                Label::Do => out.push_str(if req.dnssec_ok() { "true" } else { "false" }),
                Label::Bufsize => {
                    let _ = write!(out, "{}", req.client_size());
                }
            },
        }
    }
    out
}

impl Plugin for LogHandler {
    fn name(&self) -> &'static str {
        "log"
    }

    fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let Some(rule) = self.rules.iter().find(|r| dnsname::in_zone(&r.scope_lower, &req.qname_lower)) else {
                return next.serve(req).await;
            };
            let started = Instant::now();
            let outcome = next.serve(req).await;
            let rec = Recorded::new(req, &outcome, rule.parsed.uses(Label::Rsize));
            let (tpe, class) = typify(rec.wire.as_deref());
            req.set_metadata("log/type", tpe.to_string());
            req.set_metadata("log/class", class.as_str().to_string());
            if rule.classes.contains(&Class::All) || rule.classes.contains(&class) {
                let line = render(&rule.parsed, req, &rec, started);
                tracing::info!(target: "log", "{line}");
            }
            outcome
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corefile::Dispenser;
    use crate::plugin::log::setup;
    use crate::plugin::log::testutil::{capture, request, run, Captured, Responder};
    use crate::plugin::SetupContext;
    use crate::server::request::Proto;
    use hickory_proto::op::{Edns, MessageType, OpCode, Query, ResponseCode};
    use hickory_proto::rr::rdata::{A, SOA};
    use hickory_proto::rr::{Name, RData, Record, RecordType};
    use pretty_assertions::assert_eq;
    use std::sync::Arc;

    fn handler(text: &str) -> Arc<LogHandler> {
        let mut d = Dispenser::from_text(text);
        let cfg = setup::parse(&mut d, &SetupContext::default()).expect("log config");
        let rules = cfg.as_any().downcast_ref::<setup::Config>().map(|c| c.rules.clone()).unwrap_or_default();
        Arc::new(LogHandler::new(rules))
    }

    /// A reply to `req` with `rcode`, RA set, an A answer when `answer`, a SOA in authority
    /// when `soa`, and an OPT of 4096 when the query had one.
    fn reply(req: &Request, rcode: ResponseCode, answer: bool, soa: bool) -> Outcome {
        let name = Name::from_ascii(&req.qname).unwrap_or_default();
        let mut m = Message::new(req.id(), MessageType::Response, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.metadata.recursion_available = true;
        m.metadata.response_code = rcode;
        m.add_query(Query::query(name.clone(), RecordType::from(req.qtype)));
        if answer {
            m.add_answer(Record::from_rdata(name.clone(), 300, RData::A(A::new(192, 0, 2, 1))));
        }
        if soa {
            let soa = SOA::new(name.clone(), name.clone(), 1, 2, 3, 4, 5);
            m.add_authority(Record::from_rdata(name, 300, RData::SOA(soa)));
        }
        if req.edns.is_some() {
            let mut e = Edns::new();
            e.set_max_payload(4096);
            m.set_edns(e);
        }
        Outcome::written("responder", Reply::Message(Box::new(m)))
    }

    fn log_lines(events: &[Captured]) -> Vec<String> {
        events.iter().filter(|e| e.target == "log").map(|e| e.message.clone()).collect()
    }

    /// Splits off the trailing `{duration}` field and checks it is Go float seconds.
    fn strip_duration(line: &str) -> String {
        let (head, dur) = line.rsplit_once(' ').unwrap_or((line, ""));
        let secs = dur.strip_suffix('s').and_then(|d| d.parse::<f64>().ok());
        assert!(secs.is_some_and(|s| s >= 0.0), "bad duration in {line:?}");
        head.to_string()
    }

    #[test]
    fn common_format_for_a_written_reply() {
        let h = handler("log");
        let mut req = request("Example.ORG.", 1, Proto::Udp, Some((4096, false)), "[::1]:50759");
        let size = req.received_len;
        let ((), events) = capture(async {
            run(h.clone(), Responder(Box::new(|r| reply(r, ResponseCode::NoError, true, false))), &mut req).await;
        });
        // Uncompressed: header 12 + question 17 + answer 27 + OPT 11.
        let expected = format!("[::1]:50759 - 4242 \"A IN example.org. udp {size} false 4096\" NOERROR qr,rd,ra 67");
        let lines = log_lines(&events);
        assert_eq!(lines.len(), 1);
        assert_eq!(strip_duration(&lines[0]), expected);
        assert_eq!(events[0].level, tracing::Level::INFO);
        assert_eq!(req.get_metadata("log/type"), Some("NOERROR"));
        assert_eq!(req.get_metadata("log/class"), Some("success"));
    }

    #[test]
    fn unwritten_error_is_logged_as_the_server_reply() {
        let h = handler("log . {combined}");
        let mut req = request("example.org.", 28, Proto::Tcp, None, "127.0.0.1:4000");
        let size = req.received_len;
        let (out, events) = capture(async {
            let unwritten = Responder(Box::new(|_| Outcome::unwritten(ResponseCode::ServFail, Some("boom".into()))));
            run(h.clone(), unwritten, &mut req).await
        });
        assert_eq!(out.rcode, ResponseCode::ServFail);
        assert!(out.reply.is_none());
        let lines = log_lines(&events);
        assert_eq!(lines.len(), 1);
        let (common, opcode) = lines[0].rsplit_once(' ').unwrap_or_default();
        assert_eq!(opcode, "\"0\"");
        // Header 12 + question 17, no OPT; QR and the query's RD.
        let expected =
            format!("127.0.0.1:4000 - 4242 \"AAAA IN example.org. tcp {size} false 65535\" SERVFAIL qr,rd 29");
        assert_eq!(strip_duration(common), expected);
        assert_eq!(req.get_metadata("log/type"), Some("SERVERERROR"));
    }

    #[test]
    fn class_selection() {
        let h = handler("log . {rcode}|{name} {\nclass denial\n}");
        let (_, events) = capture(async {
            let mut ok = request("a.example.", 1, Proto::Udp, None, "127.0.0.1:4000");
            run(h.clone(), Responder(Box::new(|r| reply(r, ResponseCode::NoError, true, false))), &mut ok).await;
            let mut nx = request("b.example.", 1, Proto::Udp, None, "127.0.0.1:4000");
            run(h.clone(), Responder(Box::new(|r| reply(r, ResponseCode::NXDomain, false, true))), &mut nx).await;
            let mut nodata = request("c.example.", 1, Proto::Udp, None, "127.0.0.1:4000");
            run(h.clone(), Responder(Box::new(|r| reply(r, ResponseCode::NoError, false, true))), &mut nodata).await;
        });
        assert_eq!(log_lines(&events), vec!["NXDOMAIN|b.example.", "NOERROR|c.example."]);
    }

    #[test]
    fn first_matching_rule_decides() {
        let h = handler("log example.org one|{name} {\nclass error\n}\nlog . two|{name}");
        let (_, events) = capture(async {
            let mut a = request("www.example.org.", 1, Proto::Udp, None, "127.0.0.1:4000");
            run(h.clone(), Responder(Box::new(|r| reply(r, ResponseCode::NoError, true, false))), &mut a).await;
            let mut b = request("www.example.net.", 1, Proto::Udp, None, "127.0.0.1:4000");
            run(h.clone(), Responder(Box::new(|r| reply(r, ResponseCode::NoError, true, false))), &mut b).await;
            let mut c = request("example.org.", 1, Proto::Udp, None, "127.0.0.1:4000");
            run(h.clone(), Responder(Box::new(|_| Outcome::unwritten(ResponseCode::Refused, None))), &mut c).await;
        });
        // www.example.org matches rule one (class error) and is not logged by rule two.
        assert_eq!(log_lines(&events), vec!["two|www.example.net.", "one|example.org."]);
    }

    #[test]
    fn other_placeholders() {
        // (The test tokenizer has no quotes, so the fields are joined with '|'.)
        let h =
            handler("log . {local}|{>bufsize}|{>do}|{>id}|{class}|{proto}|{foo}|{/log/class}|{/nope}|{>rflags}|{type}");
        let mut req = request("example.org.", 65280, Proto::Udp, Some((1232, true)), "10.0.0.1:53000");
        let (_, events) = capture(async {
            run(h.clone(), Responder(Box::new(|r| reply(r, ResponseCode::NoError, true, false))), &mut req).await;
        });
        assert_eq!(log_lines(&events), vec!["127.0.0.1|1232|true|4242|IN|udp|{foo}|success|-|qr,rd,ra|TYPE65280"]);
    }

    #[test]
    fn nothing_written_and_no_error_rcode() {
        let rec = Recorded::new(
            &request("x.", 1, Proto::Udp, None, "127.0.0.1:1"),
            &Outcome::unwritten(ResponseCode::NoError, None),
            true,
        );
        let f = Format::parse("{rcode} {rsize} {>rflags}");
        let req = request("x.", 1, Proto::Udp, None, "127.0.0.1:1");
        assert_eq!(render(&f, &req, &rec, Instant::now()), "- 0 -");
        assert_eq!(typify(rec.wire.as_deref()), ("OTHERERROR", Class::Error));
    }

    #[test]
    fn v4_mapped_clients_print_as_v4() {
        let mut out = String::new();
        push_addr(&mut out, "::ffff:10.1.2.3".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])));
        push_addr(&mut out, "::1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])));
        assert_eq!(out, "10.1.2.3[::1]");
    }

    #[test]
    fn rrsig_validity_window() {
        assert!(rrsig_valid(100, 200, 150));
        assert!(!rrsig_valid(100, 200, 250));
        assert!(!rrsig_valid(100, 200, 50));
    }
}
