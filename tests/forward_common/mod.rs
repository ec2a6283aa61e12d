//! Test helpers for the forward plugin: a configurable authoritative responder on 127.0.0.1
//! (UDP and TCP on one port), query construction, and chain plumbing.
#![allow(dead_code)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};
use nodecache::corefile::Dispenser;
use nodecache::plugin::forward::handler::ForwardChain;
use nodecache::plugin::forward::setup::Config;
use nodecache::plugin::{BuildContext, Carryover, Chain, Next, Plugin, PluginConfig, SetupContext};
use nodecache::server::{ClientEdns, Outcome, Proto, Request};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// How the responder answers.
#[derive(Clone, Debug)]
pub struct Behavior {
    /// Number of A records in each answer.
    pub answers: usize,
    /// Response code.
    pub rcode: u8,
    /// Delay before answering.
    pub delay: Duration,
    /// Do not answer at all (probes included when `drop_probes`).
    pub drop: bool,
    /// Also ignore health probes.
    pub drop_probes: bool,
    /// Over UDP, answer with TC=1 and no records.
    pub truncate_udp: bool,
    /// Answer with a different question name.
    pub wrong_question: bool,
    /// Send a reply with a wrong ID before the real one (UDP).
    pub wrong_id_first: bool,
    /// Close each TCP connection after one answer.
    pub close_after_answer: bool,
    /// Answer with one TXT record (in the query's class) carrying this text instead of A records.
    pub txt: Option<String>,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            answers: 1,
            rcode: 0,
            delay: Duration::ZERO,
            drop: false,
            drop_probes: false,
            truncate_udp: false,
            wrong_question: false,
            wrong_id_first: false,
            close_after_answer: false,
            txt: None,
        }
    }
}

/// What the responder saw.
#[derive(Default)]
pub struct Seen {
    /// Queries (not probes) over UDP.
    pub udp: AtomicUsize,
    /// Queries (not probes) over TCP.
    pub tcp: AtomicUsize,
    /// Health probes (`. NS`), with their RD bits.
    pub probes: Mutex<Vec<bool>>,
    /// Accepted TCP connections.
    pub tcp_conns: AtomicUsize,
    /// Health probes that came over TCP (or TLS).
    pub stream_probes: AtomicUsize,
    /// UDP source ports of queries.
    pub udp_ports: Mutex<Vec<u16>>,
    /// Query IDs received.
    pub ids: Mutex<Vec<u16>>,
}

/// A running responder.
pub struct Responder {
    /// Its address (UDP and TCP).
    pub addr: SocketAddr,
    /// Behaviour, changeable while running.
    pub behavior: Arc<Mutex<Behavior>>,
    /// Counters.
    pub seen: Arc<Seen>,
}

impl Responder {
    /// Starts a responder on 127.0.0.1.
    pub async fn start(behavior: Behavior) -> Responder {
        Responder::start_on("127.0.0.1:0", behavior).await
    }

    /// Starts a responder on a loopback address such as `[::1]:0`.
    pub async fn start_on(bind: &str, behavior: Behavior) -> Responder {
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind(bind).await.unwrap();
            let addr = udp.local_addr().unwrap();
            if let Ok(tcp) = TcpListener::bind(addr).await {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        let behavior = Arc::new(Mutex::new(behavior));
        let seen = Arc::new(Seen::default());
        let udp = Arc::new(udp);
        {
            let (b, s) = (behavior.clone(), seen.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65535];
                loop {
                    let Ok((n, peer)) = udp.recv_from(&mut buf).await else { return };
                    let q = buf[..n].to_vec();
                    let (b, s, udp) = (b.clone(), s.clone(), udp.clone());
                    tokio::spawn(async move {
                        let beh = b.lock().clone();
                        let probe = is_probe(&q);
                        if probe {
                            s.probes.lock().push(q[2] & 1 == 1);
                        } else {
                            s.udp.fetch_add(1, Ordering::SeqCst);
                            s.udp_ports.lock().push(peer.port());
                            s.ids.lock().push(u16::from_be_bytes([q[0], q[1]]));
                        }
                        if (beh.drop && !probe) || (probe && beh.drop_probes) {
                            return;
                        }
                        tokio::time::sleep(beh.delay).await;
                        if beh.wrong_id_first && !probe {
                            let mut bogus = answer(&q, &beh, true);
                            bogus[0] ^= 0xff;
                            let _ = udp.send_to(&bogus, peer).await;
                        }
                        let _ = udp.send_to(&answer(&q, &beh, true), peer).await;
                    });
                }
            });
        }
        {
            let (b, s) = (behavior.clone(), seen.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((conn, _)) = tcp.accept().await else { return };
                    s.tcp_conns.fetch_add(1, Ordering::SeqCst);
                    let (b, s) = (b.clone(), s.clone());
                    tokio::spawn(serve_stream(conn, b, s));
                }
            });
        }
        Responder { addr, behavior, seen }
    }

    /// Queries seen over UDP.
    pub fn udp(&self) -> usize {
        self.seen.udp.load(Ordering::SeqCst)
    }

    /// Queries seen over TCP.
    pub fn tcp(&self) -> usize {
        self.seen.tcp.load(Ordering::SeqCst)
    }

    /// Health probes seen.
    pub fn probes(&self) -> usize {
        self.seen.probes.lock().len()
    }

    /// Distinct UDP source ports seen.
    pub fn distinct_udp_ports(&self) -> usize {
        self.seen.udp_ports.lock().iter().collect::<HashSet<_>>().len()
    }

    /// Changes the behaviour.
    pub fn set(&self, f: impl FnOnce(&mut Behavior)) {
        f(&mut self.behavior.lock());
    }
}

/// Answers length-framed queries on one stream until it closes.
async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin>(mut conn: S, b: Arc<Mutex<Behavior>>, s: Arc<Seen>) {
    loop {
        let mut len = [0u8; 2];
        if conn.read_exact(&mut len).await.is_err() {
            return;
        }
        let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
        if conn.read_exact(&mut q).await.is_err() {
            return;
        }
        let beh = b.lock().clone();
        let probe = is_probe(&q);
        if probe {
            s.probes.lock().push(q[2] & 1 == 1);
            s.stream_probes.fetch_add(1, Ordering::SeqCst);
        } else {
            s.tcp.fetch_add(1, Ordering::SeqCst);
            s.ids.lock().push(u16::from_be_bytes([q[0], q[1]]));
        }
        if (beh.drop && !probe) || (probe && beh.drop_probes) {
            continue;
        }
        tokio::time::sleep(beh.delay).await;
        let a = answer(&q, &beh, false);
        let mut framed = (a.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&a);
        if conn.write_all(&framed).await.is_err() || conn.flush().await.is_err() || beh.close_after_answer {
            return;
        }
    }
}

/// Files of a test PKI: a CA and a server certificate for 127.0.0.1 and `dns.test`.
pub struct Pki {
    /// Keeps the files alive.
    pub dir: tempfile::TempDir,
    /// CA certificate path.
    pub ca: String,
    /// Server certificate path.
    pub cert: String,
    /// Server key path.
    pub key: String,
}

/// Creates a CA and a server certificate with the `openssl` command.
pub fn make_pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:dns.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl").args(args).output().expect("openssl runs");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let (ca, ca_key, key, csr, cert) = (p("ca.pem"), p("ca.key"), p("srv.key"), p("srv.csr"), p("srv.pem"));
    let mut a = vec!["req", "-x509"];
    a.extend(ec);
    a.extend(["-keyout", &ca_key, "-out", &ca, "-days", "1", "-subj", "/CN=testca"]);
    a.extend(["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"]);
    run(&a);
    let mut b = vec!["req"];
    b.extend(ec);
    b.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=dns.test"]);
    run(&b);
    let ext = p("ext.cnf");
    run(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        &cert,
        "-days",
        "1",
        "-extfile",
        &ext,
    ]);
    Pki { dir, ca, cert, key }
}

impl Responder {
    /// Starts a DNS-over-TLS responder on 127.0.0.1 with the PKI's server certificate.
    pub async fn start_tls(behavior: Behavior, pki: &Pki) -> Responder {
        let certs: Vec<_> =
            rustls_pemfile::certs(&mut std::io::BufReader::new(std::fs::File::open(&pki.cert).unwrap()))
                .collect::<Result<_, _>>()
                .unwrap();
        let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(std::fs::File::open(&pki.key).unwrap()))
            .unwrap()
            .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let behavior = Arc::new(Mutex::new(behavior));
        let seen = Arc::new(Seen::default());
        let (b, s) = (behavior.clone(), seen.clone());
        tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else { return };
                s.tcp_conns.fetch_add(1, Ordering::SeqCst);
                let (b, s, acceptor) = (b.clone(), s.clone(), acceptor.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(conn).await {
                        serve_stream(tls, b, s).await;
                    }
                });
            }
        });
        Responder { addr, behavior, seen }
    }
}

fn is_probe(q: &[u8]) -> bool {
    // `. NS`: root name (a single zero byte) and type 2 right after the header.
    q.len() >= 17 && q[12] == 0 && q[13..15] == [0, 2]
}

/// Builds a reply to `q`: header and question copied, `answers` A records (or TC with none).
fn answer(q: &[u8], b: &Behavior, udp: bool) -> Vec<u8> {
    let mut pos = 12;
    while pos < q.len() && q[pos] != 0 {
        pos += 1 + q[pos] as usize;
    }
    let qend = (pos + 5).min(q.len());
    let mut out = q[..12].to_vec();
    out[2] = 0x80 | (q[2] & 0x79) | if udp && b.truncate_udp { 0x02 } else { 0 };
    out[3] = 0x80 | (b.rcode & 0x0f);
    out[4..12].copy_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    if b.wrong_question {
        out.extend_from_slice(&[5, b'o', b't', b'h', b'e', b'r', 0]);
        out.extend_from_slice(&q[pos + 1..qend]);
    } else {
        out.extend_from_slice(&q[12..qend]);
    }
    if let (Some(txt), false) = (&b.txt, is_probe(q)) {
        out[7] = 1;
        let class = &q[pos + 3..qend];
        out.extend_from_slice(&[0xC0, 12, 0, 16]);
        out.extend_from_slice(class);
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&((txt.len() + 1) as u16).to_be_bytes());
        out.push(txt.len() as u8);
        out.extend_from_slice(txt.as_bytes());
        return out;
    }
    let n = if (udp && b.truncate_udp) || is_probe(q) { 0 } else { b.answers };
    out[7] = n as u8;
    out[6] = (n >> 8) as u8;
    for i in 0..n {
        out.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 0, (i >> 8) as u8, i as u8]);
    }
    out
}

/// A query message for `name`/`qtype`, optionally with EDNS.
pub fn query_wire(id: u16, name: &str, qtype: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = id;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.edns = Some(e);
    }
    m.to_vec().unwrap()
}

/// A request as the server would build it.
pub fn request(name: &str, qtype: RecordType, proto: Proto, edns: Option<u16>) -> Request {
    let id = rand::random();
    let wire = query_wire(id, name, qtype, edns);
    let qname = if name.ends_with('.') { name.to_string() } else { format!("{name}.") };
    Request {
        received_len: wire.len(),
        wire,
        qname_lower: qname.to_ascii_lowercase(),
        qname,
        qtype: u16::from(qtype),
        qclass: 1,
        edns: edns.map(|s| ClientEdns { udp_size: s, dnssec_ok: false, version: 0, options: Vec::new() }),
        client: "127.0.0.1:5555".parse().unwrap(),
        local: "127.0.0.1:53".parse().unwrap(),
        proto,
        server: Arc::from("dns://:53"),
        zone: Arc::from("."),
        started: Instant::now(),
        metadata: Vec::new(),
    }
}

/// Parses a Corefile snippet (the `forward` lines of one block).
pub fn parse(text: &str) -> Result<Box<dyn PluginConfig>, String> {
    let mut d = Dispenser::from_text(text);
    nodecache::plugin::forward::setup::parse(&mut d, &SetupContext::default()).map_err(|e| e.coredns_message())
}

/// A build context with a fresh carry-over store.
pub fn build_ctx(carry: Arc<Carryover>) -> BuildContext {
    BuildContext {
        zones: vec![".".to_string()],
        servers: vec!["dns://:53".to_string()],
        metrics: Arc::new(Default::default()),
        carry,
        after: String::new(),
    }
}

/// A terminal plugin answering REFUSED-free "next" marker: it records that it ran and returns
/// NXDOMAIN unwritten.
pub struct Marker {
    /// How many queries reached it.
    pub hits: AtomicUsize,
}

impl Plugin for Marker {
    fn name(&self) -> &'static str {
        "marker"
    }
    fn serve<'a>(&'a self, _req: &'a mut Request, _next: Next<'a>) -> futures_util::future::BoxFuture<'a, Outcome> {
        self.hits.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Outcome::unwritten(hickory_proto::op::ResponseCode::NXDomain, Some("marker".to_string())) })
    }
}

/// A forward plugin built from `text`, followed by a [`Marker`].
pub struct Setup {
    /// The chain: forward, then the marker.
    pub chain: Chain,
    /// The marker.
    pub marker: Arc<Marker>,
    /// The forward plugin itself.
    pub forward: Arc<ForwardChain>,
}

impl Setup {
    /// Builds from Corefile text.
    pub fn new(text: &str) -> Setup {
        Setup::with_carry(text, Arc::new(Carryover::default()))
    }

    /// Builds with a given carry-over store.
    pub fn with_carry(text: &str, carry: Arc<Carryover>) -> Setup {
        let cfg = parse(text).unwrap();
        let cfg = cfg.as_any().downcast_ref::<Config>().unwrap();
        let forward = Arc::new(cfg.build_chain(&build_ctx(carry)).unwrap());
        let marker = Arc::new(Marker { hits: AtomicUsize::new(0) });
        let chain: Chain = Arc::from(vec![forward.clone() as Arc<dyn Plugin>, marker.clone() as Arc<dyn Plugin>]);
        Setup { chain, marker, forward }
    }

    /// The `i`-th upstream of the first forward line.
    pub fn upstream(&self, i: usize) -> &Arc<nodecache::plugin::forward::upstream::Upstream> {
        &self.forward.forwards()[0].upstreams()[i]
    }

    /// Runs one request through the chain.
    pub async fn serve(&self, req: &mut Request) -> Outcome {
        Next::start(&self.chain).serve(req).await
    }

    /// Runs a fresh query.
    pub async fn ask(&self, name: &str, proto: Proto) -> (Request, Outcome) {
        let mut req = request(name, RecordType::A, proto, None);
        let out = self.serve(&mut req).await;
        (req, out)
    }
}

/// The reply of an outcome as a message.
pub fn reply_msg(o: &Outcome) -> Message {
    o.reply.as_ref().expect("a written reply").to_message().unwrap()
}
