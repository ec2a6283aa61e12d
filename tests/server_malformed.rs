//! Malformed input over real sockets: every packet is answered (FORMERR) or dropped without a
//! crash, and the server still answers normal queries afterwards.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use nodecache::server::wire;
use pretty_assertions::assert_eq;

const COREFILE: &str = ".:{PORT} {\n    whoami\n}\n";
const SHORT: Duration = Duration::from_millis(400);

/// Asserts `reply` is a FORMERR for ID 0x1234 without records.
fn assert_formerr(what: &str, reply: Option<Vec<u8>>) {
    let r = reply.unwrap_or_else(|| panic!("{what}: no reply"));
    assert_eq!((wire::id(&r), rcode_of(&r)), (Some(0x1234), 1), "{what}");
    let (_, an, ns, ar) = wire::counts(&r);
    assert_eq!((an, ns, ar), (0, 0, 0), "{what}");
}

fn bad_names() -> Vec<(&'static str, Vec<u8>)> {
    let tail = [0u8, 1, 0, 1];
    let mut cases = Vec::new();
    // A compression pointer to itself (offset 12).
    cases.push(("pointer loop", [&[0xc0u8, 0x0c][..], &tail].concat()));
    // Two pointers pointing at each other.
    cases.push(("pointer ping-pong", [&[0xc0u8, 0x0e, 0xc0, 0x0c][..], &tail].concat()));
    // A pointer forward, past the end of the message.
    cases.push(("forward pointer", [&[0xc0u8, 0xff][..], &tail].concat()));
    // A label of 64 bytes (length byte 0x40 is not a valid label length).
    let mut long_label = vec![64u8];
    long_label.extend(std::iter::repeat_n(b'a', 64));
    long_label.push(0);
    long_label.extend_from_slice(&tail);
    cases.push(("label over 63", long_label));
    // A name of five 63-byte labels (over 255).
    let mut long_name = Vec::new();
    for _ in 0..5 {
        long_name.push(63u8);
        long_name.extend(std::iter::repeat_n(b'b', 63));
    }
    long_name.push(0);
    long_name.extend_from_slice(&tail);
    cases.push(("name over 255", long_name));
    // A name cut in the middle of a label.
    cases.push(("cut label", vec![7, b'e', b'x']));
    cases
}

#[test]
fn bad_names_are_formerr_over_udp_and_tcp() {
    let mut srv = Server::start(COREFILE);
    for (what, body) in bad_names() {
        let msg = raw_query(0x0100, [1, 0, 0, 0], &body);
        assert_formerr(what, udp_raw(srv.addr, &msg, WAIT));
        assert_formerr(what, tcp_raw(srv.addr, &framed(&msg), WAIT));
    }
    srv.assert_alive();
}

#[test]
fn formerr_for_a_bad_pointer_parses_and_has_no_question() {
    let mut srv = Server::start(COREFILE);
    let tail = [0u8, 1, 0, 1];
    let cases = [
        ("pointer loop", [&[0xc0u8, 0x0c][..], &tail].concat()),
        ("label then pointer loop", [&[3u8, b'w', b'w', b'w', 0xc0, 0x0c][..], &tail].concat()),
        ("pointer past the end", [&[0xc0u8, 0xff][..], &tail].concat()),
    ];
    for (what, body) in cases {
        let msg = raw_query(0x0100, [1, 0, 0, 0], &body);
        for (transport, reply) in
            [("udp", udp_raw(srv.addr, &msg, WAIT)), ("tcp", tcp_raw(srv.addr, &framed(&msg), WAIT))]
        {
            let r = reply.unwrap_or_else(|| panic!("{what} over {transport}: no reply"));
            let m = hickory_proto::op::Message::from_vec(&r)
                .unwrap_or_else(|e| panic!("{what} over {transport}: the FORMERR does not parse: {e}: {r:02x?}"));
            assert_eq!(m.metadata.response_code, ResponseCode::FormErr, "{what} over {transport}");
            assert_eq!(m.metadata.id, 0x1234, "{what} over {transport}");
            assert!(m.queries.is_empty(), "{what} over {transport}: {:?}", m.queries);
            assert_eq!(wire::counts(&r), (0, 0, 0, 0), "{what} over {transport}");
        }
    }
    srv.assert_alive();
}

#[test]
fn short_headers_get_no_reply() {
    let mut srv = Server::start(COREFILE);
    for n in [0usize, 1, 5, 11] {
        let msg = raw_query(0x0100, [1, 0, 0, 0], &[]);
        assert_eq!(udp_raw(srv.addr, &msg[..n], SHORT), None, "{n}-byte datagram");
    }
    srv.assert_alive();
}

#[test]
fn tcp_frames_zero_short_and_64k() {
    let mut srv = Server::start(COREFILE);
    // Zero-length and shorter-than-header frames: the connection is closed, nothing written.
    for frame in [vec![0u8, 0], vec![0, 5, 1, 2, 3, 4, 5]] {
        let mut conn = TcpStream::connect(srv.addr).expect("connect");
        conn.set_read_timeout(Some(WAIT)).expect("timeout");
        conn.write_all(&frame).expect("write");
        let mut buf = [0u8; 16];
        // Closed: EOF, or a reset when the rest of the frame was left unread.
        let closed = match conn.read(&mut buf) {
            Ok(n) => n == 0,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(closed, "server closes after {frame:?}");
    }
    // A 64 KB frame: a valid question followed by trailing bytes up to 65535.
    let mut msg = raw_query(0x0100, [1, 0, 0, 0], &question("www"));
    msg.resize(65535, 0xab);
    let reply = tcp_raw(srv.addr, &framed(&msg), WAIT);
    if let Some(r) = &reply {
        assert_eq!(wire::id(r), Some(0x1234));
    }
    // A 64 KB frame of a well-formed query padded by an OPT with a large PADDING option.
    let mut body = question("www");
    let pad = 65535 - 12 - body.len() - 11 - 4;
    let mut opt = 12u16.to_be_bytes().to_vec();
    opt.extend_from_slice(&(pad as u16).to_be_bytes());
    opt.extend(std::iter::repeat_n(0u8, pad));
    wire::encode_opt(4096, 0, &opt, &mut body);
    let msg = raw_query(0x0100, [1, 0, 0, 1], &body);
    assert_eq!(msg.len(), 65535);
    let r = tcp_raw(srv.addr, &framed(&msg), WAIT).expect("reply to a padded 64 KB query");
    let m = hickory_proto::op::Message::from_vec(&r).expect("parses");
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    srv.assert_alive();
}

#[test]
fn stalled_half_frame_is_closed_while_others_are_served() {
    let mut srv = Server::start(COREFILE);
    let started = Instant::now();
    let mut stalled = TcpStream::connect(srv.addr).expect("connect");
    // Announce 40 bytes, send 10, then stall.
    stalled.write_all(&[0, 40, 0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0]).expect("write");
    stalled.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    // Meanwhile others are served over both transports.
    for tcp in [false, true] {
        let q = Q::new("www.example.org.", RecordType::A);
        let q = if tcp { q.tcp() } else { q };
        assert_eq!(q.ask(srv.addr).metadata.response_code, ResponseCode::NoError);
    }
    let mut buf = [0u8; 16];
    let n = stalled.read(&mut buf);
    let waited = started.elapsed();
    let closed = match &n {
        Ok(n) => *n == 0,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(closed, "stalled connection not closed by the server: {n:?}");
    assert!(waited < Duration::from_secs(12), "closed only after {waited:?} (read timeout is 3s)");
    assert!(waited >= Duration::from_secs(1), "closed too early: {waited:?}");
    srv.assert_alive();
}

#[test]
fn thousands_of_random_datagrams_do_not_crash_the_server() {
    let mut srv = Server::start(COREFILE);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut sent = 0;
    for i in 0..3000 {
        let len = (next() % 600) as usize;
        let mut data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Half of them get a plausible query header so they reach the name decoder.
        if i % 2 == 0 && data.len() >= 12 {
            data[2] &= 0x07;
            data[4..6].copy_from_slice(&[0, 1]);
            data[6..12].fill(0);
        }
        if sock.send_to(&data, srv.addr).is_ok() {
            sent += 1;
        }
        if i % 200 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    assert_eq!(sent, 3000);
    std::thread::sleep(Duration::from_millis(300));
    srv.assert_alive();
    // Random TCP frames too.
    for _ in 0..50 {
        let len = (next() % 300) as usize + 12;
        let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = tcp_raw(srv.addr, &framed(&data), SHORT);
    }
    srv.assert_alive();
}
