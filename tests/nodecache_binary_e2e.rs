//! End-to-end test of the real `node-cache` binary (issue 5): the kube-up template and a kube-dns
//! ConfigMap go in, the generated Corefile is compared byte for byte with a hand-written expected
//! file, every server block is queried through real sockets against upstream responders, the
//! metrics, health and pidfile are checked, and SIGTERM must exit 0. A second test drives the
//! invalid inputs through the binary and checks their exact outcomes.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use nodecache_conformance::ports::PortPicker;
use pretty_assertions::assert_eq;

const BIN: &str = env!("CARGO_BIN_EXE_node-cache");
const BASE: &str = include_str!("../corefiles/node-local-dns.Corefile.base");
const EXPECTED: &str = include_str!("data/node-cache/expected.Corefile");

/// One query a responder received: question name and whether it came over TCP.
type Seen = (String, bool);

/// A tiny authoritative responder (UDP and TCP on one address): answers every A question with
/// `answer`, every other type with an empty NOERROR, and records what it saw.
struct Responder {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl Responder {
    fn start(ip: Ipv4Addr, port: u16, answer: Ipv4Addr) -> std::io::Result<Self> {
        let (udp, tcp) = bind_pair(ip, port)?;
        let addr = udp.local_addr()?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        udp.set_read_timeout(Some(Duration::from_millis(100)))?;
        tcp.set_nonblocking(true)?;
        let (s, st) = (seen.clone(), stop.clone());
        thread::spawn(move || {
            let mut buf = vec![0u8; 65535];
            while !st.load(Ordering::SeqCst) {
                let Ok((n, peer)) = udp.recv_from(&mut buf) else { continue };
                if let Some(reply) = answer_for(&buf[..n], false, answer, &s) {
                    let _ = udp.send_to(&reply, peer);
                }
            }
        });
        let (s, st) = (seen.clone(), stop.clone());
        thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match tcp.accept() {
                    Ok((conn, _)) => {
                        let s = s.clone();
                        thread::spawn(move || tcp_conn(conn, answer, &s));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(Self { addr, seen, stop })
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The received queries for `name` (the loop plugin's HINFO probes are other names).
    fn seen_for(&self, name: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|(q, _)| q.eq_ignore_ascii_case(name)).collect()
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn bind_pair(ip: Ipv4Addr, port: u16) -> std::io::Result<(UdpSocket, TcpListener)> {
    if port != 0 {
        return Ok((UdpSocket::bind((ip, port))?, TcpListener::bind((ip, port))?));
    }
    let mut last = None;
    for _ in 0..50 {
        let udp = UdpSocket::bind((ip, 0))?;
        match TcpListener::bind((ip, udp.local_addr()?.port())) {
            Ok(l) => return Ok((udp, l)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free port")))
}

fn tcp_conn(mut conn: TcpStream, answer: Ipv4Addr, seen: &Mutex<Vec<Seen>>) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    loop {
        let mut len = [0u8; 2];
        if conn.read_exact(&mut len).is_err() {
            return;
        }
        let mut data = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if conn.read_exact(&mut data).is_err() {
            return;
        }
        let Some(reply) = answer_for(&data, true, answer, seen) else { return };
        let mut out = (reply.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&reply);
        if conn.write_all(&out).is_err() {
            return;
        }
    }
}

fn answer_for(data: &[u8], tcp: bool, answer: Ipv4Addr, seen: &Mutex<Vec<Seen>>) -> Option<Vec<u8>> {
    let req = Message::from_vec(data).ok()?;
    let q = req.queries.first()?.clone();
    seen.lock().unwrap_or_else(|e| e.into_inner()).push((q.name.to_string(), tcp));
    let mut resp = Message::new(req.metadata.id, MessageType::Response, OpCode::Query);
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.metadata.authoritative = true;
    resp.queries = req.queries.clone();
    if q.query_type == RecordType::A {
        resp.answers.push(Record::from_rdata(q.name.clone(), 60, RData::A(A(answer))));
    }
    resp.to_vec().ok()
}

/// Sends one query over UDP and returns the reply.
fn query_udp(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut msg = Message::new(0x4242, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.queries.push(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let wire = msg.to_vec().unwrap();
    let mut buf = vec![0u8; 65535];
    for _ in 0..3 {
        sock.send_to(&wire, server).unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            return Message::from_vec(&buf[..n]).unwrap();
        }
    }
    panic!("no reply from {server} for {name} {qtype}");
}

fn a_answers(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

/// `GET path` over HTTP/1.0; returns (status line, body).
fn http_get(port: u16, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.lines().next().unwrap_or_default().to_string(), body.to_string())
}

/// The binary under test; killed on drop so a failing assertion leaves no process behind.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(args: &[String], env: &[(&str, &str)], log: PathBuf) -> Self {
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(args).env_remove("KUBE_DNS_UPSTREAM_SERVICE_HOST").stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.stdout(out).stderr(err).spawn().unwrap();
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_timeout(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.contains(needle) || Instant::now() > deadline {
                return log;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait_file(path: &Path) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(t) = std::fs::read_to_string(path) {
            if !t.is_empty() {
                return Some(t);
            }
        }
        thread::sleep(Duration::from_millis(20));
    }
    None
}

/// The kube-up sed (IPVS mode: the DNS server placeholder removed) plus our free loopback ports.
fn base_template(dns: u16, health: u16, prom: u16) -> String {
    BASE.replace("__PILLAR__DNS__DOMAIN__", "cluster.local")
        .replace(",__PILLAR__DNS__SERVER__", "")
        .replace(" __PILLAR__DNS__SERVER__", "")
        .replace(":9253", &format!("127.0.0.1:{prom}"))
        .replace(":53", &format!(":{dns}"))
        .replace(":8080", &format!(":{health}"))
}

struct Layout {
    dir: tempfile::TempDir,
}

impl Layout {
    fn new(base: &str, kubedns: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/Corefile.base"), base).unwrap();
        std::fs::create_dir_all(dir.path().join("kube-dns")).unwrap();
        for (k, v) in kubedns {
            std::fs::write(dir.path().join("kube-dns").join(k), v).unwrap();
        }
        Self { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn args(&self, localip: &str, dns: u16, metrics: u16) -> Vec<String> {
        let p = |s: &str| self.path(s).to_string_lossy().into_owned();
        [
            "-localip".to_string(),
            localip.to_string(),
            "-setupinterface=false".into(),
            "-setupiptables=false".into(),
            "-conf".into(),
            p("Corefile"),
            "-basecorefile".into(),
            p("etc/Corefile.base"),
            "-kubednscm".into(),
            p("kube-dns"),
            "-upstreamsvc".into(),
            "kube-dns-upstream".into(),
            "-pidfile".into(),
            p("pid"),
            "-metrics-listen-address".into(),
            format!("127.0.0.1:{metrics}"),
            "-dns.port".into(),
            dns.to_string(),
        ]
        .to_vec()
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Lines of a Prometheus text page whose metric name starts with `prefix`.
fn metric_lines<'a>(page: &'a str, prefix: &str) -> Vec<&'a str> {
    page.lines().filter(|l| !l.starts_with('#') && l.starts_with(prefix)).collect()
}

#[test]
fn node_cache_binary_serves_the_generated_corefile() {
    let started = Instant::now();
    let mut ports = PortPicker;
    let (dns, health, prom, metrics) =
        (ports.dns().unwrap(), ports.tcp().unwrap(), ports.tcp().unwrap(), ports.tcp().unwrap());
    let cluster = if is_root() {
        match Responder::start(Ipv4Addr::new(127, 0, 0, 2), 53, Ipv4Addr::new(10, 0, 0, 2)) {
            Ok(r) => Some(r),
            Err(e) => {
                println!("SKIP: cannot bind 127.0.0.2:53 ({e}); cluster.local/in-addr.arpa queries not run");
                None
            }
        }
    } else {
        println!("SKIP: not root, cannot bind 127.0.0.2:53; cluster.local/in-addr.arpa queries not run");
        None
    };
    let stub = Responder::start(Ipv4Addr::LOCALHOST, 0, Ipv4Addr::new(10, 0, 0, 3)).unwrap();
    let up = Responder::start(Ipv4Addr::LOCALHOST, 0, Ipv4Addr::new(10, 0, 0, 4)).unwrap();
    let (stub_port, up_port) = (stub.addr.port(), up.addr.port());

    let layout = Layout::new(
        &base_template(dns, health, prom),
        &[
            ("stubDomains", &format!("{{\"corp.example\":[\"127.0.0.1:{stub_port}\"]}}")),
            ("upstreamNameservers", &format!("[\"127.0.0.1:{up_port}\"]")),
        ],
    );
    let mut proc = Proc::spawn(
        &layout.args("127.0.0.1", dns, metrics),
        &[("KUBE_DNS_UPSTREAM_SERVICE_HOST", "127.0.0.2")],
        layout.path("log"),
    );
    let pid_text = wait_file(&layout.path("pid"));
    let t_ready = started.elapsed();
    assert_eq!(pid_text, Some(format!("{}\n", proc.child.id())), "log:\n{}", proc.log());

    let expected = EXPECTED
        .replace("@DNSPORT@", &dns.to_string())
        .replace("@PROMPORT@", &prom.to_string())
        .replace("@HEALTHPORT@", &health.to_string())
        .replace("@UPPORT@", &up_port.to_string())
        .replace("@STUBPORT@", &stub_port.to_string());
    let written = std::fs::read_to_string(layout.path("Corefile")).unwrap();
    assert_eq!(written, expected);

    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, dns));
    if let Some(cluster) = &cluster {
        let r = query_udp(server, "svc.default.svc.cluster.local.", RecordType::A);
        assert_eq!(a_answers(&r), vec!["10.0.0.2".to_string()]);
        assert_eq!(
            cluster.seen_for("svc.default.svc.cluster.local."),
            vec![("svc.default.svc.cluster.local.".into(), true)]
        );
        let r = query_udp(server, "4.3.2.10.in-addr.arpa.", RecordType::PTR);
        assert_eq!(r.metadata.response_code, hickory_proto::op::ResponseCode::NoError);
        assert_eq!(cluster.seen_for("4.3.2.10.in-addr.arpa."), vec![("4.3.2.10.in-addr.arpa.".into(), true)]);
    }
    let r = query_udp(server, "host.corp.example.", RecordType::A);
    assert_eq!(a_answers(&r), vec!["10.0.0.3".to_string()]);
    assert_eq!(stub.seen_for("host.corp.example."), vec![("host.corp.example.".into(), false)]);
    let r = query_udp(server, "www.example.org.", RecordType::A);
    assert_eq!(a_answers(&r), vec!["10.0.0.4".to_string()]);
    assert_eq!(up.seen_for("www.example.org."), vec![("www.example.org.".into(), false)]);
    // A repeat is a cache hit: the upstream sees nothing new.
    let r = query_udp(server, "www.example.org.", RecordType::A);
    assert_eq!(a_answers(&r), vec!["10.0.0.4".to_string()]);
    assert_eq!(up.seen_for("www.example.org.").len(), 1);

    let (status, page) = http_get(prom, "/metrics");
    assert!(status.contains(" 200"), "{status}");
    let server_label = format!("server=\"dns://127.0.0.1:{dns}\"");
    let root_zone = |zone: &str| -> Vec<String> {
        metric_lines(&page, "coredns_dns_requests_total{")
            .into_iter()
            .filter(|l| l.contains(&server_label) && l.contains(&format!("zone=\"{zone}\"")))
            .map(str::to_string)
            .collect()
    };
    assert!(!root_zone(".").is_empty(), "no requests_total for zone . :\n{page}");
    assert!(metric_lines(&page, "coredns_dns_responses_total{").iter().any(|l| l.contains(&server_label)), "{page}");
    assert!(
        metric_lines(&page, "coredns_cache_").iter().any(|l| l.contains(&server_label) && l.contains("zones=\".\"")),
        "{page}"
    );
    let proxy = |to: &str| {
        metric_lines(&page, "coredns_proxy_")
            .into_iter()
            .chain(metric_lines(&page, "coredns_forward_"))
            .any(|l| l.contains(&format!("to=\"{to}\"")))
    };
    assert!(proxy(&format!("127.0.0.1:{up_port}")), "{page}");
    if cluster.is_some() {
        assert!(!root_zone("cluster.local.").is_empty(), "{page}");
        assert!(
            metric_lines(&page, "coredns_cache_")
                .iter()
                .any(|l| l.contains(&server_label) && l.contains("zones=\"cluster.local.\"")),
            "{page}"
        );
        assert!(proxy("127.0.0.2:53"), "{page}");
    }
    // Two `.` queries (one a cache hit) over UDP; stub blocks have no prometheus line, so no
    // request metrics for their zone.
    assert_eq!(root_zone(".").iter().filter(|l| l.contains("proto=\"udp\"") && l.ends_with(" 2")).count(), 1, "{page}");
    assert!(
        metric_lines(&page, "coredns_cache_hits_total{")
            .iter()
            .any(|l| l.contains("zones=\".\"") && l.contains("type=\"success\"") && l.ends_with(" 1")),
        "{page}"
    );
    assert!(!root_zone("corp.example.").iter().any(|_| true), "{page}");

    let (status, page) = http_get(metrics, "/metrics");
    assert!(status.contains(" 200"), "{status}");
    assert!(page.lines().any(|l| l == "coredns_nodecache_setup_errors_total{errortype=\"configmap\"} 0"), "{page}");

    let (status, body) = http_get(health, "/health");
    assert!(status.contains(" 200"), "{status}");
    assert_eq!(body, "OK");

    let log = proc.log();
    assert!(log.contains("Updated Corefile with 1 custom stubdomains and upstream servers"), "{log}");

    // SAFETY: sending SIGTERM to our own child process.
    unsafe {
        libc::kill(proc.child.id() as libc::pid_t, libc::SIGTERM);
    }
    let status = proc.wait_timeout(Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "log:\n{}", proc.log());
    assert!(!layout.path("pid").exists());
    assert!(proc.log().contains("SIGTERM: Shutting down servers then terminating"));
    println!("timings: ready {t_ready:?}, total {:?}", started.elapsed());
}

/// A started binary and its files; the process is killed before the directory is removed.
struct Run {
    proc: Proc,
    layout: Layout,
}

/// Runs the binary on `kubedns` files and returns (Corefile, log) once `needle` is logged.
fn start_with(kubedns: &[(&str, &str)], env: &[(&str, &str)], needle: &str) -> (String, String, Run) {
    let mut ports = PortPicker;
    let (dns, health, prom, metrics) =
        (ports.dns().unwrap(), ports.tcp().unwrap(), ports.tcp().unwrap(), ports.tcp().unwrap());
    let layout = Layout::new(&base_template(dns, health, prom), kubedns);
    let proc = Proc::spawn(&layout.args("127.0.0.1", dns, metrics), env, layout.path("log"));
    let log = proc.wait_log(needle);
    let corefile = wait_file(&layout.path("Corefile")).unwrap_or_default();
    (corefile, log, Run { proc, layout })
}

#[test]
fn node_cache_binary_rejects_invalid_inputs() {
    let started = Instant::now();
    let ok_env = [("KUBE_DNS_UPSTREAM_SERVICE_HOST", "127.0.0.2")];
    for (localip, want) in [
        ("", "[FATAL] Error parsing flags - invalid localip specified - \"\", Exiting"),
        (
            "127.0.0.1,::1",
            "[FATAL] Error parsing flags - unexpected IP Family for localIP - \"::1\", want IPv6=false, Exiting",
        ),
    ] {
        let layout = Layout::new("", &[]);
        let mut proc = Proc::spawn(&layout.args(localip, 1053, 1), &ok_env, layout.path("log"));
        let status = proc.wait_timeout(Duration::from_secs(10));
        assert_eq!(status.and_then(|s| s.code()), Some(1), "{localip:?}");
        assert!(proc.log().lines().any(|l| l == want), "{localip:?}: {}", proc.log());
        assert!(!layout.path("Corefile").exists());
    }

    // Invalid JSON, too many upstreams and a bad stub domain: the startup sync fails, the
    // Corefile keeps /etc/resolv.conf and no stub block.
    // The wording is kubernetes/dns's `sync.go` / `config.go`; for invalid JSON only the prefix is
    // checked (the decoder's own message follows it).
    let bad: [(&str, &str, &str); 3] = [
        (
            "upstreamNameservers",
            "[\"127.0.0.1:5353\"",
            "[ERROR] Invalid configuration for upstreamNameservers, ignoring update: ",
        ),
        (
            "upstreamNameservers",
            "[\"1.1.1.1\",\"1.0.0.1\",\"8.8.8.8\",\"8.8.4.4\"]",
            "[ERROR] Invalid configuration: upstreamNameserver cannot have more than three entries (value was ",
        ),
        (
            "stubDomains",
            "{\"bad_domain!\":[\"127.0.0.1\"]}",
            "[ERROR] Invalid configuration: invalid domain name: \"bad_domain!\" (value was ",
        ),
    ];
    for (key, value, why) in bad {
        let (corefile, log, run) = start_with(&[(key, value)], &ok_env, "Failed to sync kube-dns config directory");
        let sync = format!(
            "[ERROR] Failed to sync kube-dns config directory {}, err: ",
            run.layout.path("kube-dns").display()
        );
        assert!(log.lines().any(|l| l.starts_with(&sync)), "{key}={value}: {log}");
        assert!(log.lines().any(|l| l.starts_with(why)), "{key}={value}: {log}");
        if why.contains("(value was ") {
            let err = why.trim_start_matches("[ERROR] Invalid configuration: ").trim_end_matches(" (value was ");
            assert!(log.lines().any(|l| l == format!("{sync}{err}")), "{key}={value}: {log}");
        }
        assert!(corefile.contains("\n    forward . /etc/resolv.conf\n"), "{key}={value}: {corefile}");
        assert!(!corefile.contains("corp.example") && !corefile.contains("bad_domain"), "{corefile}");
    }

    // Missing upstream env: WARNING and `<nil>` in the Corefile.
    let (corefile, log, mut run) = start_with(&[], &[], "Unable to lookup IP address");
    // CoreDNS then cannot load `forward . <nil>` and exits 1.
    let status = run.proc.wait_timeout(Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{}", run.proc.log());
    assert!(
        run.proc.log().lines().any(|l| l.starts_with("plugin/forward: ") && l.contains("\"<nil>\"")),
        "{}",
        run.proc.log()
    );
    assert!(
        log.contains(
            "Unable to lookup IP address of Upstream service kube-dns-upstream, env $KUBE_DNS_UPSTREAM_SERVICE_HOST ``"
        ),
        "{log}"
    );
    assert!(log.contains("[WARNING]"), "{log}");
    assert!(corefile.contains("\n    forward . <nil> {\n            force_tcp\n    }\n"), "{corefile}");
    println!("timings: invalid inputs {:?}", started.elapsed());
}
