//! A minimal DNS client for the runner: one query over UDP or TCP, with header and EDNS knobs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RecordType};

/// Everything that goes into one query.
#[derive(Debug, Clone)]
pub struct QuerySpec {
    /// Owner name, spelled as it goes on the wire.
    pub name: Name,
    /// Query type.
    pub qtype: RecordType,
    /// Query class.
    pub qclass: DNSClass,
    /// Opcode (QUERY normally; STATUS for the readiness probe).
    pub opcode: OpCode,
    /// Use TCP.
    pub tcp: bool,
    /// RD bit.
    pub rd: bool,
    /// CD bit.
    pub cd: bool,
    /// Send an OPT record with this UDP size.
    pub edns: Option<u16>,
    /// DO bit (only with `edns`).
    pub dnssec_ok: bool,
}

impl QuerySpec {
    /// Parses `"name TYPE"` or `"name CLASS TYPE"`; `spelling` replaces the wire spelling of the name.
    pub fn parse(text: &str, spelling: &str) -> Result<Self, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let (name, class, ty) = match words.as_slice() {
            [n, t] => (*n, "IN", *t),
            [n, c, t] => (*n, *c, *t),
            _ => return Err(format!("query {text:?}: expected \"NAME TYPE\"")),
        };
        let name = if spelling.is_empty() { name } else { spelling };
        let name = Name::from_ascii(name).map_err(|e| format!("query name {name:?}: {e}"))?;
        Ok(Self {
            name,
            qtype: parse_type(ty)?,
            qclass: DNSClass::from_str(&class.to_ascii_uppercase()).map_err(|e| format!("class {class}: {e}"))?,
            opcode: OpCode::Query,
            tcp: false,
            rd: true,
            cd: false,
            edns: None,
            dnssec_ok: false,
        })
    }

    /// Builds the wire message with the given ID.
    pub fn message(&self, id: u16) -> Message {
        let mut m = Message::new(id, MessageType::Query, self.opcode);
        m.metadata.recursion_desired = self.rd;
        m.metadata.checking_disabled = self.cd;
        let mut q = Query::query(self.name.clone(), self.qtype);
        q.set_query_class(self.qclass);
        m.add_query(q);
        if let Some(size) = self.edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            e.set_dnssec_ok(self.dnssec_ok);
            m.set_edns(e);
        }
        m
    }
}

/// Parses a type mnemonic or `TYPEnnn`.
pub fn parse_type(text: &str) -> Result<RecordType, String> {
    let up = text.to_ascii_uppercase();
    if let Some(n) = up.strip_prefix("TYPE").and_then(|n| n.parse::<u16>().ok()) {
        return Ok(RecordType::from(n));
    }
    RecordType::from_str(&up).map_err(|e| format!("type {text}: {e}"))
}

/// A pseudo-random message ID.
pub fn random_id() -> u16 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(7);
    let mut x = nanos ^ 0x9e37_79b9 ^ std::process::id();
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    (x & 0xffff) as u16
}

/// The result of one exchange: the parsed reply plus its raw size.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Parsed reply.
    pub msg: Message,
    /// Bytes on the wire.
    pub size: usize,
}

/// Sends the query and waits up to `wait` for a reply with the same ID. `Ok(None)` means no reply in time.
pub fn exchange(server: SocketAddr, spec: &QuerySpec, wait: Duration) -> Result<Option<Reply>, String> {
    let id = random_id();
    let wire = spec.message(id).to_vec().map_err(|e| format!("encode query: {e}"))?;
    let raw = if spec.tcp { tcp_exchange(server, &wire, wait) } else { udp_exchange(server, &wire, id, wait) };
    let Some(raw) = raw? else { return Ok(None) };
    let msg = Message::from_vec(&raw).map_err(|e| format!("reply does not parse: {e}"))?;
    Ok(Some(Reply { msg, size: raw.len() }))
}

/// Decodes a hex query (spaces and newlines ignored), checks it has at least a header.
pub fn parse_hex_query(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("raw_query {text:?}: odd number of hex digits"));
    }
    let mut out = Vec::with_capacity(digits.len() / 2);
    for pair in digits.chunks(2) {
        let pair = std::str::from_utf8(pair).map_err(|_| format!("raw_query {text:?}: not hex"))?;
        out.push(u8::from_str_radix(pair, 16).map_err(|_| format!("raw_query {text:?}: {pair:?} is not hex"))?);
    }
    if out.len() < 12 {
        return Err(format!("raw_query {text:?}: shorter than a DNS header"));
    }
    Ok(out)
}

/// Sends a raw query as is (its own ID) and parses the reply. `Ok(None)` means no reply in time.
pub fn exchange_raw(server: SocketAddr, wire: &[u8], tcp: bool, wait: Duration) -> Result<Option<Reply>, String> {
    let id = u16::from_be_bytes([wire[0], wire[1]]);
    let raw = if tcp { tcp_exchange(server, wire, wait) } else { udp_exchange(server, wire, id, wait) };
    let Some(raw) = raw? else { return Ok(None) };
    let msg = Message::from_vec(&raw).map_err(|e| format!("reply does not parse: {e}"))?;
    Ok(Some(Reply { msg, size: raw.len() }))
}

/// Sends `wire` over UDP and waits up to `wait` for a reply from `server` with ID `id`.
pub fn udp_exchange(server: SocketAddr, wire: &[u8], id: u16, wait: Duration) -> Result<Option<Vec<u8>>, String> {
    let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("udp bind: {e}"))?;
    sock.send_to(wire, server).map_err(|e| format!("udp send: {e}"))?;
    let deadline = Instant::now() + wait;
    let mut buf = vec![0u8; 65535];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let _ = sock.set_read_timeout(Some(left));
        match sock.recv_from(&mut buf) {
            Ok((n, from)) if from == server && n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id => {
                return Ok(Some(buf[..n].to_vec()))
            }
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Ok(None)
            }
            // ICMP port unreachable shows up as ConnectionRefused on some systems; keep waiting.
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Sends `wire` over one TCP connection and waits up to `wait` for the first reply.
pub fn tcp_exchange(server: SocketAddr, wire: &[u8], wait: Duration) -> Result<Option<Vec<u8>>, String> {
    let mut conn = TcpStream::connect_timeout(&server, wait).map_err(|e| format!("tcp connect: {e}"))?;
    conn.set_read_timeout(Some(wait)).map_err(|e| e.to_string())?;
    let mut out = (wire.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(wire);
    conn.write_all(&out).map_err(|e| format!("tcp write: {e}"))?;
    let mut len = [0u8; 2];
    match conn.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return Ok(None),
        Err(e) => return Err(format!("tcp read: {e}")),
    }
    let mut data = vec![0u8; u16::from_be_bytes(len) as usize];
    conn.read_exact(&mut data).map_err(|e| format!("tcp read: {e}"))?;
    Ok(Some(data))
}
