//! Shared helpers for the plugins-area tests (included with `#[path]` by `plugins_*.rs`).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::BoxFuture;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use nodecache::corefile::token::Token;
use nodecache::corefile::{CorefileError, Dispenser};
use nodecache::plugin::{BuildContext, Carryover, Chain, Next, Plugin, PluginConfig, SetupContext};
use nodecache::server::{ClientEdns, Outcome, Proto, Reply, Request};

/// Tokenises Corefile-like text the way CoreDNS's lexer does for the cases tests need: a `"`
/// opens a quoted token only at the start of a token, `#` starts a comment anywhere.
pub fn tokens(text: &str) -> Vec<Token> {
    let file: Arc<str> = Arc::from("Corefile");
    let mut out = Vec::new();
    let mut cur: Option<(u32, u32, String)> = None;
    let (mut quoted, mut escaped, mut comment) = (false, false, false);
    let (mut line, mut col) = (1u32, 0u32);
    for ch in text.chars() {
        col += 1;
        if quoted {
            let t = &mut cur.as_mut().expect("open token").2;
            if !escaped && ch == '\\' {
                escaped = true;
                continue;
            }
            if !escaped && ch == '"' {
                quoted = false;
                if let Some((l, c, t)) = cur.take() {
                    out.push(Token::new(t, file.clone(), l, c));
                }
                continue;
            }
            if escaped && ch != '"' {
                t.push('\\');
            }
            escaped = false;
            if ch == '\n' {
                line += 1;
                col = 0;
            }
            t.push(ch);
            continue;
        }
        if ch.is_whitespace() {
            if let Some((l, c, t)) = cur.take() {
                out.push(Token::new(t, file.clone(), l, c));
            }
            if ch == '\n' {
                line += 1;
                col = 0;
                comment = false;
            }
            continue;
        }
        if ch == '#' {
            comment = true;
        }
        if comment {
            continue;
        }
        match &mut cur {
            Some((_, _, t)) => t.push(ch),
            None if ch == '"' => {
                quoted = true;
                cur = Some((line, col, String::new()));
            }
            None => cur = Some((line, col, ch.to_string())),
        }
    }
    if let Some((l, c, t)) = cur.take() {
        out.push(Token::new(t, file.clone(), l, c));
    }
    out
}

/// A setup function's signature.
pub type Setup = fn(&mut Dispenser, &SetupContext) -> Result<Box<dyn PluginConfig>, CorefileError>;

/// Runs a setup function over `text` for a block with `zones`.
pub fn setup(f: Setup, text: &str, zones: &[&str]) -> Result<Box<dyn PluginConfig>, CorefileError> {
    let mut d = Dispenser::new(tokens(text), Arc::from("Corefile"));
    let ctx = SetupContext { zones: zones.iter().map(|z| z.to_string()).collect(), ports: vec![53; zones.len()] };
    f(&mut d, &ctx)
}

/// The CoreDNS-style message of a setup error.
pub fn setup_err(f: Setup, text: &str, zones: &[&str]) -> String {
    match setup(f, text, zones) {
        Ok(c) => panic!("expected an error for {text:?}, got {c:?}"),
        Err(e) => e.coredns_message(),
    }
}

/// A build context for tests.
pub fn build_ctx(zones: &[&str], servers: &[&str]) -> BuildContext {
    BuildContext {
        zones: zones.iter().map(|z| z.to_string()).collect(),
        servers: servers.iter().map(|s| s.to_string()).collect(),
        metrics: Arc::new(Default::default()),
        carry: Arc::new(Carryover::default()),
        after: String::new(),
    }
}

/// Builds the handler of a parsed configuration (panics if it has none).
pub fn build(cfg: &dyn PluginConfig) -> Arc<dyn Plugin> {
    cfg.build(&build_ctx(&["."], &["dns://:53"])).expect("build").expect("a handler")
}

/// A query message.
pub fn query(qname: &str, qtype: RecordType) -> Message {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    let mut q = Query::query(Name::from_ascii(qname).expect("name"), qtype);
    q.set_query_class(DNSClass::IN);
    m.add_query(q);
    m
}

/// A request as the server would build it for `msg` from `client` over `proto`.
pub fn request_from(msg: &Message, client: &str, proto: Proto) -> Request {
    let wire = msg.to_vec().expect("encode");
    let q = &msg.queries[0];
    let qname = q.name().to_ascii();
    let edns = msg.edns.as_ref().map(|e| ClientEdns {
        udp_size: e.max_payload(),
        dnssec_ok: e.flags().dnssec_ok,
        version: e.version(),
        options: Vec::new(),
    });
    Request {
        received_len: wire.len(),
        wire,
        qname_lower: qname.to_ascii_lowercase(),
        qname,
        qtype: u16::from(q.query_type()),
        qclass: u16::from(q.query_class()),
        edns,
        client: SocketAddr::from_str(client).expect("client addr"),
        local: SocketAddr::from_str("127.0.0.1:53").expect("local addr"),
        proto,
        server: Arc::from("dns://:53"),
        zone: Arc::from("."),
        started: Instant::now(),
        metadata: Vec::new(),
    }
}

/// A UDP request from 127.0.0.1:40000.
pub fn request(qname: &str, qtype: RecordType) -> Request {
    request_from(&query(qname, qtype), "127.0.0.1:40000", Proto::Udp)
}

/// A terminal plugin: answers NOERROR with `A 192.0.2.1` for the question name and counts calls.
#[derive(Default)]
pub struct Terminal {
    calls: AtomicUsize,
    /// Requests as they reached the terminal.
    pub seen: parking_lot::Mutex<Vec<Request>>,
    /// When set, the reply this terminal writes instead of the default.
    pub answer: parking_lot::Mutex<Option<Message>>,
}

impl Plugin for Terminal {
    fn name(&self) -> &'static str {
        "terminal"
    }
    fn serve<'a>(&'a self, req: &'a mut Request, _next: Next<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.seen.lock().push(req.clone());
            let q = req.message().expect("query parses");
            if let Some(mut m) = self.answer.lock().clone() {
                m.metadata.id = q.metadata.id;
                return Outcome::written("terminal", Reply::Message(Box::new(m)));
            }
            let mut m = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
            m.queries = q.queries.clone();
            let name = q.queries[0].name().clone();
            m.add_answer(Record::from_rdata(name, 30, RData::A("192.0.2.1".parse().expect("ip"))));
            Outcome::written("terminal", Reply::Message(Box::new(m)))
        })
    }
}

impl Terminal {
    /// How often the terminal was reached.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// A chain of `plugins` followed by `terminal` (when given).
pub fn chain(plugins: Vec<Arc<dyn Plugin>>, terminal: Option<Arc<Terminal>>) -> Chain {
    let mut v = plugins;
    if let Some(t) = terminal {
        v.push(t);
    }
    Arc::from(v)
}

/// Runs `req` through `chain`.
pub async fn run(chain: &Chain, req: &mut Request) -> Outcome {
    Next::start(chain).serve(req).await
}

/// The outcome's reply as a message.
pub fn reply(o: &Outcome) -> Message {
    o.reply.as_ref().expect("a written reply").to_message().expect("reply parses")
}

/// Records of a section in presentation form.
pub fn texts(rrs: &[Record]) -> Vec<String> {
    rrs.iter().map(|r| r.to_string()).collect()
}

/// True for an unwritten SERVFAIL.
pub fn is_unwritten_servfail(o: &Outcome) -> bool {
    o.reply.is_none() && o.rcode == ResponseCode::ServFail
}
