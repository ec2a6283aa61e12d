//! Shared helpers for the `server_*` integration tests: the `nodecache` binary started on a free
//! loopback port with a real Corefile, an upstream fixture from zone text, and small DNS
//! clients (parsed and raw, UDP and TCP).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, OpCode};
use hickory_proto::rr::{Name, RecordType};
use nodecache_conformance::client::{exchange, QuerySpec};
use nodecache_conformance::fixture::{Behaviour, Fixture};
use nodecache_conformance::ports::PortPicker;
use nodecache_conformance::server::ServerProcess;
use nodecache_conformance::zone::ZoneSet;

/// How long a test waits for one reply.
pub const WAIT: Duration = Duration::from_secs(3);

/// A `nodecache` process serving a Corefile on 127.0.0.1.
pub struct Server {
    /// The process (killed on drop).
    pub process: ServerProcess,
    /// The DNS port every `{PORT}` in the Corefile was replaced with (also `-dns.port`).
    pub port: u16,
    /// `127.0.0.1:port`.
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Writes `corefile` (with `{PORT}` replaced by a free port) and starts the binary; waits
    /// until it answers.
    pub fn start(corefile: &str) -> Server {
        let port = PortPicker.dns().expect("free port");
        Self::start_on(corefile, port)
    }

    /// Like `start`, on a given port.
    pub fn start_on(corefile: &str, port: u16) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("Corefile");
        std::fs::write(&path, corefile.replace("{PORT}", &port.to_string())).expect("write Corefile");
        let cmd = format!(
            "{} -conf {} -dns.port {port} -pidfile {}",
            env!("CARGO_BIN_EXE_nodecache"),
            path.display(),
            dir.path().join("pid").display()
        );
        let mut process = ServerProcess::spawn(&cmd, &BTreeMap::new(), dir.path()).expect("spawn nodecache");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        if let Err(e) = process.wait_ready(addr, Duration::from_secs(20)) {
            panic!("{e}\n--- output ---\n{}", process.output());
        }
        Server { process, port, addr, _dir: dir }
    }

    /// The server's process id (from its `-pidfile`).
    pub fn pid(&self) -> u32 {
        let text = std::fs::read_to_string(self._dir.path().join("pid")).expect("pidfile");
        text.trim().parse().expect("pid number")
    }

    /// Reads `VmRSS` and `VmHWM` (kB) from `/proc/<pid>/status`.
    pub fn rss_kb(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Asserts the process is still running and answers a plain query (any rcode).
    pub fn assert_alive(&mut self) {
        assert!(self.process.exited().is_none(), "server exited:\n{}", self.process.output());
        let probe = Q::new("alive.check.", RecordType::A);
        assert!(probe.send(self.addr).is_some(), "server does not answer after the abuse:\n{}", self.process.output());
    }
}

/// Starts an upstream fixture (UDP and TCP) serving `zone` text.
pub fn fixture(zone: &str) -> Fixture {
    let zones = ZoneSet::parse(zone).expect("zone text parses");
    Fixture::start(Behaviour { zones, ..Behaviour::default() }, true).expect("fixture starts")
}

/// A fixture that never answers (a dead upstream that still holds its port).
pub fn dead_fixture() -> Fixture {
    Fixture::start(Behaviour { drop: true, ..Behaviour::default() }, true).expect("fixture starts")
}

/// A small zone `example.org.` with a SOA, a few names and a 40-record name `big`.
pub fn example_zone(ttl: u32) -> String {
    let mut z = format!(
        "$ORIGIN example.org.\n$TTL {ttl}\n@ IN SOA ns.example.org. admin.example.org. 1 7200 3600 1209600 {ttl}\n\
         @ IN NS ns.example.org.\nns IN A 192.0.2.53\nwww IN A 192.0.2.1\nmail IN A 192.0.2.2\nMixed IN A 192.0.2.3\n"
    );
    for i in 1..=40 {
        z.push_str(&format!("big IN A 198.51.100.{i}\n"));
    }
    for i in 1..=20 {
        z.push_str(&format!("twenty IN A 203.0.113.{i}\n"));
    }
    z
}

/// One query to send with the conformance client.
#[derive(Clone)]
pub struct Q(pub QuerySpec);

impl Q {
    /// `name TYPE` over UDP without OPT, RD set.
    pub fn new(name: &str, qtype: RecordType) -> Q {
        let mut spec = QuerySpec::parse(". A", "").expect("spec");
        spec.name = Name::from_ascii(name).expect("name");
        spec.qtype = qtype;
        Q(spec)
    }

    /// Over TCP.
    pub fn tcp(mut self) -> Q {
        self.0.tcp = true;
        self
    }

    /// With an OPT of this UDP size.
    pub fn edns(mut self, size: u16) -> Q {
        self.0.edns = Some(size);
        self
    }

    /// With an OPT and DO.
    pub fn dnssec(mut self, size: u16) -> Q {
        self.0.edns = Some(size);
        self.0.dnssec_ok = true;
        self
    }

    /// With this opcode.
    pub fn opcode(mut self, op: OpCode) -> Q {
        self.0.opcode = op;
        self
    }

    /// Sends it; `None` when no reply arrived within `WAIT`.
    pub fn send(&self, addr: SocketAddr) -> Option<Message> {
        self.send_sized(addr).map(|(m, _)| m)
    }

    /// Sends it and returns the reply with its wire size.
    pub fn send_sized(&self, addr: SocketAddr) -> Option<(Message, usize)> {
        match exchange(addr, &self.0, WAIT) {
            Ok(Some(r)) => Some((r.msg, r.size)),
            Ok(None) => None,
            Err(e) => panic!("exchange with {addr}: {e}"),
        }
    }

    /// Sends it and panics without a reply.
    pub fn ask(&self, addr: SocketAddr) -> Message {
        self.send(addr).unwrap_or_else(|| panic!("no reply to {} {} from {addr}", self.0.name, self.0.qtype))
    }
}

/// Sends raw bytes over UDP and returns the first datagram received within `wait`.
pub fn udp_raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.send_to(bytes, addr).expect("send");
    sock.set_read_timeout(Some(wait)).expect("timeout");
    let mut buf = vec![0u8; 65535];
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

/// Writes `bytes` (already framed or not, as given) on a new TCP connection, then reads one
/// length-framed reply; `None` when the server closed or stayed silent for `wait`.
pub fn tcp_raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let mut conn = TcpStream::connect_timeout(&addr, wait).expect("connect");
    conn.set_read_timeout(Some(wait)).expect("timeout");
    conn.write_all(bytes).ok()?;
    read_frame(&mut conn)
}

/// Reads one length-framed DNS message.
pub fn read_frame(conn: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    conn.read_exact(&mut len).ok()?;
    let mut data = vec![0u8; u16::from_be_bytes(len) as usize];
    conn.read_exact(&mut data).ok()?;
    Some(data)
}

/// Prefixes a message with its 2-byte TCP length.
pub fn framed(msg: &[u8]) -> Vec<u8> {
    let mut out = (msg.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(msg);
    out
}

/// A query header (ID 0x1234, RD) with the given counts and flags, followed by `body`.
pub fn raw_query(flags: u16, counts: [u16; 4], body: &[u8]) -> Vec<u8> {
    let mut v = vec![0x12, 0x34];
    v.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        v.extend_from_slice(&c.to_be_bytes());
    }
    v.extend_from_slice(body);
    v
}

/// The question `www.example.org. A IN` in wire form with the given spelling of `www`.
pub fn question(first: &str) -> Vec<u8> {
    let mut q = vec![first.len() as u8];
    q.extend_from_slice(first.as_bytes());
    q.extend_from_slice(&[7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'o', b'r', b'g', 0, 0, 1, 0, 1]);
    q
}

/// Rcode in the low 4 bits of the header flags.
pub fn rcode_of(wire: &[u8]) -> u8 {
    wire.get(3).map(|b| b & 0x0f).unwrap_or(0xff)
}

/// Polls `f` every 20 ms until it is true or `limit` passes; returns the final value.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The TTLs of the answer records.
pub fn answer_ttls(m: &Message) -> Vec<u32> {
    m.answers.iter().map(|r| r.ttl).collect()
}

/// An `A` query for `name` with ID `id` and RD set, in wire form.
pub fn a_query(id: u16, name: &str) -> Vec<u8> {
    let mut m = hickory_proto::op::Message::new(id, hickory_proto::op::MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(hickory_proto::op::Query::query(Name::from_ascii(name).expect("name"), RecordType::A));
    m.to_vec().expect("encode")
}

/// An upstream's NOERROR reply to an `A` query for `name` (ID `id`, RD and RA set): one
/// `192.0.2.1` record with TTL 300, in wire form.
pub fn a_reply(id: u16, name: &str) -> Vec<u8> {
    use hickory_proto::rr::{RData, Record};
    let mut m = hickory_proto::op::Message::new(id, hickory_proto::op::MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.metadata.recursion_available = true;
    let qname = Name::from_ascii(name).expect("name");
    m.add_query(hickory_proto::op::Query::query(qname.clone(), RecordType::A));
    m.add_answer(Record::from_rdata(qname, 300, RData::A(std::net::Ipv4Addr::new(192, 0, 2, 1).into())));
    m.to_vec().expect("encode")
}

/// The Prometheus page of the endpoint on 127.0.0.1:`port`.
pub fn metrics_page(port: u16) -> String {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect metrics");
    write!(conn, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("write");
    let mut page = String::new();
    conn.read_to_string(&mut page).expect("read");
    page
}

/// The sum of the samples of `family` whose line contains `label` (0 when there are none).
pub fn metric_total(page: &str, family: &str, label: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(family) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
