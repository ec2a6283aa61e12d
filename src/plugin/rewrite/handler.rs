//! The `rewrite` handler: request rules in order, the rest of the chain, then response rules in
//! reverse with the original question restored.

use futures_util::future::BoxFuture;
use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::{Name, RData, Record};

use super::rules::{Mode, Question, ResponseRule, Rule, StringRewriter};
use crate::plugin::template::common::reply_to;
use crate::plugin::template::presentation::{name_from_text, name_to_text, request_qname};
use crate::plugin::template::setup::rcode_value;
use crate::plugin::{Next, Plugin};
use crate::server::{Outcome, Reply, Request};

/// The running `rewrite` plugin.
#[derive(Debug, Clone)]
pub struct Rewrite {
    /// Rules in order.
    pub rules: Vec<Rule>,
    /// This server's own first listener, where `cname` rules resolve rewritten targets.
    pub self_addr: Option<std::net::SocketAddr>,
}

/// CoreDNS's cname-target rewriting: the first CNAME answer whose target the rule maps gets
/// the new target, later answers are replaced by the new target's answers (asked of this
/// server with the query's type), and TC is copied.
async fn rewrite_cname_targets(m: &mut Message, rules: &[ResponseRule], addr: std::net::SocketAddr, req: &Request) {
    for rule in rules.iter().rev() {
        let ResponseRule::Cname(c) = rule else { continue };
        let hit = m.answers.iter().find_map(|r| match &r.data {
            RData::CNAME(t) => {
                let target = name_to_text(&t.0);
                c.from_and_to(&target).filter(|(from, _)| *from == target)
            }
            _ => None,
        });
        let Some((from, to)) = hit else { continue };
        let Ok(to_name) = name_from_text(&to) else { continue };
        let Ok(up) = crate::plugin::template::handler::lookup_name(
            addr,
            &to_name,
            req.qtype,
            req.client_size().min(65535) as u16,
            req.dnssec_ok(),
        )
        .await
        else {
            tracing::error!(target: "plugin/rewrite", "upstream lookup failed");
            continue;
        };
        let mut answers = Vec::new();
        for mut rr in std::mem::take(&mut m.answers) {
            if let RData::CNAME(t) = &mut rr.data {
                let matched = name_to_text(&t.0) == from;
                if matched {
                    t.0 = to_name.clone();
                }
                answers.push(rr);
                if matched {
                    break;
                }
            }
        }
        answers.extend(up.answers);
        m.answers = answers;
        m.metadata.truncation = up.metadata.truncation;
    }
}

/// miekg's `IsDomainName`: any octets, labels of 1–63 octets, at most 255 octets in wire form.
pub use crate::plugin::template::presentation::is_domain_name;

/// The rewritten name, when `rw` changes it and the result is a valid name (presentation
/// text, miekg's escapes).
fn rewrite_name(n: &Name, rw: &StringRewriter) -> Option<Name> {
    let text = name_to_text(n);
    let new = rw.rewrite(&text);
    if new == text {
        return None;
    }
    name_from_text(&new).ok()
}

fn apply_value(rr: &mut Record, rw: &StringRewriter) {
    let target: Option<&mut Name> = match &mut rr.data {
        RData::SRV(s) => Some(&mut s.target),
        RData::MX(m) => Some(&mut m.exchange),
        RData::CNAME(c) => Some(&mut c.0),
        RData::NS(n) => Some(&mut n.0),
        RData::PTR(p) => Some(&mut p.0),
        RData::SOA(s) => Some(&mut s.mname),
        _ => None,
    };
    if let Some(t) = target {
        if let Some(new) = rewrite_name(t, rw) {
            *t = new;
        }
    }
}

fn apply_rules(rules: &[ResponseRule], rcode: &mut u16, rr: Option<&mut Record>) {
    let mut rr = rr;
    for r in rules.iter().rev() {
        match (r, rr.as_deref_mut()) {
            (ResponseRule::Rcode(old, new), _) if *rcode == *old => *rcode = *new,
            (ResponseRule::Name(rw), Some(rec)) => {
                if let Some(n) = rewrite_name(&rec.name, rw) {
                    rec.name = n;
                }
            }
            (ResponseRule::Value(rw), Some(rec)) => apply_value(rec, rw),
            (ResponseRule::Ttl(min, max), Some(rec)) => {
                if rec.ttl < *min {
                    rec.ttl = *min;
                } else if rec.ttl > *max {
                    rec.ttl = *max;
                }
            }
            _ => {}
        }
    }
}

/// Applies response rules (in reverse) to every record of `m`, as CoreDNS's reverter does.
pub fn rewrite_response(m: &mut Message, rules: &[ResponseRule]) {
    if rules.is_empty() {
        return;
    }
    let mut rcode = u16::from(m.metadata.response_code);
    let total = m.answers.len() + m.authorities.len() + m.additionals.len() + usize::from(m.edns.is_some());
    for rr in m.authorities.iter_mut().chain(m.answers.iter_mut()).chain(m.additionals.iter_mut()) {
        apply_rules(rules, &mut rcode, Some(rr));
    }
    if m.edns.is_some() || total == 0 {
        apply_rules(rules, &mut rcode, None);
    }
    m.metadata.response_code = rcode_value(rcode);
    let undo: Vec<super::edns0::Revert> =
        rules.iter().filter_map(|r| if let ResponseRule::Edns0(u) = r { Some(u.clone()) } else { None }).collect();
    super::edns0::revert(m, &undo);
}

fn error_rcode(rc: ResponseCode) -> bool {
    matches!(rc, ResponseCode::ServFail | ResponseCode::Refused | ResponseCode::FormErr | ResponseCode::NotImp)
}

impl Rewrite {
    fn rewrite_request(&self, req: &mut Request) -> Result<(Vec<ResponseRule>, bool, bool), String> {
        let orig = Question { name: request_qname(req), qtype: req.qtype, qclass: req.qclass };
        let mut q = orig.clone();
        let mut rules = Vec::new();
        let mut stopped = false;
        let mut edns_msg: Option<Message> = None;
        for rule in &self.rules {
            let added = match rule {
                Rule::Edns0(_, e) => {
                    if edns_msg.is_none() {
                        edns_msg = Some(req.message()?);
                    }
                    let Some(m) = edns_msg.as_mut() else { continue };
                    match e.apply(m, req) {
                        Some(undo) => undo.into_iter().map(ResponseRule::Edns0).collect(),
                        None => continue,
                    }
                }
                _ => match rule.apply(&mut q) {
                    Some(added) => added,
                    None => continue,
                },
            };
            if !is_domain_name(&q.name) {
                return Err(format!("invalid name after rewrite: {}", q.name));
            }
            rules.extend(added);
            if rule.mode() == Mode::Stop {
                stopped = true;
                break;
            }
        }
        let changed = q != orig;
        if changed || edns_msg.is_some() {
            let mut msg = match edns_msg {
                Some(m) => m,
                None => req.message()?,
            };
            let name = name_from_text(&q.name).map_err(|e| format!("invalid name after rewrite: {}: {e}", q.name))?;
            if let Some(first) = msg.queries.first_mut() {
                first.set_name(name);
                first.set_query_type(q.qtype.into());
                first.set_query_class(q.qclass.into());
            }
            req.replace_message(&msg)?;
            // The query's OPT as CoreDNS's scrub writer will see it (the rewritten request).
            let options = crate::dnsmsg::opt_class_offset(&req.wire)
                .and_then(|off| {
                    let len = u16::from_be_bytes([*req.wire.get(off + 6)?, *req.wire.get(off + 7)?]) as usize;
                    req.wire.get(off + 8..off + 8 + len).map(<[u8]>::to_vec)
                })
                .unwrap_or_default();
            req.edns = msg.edns.as_ref().map(|e| crate::server::ClientEdns {
                udp_size: e.max_payload(),
                dnssec_ok: e.flags().dnssec_ok,
                version: e.version(),
                options,
            });
            req.qname_lower = q.name.to_ascii_lowercase();
            req.qname = q.name;
            req.qtype = q.qtype;
            req.qclass = q.qclass;
        }
        Ok((rules, stopped, changed))
    }
}

impl Plugin for Rewrite {
    fn name(&self) -> &'static str {
        "rewrite"
    }

    fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let original = req.clone();
            let (rules, stopped, _changed) = match self.rewrite_request(req) {
                Ok(r) => r,
                Err(e) => return Outcome::unwritten(ResponseCode::ServFail, Some(e)),
            };
            let mut out = next.serve(req).await;
            if !stopped && rules.is_empty() {
                return out;
            }
            let orig_question = original.message().ok().and_then(|m| m.queries.into_iter().next());
            let error = out.error.take();
            let mut msg = match out.reply.as_ref() {
                Some(r) => match r.to_message() {
                    Ok(m) => m,
                    Err(_) => {
                        out.error = error;
                        return out;
                    }
                },
                None if error_rcode(out.rcode) => {
                    // CoreDNS writes the error reply itself, through the reverter.
                    let Ok(mut m) = reply_to(req) else {
                        out.error = error;
                        return out;
                    };
                    m.metadata.response_code = out.rcode;
                    if let Some(e) = &original.edns {
                        let mut edns = Edns::new();
                        edns.set_max_payload(e.udp_size.max(512));
                        edns.set_dnssec_ok(e.dnssec_ok);
                        m.edns = Some(edns);
                    }
                    m
                }
                None => {
                    out.error = error;
                    return out;
                }
            };
            if let Some(q) = orig_question {
                if msg.queries.is_empty() {
                    msg.queries.push(q);
                } else {
                    msg.queries[0] = q;
                }
            }
            rewrite_response(&mut msg, &rules);
            if let Some(addr) = self.self_addr {
                rewrite_cname_targets(&mut msg, &rules, addr, req).await;
            }
            let mut written = Outcome::written(
                if out.plugin.is_empty() { "rewrite" } else { out.plugin },
                Reply::Message(Box::new(msg)),
            );
            written.error = error;
            written
        })
    }
}
