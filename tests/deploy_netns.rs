//! End-to-end proof of classic mode: the real `node-cache` binary runs inside a fresh network
//! namespace (`ip netns exec`), with an upstream fixture inside the same namespace. Checks the
//! interface, the exact iptables rules, repair within a sync interval, DNS answers on both
//! local IPs, `/health`, and teardown on SIGTERM (or none with `-skipteardown`).
//!
//! Skipped (with the reason printed) when not root or when `ip`/`iptables`/`dig` are missing.
//! The host's interfaces and rules are never touched: everything lives in the namespace, which
//! is deleted on drop, also when an assertion fails.

mod netns_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nodecache_conformance::fixture::{Behaviour, Fixture};
use nodecache_conformance::zone::ZoneSet;
use pretty_assertions::assert_eq;

const LOCAL_IP: &str = "169.254.20.10";
const SECOND_IP: &str = "10.0.0.10";
const C1: &str = "NodeLocal DNS Cache: skip conntrack";
const C2: &str = "NodeLocal DNS Cache: allow DNS traffic";
/// `-syncinterval 2ns` means 2 s in node-cache's units.
const SYNC: Duration = Duration::from_secs(2);

static COUNTER: AtomicUsize = AtomicUsize::new(0);
/// One namespace at a time: iptables calls contend for the xtables lock.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const ZONES: &str = "\
$ORIGIN cluster.local.
@ 3600 IN SOA ns.cluster.local. admin.cluster.local. 1 7200 3600 1209600 30
kubernetes.default.svc 30 IN A 10.96.0.1
$ORIGIN example.org.
@ 3600 IN SOA ns.example.org. admin.example.org. 1 7200 3600 1209600 30
www 300 IN A 192.0.2.7
";

fn have(cmd: &str, arg: &str) -> bool {
    Command::new(cmd).arg(arg).output().is_ok_and(|o| o.status.success())
}

/// A named network namespace with `lo` up, deleted on drop.
struct Netns {
    name: String,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Netns {
    fn create() -> Option<Netns> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            println!("SKIP: not root");
            return None;
        }
        for (cmd, arg) in [("ip", "-V"), ("iptables", "--version"), ("dig", "-v")] {
            if !have(cmd, arg) {
                println!("SKIP: `{cmd}` not installed (apt-get install iproute2 iptables bind9-dnsutils)");
                return None;
            }
        }
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let name = format!("ncdeploy-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
        if !Command::new("ip").args(["netns", "add", &name]).status().is_ok_and(|s| s.success()) {
            println!("SKIP: cannot create a network namespace");
            return None;
        }
        let ns = Netns { name, _serial: serial };
        ns.must(&["ip", "link", "set", "lo", "up"]);
        Some(ns)
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Runs `f` on a thread that joined this namespace (verified before `f` runs).
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        netns_common::run_in(&self.path(), f)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(args);
        c
    }

    /// Runs a command inside the namespace; returns (success, stdout).
    fn exec(&self, args: &[&str]) -> (bool, String) {
        let out = self.command(args).stderr(Stdio::null()).output().expect("ip netns exec");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn must(&self, args: &[&str]) -> String {
        let (ok, out) = self.exec(args);
        assert!(ok, "{args:?} failed");
        out
    }

    /// Whether the kernel can create `dummy` links (this VM's kernel may lack the module).
    fn dummy_supported(&self) -> bool {
        let ok = self.exec(&["ip", "link", "add", "ncprobe", "type", "dummy"]).0;
        if ok {
            self.exec(&["ip", "link", "del", "ncprobe"]);
        }
        ok
    }

    /// Every nodelocaldns rule as `iptables -t <table> -S` prints it, per table, sorted.
    fn node_rules(&self) -> Vec<String> {
        let mut out = Vec::new();
        for table in ["raw", "filter"] {
            for line in self.must(&["iptables", "-w", "5", "-t", table, "-S"]).lines() {
                if line.contains("NodeLocal DNS Cache") {
                    out.push(format!("{table}: {line}"));
                }
            }
        }
        out.sort();
        out
    }

    fn addrs(&self) -> Option<String> {
        let (ok, out) = self.exec(&["ip", "-o", "addr", "show", "dev", "nodelocaldns"]);
        ok.then_some(out)
    }

    /// `dig` inside the namespace; the answer section in `+short` form.
    fn dig(&self, server: &str, name: &str, tcp: bool) -> String {
        let at = format!("@{server}");
        let mut args = vec!["dig", &at, "-p", "53", "+time=2", "+tries=1", "+short", name, "A"];
        if tcp {
            args.push("+tcp");
        }
        self.exec(&args).1.trim().to_string()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// The node-cache process; killed (SIGKILL) on drop if still running.
struct NodeCache {
    child: Child,
}

impl NodeCache {
    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid")
    }

    fn sigterm(&self) {
        // SAFETY: sending a signal to our own child's pid.
        let rc = unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM)");
    }

    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            assert!(Instant::now() < deadline, "node-cache did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn assert_running(&mut self) {
        if let Some(st) = self.child.try_wait().expect("try_wait") {
            panic!("node-cache exited early: {st}");
        }
    }
}

impl Drop for NodeCache {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Files for one run: a filled copy of the shipped base Corefile, a kube-dns ConfigMap dir.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("corefiles/node-local-dns.Corefile.base"),
        )
        .expect("read shipped base Corefile");
        // What the DaemonSet's sed does; node-cache fills __PILLAR__CLUSTER__DNS__ (from the
        // upstream Service env) and __PILLAR__UPSTREAM__SERVERS__ (from the kube-dns ConfigMap).
        let filled = base
            .replace("__PILLAR__DNS__DOMAIN__", "cluster.local")
            .replace("__PILLAR__LOCAL__DNS__", LOCAL_IP)
            .replace("__PILLAR__DNS__SERVER__", SECOND_IP);
        std::fs::create_dir_all(dir.path().join("coredns")).expect("mkdir");
        std::fs::write(dir.path().join("coredns/Corefile.base"), filled).expect("write base");
        std::fs::create_dir_all(dir.path().join("kube-dns")).expect("mkdir");
        std::fs::write(dir.path().join("kube-dns/upstreamNameservers"), "[\"127.0.0.1\"]").expect("write cm");
        Files { dir }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn s(&self, rel: &str) -> String {
        self.p(rel).display().to_string()
    }
}

fn start(ns: &Netns, files: &Files, extra: &[&str]) -> NodeCache {
    let (conf, base, cm, pid) =
        (files.s("Corefile"), files.s("coredns/Corefile.base"), files.s("kube-dns"), files.s("pid"));
    let localip = format!("{LOCAL_IP},{SECOND_IP}");
    let mut args = vec![
        env!("CARGO_BIN_EXE_node-cache"),
        "-localip",
        &localip,
        "-conf",
        &conf,
        "-basecorefile",
        &base,
        "-kubednscm",
        &cm,
        "-upstreamsvc",
        "kube-dns-upstream",
        "-pidfile",
        &pid,
        "-syncinterval",
        "2ns",
    ];
    args.extend_from_slice(extra);
    let log = std::fs::File::create(files.p("node-cache.log")).expect("log file");
    let child = ns
        .command(&args)
        .env("KUBE_DNS_UPSTREAM_SERVICE_HOST", "127.0.0.1")
        .stdout(log.try_clone().expect("dup log"))
        .stderr(log)
        .spawn()
        .expect("spawn node-cache");
    NodeCache { child }
}

/// The 24 rules of spec §4.2 for both local IPs, as `iptables -S` prints them.
fn expected_rules() -> Vec<String> {
    let mut v = Vec::new();
    for ip in [LOCAL_IP, SECOND_IP] {
        for p in ["tcp", "udp"] {
            let m = format!("-p {p} -m {p}");
            v.push(format!("raw: -A PREROUTING -d {ip}/32 {m} --dport 53 -m comment --comment \"{C1}\" -j NOTRACK"));
            v.push(format!("filter: -A INPUT -d {ip}/32 {m} --dport 53 -m comment --comment \"{C2}\" -j ACCEPT"));
            v.push(format!("raw: -A OUTPUT -s {ip}/32 {m} --sport 53 -m comment --comment \"{C1}\" -j NOTRACK"));
            v.push(format!("filter: -A OUTPUT -s {ip}/32 {m} --sport 53 -m comment --comment \"{C2}\" -j ACCEPT"));
            v.push(format!("raw: -A OUTPUT -d {ip}/32 {m} --dport 53 -m comment --comment \"{C1}\" -j NOTRACK"));
        }
        let m = "-p tcp -m tcp";
        v.push(format!("raw: -A OUTPUT -d {ip}/32 {m} --dport 8080 -m comment --comment \"{C1}\" -j NOTRACK"));
        v.push(format!("raw: -A OUTPUT -s {ip}/32 {m} --sport 8080 -m comment --comment \"{C1}\" -j NOTRACK"));
    }
    v.sort();
    v
}

/// The same rules as node-cache's argv for `iptables -C` (spec order: comment is one argument).
fn spec_argvs() -> Vec<Vec<String>> {
    let mut v = Vec::new();
    let rule = |table: &str, chain: &str, rest: &[&str], comment: &str| {
        let mut a: Vec<String> = ["-t", table, "-C", chain].iter().map(|s| s.to_string()).collect();
        a.extend(rest.iter().map(|s| s.to_string()));
        a.extend(["-m".into(), "comment".into(), "--comment".into(), comment.to_string()]);
        a
    };
    for ip in [LOCAL_IP, SECOND_IP] {
        for p in ["tcp", "udp"] {
            v.push(rule("raw", "PREROUTING", &["-p", p, "-d", ip, "--dport", "53", "-j", "NOTRACK"], C1));
            v.push(rule("filter", "INPUT", &["-p", p, "-d", ip, "--dport", "53", "-j", "ACCEPT"], C2));
            v.push(rule("raw", "OUTPUT", &["-p", p, "-s", ip, "--sport", "53", "-j", "NOTRACK"], C1));
            v.push(rule("filter", "OUTPUT", &["-p", p, "-s", ip, "--sport", "53", "-j", "ACCEPT"], C2));
            v.push(rule("raw", "OUTPUT", &["-p", p, "-d", ip, "--dport", "53", "-j", "NOTRACK"], C1));
        }
        v.push(rule("raw", "OUTPUT", &["-p", "tcp", "-d", ip, "--dport", "8080", "-j", "NOTRACK"], C1));
        v.push(rule("raw", "OUTPUT", &["-p", "tcp", "-s", ip, "--sport", "8080", "-j", "NOTRACK"], C1));
    }
    v
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
    t0.elapsed()
}

fn http_get(ns: &Netns, addr: &str, path: &str) -> String {
    let (addr, path) = (addr.to_string(), path.to_string());
    ns.run(move || {
        let mut s = TcpStream::connect(&addr).expect("connect health");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("write");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
}

fn log(files: &Files) -> String {
    std::fs::read_to_string(files.p("node-cache.log")).unwrap_or_default()
}

/// Starts the fixture on 127.0.0.1:53 inside the namespace, node-cache, and waits until the
/// pidfile exists and all 24 rules are in place.
fn bring_up(ns: &Netns, files: &Files, extra: &[&str]) -> (Fixture, NodeCache) {
    let zones = ZoneSet::parse(ZONES).expect("zones");
    let fixture = ns.run(|| Fixture::start_at(Behaviour { zones, ..Behaviour::default() }, true, 53)).expect("fixture");
    if !ns.dummy_supported() {
        println!("NOTE: this kernel lacks dummy links; pre-creating nodelocaldns as a bridge (reused as-is)");
        ns.must(&["ip", "link", "add", "nodelocaldns", "type", "bridge"]);
    }
    let mut nc = start(ns, files, extra);
    let t = wait_for("pidfile", Duration::from_secs(30), || files.p("pid").exists());
    println!("pidfile after {t:?}");
    nc.assert_running();
    let want = expected_rules();
    let t = wait_for("24 rules", Duration::from_secs(30), || ns.node_rules().len() >= want.len());
    println!("rules after a further {t:?}");
    nc.assert_running();
    (fixture, nc)
}

fn assert_network_in_place(ns: &Netns) {
    assert_eq!(ns.node_rules(), expected_rules());
    for argv in spec_argvs() {
        let mut full = vec!["iptables", "-w", "5"];
        full.extend(argv.iter().map(String::as_str));
        assert!(ns.exec(&full).0, "iptables -C failed for {argv:?}");
    }
    let addrs = ns.addrs().expect("nodelocaldns exists");
    assert!(addrs.contains(&format!("inet {LOCAL_IP}/32")), "{addrs}");
    assert!(addrs.contains(&format!("inet {SECOND_IP}/32")), "{addrs}");
}

#[test]
fn classic_mode_serves_repairs_and_tears_down() {
    let Some(ns) = Netns::create() else { return };
    let files = Files::new();
    let (fixture, mut nc) = bring_up(&ns, &files, &[]);
    assert_network_in_place(&ns);
    let pid = std::fs::read_to_string(files.p("pid")).expect("pidfile");
    assert_eq!(pid, format!("{}\n", nc.pid()));
    let conf = std::fs::read_to_string(files.p("Corefile")).expect("generated Corefile");
    assert!(conf.contains("forward . 127.0.0.1 {"), "cluster DNS from $KUBE_DNS_UPSTREAM_SERVICE_HOST:\n{conf}");
    assert!(conf.contains(&format!("bind {LOCAL_IP} {SECOND_IP}")), "{conf}");

    // DNS on both local IPs: the cluster zone goes to the upstream over TCP (force_tcp), the
    // rest to the kube-dns ConfigMap's upstreamNameservers.
    let t = wait_for("an answer for the cluster zone", Duration::from_secs(15), || {
        ns.dig(LOCAL_IP, "kubernetes.default.svc.cluster.local.", false) == "10.96.0.1"
    });
    println!("first answer after {t:?}");
    assert!(fixture.tcp_queries() >= 1, "force_tcp to the upstream: {:?}", fixture.seen());
    wait_for("an answer from upstreamNameservers", Duration::from_secs(15), || {
        ns.dig(SECOND_IP, "www.example.org.", false) == "192.0.2.7"
    });
    // Without force_tcp the client's transport is kept: UDP in, UDP to the upstream.
    assert!(fixture.seen().iter().any(|s| s.question == "www.example.org. A" && !s.tcp), "{:?}", fixture.seen());
    assert_eq!(ns.dig(LOCAL_IP, "www.example.org.", true), "192.0.2.7", "TCP listener on {LOCAL_IP}");
    let health = http_get(&ns, &format!("{LOCAL_IP}:8080"), "/health");
    assert!(health.starts_with("HTTP/1.1 200") || health.starts_with("HTTP/1.0 200"), "{health}");
    assert!(health.ends_with("OK"), "{health}");
    let metrics = http_get(&ns, "127.0.0.1:9353", "/metrics");
    assert!(metrics.contains("coredns_nodecache_setup_errors_total{errortype=\"iptables\"} 0"), "{metrics}");

    // A rule and an address deleted by another agent come back within a sync interval.
    let del = ["iptables", "-w", "5", "-t", "filter", "-D", "INPUT", "-p", "udp", "-d", LOCAL_IP, "--dport", "53"];
    let mut del: Vec<&str> = del.to_vec();
    del.extend(["-j", "ACCEPT", "-m", "comment", "--comment", C2]);
    ns.must(&del);
    ns.must(&["ip", "addr", "del", &format!("{SECOND_IP}/32"), "dev", "nodelocaldns"]);
    assert_eq!(ns.node_rules().len(), 23);
    let t = wait_for("repair", SYNC * 4, || {
        ns.node_rules().len() == 24 && ns.addrs().is_some_and(|a| a.contains(&format!("inet {SECOND_IP}/32")))
    });
    println!("repaired after {t:?} (sync interval {SYNC:?})");
    assert_network_in_place(&ns);
    nc.assert_running();

    // SIGTERM: pidfile removed, rules and interface gone, exit 0.
    nc.sigterm();
    let st = nc.wait(Duration::from_secs(30));
    assert!(st.success(), "exit status {st}; log:\n{}", log(&files));
    assert!(!files.p("pid").exists(), "pidfile removed on exit");
    assert_eq!(ns.node_rules(), Vec::<String>::new());
    assert_eq!(ns.addrs(), None, "nodelocaldns deleted by teardown");
    let l = log(&files);
    assert!(l.contains("Tearing down"), "{l}");
}

#[test]
fn skipteardown_keeps_rules_and_interface() {
    let Some(ns) = Netns::create() else { return };
    let files = Files::new();
    let (_fixture, mut nc) = bring_up(&ns, &files, &["-skipteardown"]);
    assert_network_in_place(&ns);
    wait_for("an answer", Duration::from_secs(15), || {
        ns.dig(LOCAL_IP, "kubernetes.default.svc.cluster.local.", true) == "10.96.0.1"
    });
    nc.sigterm();
    let st = nc.wait(Duration::from_secs(30));
    assert!(st.success(), "exit status {st}; log:\n{}", log(&files));
    assert_network_in_place(&ns);
    assert!(!log(&files).contains("Tearing down"), "{}", log(&files));
}
