//! The `template` query handler: zone/class/type filter, regex match, rendering, reply.

use std::collections::BTreeMap;
use std::sync::{LazyLock, Once};

use futures_util::future::BoxFuture;
use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, Record};
use hickory_proto::serialize::txt::Parser;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::common::{reply_to, zone_match};
use super::expr::{Env, Val};
use super::gotmpl::{Struct, Template as GoTemplate, Value};
use super::presentation::{name_to_text, request_qname};
use super::rrtext;
use super::setup::{class_to_string, rcode_value, type_to_string, Config, TemplateSpec};
use crate::plugin::{Next, Plugin};
use crate::server::{Outcome, Reply, Request};

type Labels = Vec<(String, String)>;

static MATCHES: LazyLock<Family<Labels, Counter>> = LazyLock::new(Family::default);
static TEMPLATE_FAILURES: LazyLock<Family<Labels, Counter>> = LazyLock::new(Family::default);
static RR_FAILURES: LazyLock<Family<Labels, Counter>> = LazyLock::new(Family::default);

fn register_metrics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        crate::observe::register("coredns_template_matches", "Counter of template regex matches.", MATCHES.clone());
        crate::observe::register(
            "coredns_template_template_failures",
            "Counter of go template failures.",
            TEMPLATE_FAILURES.clone(),
        );
        crate::observe::register("coredns_template_rr_failures", "Counter of mis-templated RRs.", RR_FAILURES.clone());
    });
}

/// The running `template` plugin.
#[derive(Debug)]
pub struct TemplateHandler {
    cfg: Config,
    needs_message: bool,
    /// Where CNAME targets of A/AAAA answers are looked up: this server's own first listener
    /// (so the lookup runs through routing and the chains, like CoreDNS's `upstream`).
    self_addr: Option<std::net::SocketAddr>,
}

/// What a matching template sees (CoreDNS's `templateData`).
struct Matched {
    zone: String,
    class: String,
    qtype: String,
    data: Value,
}

impl TemplateHandler {
    /// A handler for the parsed configuration.
    pub fn new(cfg: Config) -> TemplateHandler {
        TemplateHandler::with_upstream(cfg, None)
    }

    /// A handler that resolves CNAME answers to A/AAAA queries by asking `self_addr`.
    pub fn with_upstream(cfg: Config, self_addr: Option<std::net::SocketAddr>) -> TemplateHandler {
        register_metrics();
        let needs_message = cfg.templates.iter().any(|t| {
            t.answer
                .iter()
                .chain(&t.additional)
                .chain(&t.authority)
                .any(|g| g.source().contains("Message") || g.source().contains("Question"))
        });
        TemplateHandler { cfg, needs_message, self_addr }
    }

    /// CoreDNS's CNAME chasing: after each CNAME answer to an A/AAAA query, the target's
    /// answers (looked up through this server) are appended and TC copied.
    async fn resolve_cnames(&self, req: &Request, msg: &mut Message) {
        let Some(addr) = self.self_addr else { return };
        if req.qtype != 1 && req.qtype != 28 {
            return;
        }
        if !msg.answers.iter().any(|r| r.record_type() == hickory_proto::rr::RecordType::CNAME) {
            return;
        }
        let mut out = Vec::with_capacity(msg.answers.len());
        for rr in std::mem::take(&mut msg.answers) {
            let target = match &rr.data {
                hickory_proto::rr::RData::CNAME(c) => Some(c.0.clone()),
                _ => None,
            };
            out.push(rr);
            let Some(target) = target else { continue };
            if name_to_text(&target).eq_ignore_ascii_case(&request_qname(req)) {
                continue;
            }
            if let Ok(up) = lookup(addr, &target, req).await {
                msg.metadata.truncation = up.metadata.truncation;
                out.extend(up.answers);
            }
        }
        msg.answers = out;
    }

    fn handle(&self, req: &Request) -> Option<Outcome> {
        // The name as CoreDNS's `state.Name()` gives it: miekg's escapes, lower case.
        let qname = request_qname(req);
        let name = qname.to_ascii_lowercase();
        zone_match(&self.cfg.zones, &name)?;
        for t in &self.cfg.templates {
            let (matched, fall) = self.match_template(t, req, &qname, &name);
            let Some(m) = matched else {
                if !fall {
                    return Some(Outcome::unwritten(ResponseCode::ServFail, None));
                }
                continue;
            };
            let server = req.server.to_string();
            let base: Labels = vec![
                ("server".into(), server),
                ("zone".into(), m.zone.clone()),
                ("view".into(), String::new()),
                ("class".into(), m.class.clone()),
                ("type".into(), m.qtype.clone()),
            ];
            MATCHES.get_or_create(&base).inc();
            if t.rcode == 2 {
                return Some(Outcome::unwritten(ResponseCode::ServFail, None));
            }
            return Some(match self.render(t, req, &m, &base) {
                Ok(msg) => Outcome::written("template", Reply::Message(Box::new(msg))),
                Err(e) => Outcome::unwritten(ResponseCode::ServFail, Some(e)),
            });
        }
        None
    }

    fn render(&self, t: &TemplateSpec, req: &Request, m: &Matched, base: &Labels) -> Result<Message, String> {
        let mut msg = reply_to(req)?;
        msg.metadata.authoritative = true;
        msg.metadata.response_code = rcode_value(t.rcode);
        for g in &t.answer {
            msg.answers.push(execute_rr(g, "answer", &m.data, base)?);
        }
        for g in &t.additional {
            msg.additionals.push(execute_rr(g, "additional", &m.data, base)?);
        }
        for g in &t.authority {
            msg.authorities.push(execute_rr(g, "authority", &m.data, base)?);
        }
        if let Some((code, reason)) = &t.ederror {
            let mut edns = Edns::new();
            edns.set_max_payload(4096);
            edns.set_dnssec_ok(true);
            let mut payload = code.to_be_bytes().to_vec();
            payload.extend_from_slice(reason.as_bytes());
            edns.options_mut().insert(EdnsOption::Unknown(u16::from(EdnsCode::from(15u16)), payload));
            msg.edns = Some(edns);
        }
        Ok(msg)
    }

    /// CoreDNS's `template.match`: (data if matched, may fall through).
    fn match_template(&self, t: &TemplateSpec, req: &Request, qname: &str, name: &str) -> (Option<Matched>, bool) {
        let Some(zone) = zone_match(&t.zones, name) else { return (None, true) };
        if t.qclass != 255 && req.qclass != 255 && req.qclass != t.qclass {
            return (None, true);
        }
        if t.qtype != 255 && req.qtype != 255 && req.qtype != t.qtype {
            return (None, true);
        }
        for re in &t.regex {
            let Some(caps) = re.captures(name) else { continue };
            let class = class_to_string(if req.qclass != 255 { req.qclass } else { t.qclass });
            let qtype = type_to_string(if req.qtype != 255 { req.qtype } else { t.qtype });
            let matches: Vec<String> =
                caps.iter().map(|c| c.map(|m| m.as_str().to_string()).unwrap_or_default()).collect();
            let mut group = BTreeMap::new();
            for (i, m) in matches.iter().enumerate() {
                group.insert(i.to_string(), Value::str(m.clone()));
            }
            for (i, gname) in re.capture_names().enumerate() {
                if let (Some(n), Some(m)) = (gname, matches.get(i)) {
                    if !n.is_empty() {
                        group.insert(n.to_string(), Value::str(m.clone()));
                    }
                }
            }
            let mut var_map = BTreeMap::new();
            if !t.vars.is_empty() || !t.exprs.is_empty() {
                let mut env = expr_env(req, name, &group);
                for (n, prog) in &t.vars {
                    let Ok(v) = prog.run(&env) else { return (None, false) };
                    var_map.insert(n.clone(), val_to_value(&v));
                    env.vars.insert(n.clone(), v);
                }
                for prog in &t.exprs {
                    match prog.run(&env) {
                        Ok(Val::Bool(true)) => {}
                        Ok(_) => return (None, t.fall.through(name)),
                        Err(_) => return (None, false),
                    }
                }
            }
            let (message, question) =
                if self.needs_message { message_values(req, qname) } else { (Value::Nil, Value::Nil) };
            let meta: BTreeMap<String, String> = req.metadata.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
            let data = Value::Struct(Box::new(Struct {
                type_name: "*template.templateData".into(),
                fields: vec![
                    ("Zone".into(), Value::str(zone)),
                    ("Name".into(), Value::str(name)),
                    ("Regex".into(), Value::str(re.as_str())),
                    ("Match".into(), Value::List(matches.into_iter().map(Value::Str).collect())),
                    ("Group".into(), Value::Map(group, Box::new(Value::str("")))),
                    ("Class".into(), Value::str(class.clone())),
                    ("Type".into(), Value::str(qtype.clone())),
                    ("Message".into(), message),
                    ("Question".into(), question),
                    ("Remote".into(), Value::str(req.client.ip().to_string())),
                    ("Var".into(), Value::Map(var_map, Box::new(Value::Nil))),
                ],
                stringer: None,
                methods: vec![("Meta".into(), meta)],
            }));
            return (Some(Matched { zone: zone.to_string(), class, qtype, data }), false);
        }
        (None, t.fall.through(name))
    }
}

/// The expression environment for `req` with the regex `groups`.
fn expr_env(req: &Request, name: &str, groups: &BTreeMap<String, Value>) -> Env {
    Env {
        qtype: type_to_string(req.qtype),
        name: name.to_string(),
        class: class_to_string(req.qclass),
        proto: req.proto.as_str().to_string(),
        size: req.wire.len() as i64,
        client_ip: req.client.ip().to_string(),
        port: req.client.port().to_string(),
        id: req.id() as i64,
        opcode: crate::server::wire::opcode(&req.wire) as i64,
        dnssec_ok: req.dnssec_ok(),
        bufsize: req.client_size() as i64,
        server_ip: req.local.ip().to_string(),
        server_port: req.local.port().to_string(),
        groups: groups.iter().map(|(k, v)| (k.clone(), v.to_text())).collect(),
        metadata: req.metadata.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
        vars: BTreeMap::new(),
    }
}

fn val_to_value(v: &Val) -> Value {
    match v {
        Val::Nil => Value::Nil,
        Val::Bool(b) => Value::Bool(*b),
        Val::Int(i) => Value::Int(*i),
        Val::Float(f) => Value::Float(*f),
        Val::Str(s) => Value::Str(s.clone()),
        Val::List(l) => Value::List(l.iter().map(val_to_value).collect()),
    }
}

/// `.Message` and `.Question` as template values.
fn message_values(req: &Request, qname: &str) -> (Value, Value) {
    let question = Value::Struct(Box::new(Struct {
        type_name: "*dns.Question".into(),
        fields: vec![
            ("Name".into(), Value::str(qname)),
            ("Qtype".into(), Value::Uint(req.qtype as u64)),
            ("Qclass".into(), Value::Uint(req.qclass as u64)),
        ],
        stringer: Some(format!(";{}\t{}\t {}", qname, class_to_string(req.qclass), type_to_string(req.qtype))),
        methods: Vec::new(),
    }));
    let Ok(msg) = req.message() else { return (Value::Nil, question) };
    let h = &msg.metadata;
    let rrs = |v: &[Record]| Value::List(v.iter().map(|r| Value::str(r.to_string())).collect());
    let mut q_struct = question.clone();
    if let Value::Struct(s) = &mut q_struct {
        s.type_name = "dns.Question".into();
    }
    let message = Value::Struct(Box::new(Struct {
        type_name: "*dns.Msg".into(),
        fields: vec![
            ("Id".into(), Value::Uint(h.id as u64)),
            ("Response".into(), Value::Bool(false)),
            ("Opcode".into(), Value::Int(u8::from(h.op_code) as i64)),
            ("Authoritative".into(), Value::Bool(h.authoritative)),
            ("Truncated".into(), Value::Bool(h.truncation)),
            ("RecursionDesired".into(), Value::Bool(h.recursion_desired)),
            ("RecursionAvailable".into(), Value::Bool(h.recursion_available)),
            ("Zero".into(), Value::Bool(false)),
            ("AuthenticatedData".into(), Value::Bool(h.authentic_data)),
            ("CheckingDisabled".into(), Value::Bool(h.checking_disabled)),
            ("Rcode".into(), Value::Int(u16::from(h.response_code) as i64)),
            ("Compress".into(), Value::Bool(false)),
            ("Question".into(), Value::List(vec![q_struct])),
            ("Answer".into(), rrs(&msg.answers)),
            ("Ns".into(), rrs(&msg.authorities)),
            ("Extra".into(), rrs(&msg.additionals)),
        ],
        stringer: Some(msg.to_string()),
        methods: Vec::new(),
    }));
    (message, question)
}

fn execute_rr(g: &GoTemplate, section: &str, data: &Value, base: &Labels) -> Result<Record, String> {
    let labels = || {
        let mut l = base.clone();
        l.push(("section".into(), section.to_string()));
        l.push(("template".into(), g.source().to_string()));
        l
    };
    let text = g.execute(data).inspect_err(|_| {
        TEMPLATE_FAILURES.get_or_create(&labels()).inc();
    })?;
    parse_rr(&text).inspect_err(|_| {
        RR_FAILURES.get_or_create(&labels()).inc();
    })
}

/// Asks this server (at `addr`, over UDP, 2s) for `name` with the query's type, EDNS size and
/// DO bit.
async fn lookup(addr: std::net::SocketAddr, name: &Name, req: &Request) -> Result<Message, String> {
    lookup_name(addr, name, req.qtype, req.client_size().min(65535) as u16, req.dnssec_ok()).await
}

/// Sends one query for `name`/`qtype` (EDNS `size`, `dnssec_ok`) to `addr` over UDP and waits up
/// to 2s for the reply (CoreDNS's `upstream.Lookup`, done through this server's listener).
pub async fn lookup_name(
    addr: std::net::SocketAddr,
    name: &Name,
    qtype: u16,
    size: u16,
    dnssec_ok: bool,
) -> Result<Message, String> {
    use hickory_proto::op::{MessageType, OpCode, Query};
    let mut q = Message::new(rand::random::<u16>(), MessageType::Query, OpCode::Query);
    q.metadata.recursion_desired = true;
    q.add_query(Query::query(name.clone(), hickory_proto::rr::RecordType::from(qtype)));
    let mut edns = Edns::new();
    edns.set_max_payload(size.max(512));
    edns.set_dnssec_ok(dnssec_ok);
    q.edns = Some(edns);
    let wire = q.to_vec().map_err(|e| e.to_string())?;
    let reply = crate::server::client::udp_exchange(addr, &wire, std::time::Duration::from_secs(2)).await?;
    Message::from_vec(&reply).map_err(|e| e.to_string())
}

/// Parses one resource record in zone-file syntax the way miekg's `dns.NewRR` does: origin
/// `.`, default TTL 3600, class IN when omitted; names may hold any octets, TXT strings decode
/// zone-file escapes and are split into 255-octet strings.
pub fn parse_rr(text: &str) -> Result<Record, String> {
    if text.trim().is_empty() {
        return Err("dns: empty RR".into());
    }
    match rrtext::parse(text) {
        Some(Ok(rrtext::Parsed::Done(rec))) => Ok(rec),
        Some(Ok(rrtext::Parsed::Other { owner, ttl, class, rtype, rdata })) => {
            let mut rec = parse_with_hickory(&format!("x. {ttl} {class} {rtype} {rdata}"))?;
            rec.name = owner;
            Ok(rec)
        }
        Some(Err(e)) => Err(e),
        None => parse_with_hickory(text),
    }
}

/// hickory's zone parser for one record, with the owner's case kept as written.
fn parse_with_hickory(text: &str) -> Result<Record, String> {
    let input = format!("$TTL 3600\n{}\n", text.trim_end());
    let (_, sets) = Parser::new(input, None, Some(Name::root())).parse().map_err(|e| format!("dns: {e}"))?;
    let mut records = sets.values().flat_map(|s| s.records_without_rrsigs().cloned());
    let mut first = records.next().ok_or_else(|| "dns: no RR found".to_string())?;
    // The zone parser folds names to lower case; miekg keeps the owner as written.
    if let Some(owner) = text.split_whitespace().next().filter(|_| !text.starts_with(char::is_whitespace)) {
        if let Ok(mut n) = Name::from_ascii(owner) {
            n.set_fqdn(true);
            if n.to_ascii().eq_ignore_ascii_case(&first.name.to_ascii()) {
                first.name = n;
            }
        }
    }
    Ok(first)
}

impl Plugin for TemplateHandler {
    fn name(&self) -> &'static str {
        "template"
    }

    fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            match self.handle(req) {
                Some(mut outcome) => {
                    if let Some(Reply::Message(m)) = outcome.reply.as_mut() {
                        self.resolve_cnames(req, m).await;
                    }
                    outcome
                }
                None => next.serve(req).await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn rr_text_parsing() {
        let r = parse_rr("Foo.example. 60 IN A 10.1.2.3").unwrap();
        assert_eq!(r.to_string(), "Foo.example. 60 IN A 10.1.2.3");
        let r = parse_rr("example. IN MX 10 mail").unwrap();
        assert_eq!(r.to_string(), "example. 3600 IN MX 10 mail.");
        assert!(parse_rr("example. 60 IN A 300.1.1.1").is_err());
        for (text, want) in [
            ("a.example. 60 IN TXT \"hello world\" \"x\"", "a.example. 60 IN TXT hello worldx"),
            ("a.example. 60 IN AAAA 2001:db8::1", "a.example. 60 IN AAAA 2001:db8::1"),
            ("a.example. 60 IN CNAME target", "a.example. 60 IN CNAME target."),
            ("_s._tcp.example. 60 IN SRV 0 5 80 web.example.", "_s._tcp.example. 60 IN SRV 0 5 80 web.example."),
            ("4.3.2.1.in-addr.arpa. 60 IN PTR host.example.", "4.3.2.1.in-addr.arpa. 60 IN PTR host.example."),
            ("example. 60 IN NS ns1.example.", "example. 60 IN NS ns1.example."),
            ("example. 60 IN SOA ns. host. 1 2 3 4 5", "example. 60 IN SOA ns. host. 1 2 3 4 5"),
            ("example. 60 CH TXT x", "example. 60 CH TXT x"),
        ] {
            assert_eq!(parse_rr(text).map(|r| r.to_string()), Ok(want.to_string()), "{text}");
        }
        assert!(parse_rr("").is_err());
    }
}
