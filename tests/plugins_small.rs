//! The small plugins: any, minimal, loadbalance, bufsize, cancel, timeouts, debug.

#[path = "plugins_support.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, MX, NS, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use nodecache::plugin::{Next, Plugin};
use nodecache::server::{Outcome, Proto, Request};
use pretty_assertions::assert_eq;
use support::*;

fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("name")
}

fn a(owner: &str, ip: &str) -> Record {
    Record::from_rdata(name(owner), 60, RData::A(A(ip.parse().expect("ip"))))
}

fn response(qname: &str, qtype: RecordType) -> Message {
    let q = query(qname, qtype);
    let mut m = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
    m.queries = q.queries;
    m
}

fn soa(owner: &str) -> Record {
    Record::from_rdata(
        name(owner),
        60,
        RData::SOA(SOA::new(name("ns.example."), name("h.example."), 1, 60, 60, 60, 60)),
    )
}

// ---------------------------------------------------------------- any

#[tokio::test]
async fn any_answers_hinfo_for_any_only() {
    use nodecache::plugin::any::setup::parse;
    let cfg = setup(parse, "any", &["."]).expect("setup");
    let term = Arc::new(Terminal::default());
    let c = chain(vec![build(cfg.as_ref())], Some(term.clone()));
    let mut req = request("Example.org.", RecordType::ANY);
    let m = reply(&run(&c, &mut req).await);
    assert_eq!(m.answers.len(), 1);
    assert_eq!((m.answers[0].name.to_ascii(), m.answers[0].ttl), ("Example.org.".to_string(), 8482));
    match &m.answers[0].data {
        RData::HINFO(h) => assert_eq!((&*h.cpu, &*h.os), (&b"ANY obsoleted"[..], &b"See RFC 8482"[..])),
        other => panic!("not HINFO: {other:?}"),
    }
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let mut req = request("example.org.", RecordType::A);
    run(&c, &mut req).await;
    assert_eq!(term.calls(), 1);

    assert!(setup_err(parse, "any x", &["."]).contains("Wrong argument count"));
    assert_eq!(
        setup_err(parse, "any {\n foo\n}", &["."]),
        "plugin/any: Corefile:1 - Error during parsing: Unexpected token '{', expecting argument"
    );
}

// ---------------------------------------------------------------- minimal

#[tokio::test]
async fn minimal_strips_only_positive_answers() {
    use nodecache::plugin::minimal::setup::parse;
    let cfg = setup(parse, "minimal", &["."]).expect("setup");
    assert!(setup_err(parse, "minimal x", &["."]).contains("Wrong argument count"));
    let h = build(cfg.as_ref());

    let term = Arc::new(Terminal::default());
    let mut pos = response("example.org.", RecordType::A);
    pos.answers.push(a("example.org.", "192.0.2.1"));
    pos.authorities.push(Record::from_rdata(name("example.org."), 60, RData::NS(NS(name("ns.example.org.")))));
    pos.additionals.push(a("ns.example.org.", "192.0.2.53"));
    *term.answer.lock() = Some(pos);
    let c = chain(vec![h.clone()], Some(term.clone()));
    let mut req = request("example.org.", RecordType::A);
    let m = reply(&run(&c, &mut req).await);
    assert_eq!(texts(&m.answers), vec!["example.org. 60 IN A 192.0.2.1"]);
    assert!(m.authorities.is_empty() && m.additionals.is_empty());

    // NXDOMAIN with SOA is left alone.
    let mut neg = response("nope.example.org.", RecordType::A);
    neg.metadata.response_code = ResponseCode::NXDomain;
    neg.authorities.push(soa("example.org."));
    *term.answer.lock() = Some(neg);
    let mut req = request("nope.example.org.", RecordType::A);
    let m = reply(&run(&c, &mut req).await);
    assert_eq!(m.authorities.len(), 1);

    // A delegation is left alone.
    let mut deleg = response("sub.example.org.", RecordType::A);
    deleg.authorities.push(Record::from_rdata(
        name("sub.example.org."),
        60,
        RData::NS(NS(name("ns.sub.example.org."))),
    ));
    deleg.additionals.push(a("ns.sub.example.org.", "192.0.2.9"));
    *term.answer.lock() = Some(deleg);
    let mut req = request("sub.example.org.", RecordType::A);
    let m = reply(&run(&c, &mut req).await);
    assert_eq!((m.authorities.len(), m.additionals.len()), (1, 1));
}

// ---------------------------------------------------------------- loadbalance

#[tokio::test]
async fn loadbalance_shuffles_and_prefers() {
    use nodecache::plugin::loadbalance::handler::round_robin;
    use nodecache::plugin::loadbalance::setup::{parse, Config, Policy};

    let records: Vec<Record> = (1..=5).map(|i| a("x.example.", &format!("10.0.0.{i}"))).collect();
    let mut orders = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let out = round_robin(records.clone());
        let mut sorted = texts(&out);
        orders.insert(sorted.clone());
        sorted.sort();
        assert_eq!(sorted, texts(&records));
    }
    assert!(orders.len() > 1, "shuffling must change the order sometimes");

    // Mixed lists: CNAME first, other types, addresses, MX last.
    let cname =
        Record::from_rdata(name("x.example."), 60, RData::CNAME(hickory_proto::rr::rdata::CNAME(name("y.example."))));
    let mx = Record::from_rdata(name("x.example."), 60, RData::MX(MX::new(10, name("mail.example."))));
    let out = round_robin(vec![mx.clone(), a("y.example.", "10.0.0.1"), cname.clone()]);
    assert_eq!(texts(&out), texts(&[cname, a("y.example.", "10.0.0.1"), mx]));

    let cfg = setup(parse, "loadbalance round_robin {\n prefer 10.9.0.0/16\n}", &["."]).expect("setup");
    let lb = cfg.as_any().downcast_ref::<Config>().expect("config");
    assert_eq!(lb.policy, Policy::RoundRobin);
    let term = Arc::new(Terminal::default());
    let mut m = response("x.example.", RecordType::A);
    m.answers = vec![a("x.example.", "10.0.0.1"), a("x.example.", "10.9.1.1"), a("x.example.", "10.0.0.2")];
    *term.answer.lock() = Some(m);
    let c = chain(vec![build(cfg.as_ref())], Some(term));
    for _ in 0..20 {
        let mut req = request("x.example.", RecordType::A);
        let r = reply(&run(&c, &mut req).await);
        assert_eq!(r.answers.len(), 3);
        assert_eq!(r.answers[0].to_string(), "x.example. 60 IN A 10.9.1.1");
    }

    assert!(setup(parse, "loadbalance", &["."]).is_ok());
    assert!(setup(parse, "loadbalance weighted /tmp/w {\n reload 10s\n}", &["."]).is_ok());
    assert_eq!(
        setup_err(parse, "loadbalance round_robin x", &["."]),
        "plugin/loadbalance: Corefile:1 - Error during parsing: unknown property for round_robin"
    );
    assert_eq!(setup_err(parse, "loadbalance foo", &["."]), "plugin/loadbalance: unknown policy: foo");
    assert!(setup_err(parse, "loadbalance weighted", &["."]).ends_with("missing weight file argument"));
    assert!(setup_err(parse, "loadbalance {\n prefer 10.0.0.0/33\n}", &["."]).contains("invalid CIDR"));
    assert!(setup_err(parse, "loadbalance {\n other\n}", &["."]).ends_with("unknown property 'other'"));
}

// ---------------------------------------------------------------- bufsize

#[tokio::test]
async fn bufsize_caps_the_query_size() {
    use nodecache::plugin::bufsize::setup::{parse, Config};
    let cfg = setup(parse, "bufsize 1000", &["."]).expect("setup");
    assert_eq!(cfg.as_any().downcast_ref::<Config>().expect("config").size, 1000);
    let def = setup(parse, "bufsize", &["."]).expect("setup");
    assert_eq!(def.as_any().downcast_ref::<Config>().expect("config").size, 1232);
    assert_eq!(
        setup_err(parse, "bufsize 100", &["."]),
        "plugin/bufsize: plugin/bufsize: Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after '100'"
    );
    assert!(setup_err(parse, "bufsize 5000", &["."]).contains("Wrong argument count"));
    assert!(setup_err(parse, "bufsize a b", &["."]).contains("Wrong argument count"));

    let term = Arc::new(Terminal::default());
    let c = chain(vec![build(cfg.as_ref())], Some(term.clone()));
    let mut q = query("example.org.", RecordType::A);
    let mut e = Edns::new();
    e.set_max_payload(4096);
    q.edns = Some(e);
    let mut req = request_from(&q, "127.0.0.1:1", Proto::Udp);
    run(&c, &mut req).await;
    let mut small = query("example.org.", RecordType::A);
    let mut e = Edns::new();
    e.set_max_payload(600);
    small.edns = Some(e);
    let mut req2 = request_from(&small, "127.0.0.1:1", Proto::Udp);
    run(&c, &mut req2).await;
    let mut plain = request("example.org.", RecordType::A);
    run(&c, &mut plain).await;

    let seen = term.seen.lock();
    assert_eq!(seen[0].edns.as_ref().map(|e| e.udp_size), Some(1000));
    assert_eq!(seen[0].message().expect("parse").edns.map(|e| e.max_payload()), Some(1000));
    assert_eq!(seen[1].edns.as_ref().map(|e| e.udp_size), Some(600));
    assert_eq!(seen[2].edns, None);
}

// ---------------------------------------------------------------- cancel

struct Slow;

impl Plugin for Slow {
    fn name(&self) -> &'static str {
        "slow"
    }
    fn serve<'a>(&'a self, _req: &'a mut Request, _next: Next<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Outcome::unwritten(ResponseCode::NoError, None)
        })
    }
}

#[tokio::test]
async fn cancel_bounds_the_chain() {
    use nodecache::plugin::cancel::setup::{parse, Config};
    let cfg = setup(parse, "cancel 2s", &["."]).expect("setup");
    assert_eq!(cfg.as_any().downcast_ref::<Config>().expect("config").timeout, Duration::from_secs(2));
    let def = setup(parse, "cancel", &["."]).expect("setup");
    assert_eq!(def.as_any().downcast_ref::<Config>().expect("config").timeout, Duration::from_millis(5001));
    assert_eq!(setup_err(parse, "cancel abc", &["."]), "plugin/cancel: invalid duration: \"abc\"");
    assert_eq!(setup_err(parse, "cancel -1s", &["."]), "plugin/cancel: invalid negative duration: \"-1s\"");
    assert!(setup_err(parse, "cancel 1s 2s", &["."]).contains("Wrong argument count"));

    let short = setup(parse, "cancel 20ms", &["."]).expect("setup");
    let c = chain(vec![build(short.as_ref()), Arc::new(Slow)], None);
    let mut req = request("example.org.", RecordType::A);
    let out = run(&c, &mut req).await;
    assert!(is_unwritten_servfail(&out));

    let term = Arc::new(Terminal::default());
    let c = chain(vec![build(cfg.as_ref())], Some(term.clone()));
    let mut req = request("example.org.", RecordType::A);
    assert_eq!(run(&c, &mut req).await.plugin, "terminal");
}

// ---------------------------------------------------------------- timeouts

#[test]
fn timeouts_setup() {
    use nodecache::plugin::timeouts::setup::{parse, Config};
    let cfg = setup(parse, "timeouts {\n read 30s\n write 20\n idle 1m\n maxtcpqueries 10\n}", &["."]).expect("setup");
    let t = cfg.as_any().downcast_ref::<Config>().expect("config");
    assert_eq!(t.read(), Some(Duration::from_secs(30)));
    assert_eq!(t.write(), Some(Duration::from_secs(20)));
    assert_eq!(t.idle(), Some(Duration::from_secs(60)));
    assert_eq!(t.max_tcp_queries(), Some(10));

    let e = |s: &str| setup_err(parse, s, &["."]);
    assert_eq!(
        e("timeouts {\n read 500ms\n}"),
        "plugin/timeouts: Corefile:2 - Error during parsing: timeout provided '500ms' needs to be between 1 second and 24 hours"
    );
    assert!(
        e("timeouts {\n read 25h\n}").contains("timeout provided '25h0m0s' needs to be between 1 second and 24 hours")
    );
    assert!(e("timeouts {\n read abc\n}").ends_with("failed to parse duration 'abc'"));
    assert!(e("timeouts {\n foo 5s\n}").ends_with("unknown option: 'foo'"));
    assert!(e("timeouts {\n read\n}").contains("Wrong argument count"));
    assert!(e("timeouts {\n maxtcpqueries 0\n}")
        .ends_with("maxtcpqueries provided '0' needs to be -1 (unlimited) or a positive integer"));
    assert!(e("timeouts {\n maxtcpqueries x\n}").contains("invalid value for maxtcpqueries 'x'"));
    assert!(e("timeouts").starts_with("plugin/timeouts: plugin/timeouts: "));
    assert!(e("timeouts").ends_with("timeouts block with no timeouts specified"));
    assert!(e("timeouts 5s {\n read 5s\n}").starts_with("plugin/timeouts: plugin/timeouts: "));
    assert!(setup(parse, "timeouts {\n maxtcpqueries -1\n}", &["."]).is_ok());
}

// ---------------------------------------------------------------- debug

#[test]
fn debug_sets_the_process_flag() {
    use nodecache::plugin::debug::setup::parse;
    assert!(setup_err(parse, "debug x", &["."]).contains("Wrong argument count"));
    let cfg = setup(parse, "debug", &["."]).expect("setup");
    assert!(cfg.build(&build_ctx(&["."], &["dns://:53"])).expect("build").is_none());
    assert!(nodecache::plugin::debug::enabled());
}

#[tokio::test]
async fn loadbalance_weighted_prefers_heavy_addresses() {
    use nodecache::plugin::loadbalance::setup::parse;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("weights");
    std::fs::write(&path, "x.example.\n10.0.0.1 1\n10.0.0.2 255\n").expect("write");
    let cfg =
        setup(parse, &format!("loadbalance weighted {} {{\n reload 0\n}}", path.display()), &["."]).expect("setup");
    let term = Arc::new(Terminal::default());
    let mut m = response("x.example.", RecordType::A);
    m.answers = vec![a("x.example.", "10.0.0.1"), a("x.example.", "10.0.0.2")];
    *term.answer.lock() = Some(m);
    let c = chain(vec![build(cfg.as_ref())], Some(term));
    let mut heavy_first = 0;
    for _ in 0..200 {
        let mut req = request("x.example.", RecordType::A);
        let r = reply(&run(&c, &mut req).await);
        assert_eq!(r.answers.len(), 2);
        if r.answers[0].to_string() == "x.example. 60 IN A 10.0.0.2" {
            heavy_first += 1;
        }
    }
    // Expected about 199 of 200; anything near an even split means the weights were ignored.
    assert!(heavy_first > 150, "{heavy_first}");

    // Without reload, a missing weight file fails the build.
    let missing = setup(parse, "loadbalance weighted /nonexistent/weights {\n reload 0\n}", &["."]).expect("setup");
    assert!(missing.build(&build_ctx(&["."], &["dns://:53"])).is_err());
}
