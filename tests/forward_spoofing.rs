//! Forged replies against the upstream side of `forward`, on loopback, as an off-path attacker
//! would try them: every upstream query leaves from a new random port, and a datagram is taken
//! as the reply only from the upstream's address and port, with the query's ID and question
//! (name, type, class). Both the server's direct miss path (a block of `cache` + `forward`) and
//! the plugin chain (`log` in front keeps every query on it) are attacked.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use nodecache_conformance::ports::PortPicker;

/// The genuine address every name resolves to; forgeries claim [`POISON`].
const GENUINE: [u8; 4] = [192, 0, 2, 1];
const POISON: [u8; 4] = [6, 6, 6, 6];

/// What the scripted upstream saw of one query.
#[derive(Clone, Copy, Debug)]
struct SeenQuery {
    port: u16,
    id: u16,
}

/// How the upstream treats a query, chosen by the first label of its name.
#[derive(Clone, Copy)]
enum Script {
    /// Answer at once.
    Plain,
    /// Send forgeries to the query's own port first (wrong ID, wrong name, wrong type, wrong
    /// class, and a perfect one from another port), then answer after `delay`.
    ForgeAtPort(Duration),
    /// Tell the test, then answer after `delay` (the test sprays forgeries meanwhile).
    Slow(Duration),
}

/// A UDP upstream on 127.0.0.1 that answers `A` queries with [`GENUINE`], following a
/// [`Script`] per name prefix, and records the source port and ID of every query.
struct Upstream {
    sock: Arc<UdpSocket>,
    seen: Arc<Mutex<HashMap<String, Vec<SeenQuery>>>>,
    stop: Arc<AtomicBool>,
}

fn reply(id: u16, name: &str, qtype: RecordType, class: DNSClass, addr: [u8; 4]) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.metadata.recursion_available = true;
    let qname = Name::from_ascii(name).expect("name");
    let mut q = Query::query(qname.clone(), qtype);
    q.set_query_class(class);
    m.add_query(q);
    let mut rr = Record::from_rdata(qname, 300, RData::A(std::net::Ipv4Addr::from(addr).into()));
    rr.dns_class = class;
    m.add_answer(rr);
    m.to_vec().expect("encode")
}

impl Upstream {
    fn start(script: fn(&str) -> Script) -> Upstream {
        Self::start_on("127.0.0.1:0", script)
    }

    fn start_on(bind: &str, script: fn(&str) -> Script) -> Upstream {
        let sock = Arc::new(UdpSocket::bind(bind).expect("bind upstream"));
        sock.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
        let seen: Arc<Mutex<HashMap<String, Vec<SeenQuery>>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (s, seen2, stop2) = (sock.clone(), seen.clone(), stop.clone());
        std::thread::spawn(move || {
            let other = UdpSocket::bind(SocketAddr::new(s.local_addr().expect("addr").ip(), 0)).expect("bind second");
            let mut buf = [0u8; 1500];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, from)) = s.recv_from(&mut buf) else { continue };
                let Ok(q) = Message::from_vec(&buf[..n]) else { continue };
                let Some(question) = q.queries.first() else { continue };
                let name = question.name().to_ascii().to_ascii_lowercase();
                let id = q.metadata.id;
                seen2.lock().expect("lock").entry(name.clone()).or_default().push(SeenQuery { port: from.port(), id });
                let genuine = reply(id, &name, RecordType::A, DNSClass::IN, GENUINE);
                match script(&name) {
                    Script::Plain => {
                        let _ = s.send_to(&genuine, from);
                    }
                    Script::ForgeAtPort(delay) => {
                        for forged in [
                            reply(id ^ 0x5a5a, &name, RecordType::A, DNSClass::IN, POISON),
                            reply(id, "other.example.", RecordType::A, DNSClass::IN, POISON),
                            reply(id, &name, RecordType::AAAA, DNSClass::IN, POISON),
                            reply(id, &name, RecordType::A, DNSClass::CH, POISON),
                        ] {
                            let _ = s.send_to(&forged, from);
                        }
                        // Perfect in every field but the source port.
                        let _ = other.send_to(&reply(id, &name, RecordType::A, DNSClass::IN, POISON), from);
                        let s = s.clone();
                        std::thread::spawn(move || {
                            std::thread::sleep(delay);
                            let _ = s.send_to(&genuine, from);
                        });
                    }
                    Script::Slow(delay) => {
                        let s = s.clone();
                        std::thread::spawn(move || {
                            std::thread::sleep(delay);
                            let _ = s.send_to(&genuine, from);
                        });
                    }
                }
            }
        });
        Upstream { sock, seen, stop }
    }

    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().expect("addr")
    }

    /// The queries seen for `name` (lower case, FQDN).
    fn seen(&self, name: &str) -> Vec<SeenQuery> {
        self.seen.lock().expect("lock").get(name).cloned().unwrap_or_default()
    }

    /// Source ports of every query seen.
    fn ports(&self) -> Vec<u16> {
        self.seen.lock().expect("lock").values().flatten().map(|s| s.port).collect()
    }

    /// Waits until a query for `name` arrived.
    fn wait_for(&self, name: &str) -> SeenQuery {
        let mut found = None;
        eventually(Duration::from_secs(5), || {
            found = self.seen(name).first().copied();
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("the upstream never saw {name}"))
    }

    /// Sends, from the upstream's own address and port (as a spoofer forging it would),
    /// a reply for `name` with [`POISON`] under every message ID to `port`.
    fn spray(&self, name: &str, port: u16) {
        let to: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut forged = reply(0, name, RecordType::A, DNSClass::IN, POISON);
        for id in 0..=u16::MAX {
            forged[..2].copy_from_slice(&id.to_be_bytes());
            let _ = self.sock.send_to(&forged, to);
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn a_records(m: &Message) -> Vec<[u8; 4]> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.octets()),
            _ => None,
        })
        .collect()
}

/// The two ways a miss reaches the upstream: the server's direct path, and the chain.
fn corefiles(upstream: SocketAddr, prom: u16) -> [(&'static str, String); 2] {
    let block = |extra: &str| {
        format!(".:{{PORT}} {{\n    prometheus 127.0.0.1:{prom}\n{extra}    cache\n    forward . {upstream}\n}}\n")
    };
    [("direct path", block("")), ("chain", block("    log\n"))]
}

/// Forgeries that reach the query's own socket but differ from it in ID, name, type or class,
/// and a perfect forgery from another port, are all dropped: the client and the cache get the
/// genuine answer, and the dropped datagrams are counted by reason.
#[test]
fn forged_replies_on_the_wrong_port_id_or_question_are_dropped() {
    let up = Upstream::start(|name| {
        if name.starts_with("forge") {
            Script::ForgeAtPort(Duration::from_millis(150))
        } else {
            Script::Plain
        }
    });
    for (path, corefile) in corefiles(up.addr(), PortPicker.tcp().expect("port")) {
        let prom: u16 = corefile
            .split("prometheus 127.0.0.1:")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .expect("prometheus port");
        let srv = Server::start(&corefile);
        let name = format!("forge-{}.example.", path.replace(' ', "-"));
        let first = Q::new(&name, RecordType::A).ask(srv.addr);
        assert_eq!(a_records(&first), vec![GENUINE], "{path}: the client got a forgery: {first:?}");
        let cached = Q::new(&name, RecordType::A).ask(srv.addr);
        assert_eq!(a_records(&cached), vec![GENUINE], "{path}: the cache holds a forgery");
        let page = metrics_page(prom);
        let dropped = |reason: &str| {
            metric_total(&page, "nodecache_forward_dropped_replies_total{", &format!("reason=\"{reason}\""))
        };
        assert!(dropped("id") >= 1.0, "{path}: wrong-ID forgery not counted:\n{page}");
        // The direct path gives a query up to the chain at the first datagram that is not
        // its reply; the chain waits on, dropping the rest. Either way the other-name,
        // other-type and other-class forgeries are seen and dropped at least once.
        assert!(dropped("question") >= 1.0, "{path}: wrong-question forgeries not counted:\n{page}");
    }
}

/// The attack of the issue: the attacker asks a name of its own, learns the port the cache's
/// upstream query came from, then asks the victim name and sprays forged replies under all
/// 65,536 IDs at that port while the upstream is slow. With a fixed or reused port this
/// poisons every victim; with a new random port per query it poisons none. Eight victims per
/// path by default; `NODECACHE_SPOOF_VICTIMS=200` runs the full probe.
#[test]
fn spoofing_the_port_of_an_earlier_query_poisons_nothing() {
    let up = Upstream::start(|name| {
        if name.starts_with("victim") {
            Script::Slow(Duration::from_millis(500))
        } else {
            Script::Plain
        }
    });
    for (path, corefile) in corefiles(up.addr(), PortPicker.tcp().expect("port")) {
        let srv = Server::start(&corefile);
        let mut poisoned = Vec::new();
        let victims: usize = std::env::var("NODECACHE_SPOOF_VICTIMS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
        for i in 0..victims {
            let tag = format!("{}-{i}", path.replace(' ', "-"));
            let own = format!("attacker-{tag}.example.");
            Q::new(&own, RecordType::A).ask(srv.addr);
            let learnt = up.wait_for(&own).port;
            let victim = format!("victim-{tag}.example.");
            let client = {
                let (addr, victim) = (srv.addr, victim.clone());
                std::thread::spawn(move || Q::new(&victim, RecordType::A).ask(addr))
            };
            let real = up.wait_for(&victim);
            up.spray(&victim, learnt);
            let answered = client.join().expect("client thread");
            let cached = Q::new(&victim, RecordType::A).ask(srv.addr);
            if a_records(&answered) != vec![GENUINE] || a_records(&cached) != vec![GENUINE] {
                poisoned.push((victim.clone(), learnt, real.port));
            }
            assert_ne!(learnt, real.port, "{path}: the victim's query reused the attacker's port");
        }
        assert!(poisoned.is_empty(), "{path}: poisoned (name, learnt port, real port): {poisoned:?}");
        eprintln!("{path}: {victims} victims, {} poisoned", poisoned.len());
    }
    // Ports drawn at random from the ~28,000 ephemeral ones meet again only by chance (the
    // birthday bound: about 11 repeats among 800).
    let ports = up.ports();
    let distinct: HashSet<u16> = ports.iter().copied().collect();
    assert!(distinct.len() * 100 >= ports.len() * 95, "ports repeat across queries: {ports:?}");
}

/// Every upstream query carries a random ID and leaves from its own port, on both paths.
#[test]
fn upstream_queries_use_a_new_port_and_a_random_id_each() {
    let up = Upstream::start(|_| Script::Plain);
    for (path, corefile) in corefiles(up.addr(), PortPicker.tcp().expect("port")) {
        let srv = Server::start(&corefile);
        let names: Vec<String> = (0..30).map(|i| format!("n{i}-{}.example.", path.replace(' ', "-"))).collect();
        for name in &names {
            let m = Q::new(name, RecordType::A).ask(srv.addr);
            assert_eq!(a_records(&m), vec![GENUINE], "{path}: {name}");
        }
        let seen: Vec<SeenQuery> = names.iter().flat_map(|n| up.seen(n)).collect();
        assert_eq!(seen.len(), names.len(), "{path}: one upstream query per name");
        let ports: HashSet<u16> = seen.iter().map(|s| s.port).collect();
        let ids: HashSet<u16> = seen.iter().map(|s| s.id).collect();
        assert!(ports.len() >= names.len() - 1, "{path}: ports repeat: {seen:?}");
        assert!(ids.len() >= names.len() - 2, "{path}: IDs repeat: {seen:?}");
    }
}

/// An IPv6 upstream: the direct path takes its replies (one upstream query per name, none
/// handed to the chain for a second try) and drops forgeries just the same.
#[test]
fn ipv6_upstreams_are_answered_on_the_direct_path() {
    let up = Upstream::start_on("[::1]:0", |name| {
        if name.starts_with("forge") {
            Script::ForgeAtPort(Duration::from_millis(100))
        } else {
            Script::Plain
        }
    });
    let srv = Server::start(&format!(".:{{PORT}} {{\n    cache\n    forward . {}\n}}\n", up.addr()));
    for i in 0..5 {
        let name = format!("v6-{i}.example.");
        let m = Q::new(&name, RecordType::A).ask(srv.addr);
        assert_eq!(a_records(&m), vec![GENUINE], "{name}");
        assert_eq!(up.seen(&name).len(), 1, "{name}: asked once, on the direct path");
    }
    let m = Q::new("forge-v6.example.", RecordType::A).ask(srv.addr);
    assert_eq!(a_records(&m), vec![GENUINE]);
}
