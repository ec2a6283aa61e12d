//! Server-level behaviour over real sockets: routing (spec §3, cases 22–29), wire acceptance
//! (FORMERR, NOTIMP, BADVERS), question case, OPT echo rules, and truncation to the client's
//! buffer with TC and the TCP retry.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use hickory_proto::op::{OpCode, ResponseCode};
use hickory_proto::rr::RecordType;
use nodecache::server::wire;
use nodecache_conformance::http;
use nodecache_conformance::ports::PortPicker;
use pretty_assertions::assert_eq;

#[test]
fn reverse_cidr_keys_route_both_zones_and_refuse_the_rest() {
    let srv = Server::start("10.0.0.0/15:{PORT} {\n    whoami\n}\n");
    for zone in ["0.10.in-addr.arpa.", "1.10.in-addr.arpa."] {
        let m = Q::new(&format!("whoami.{zone}"), RecordType::A).ask(srv.addr);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{zone}");
        assert_eq!(m.additionals.len(), 2, "{zone}");
    }
    let m = Q::new("whoami.2.10.in-addr.arpa.", RecordType::A).ask(srv.addr);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(m.additionals.is_empty());
}

#[test]
fn upper_case_key_with_explicit_port_serves_lower_case_queries() {
    let srv = Server::start("EXAMPLE.ORG.:{PORT} {\n    whoami\n}\n");
    let m = Q::new("www.example.org.", RecordType::A).ask(srv.addr);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.additionals.len(), 2);
}

#[test]
fn empty_block_and_unknown_zone_are_refused_and_counted_as_dropped() {
    let mport = PortPicker.tcp().expect("metrics port");
    let corefile = format!(
        "example.org:{{PORT}} {{\n    whoami\n    prometheus 127.0.0.1:{mport}\n}}\nempty.org:{{PORT}} {{\n}}\n"
    );
    let srv = Server::start(&corefile);
    let m = Q::new("www.empty.org.", RecordType::A).ask(srv.addr);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    let m = Q::new("google.com.", RecordType::A).ask(srv.addr);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert_eq!(m.queries.len(), 1, "the question is echoed");
    let body = http::get(&format!("http://127.0.0.1:{mport}/metrics"), WAIT).expect("metrics").body;
    let dropped: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("coredns_dns_responses_total{") && l.contains("zone=\"dropped\""))
        .collect();
    assert!(
        dropped.iter().any(|l| l.contains("rcode=\"REFUSED\"") && l.ends_with(" 2")),
        "dropped REFUSED responses (empty block + unknown zone): {dropped:?}"
    );
}

#[test]
fn opt_is_the_last_record_with_do_and_client_size() {
    let srv = Server::start(".:{PORT} {\n    whoami\n}\n");
    let (m, _) = Q::new("example.org.", RecordType::A).dnssec(4096).send_sized(srv.addr).expect("reply");
    let opt = m.edns.as_ref().expect("OPT echoed");
    assert_eq!((opt.max_payload(), opt.flags().dnssec_ok, opt.version()), (4096, true, 0));
    // Last RR on the wire is OPT.
    let raw = raw_exchange_udp(srv.addr, &Q::new("example.org.", RecordType::A).dnssec(4096));
    let rrs = wire::records(&raw).expect("records walk");
    assert_eq!(rrs.last().map(|r| r.rtype), Some(wire::TYPE_OPT));
    // No OPT in → none out; DO off stays off.
    let m = Q::new("example.org.", RecordType::A).ask(srv.addr);
    assert!(m.edns.is_none());
    let m = Q::new("example.org.", RecordType::A).edns(1400).ask(srv.addr);
    let opt = m.edns.as_ref().expect("OPT echoed");
    assert_eq!((opt.max_payload(), opt.flags().dnssec_ok), (1400, false));
}

fn raw_exchange_udp(addr: std::net::SocketAddr, q: &Q) -> Vec<u8> {
    let bytes = q.0.message(0x4242).to_vec().expect("encode");
    udp_raw(addr, &bytes, WAIT).expect("reply")
}

#[test]
fn formerr_notimp_and_badvers() {
    let mut srv = Server::start(".:{PORT} {\n    whoami\n}\n");
    let q = question("www");
    // QDCOUNT=2.
    let mut two = q.clone();
    two.extend_from_slice(&q);
    let r = udp_raw(srv.addr, &raw_query(0x0100, [2, 0, 0, 0], &two), WAIT).expect("FORMERR reply");
    assert_eq!((wire::id(&r), rcode_of(&r), wire::counts(&r).1), (Some(0x1234), 1, 0));
    // Garbage after the header (QDCOUNT=1 but the question cannot be read).
    let r = udp_raw(srv.addr, &raw_query(0x0100, [1, 0, 0, 0], &[0xff, 0xfe, 0x01]), WAIT).expect("FORMERR");
    assert_eq!(rcode_of(&r), 1);
    assert_eq!(wire::counts(&r), (0, 0, 0, 0));
    // Same over TCP.
    let r = tcp_raw(srv.addr, &framed(&raw_query(0x0100, [2, 0, 0, 0], &two)), WAIT).expect("tcp FORMERR");
    assert_eq!(rcode_of(&r), 1);
    // Opcodes STATUS (2) and UPDATE (5) → NOTIMP, opcode echoed.
    for op in [OpCode::Status, OpCode::Update] {
        let m = Q::new("www.example.org.", RecordType::A).opcode(op).ask(srv.addr);
        assert_eq!((m.metadata.response_code, m.metadata.op_code), (ResponseCode::NotImp, op));
    }
    // EDNS version 1 → BADVERS with an OPT of version 0; made with SetReply
    // (plugin/pkg/edns Version), so the question is copied.
    let mut body = q.clone();
    wire::encode_opt(4096, 1 << 16, &[], &mut body);
    let r = udp_raw(srv.addr, &raw_query(0x0100, [1, 0, 0, 1], &body), WAIT).expect("BADVERS");
    let m = hickory_proto::op::Message::from_vec(&r).expect("parses");
    assert_eq!(u16::from(m.metadata.response_code), 16);
    assert_eq!(m.queries.len(), 1);
    assert_eq!(m.queries[0].name().to_string(), "www.example.org.");
    assert_eq!(m.edns.as_ref().map(|e| e.version()), Some(0));
    // A response (QR=1) is ignored.
    assert_eq!(udp_raw(srv.addr, &raw_query(0x8100, [1, 0, 0, 0], &q), Duration::from_millis(300)), None);
    srv.assert_alive();
}

#[test]
fn question_case_is_kept_towards_upstream_and_client() {
    let up = fixture(&example_zone(300));
    let srv = Server::start(&format!(".:{{PORT}} {{\n    forward . {}\n}}\n", up.addr()));
    let m = Q::new("WwW.ExAmPlE.oRg.", RecordType::A).ask(srv.addr);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.queries[0].name().to_string(), "WwW.ExAmPlE.oRg.");
    assert_eq!(up.seen().last().map(|s| s.question.clone()), Some("WwW.ExAmPlE.oRg. A".to_string()));
}

#[test]
fn large_answer_is_truncated_over_udp_and_complete_over_tcp() {
    let up = fixture(&example_zone(300));
    let srv = Server::start(&format!(".:{{PORT}} {{\n    forward . {}\n}}\n", up.addr()));
    // Case 40: twenty A records do not fit 512 bytes → TC reaches the client.
    let m = Q::new("big.example.org.", RecordType::A).ask(srv.addr);
    assert!(m.metadata.truncation, "TC over UDP");
    let m = Q::new("big.example.org.", RecordType::A).tcp().ask(srv.addr);
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 40);
}

#[test]
fn cached_answer_is_truncated_to_the_client_edns_size() {
    let up = fixture(&example_zone(300));
    let srv = Server::start(&format!(".:{{PORT}} {{\n    cache 300\n    forward . {}\n}}\n", up.addr()));
    let full = Q::new("big.example.org.", RecordType::A).tcp().ask(srv.addr);
    assert_eq!(full.answers.len(), 40);
    // From the cache: without OPT the UDP limit is 512 bytes.
    let (m, size) = Q::new("big.example.org.", RecordType::A).send_sized(srv.addr).expect("reply");
    assert!(m.metadata.truncation);
    assert!(size <= 512, "size {size}");
    assert!(m.answers.len() < 40);
    // 600 bytes of EDNS buffer: still truncated, but within 600.
    let (m, size) = Q::new("big.example.org.", RecordType::A).edns(600).send_sized(srv.addr).expect("reply");
    assert!(m.metadata.truncation && size <= 600, "size {size}");
    // 4096: complete.
    let (m, _) = Q::new("big.example.org.", RecordType::A).edns(4096).send_sized(srv.addr).expect("reply");
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 40);
    assert_eq!(up.queries(), 1, "all but the first from the cache");
}

/// Queries written together on one TCP connection are answered in the order sent, hits and
/// misses alike, and a partial message is completed by a later write.
#[test]
fn pipelined_tcp_queries_are_answered_in_order() {
    let up = fixture(&example_zone(300));
    let srv = Server::start(&format!(".:{{PORT}} {{\n    cache\n    forward . {}\n}}\n", up.addr()));
    // Warm one name so the batch mixes cache hits with misses that go upstream.
    Q::new("www.example.org.", RecordType::A).ask(srv.addr);
    let names = ["www", "mail", "www", "missing", "www"];
    let mut batch = Vec::new();
    for (i, first) in names.iter().enumerate() {
        let mut q = raw_query(0x0100, [1, 0, 0, 0], &question(first));
        q[0..2].copy_from_slice(&(i as u16 + 1).to_be_bytes());
        batch.extend_from_slice(&framed(&q));
    }
    let mut conn = TcpStream::connect(srv.addr).expect("connect");
    conn.set_read_timeout(Some(WAIT)).expect("timeout");
    // All but the last three bytes at once, the rest after a pause.
    let split = batch.len() - 3;
    conn.write_all(&batch[..split]).expect("write");
    std::thread::sleep(Duration::from_millis(100));
    conn.write_all(&batch[split..]).expect("write rest");
    let ids: Vec<u16> = (0..names.len())
        .map(|_| read_frame(&mut conn).map(|r| u16::from_be_bytes([r[0], r[1]])).expect("a reply per query"))
        .collect();
    assert_eq!(ids, vec![1, 2, 3, 4, 5]);
}
