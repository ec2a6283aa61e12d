//! `template` setup and handler behaviour.

#[path = "plugins_support.rs"]
mod support;

use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use nodecache::plugin::template::setup::parse;
use pretty_assertions::assert_eq;
use support::*;

fn handler(text: &str, zones: &[&str]) -> (nodecache::plugin::Chain, Arc<Terminal>) {
    let cfg = setup(parse, text, zones).expect("setup");
    let term = Arc::new(Terminal::default());
    (chain(vec![build(cfg.as_ref())], Some(term.clone())), term)
}

#[tokio::test]
async fn named_groups_build_the_answer() {
    let (c, term) = handler(
        r#"template IN A example {
    match "^ip-10-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$"
    answer "{{ .Name }} 60 IN A 10.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
}"#,
        &["example."],
    );
    let mut req = request("ip-10-95-12-8.example.", RecordType::A);
    let out = run(&c, &mut req).await;
    let m = reply(&out);
    assert_eq!(texts(&m.answers), vec!["ip-10-95-12-8.example. 60 IN A 10.95.12.8"]);
    assert!(m.metadata.authoritative);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.metadata.id, 0x1234);
    assert_eq!(out.plugin, "template");
    assert_eq!(term.calls(), 0);

    // The regex does not match and there is no fallthrough: unwritten SERVFAIL.
    let mut req = request("other.example.", RecordType::A);
    let out = run(&c, &mut req).await;
    assert!(is_unwritten_servfail(&out));
    assert_eq!(term.calls(), 0);

    // Type mismatch and names outside the zone go to the next plugin.
    let mut req = request("ip-10-95-12-8.example.", RecordType::AAAA);
    run(&c, &mut req).await;
    let mut req = request("ip-10-95-12-8.example.org.", RecordType::A);
    run(&c, &mut req).await;
    assert_eq!(term.calls(), 2);
}

#[tokio::test]
async fn index_match_printf_and_case() {
    let (c, _) = handler(
        r#"template IN ANY example. {
    match "^(?P<host>[a-z]+)-(\d+)\.example\.$"
    answer "{{ .Name }} 30 IN TXT \"{{ index .Match 2 }}/{{ index .Group \"host\" }}/{{ .Type }}/{{ .Class }}/{{ printf \"%05d\" (parseInt (index .Match 2) 10 32) }}\""
    additional "{{ .Group.host }}.{{ .Zone }} 30 IN A {{ .Remote }}"
}"#,
        &["."],
    );
    let mut req = request("Web-42.Example.", RecordType::TXT);
    let m = reply(&run(&c, &mut req).await);
    assert_eq!(texts(&m.answers), vec!["web-42.example. 30 IN TXT 42/web/TXT/IN/00042"]);
    assert_eq!(texts(&m.additionals), vec!["web.example. 30 IN A 127.0.0.1"]);
    // The question keeps the client's case.
    assert_eq!(m.queries[0].name().to_ascii(), "Web-42.Example.");
}

#[tokio::test]
async fn rcode_nxdomain_with_authority() {
    let (c, _) = handler(
        r#"template ANY ANY invalid {
    rcode NXDOMAIN
    authority "invalid. 60 {{ .Class }} SOA ns.invalid. hostmaster.invalid. (1 60 60 60 60)"
}"#,
        &["."],
    );
    let mut req = request("foo.invalid.", RecordType::A);
    let out = run(&c, &mut req).await;
    let m = reply(&out);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authoritative);
    assert!(m.answers.is_empty());
    assert_eq!(texts(&m.authorities), vec!["invalid. 60 IN SOA ns.invalid. hostmaster.invalid. 1 60 60 60 60"]);
}

#[tokio::test]
async fn rcode_servfail_and_broken_templates() {
    let (c, _) = handler("template IN A example {\n rcode SERVFAIL\n}", &["."]);
    let mut req = request("a.example.", RecordType::A);
    let out = run(&c, &mut req).await;
    assert!(is_unwritten_servfail(&out));
    assert_eq!(out.error, None);

    let (c, _) = handler("template IN A example {\n answer \"{{ .Nope }} 60 IN A 1.2.3.4\"\n}", &["."]);
    let mut req = request("a.example.", RecordType::A);
    let out = run(&c, &mut req).await;
    assert!(is_unwritten_servfail(&out));
    assert!(out.error.as_deref().unwrap_or("").contains("can't evaluate field Nope"), "{:?}", out.error);

    let (c, _) = handler("template IN A example {\n answer \"{{ .Name }} 60 IN A not-an-ip\"\n}", &["."]);
    let mut req = request("a.example.", RecordType::A);
    let out = run(&c, &mut req).await;
    assert!(is_unwritten_servfail(&out));
    assert!(out.error.is_some());
}

#[tokio::test]
async fn fallthrough_and_template_order() {
    let (c, term) = handler(
        r#"template IN A example {
    match ^a\.
    answer "{{ .Name }} 5 IN A 10.0.0.1"
    fallthrough
}
template IN A example {
    match ^b\.
    answer "{{ .Name }} 5 IN A 10.0.0.2"
    fallthrough other.
}"#,
        &["example."],
    );
    let mut req = request("a.example.", RecordType::A);
    assert_eq!(texts(&reply(&run(&c, &mut req).await).answers), vec!["a.example. 5 IN A 10.0.0.1"]);
    let mut req = request("b.example.", RecordType::A);
    assert_eq!(texts(&reply(&run(&c, &mut req).await).answers), vec!["b.example. 5 IN A 10.0.0.2"]);
    // c.example. matches neither: the first falls through, the second does not cover it.
    let mut req = request("c.example.", RecordType::A);
    assert!(is_unwritten_servfail(&run(&c, &mut req).await));
    assert_eq!(term.calls(), 0);
}

#[tokio::test]
async fn ederror_adds_opt() {
    let (c, _) = handler("template IN A example {\n rcode NXDOMAIN\n ederror 21 \"not here\"\n}", &["."]);
    let mut req = request("x.example.", RecordType::A);
    let m = reply(&run(&c, &mut req).await);
    let edns = m.edns.expect("opt");
    assert_eq!(edns.max_payload(), 4096);
    assert!(edns.flags().dnssec_ok);
}

#[test]
fn setup_rejects() {
    assert_eq!(
        setup_err(parse, "template", &["."]),
        "plugin/template: Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after 'template'"
    );
    assert_eq!(
        setup_err(parse, "template FOO A", &["."]),
        "plugin/template: Corefile:1 - Error during parsing: invalid query class FOO"
    );
    assert_eq!(
        setup_err(parse, "template IN FOO", &["."]),
        "plugin/template: Corefile:1 - Error during parsing: invalid RR class FOO"
    );
    assert_eq!(
        setup_err(parse, "template IN A {\n rcode WHAT\n}", &["."]),
        "plugin/template: Corefile:2 - Error during parsing: unknown rcode WHAT"
    );
    assert!(setup_err(parse, "template IN A {\n match \"(\"\n}", &["."]).contains("could not parse regex: ("));
    assert!(
        setup_err(parse, "template IN A {\n answer \"{{ nope }}\"\n}", &["."]).contains("could not compile template")
    );
    assert!(setup_err(parse, "template IN A {\n match\n}", &["."]).contains("Wrong argument count"));
    assert!(setup_err(parse, "template IN A {\n bogus x\n}", &["."]).contains("Wrong argument count"));
    assert!(
        setup_err(parse, "template IN A {\n ederror x\n}", &["."]).contains("error parsing extended DNS error code")
    );
    let long = format!("template IN A {{\n match {}\n}}", "a".repeat(10001));
    assert!(setup_err(parse, &long, &["."]).contains("regex pattern too long: 10001 > 10000"));
}

#[test]
fn setup_accepts() {
    for text in [
        "template ANY ANY",
        "template IN A example.org {\n match .*\n answer \"{{ .Name }} 60 IN A 1.2.3.4\"\n fallthrough\n}",
        "template CH TXT {\n rcode NOERROR\n ederror 1\n upstream\n}",
        "template IN MX a.example b.example {\n additional \"x 1 IN A 1.1.1.1\" \"y 1 IN A 2.2.2.2\"\n}",
    ] {
        assert!(setup(parse, text, &["."]).is_ok(), "{text}");
    }
}

#[tokio::test]
async fn var_and_expr() {
    let (c, term) = handler(
        r#"template IN A example.com {
    match ^(?P<ip>[0-9]{1,3}(-[0-9]{1,3}){3})[.](?P<id>[a-z2-7]{4})[.]example[.]com[.]$
    var ip replace(group('ip'), '-', '.')
    expr "any(['10.0.0.0/8', '192.168.0.0/16'], incidr(ip, #))"
    answer "{{ .Name }} 60 IN A {{ .Var.ip }}"
    fallthrough
}"#,
        &["."],
    );
    let mut req = request("10-1-2-3.abcd.example.com.", RecordType::A);
    let m = reply(&run(&c, &mut req).await);
    assert_eq!(texts(&m.answers), vec!["10-1-2-3.abcd.example.com. 60 IN A 10.1.2.3"]);
    // A public address fails the condition and falls through.
    let mut req = request("8-8-8-8.abcd.example.com.", RecordType::A);
    assert_eq!(run(&c, &mut req).await.plugin, "terminal");
    assert_eq!(term.calls(), 1);

    assert!(setup_err(parse, "template IN A {\n var 1x 2\n}", &["."]).ends_with("invalid variable name \"1x\""));
    assert!(setup_err(parse, "template IN A {\n var name 2\n}", &["."]).ends_with("variable name \"name\" is reserved"));
    assert!(setup_err(parse, "template IN A {\n var x nosuch\n}", &["."]).contains("could not compile expression: x, "));
    assert!(setup_err(parse, "template IN A {\n expr 1 +\n}", &["."]).contains("could not compile expression: "));
    assert!(setup_err(parse, "template IN A {\n var if 1\n}", &["."]).ends_with("variable name \"if\" is reserved"));
    assert!(
        setup_err(parse, "template IN A {\n var v 1\n var v 2\n}", &["."]).ends_with("variable name \"v\" is reserved")
    );
    assert!(setup_err(parse, "template IN A {\n var n 1\n var s 'x' + n\n}", &["."]).contains("mismatched types"));
    assert!(setup_err(parse, "template IN A {\n var n 1\n expr n and true\n}", &["."]).contains("mismatched types"));
    assert!(setup(
        parse,
        "template IN A {\n match ^(?P<a>[a-z]+)$\n var a group(\"a\") + group(1)\n expr a != ''\n}",
        &["."]
    )
    .is_ok());
}

#[tokio::test]
async fn cname_answers_are_chased_through_the_server() {
    use hickory_proto::op::{Message, MessageType, OpCode};
    use hickory_proto::rr::{RData, Record};
    use nodecache::plugin::template::handler::TemplateHandler;
    use nodecache::plugin::template::setup::Config;

    // Stands in for this server's own listener: answers every A query with 192.0.2.77.
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = sock.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 1500];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let Ok(q) = Message::from_vec(&buf[..n]) else { continue };
            let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
            r.queries = q.queries.clone();
            let owner = q.queries[0].name().clone();
            r.answers.push(Record::from_rdata(owner, 30, RData::A("192.0.2.77".parse().expect("ip"))));
            let _ = sock.send_to(&r.to_vec().expect("encode"), from).await;
        }
    });

    let cfg = setup(parse, "template IN A example {\n answer \"{{ .Name }} 60 IN CNAME target.example.\"\n}", &["."])
        .expect("setup");
    let cfg = cfg.as_any().downcast_ref::<Config>().expect("config").clone();
    let h = Arc::new(TemplateHandler::with_upstream(cfg, Some(addr)));
    let c = chain(vec![h], None);
    let mut req = request("alias.example.", RecordType::A);
    let m = reply(&run(&c, &mut req).await);
    assert_eq!(
        texts(&m.answers),
        vec!["alias.example. 60 IN CNAME target.example.", "target.example. 30 IN A 192.0.2.77"]
    );
}

fn txt_strings(r: &hickory_proto::rr::Record) -> Vec<Vec<u8>> {
    match &r.data {
        hickory_proto::rr::RData::TXT(t) => t.txt_data.iter().map(|s| s.to_vec()).collect(),
        other => panic!("not TXT: {other:?}"),
    }
}

/// CoreDNS renders `.Name` with miekg's escapes and `dns.NewRR` reads them back: a query name
/// holding any octets gets its answer, owner octets unchanged (not SERVFAIL).
#[tokio::test]
async fn names_with_any_octets_are_answered() {
    let (c, _term) = handler(
        r#"template IN A example {
    answer "{{ .Name }} 60 IN A 192.0.2.7"
    additional "{{ .Name }} 60 IN TXT \"{{ .Name }}\""
}"#,
        &["example."],
    );
    for (first, shown) in [
        (b"a\0b".to_vec(), "a\\000b.example."),
        (b"x y;(@".to_vec(), "x\\ y\\;\\(\\@.example."),
        (vec![b'z', 0x80], "z\\128.example."),
        (b"-q".to_vec(), "-q.example."),
        (b"\"\\".to_vec(), "\\\"\\\\.example."),
    ] {
        let qname = hickory_proto::rr::Name::from_labels(vec![first.as_slice(), b"example"]).expect("name");
        let mut msg = query("x.example.", RecordType::A);
        msg.queries[0].set_name(qname.clone());
        let mut req = request_from(&msg, "127.0.0.1:40000", nodecache::server::Proto::Udp);
        let out = run(&c, &mut req).await;
        let m = reply(&out);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{shown}");
        assert_eq!(m.answers.len(), 1, "{shown}");
        assert_eq!(m.answers[0].name.iter().collect::<Vec<_>>(), qname.iter().collect::<Vec<_>>(), "{shown}");
        // The TXT string holds `.Name`'s text, escapes decoded: the name's octets, dot-separated.
        let mut want = first.clone();
        want.extend_from_slice(b".example.");
        assert_eq!(txt_strings(&m.additionals[0]), vec![want], "{shown}");
    }
}

/// miekg's zone parser splits a TXT string longer than 255 octets into 255-octet strings.
#[tokio::test]
async fn long_txt_strings_are_split() {
    let long = "0123456789".repeat(30);
    let (c, _term) = handler(
        &format!("template IN TXT example {{\n    answer \"{{{{ .Name }}}} 60 IN TXT \\\"{long}\\\" short\"\n}}"),
        &["example."],
    );
    let mut req = request("t.example.", RecordType::TXT);
    let m = reply(&run(&c, &mut req).await);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let strings = txt_strings(&m.answers[0]);
    assert_eq!(strings.iter().map(Vec::len).collect::<Vec<_>>(), vec![255, 45, 5]);
    assert_eq!(strings.concat(), format!("{long}short").into_bytes());
}

/// Zone-file escapes in the answer text decode as miekg's parser decodes them (the Corefile
/// lexer turns only `\"` into `"` and keeps other backslash pairs).
#[tokio::test]
async fn zone_file_escapes_in_answers_decode() {
    let (c, _term) = handler(
        r#"template IN TXT example {
    answer "{{ .Name }} 60 IN TXT \"x\065y\" a\\b \"q\;\" \z"
}"#,
        &["example."],
    );
    let mut req = request("t.example.", RecordType::TXT);
    let m = reply(&run(&c, &mut req).await);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(txt_strings(&m.answers[0]), vec![b"xAy".to_vec(), b"a\\b".to_vec(), b"q;".to_vec(), b"z".to_vec()]);
}
