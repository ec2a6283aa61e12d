//! `rewrite`: setup errors, question rewriting, response reversal.

#[path = "plugins_support.rs"]
mod support;

use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use nodecache::plugin::rewrite::setup::parse;
use pretty_assertions::assert_eq;
use support::*;

fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("name")
}

fn rewrite_chain(text: &str, term: Arc<Terminal>) -> nodecache::plugin::Chain {
    let cfg = setup(parse, text, &["."]).expect("setup");
    chain(vec![build(cfg.as_ref())], Some(term))
}

#[tokio::test]
async fn exact_name_rewrite_is_reverted_in_the_answer() {
    let term = Arc::new(Terminal::default());
    let c = rewrite_chain("rewrite name exact Foo.example.org bar.example.net", term.clone());
    let mut req = request("foo.EXAMPLE.org.", RecordType::A);
    let m = reply(&run(&c, &mut req).await);
    let seen = term.seen.lock()[0].clone();
    assert_eq!(seen.qname, "bar.example.net.");
    assert_eq!(seen.message().expect("parse").queries[0].name().to_ascii(), "bar.example.net.");
    // The question is restored as sent; the answer owner maps back to the original (lower case).
    assert_eq!(m.queries[0].name().to_ascii(), "foo.EXAMPLE.org.");
    assert_eq!(texts(&m.answers), vec!["foo.example.org. 30 IN A 192.0.2.1"]);
}

#[tokio::test]
async fn suffix_with_answer_auto_rewrites_values() {
    let term = Arc::new(Terminal::default());
    let mut resp = Message::new(0, MessageType::Response, OpCode::Query);
    resp.queries = query("www.internal.", RecordType::A).queries;
    resp.answers.push(Record::from_rdata(name("www.internal."), 300, RData::CNAME(CNAME(name("lb.internal.")))));
    resp.answers.push(Record::from_rdata(name("lb.internal."), 300, RData::A(A("10.0.0.1".parse().expect("ip")))));
    *term.answer.lock() = Some(resp);
    let c = rewrite_chain("rewrite name suffix .example.org .internal answer auto", term.clone());
    let mut req = request("www.example.org.", RecordType::A);
    let m = reply(&run(&c, &mut req).await);
    assert_eq!(term.seen.lock()[0].qname, "www.internal.");
    assert_eq!(
        texts(&m.answers),
        vec!["www.example.org. 300 IN CNAME lb.example.org.", "lb.example.org. 300 IN A 10.0.0.1"]
    );
}

#[tokio::test]
async fn regex_type_ttl_and_continue() {
    let term = Arc::new(Terminal::default());
    let text = "rewrite continue name regex (.*)\\.old\\.org {1}.new.org\nrewrite continue type AAAA A\nrewrite ttl new.org 5-10";
    let c = rewrite_chain(text, term.clone());
    let mut req = request("host.old.org.", RecordType::AAAA);
    let m = reply(&run(&c, &mut req).await);
    let seen = term.seen.lock()[0].clone();
    assert_eq!((seen.qname.as_str(), seen.qtype), ("host.new.org.", 1));
    // The TTL rule matched the exact name "new.org." only, so it did not apply here.
    assert_eq!(texts(&m.answers), vec!["host.new.org. 30 IN A 192.0.2.1"]);

    let term = Arc::new(Terminal::default());
    let c = rewrite_chain("rewrite ttl suffix example.org 100-200", term.clone());
    let mut req = request("a.example.org.", RecordType::A);
    let m = reply(&run(&c, &mut req).await);
    assert_eq!(texts(&m.answers), vec!["a.example.org. 100 IN A 192.0.2.1"]);
}

#[tokio::test]
async fn rcode_rule_and_stop() {
    let term = Arc::new(Terminal::default());
    let mut resp = Message::new(0, MessageType::Response, OpCode::Query);
    resp.queries = query("gone.example.", RecordType::A).queries;
    resp.metadata.response_code = ResponseCode::NXDomain;
    *term.answer.lock() = Some(resp);
    let c = rewrite_chain(
        "rewrite stop rcode gone.example NXDOMAIN REFUSED\nrewrite name gone.example other.example",
        term.clone(),
    );
    let mut req = request("gone.example.", RecordType::A);
    let m = reply(&run(&c, &mut req).await);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    // `stop` kept the second rule from renaming the query.
    assert_eq!(term.seen.lock()[0].qname, "gone.example.");
}

#[tokio::test]
async fn block_form_and_non_matching_queries() {
    let term = Arc::new(Terminal::default());
    let c = rewrite_chain("rewrite {\n name a.example b.example\n}", term.clone());
    let mut req = request("c.example.", RecordType::A);
    let out = run(&c, &mut req).await;
    assert_eq!(out.plugin, "terminal");
    assert_eq!(term.seen.lock()[0].qname, "c.example.");
}

#[test]
fn setup_errors() {
    let e = |t: &str| setup_err(parse, t, &["."]);
    assert_eq!(e("rewrite"), "plugin/rewrite: no rule type specified for rewrite");
    assert_eq!(e("rewrite foo a b"), "plugin/rewrite: invalid rule type \"foo\"");
    assert_eq!(e("rewrite stop"), "plugin/rewrite: stop rule must begin with a rule type");
    assert_eq!(e("rewrite class IN"), "plugin/rewrite: class rules must have exactly two arguments");
    assert_eq!(
        e("rewrite name wrong a b"),
        "plugin/rewrite: name rule supports only exact, prefix, suffix, substring, and regex name matching, received: wrong"
    );
    assert_eq!(e("rewrite name regex ( x"), "plugin/rewrite: invalid regex matching pattern: (");
    assert_eq!(
        e("rewrite name exact a b answer bogus x y"),
        "plugin/rewrite: invalid type \"bogus\" for answer rule for exact rule"
    );
    assert_eq!(e("rewrite rcode a.org FOO NOERROR"), "plugin/rewrite: invalid matching RCODE 'FOO' for a rcode rule");
    for ok in [
        "rewrite name a.example b.example",
        "rewrite continue name prefix a b",
        "rewrite name substring x y",
        "rewrite type ANY HINFO",
        "rewrite class CH IN",
        "rewrite ttl regex .* 30",
        "rewrite name regex (.*)\\.a\\.org {1}.b.org answer name (.*)\\.b\\.org {1}.a.org answer value (.*)\\.b\\.org {1}.a.org",
    ] {
        assert!(setup(parse, ok, &["."]).is_ok(), "{ok}");
    }
}

#[tokio::test]
async fn cname_target_rule_resolves_the_new_target() {
    use nodecache::plugin::rewrite::handler::Rewrite;
    use nodecache::plugin::rewrite::setup::Config;

    // Stands in for this server's own listener: answers every A query with 192.0.2.88.
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = sock.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 1500];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let Ok(q) = Message::from_vec(&buf[..n]) else { continue };
            let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
            r.queries = q.queries.clone();
            let owner = q.queries[0].name().clone();
            r.answers.push(Record::from_rdata(owner, 30, RData::A(A("192.0.2.88".parse().expect("ip")))));
            let _ = sock.send_to(&r.to_vec().expect("encode"), from).await;
        }
    });

    let term = Arc::new(Terminal::default());
    let mut resp = Message::new(0, MessageType::Response, OpCode::Query);
    resp.queries = query("www.example.org.", RecordType::A).queries;
    resp.answers.push(Record::from_rdata(name("www.example.org."), 300, RData::CNAME(CNAME(name("lb.cdn.net.")))));
    resp.answers.push(Record::from_rdata(name("lb.cdn.net."), 300, RData::A(A("10.0.0.1".parse().expect("ip")))));
    *term.answer.lock() = Some(resp);
    let cfg = setup(parse, "rewrite cname suffix .cdn.net. .other.net.", &["."]).expect("setup");
    let rules = cfg.as_any().downcast_ref::<Config>().expect("config").rules.clone();
    let c = chain(vec![Arc::new(Rewrite { rules, self_addr: Some(addr) })], Some(term));
    let mut req = request("www.example.org.", RecordType::A);
    let m = reply(&run(&c, &mut req).await);
    assert_eq!(
        texts(&m.answers),
        vec!["www.example.org. 300 IN CNAME lb.other.net.", "lb.other.net. 30 IN A 192.0.2.88"]
    );
    assert!(setup_err(parse, "rewrite cname foo a b", &["."]).ends_with("unknown cname rewrite type: foo"));
    assert!(setup_err(parse, "rewrite cname a", &["."]).ends_with("too few (1) arguments for a cname rule"));
}

#[tokio::test]
async fn edns0_rules_change_the_query_opt() {
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    let term = Arc::new(Terminal::default());
    let c = rewrite_chain(
        "rewrite continue edns0 local set 0xffee 0x61626364\nrewrite edns0 subnet set 24 56",
        term.clone(),
    );
    let mut req = request_from(&query("example.org.", RecordType::A), "10.1.2.3:5000", nodecache::server::Proto::Udp);
    run(&c, &mut req).await;
    let seen = term.seen.lock()[0].clone();
    let msg = seen.message().expect("parse");
    let edns = msg.edns.expect("an OPT was added");
    assert_eq!(edns.max_payload(), 4096);
    assert_eq!(seen.edns.as_ref().map(|e| e.udp_size), Some(4096));
    // The raw options kept for the reply match the rewritten OPT: 0xffee (4 bytes of data)
    // first, then the client subnet.
    let raw = seen.edns.as_ref().map(|e| e.options.clone()).unwrap_or_default();
    assert_eq!(&raw[..8], &[0xff, 0xee, 0, 4, b'a', b'b', b'c', b'd']);
    let opts = &edns.options().options;
    assert_eq!(opts.len(), 2);
    assert_eq!(u16::from(opts[0].0), 0xffee);
    match &opts[0].1 {
        EdnsOption::Unknown(_, data) => assert_eq!(data.as_slice(), b"abcd"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(opts[1].0, EdnsCode::Subnet);
    match &opts[1].1 {
        EdnsOption::Subnet(s) => {
            assert_eq!((s.addr().to_string(), s.source_prefix()), ("10.1.2.0".to_string(), 24));
        }
        other => panic!("unexpected {other:?}"),
    }

    let e = |t: &str| setup_err(parse, t, &["."]);
    assert_eq!(e("rewrite edns0 local"), "plugin/rewrite: too few arguments for an EDNS0 rule");
    assert_eq!(e("rewrite edns0 local bogus 1 2"), "plugin/rewrite: invalid action: \"bogus\"");
    assert_eq!(e("rewrite edns0 subnet set 33 56"), "plugin/rewrite: invalid IPv4 bit mask length 33");
    assert_eq!(e("rewrite edns0 local set 0xffee {nope}"), "plugin/rewrite: unsupported variable name \"{nope}\"");
    assert!(setup(parse, "rewrite edns0 local set 0xffee {client_ip} revert", &["."]).is_ok());
    assert!(setup(parse, "rewrite edns0 nsid set", &["."]).is_ok());
    assert!(setup(parse, "rewrite edns0 subnet unset", &["."]).is_ok());
}

fn labels(n: &Name) -> Vec<Vec<u8>> {
    n.iter().map(<[u8]>::to_vec).collect()
}

/// CoreDNS checks a rewritten name only with miekg's `IsDomainName` (label and name lengths):
/// a leading `-` or any other octet is answered, not SERVFAIL.
#[tokio::test]
async fn rewritten_names_may_hold_any_octets() {
    let term = Arc::new(Terminal::default());
    let c = rewrite_chain("rewrite name exact a.example.org. -a.example.org.", term.clone());
    let mut req = request("a.example.org.", RecordType::A);
    let out = run(&c, &mut req).await;
    let m = reply(&out);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let seen = term.seen.lock()[0].message().expect("parse");
    assert_eq!(labels(seen.queries[0].name()), vec![b"-a".to_vec(), b"example".to_vec(), b"org".to_vec()]);
    assert_eq!(texts(&m.answers), vec!["a.example.org. 30 IN A 192.0.2.1"]);

    // Escapes in the rule's text are decoded (`\032` is a space). As in CoreDNS, the answer maps
    // back only when the rule wrote the name as miekg prints it (`a\ b.`, quoted in the Corefile):
    // the reverter compares the rule's text with the record's printed name.
    for (rule, reverted) in [("a\\032b.example.org.", false), ("\"a\\ b.example.org.\"", true)] {
        let term = Arc::new(Terminal::default());
        let c = rewrite_chain(&format!("rewrite name exact a.example.org. {rule}"), term.clone());
        let mut req = request("a.example.org.", RecordType::A);
        let m = reply(&run(&c, &mut req).await);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{rule}");
        let seen = term.seen.lock()[0].message().expect("parse");
        let spaced = vec![b"a b".to_vec(), b"example".to_vec(), b"org".to_vec()];
        assert_eq!(labels(seen.queries[0].name()), spaced, "{rule}");
        assert_eq!(m.queries[0].name().to_ascii(), "a.example.org.");
        let owner = labels(&m.answers[0].name);
        if reverted {
            assert_eq!(owner, labels(&name("a.example.org.")), "{rule}");
        } else {
            assert_eq!(owner, spaced, "{rule}");
        }
    }

    let term = Arc::new(Terminal::default());
    let c = rewrite_chain("rewrite name suffix .example.org. .example.net. answer auto", term.clone());
    for first in [b"a\0b".to_vec(), b"x y;(@".to_vec(), vec![b'z', 0x80], b"-q".to_vec()] {
        let qname = Name::from_labels(vec![first.as_slice(), b"example", b"org"]).expect("name");
        let mut msg = query("x.example.org.", RecordType::A);
        msg.queries[0].set_name(qname.clone());
        let mut req = request_from(&msg, "127.0.0.1:40000", nodecache::server::Proto::Udp);
        let m = reply(&run(&c, &mut req).await);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{first:?}");
        let seen = term.seen.lock().last().cloned().expect("reached the terminal");
        let seen = seen.message().expect("parse");
        assert_eq!(labels(seen.queries[0].name()), vec![first.clone(), b"example".to_vec(), b"net".to_vec()]);
        assert_eq!(labels(m.queries[0].name()), labels(&qname));
        assert_eq!(m.answers.len(), 1);
        assert_eq!(labels(&m.answers[0].name), labels(&qname), "{first:?}");
    }
}

/// Names longer than the wire allows are still refused (SERVFAIL), as `IsDomainName` does.
#[tokio::test]
async fn rewritten_names_over_the_length_limits_fail() {
    let term = Arc::new(Terminal::default());
    let long = "a".repeat(64);
    let c = rewrite_chain(&format!("rewrite name exact a.example.org. {long}.example.org."), term.clone());
    let mut req = request("a.example.org.", RecordType::A);
    let out = run(&c, &mut req).await;
    assert_eq!(out.rcode, ResponseCode::ServFail);
    assert_eq!(term.calls(), 0);
}
