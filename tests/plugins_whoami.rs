//! `whoami` setup and replies for IPv4 and IPv6 clients over UDP and TCP.

#[path = "plugins_support.rs"]
mod support;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use nodecache::plugin::whoami::setup::parse;
use nodecache::server::Proto;
use pretty_assertions::assert_eq;
use support::*;

#[tokio::test]
async fn ipv4_client_over_udp() {
    let cfg = setup(parse, "whoami", &["."]).expect("setup");
    let c = chain(vec![build(cfg.as_ref())], None);
    let mut req = request_from(&query("Example.ORG.", RecordType::A), "127.0.0.1:40212", Proto::Udp);
    let out = run(&c, &mut req).await;
    let m = reply(&out);
    assert_eq!(out.plugin, "whoami");
    assert!(m.metadata.authoritative);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(texts(&m.additionals), vec!["Example.ORG. 0 IN A 127.0.0.1", "_udp.Example.ORG. 0 IN SRV 0 0 40212 ."]);
}

#[tokio::test]
async fn ipv6_client_over_tcp_and_root_name() {
    let cfg = setup(parse, "whoami", &["."]).expect("setup");
    let c = chain(vec![build(cfg.as_ref())], None);
    let mut req = request_from(&query("example.org.", RecordType::TXT), "[::1]:5300", Proto::Tcp);
    let m = reply(&run(&c, &mut req).await);
    assert_eq!(texts(&m.additionals), vec!["example.org. 0 IN AAAA ::1", "_tcp.example.org. 0 IN SRV 0 0 5300 ."]);

    let mut req = request_from(&query(".", RecordType::NS), "127.0.0.1:53", Proto::Udp);
    let m = reply(&run(&c, &mut req).await);
    assert_eq!(texts(&m.additionals), vec![". 0 IN A 127.0.0.1", "_udp. 0 IN SRV 0 0 53 ."]);
}

#[test]
fn setup_rejects_arguments() {
    assert!(setup(parse, "whoami", &["."]).is_ok());
    assert_eq!(
        setup_err(parse, "whoami example.org", &["."]),
        "plugin/whoami: Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after 'example.org'"
    );
}
