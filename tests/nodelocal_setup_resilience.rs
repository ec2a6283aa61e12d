//! "Node setup never fails the node": the real `node-cache` binary runs inside a network
//! namespace each test creates (`ip netns add`, `ip netns exec`), serving a small Corefile
//! (a `hosts` block) on the local IP.
//!
//! - On a kernel without `dummy` links (this VM's), the interface comes up as a portless
//!   bridge with the local IP, DNS answers on it, and teardown removes it.
//! - With a real `iptables` script first in `PATH` that fails like a held xtables lock
//!   (exit 4), the process keeps running and serving, logs the errors and counts them in
//!   `coredns_nodecache_setup_errors_total{errortype="iptables_lock"}`, retrying with
//!   backoff; once the script is replaced by one that runs the real iptables, a retry adds
//!   the rules.
//!
//! - With no `iptables` in `PATH` at all, the errors are counted as `iptables` and retried;
//!   once one appears, the version probe is repeated and a retry adds the rules.
//! - A persistent interface failure at startup is retried a few times with backoff, counted
//!   each time, and left pending for the periodic loop (library API, in the namespace).
//!
//! - Two instances with one `-statedir` (a surge rolling update): the first one's exit leaves
//!   the interface, the rules and DNS to the second; the last one out tears down.
//!
//! Skipped (with the reason printed) when not root, when `ip`/`iptables`/`dig` are missing,
//! or when a namespace cannot be created. The host is never touched.

mod netns_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const LOCAL_IP: &str = "169.254.20.10";
const IFACE: &str = "nodelocaldns";
/// `-syncinterval 3600ns` is an hour in node-cache's units: every pass after the first one
/// in these tests is a backoff retry.
const SYNC_INTERVAL: &str = "3600ns";
const METRICS: &str = "127.0.0.1:9353";

static COUNTER: AtomicUsize = AtomicUsize::new(0);
/// One namespace at a time: iptables calls contend for the xtables lock.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const BASE_COREFILE: &str = "\
.:53 {
    bind 169.254.20.10
    hosts {
        192.0.2.7 www.example.org
    }
}
";

/// Fails every call but `--version` like iptables does when another process holds the
/// xtables lock.
const LOCKED_IPTABLES: &str = "#!/bin/sh\n\
if [ \"$1\" = --version ]; then echo 'iptables v1.8.9 (nf_tables)'; exit 0; fi\n\
echo 'Another app is currently holding the xtables lock. Perhaps you want to use the -w option?' >&2\n\
exit 4\n";

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
        let name = format!("ncresil-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
        if !Command::new("ip").args(["netns", "add", &name]).status().is_ok_and(|s| s.success()) {
            println!("SKIP: cannot create a network namespace");
            return None;
        }
        let ns = Netns { name, _serial: serial };
        assert!(ns.exec(&["ip", "link", "set", "lo", "up"]).0, "lo up");
        Some(ns)
    }

    /// `ip netns exec <ns> <args>`; `ip` by absolute path, since a child `PATH` set on the
    /// command is also where `ip` itself would be looked up.
    fn command(&self, args: &[&str]) -> Command {
        let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("ip");
        let mut c = Command::new(ip);
        c.args(["netns", "exec", &self.name]).args(args);
        c
    }

    /// Runs a command inside the namespace; returns (success, stdout).
    fn exec(&self, args: &[&str]) -> (bool, String) {
        let out = self.command(args).stderr(Stdio::null()).output().expect("ip netns exec");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Whether the kernel can create `dummy` links.
    fn dummy_supported(&self) -> bool {
        let ok = self.exec(&["ip", "link", "add", "ncprobe", "type", "dummy"]).0;
        if ok {
            self.exec(&["ip", "link", "del", "ncprobe"]);
        }
        ok
    }

    /// `ip -d link show` of the interface (None when it does not exist).
    fn link_details(&self) -> Option<String> {
        let (ok, out) = self.exec(&["ip", "-d", "-o", "link", "show", "dev", IFACE]);
        ok.then_some(out)
    }

    fn addrs(&self) -> Option<String> {
        let (ok, out) = self.exec(&["ip", "-o", "addr", "show", "dev", IFACE]);
        ok.then_some(out)
    }

    /// The number of nodelocaldns rules, per the real iptables.
    fn node_rules(&self) -> usize {
        ["raw", "filter"]
            .iter()
            .map(|t| {
                self.exec(&["/usr/sbin/iptables", "-w", "5", "-t", t, "-S"])
                    .1
                    .lines()
                    .filter(|l| l.contains("NodeLocal DNS Cache"))
                    .count()
            })
            .sum()
    }

    /// `dig +short` over UDP inside the namespace.
    fn dig(&self, name: &str) -> String {
        let at = format!("@{LOCAL_IP}");
        self.exec(&["dig", &at, "-p", "53", "+time=2", "+tries=1", "+short", name, "A"]).1.trim().to_string()
    }

    /// `GET /metrics` from node-cache's metrics listener inside the namespace.
    fn metrics(&self) -> String {
        netns_common::run_in(&format!("/run/netns/{}", self.name), || {
            let Ok(mut s) = TcpStream::connect(METRICS) else { return String::new() };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = write!(s, "GET /metrics HTTP/1.0\r\nHost: {METRICS}\r\n\r\n");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// The node-cache process; killed on drop if still running.
struct NodeCache {
    child: Child,
}

impl NodeCache {
    fn assert_running(&mut self, files: &Files) {
        if let Some(st) = self.child.try_wait().expect("try_wait") {
            panic!("node-cache exited: {st}; log:\n{}", files.log());
        }
    }

    /// SIGTERM, then the exit status (within 30 s).
    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: signalling our own child.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "kill(SIGTERM)");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            assert!(Instant::now() < deadline, "node-cache did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
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

/// Per-run files: the base Corefile, the generated one, pidfile, log, and a `bin` directory
/// put first in node-cache's `PATH`.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("Corefile.base"), BASE_COREFILE).expect("write base");
        std::fs::create_dir_all(dir.path().join("bin")).expect("mkdir bin");
        Files { dir }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn s(&self, rel: &str) -> String {
        self.p(rel).display().to_string()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.p("node-cache.log")).unwrap_or_default()
    }

    /// Installs `bin/<name>` with `script`, atomically (a rename), so a running node-cache
    /// never executes a half-written file.
    fn install_tool(&self, name: &str, script: &str) {
        let tmp = self.p(&format!("bin/.{name}.tmp"));
        std::fs::write(&tmp, script).expect("write tool");
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).expect("chmod tool");
        std::fs::rename(&tmp, self.p(&format!("bin/{name}"))).expect("install tool");
    }
}

/// Starts node-cache with `files`' `bin` directory first in `PATH`.
fn start(ns: &Netns, files: &Files) -> NodeCache {
    let path = format!("{}:{}", files.s("bin"), std::env::var("PATH").unwrap_or_default());
    start_with_path(ns, files, &path)
}

fn start_with_path(ns: &Netns, files: &Files, path: &str) -> NodeCache {
    start_with_args(ns, files, path, &[])
}

fn start_with_args(ns: &Netns, files: &Files, path: &str, extra: &[&str]) -> NodeCache {
    let (conf, base, pid) = (files.s("Corefile"), files.s("Corefile.base"), files.s("pid"));
    let mut args = vec![
        env!("CARGO_BIN_EXE_node-cache"),
        "-localip",
        LOCAL_IP,
        "-conf",
        &conf,
        "-basecorefile",
        &base,
        "-pidfile",
        &pid,
        "-syncinterval",
        SYNC_INTERVAL,
        "-metrics-listen-address",
        METRICS,
    ];
    args.extend_from_slice(extra);
    let log = std::fs::File::create(files.p("node-cache.log")).expect("log file");
    let child = ns
        .command(&args)
        .env("PATH", path)
        .stdout(log.try_clone().expect("dup log"))
        .stderr(log)
        .spawn()
        .expect("spawn node-cache");
    NodeCache { child }
}

fn wait_for(what: &str, limit: Duration, files: &Files, mut ok: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < limit, "timed out after {limit:?} waiting for {what}; log:\n{}", files.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    t0.elapsed()
}

/// The value of `coredns_nodecache_setup_errors_total{errortype="<kind>"}`, if exposed.
fn setup_errors(metrics: &str, kind: &str) -> Option<u64> {
    let prefix = format!("coredns_nodecache_setup_errors_total{{errortype=\"{kind}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok())
}

/// A script that runs the real iptables.
fn real_iptables_wrapper() -> String {
    let real = Path::new("/usr/sbin/iptables");
    let real = if real.exists() { real.display().to_string() } else { "/sbin/iptables".to_string() };
    format!("#!/bin/sh\nexec {real} \"$@\"\n")
}

/// Waits for the interface with the local IP and a DNS answer on it; returns the link kind.
fn assert_serving(ns: &Netns, files: &Files) -> String {
    let t = wait_for("the local IP on the interface", Duration::from_secs(30), files, || {
        ns.addrs().is_some_and(|a| a.contains(&format!("inet {LOCAL_IP}/32")))
    });
    println!("interface up after {t:?}");
    let t = wait_for("a DNS answer on the local IP", Duration::from_secs(30), files, || {
        ns.dig("www.example.org.") == "192.0.2.7"
    });
    println!("first answer after a further {t:?}");
    let details = ns.link_details().expect("interface exists");
    if details.contains(" dummy ") {
        "dummy".into()
    } else if details.contains(" bridge ") {
        "bridge".into()
    } else {
        panic!("unexpected link kind: {details}")
    }
}

#[test]
fn interface_falls_back_to_a_bridge_and_serves() {
    let Some(ns) = Netns::create() else { return };
    let files = Files::new();
    let dummy = ns.dummy_supported();
    let mut nc = start(&ns, &files);
    let kind = assert_serving(&ns, &files);
    nc.assert_running(&files);
    let log = files.log();
    if dummy {
        println!("NOTE: this kernel has dummy links; the fallback is not exercised");
        assert_eq!(kind, "dummy");
    } else {
        assert_eq!(kind, "bridge", "fallback kind on a kernel without dummy links");
        assert_eq!(log.matches("as a bridge with no ports instead").count(), 1, "one fallback line:\n{log}");
        assert!(!log.contains("Failed to add non-existent interface"), "{log}");
    }
    wait_for("the 12 rules", Duration::from_secs(30), &files, || ns.node_rules() == 12);
    let m = ns.metrics();
    assert_eq!(setup_errors(&m, "interface_add"), Some(0), "{m}");
    assert_eq!(setup_errors(&m, "interface_check"), Some(0), "{m}");

    // Teardown removes the interface whatever its kind.
    let st = nc.terminate();
    assert!(st.success(), "exit status {st}; log:\n{}", files.log());
    assert_eq!(ns.link_details(), None, "{IFACE} deleted by teardown");
    assert_eq!(ns.node_rules(), 0);
}

#[test]
fn iptables_failures_are_retried_while_serving() {
    let Some(ns) = Netns::create() else { return };
    let files = Files::new();
    files.install_tool("iptables", LOCKED_IPTABLES);
    let mut nc = start(&ns, &files);
    assert_serving(&ns, &files);

    // Every pass fails: the counter keeps growing across backoff retries, DNS keeps working.
    let mut first = None;
    wait_for("iptables_lock errors from a first pass", Duration::from_secs(30), &files, || {
        first = setup_errors(&ns.metrics(), "iptables_lock").filter(|v| *v > 0);
        first.is_some()
    });
    let first = first.unwrap_or_default();
    wait_for("iptables_lock errors from a retry", Duration::from_secs(30), &files, || {
        setup_errors(&ns.metrics(), "iptables_lock").is_some_and(|v| v > first)
    });
    nc.assert_running(&files);
    assert_eq!(ns.dig("www.example.org."), "192.0.2.7", "still serving while iptables fails");
    assert_eq!(ns.node_rules(), 0);
    let log = files.log();
    assert!(log.contains("Error checking/adding iptables rule"), "{log}");
    assert!(log.contains("holding the xtables lock"), "{log}");
    assert!(log.contains("Network setup failed; retrying in"), "{log}");

    // The lock is released: the next retry adds the rules, and the errors stop.
    files.install_tool("iptables", &real_iptables_wrapper());
    let t =
        wait_for("the 12 rules after the lock is released", Duration::from_secs(60), &files, || ns.node_rules() == 12);
    println!("rules added {t:?} after the lock was released");
    let settled = setup_errors(&ns.metrics(), "iptables_lock");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(setup_errors(&ns.metrics(), "iptables_lock"), settled, "no errors after the retry succeeded");
    nc.assert_running(&files);
    assert_eq!(ns.dig("www.example.org."), "192.0.2.7");
    assert!(files.log().contains("Added back nodelocaldns rule"), "{}", files.log());

    let st = nc.terminate();
    assert!(st.success(), "exit status {st}; log:\n{}", files.log());
    assert_eq!(ns.node_rules(), 0, "teardown removed the rules");
}

#[test]
fn startup_interface_failure_is_retried_then_left_to_the_loop() {
    use nodecache::nodelocal::flags::{self, FlagsOutcome};
    use nodecache::nodelocal::metrics::{self, SetupErrorKind};
    use nodecache::nodelocal::setup::{NetworkSetup, STARTUP_RETRIES};

    let Some(ns) = Netns::create() else { return };
    // A name longer than IFNAMSIZ: every creation fails with a netlink error.
    let args: Vec<String> = ["-localip", LOCAL_IP, "-setupiptables=false", "-interfacename", "a-name-longer-than-15"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let f = match flags::parse("node-cache", &args) {
        Ok(FlagsOutcome::Run { flags, .. }) => *flags,
        other => panic!("{other:?}"),
    };
    let setup = NetworkSetup::from_flags(&f);
    let before = metrics::value(SetupErrorKind::InterfaceAdd);
    let t0 = Instant::now();
    let ok = netns_common::run_in(&format!("/run/netns/{}", ns.name), || setup.init_networking());
    let took = t0.elapsed();
    assert!(!ok);
    assert_eq!(metrics::value(SetupErrorKind::InterfaceAdd), before + 1 + STARTUP_RETRIES as u64);
    assert!(took >= Duration::from_millis(3500), "backoff 0.5 + 1 + 2 s, took {took:?}");
    assert_eq!(setup.pending_retry(), Some(false), "the interface pass stays pending for the loop");
}

#[test]
fn missing_iptables_is_retried_until_it_appears() {
    let Some(ns) = Netns::create() else { return };
    let files = Files::new();
    // PATH holds only the (empty) bin directory: no iptables, no iptables-save.
    let mut nc = start_with_path(&ns, &files, &files.s("bin"));
    assert_serving(&ns, &files);
    let mut first = None;
    wait_for("iptables errors", Duration::from_secs(30), &files, || {
        first = setup_errors(&ns.metrics(), "iptables").filter(|v| *v > 0);
        first.is_some()
    });
    let first = first.unwrap_or_default();
    wait_for("iptables errors from a retry", Duration::from_secs(30), &files, || {
        setup_errors(&ns.metrics(), "iptables").is_some_and(|v| v > first)
    });
    nc.assert_running(&files);
    assert!(files.log().contains("executable file not found"), "{}", files.log());

    // iptables appears: the version probe is repeated, and a retry adds the rules with -C/-I.
    files.install_tool("iptables", &real_iptables_wrapper());
    let t = wait_for("the 12 rules once iptables exists", Duration::from_secs(60), &files, || ns.node_rules() == 12);
    println!("rules added {t:?} after iptables appeared");
    nc.assert_running(&files);
    assert_eq!(ns.dig("www.example.org."), "192.0.2.7");
    let st = nc.terminate();
    assert!(st.success(), "exit status {st}; log:\n{}", files.log());
    assert_eq!(ns.node_rules(), 0, "teardown removed the rules");
}

#[test]
fn the_first_of_two_instances_leaves_the_setup_to_the_second() {
    let Some(ns) = Netns::create() else { return };
    let state = tempfile::tempdir().expect("statedir");
    let statedir = state.path().display().to_string();
    let path = std::env::var("PATH").unwrap_or_default();
    let (first_files, second_files) = (Files::new(), Files::new());
    let mut first = start_with_args(&ns, &first_files, &path, &["-statedir", &statedir]);
    assert_serving(&ns, &first_files);
    wait_for("the 12 rules", Duration::from_secs(30), &first_files, || ns.node_rules() == 12);
    let mut second = start_with_args(&ns, &second_files, &path, &["-statedir", &statedir]);
    wait_for("the second instance's pidfile", Duration::from_secs(30), &second_files, || {
        second_files.p("pid").exists()
    });
    second.assert_running(&second_files);

    assert!(first.terminate().success(), "log:\n{}", first_files.log());
    assert!(
        first_files.log().contains("another instance serves on this node"),
        "the first instance says why it left the setup:\n{}",
        first_files.log()
    );
    assert!(ns.addrs().is_some_and(|a| a.contains(&format!("inet {LOCAL_IP}/32"))), "the interface stays");
    assert_eq!(ns.node_rules(), 12, "the rules stay");
    assert_eq!(ns.dig("www.example.org."), "192.0.2.7", "the second instance answers");
    second.assert_running(&second_files);

    assert!(second.terminate().success(), "log:\n{}", second_files.log());
    assert!(ns.link_details().is_none(), "the last one out removed the interface");
    assert_eq!(ns.node_rules(), 0, "the last one out removed the rules");
}

#[test]
fn an_interface_that_cannot_be_made_does_not_stop_the_process() {
    let Some(ns) = Netns::create() else { return };
    let files = Files::new();
    let path = std::env::var("PATH").unwrap_or_default();
    // A name longer than IFNAMSIZ: every creation fails. The listeners bind the local IP anyway.
    let mut nc = start_with_args(&ns, &files, &path, &["-interfacename", "a-name-longer-than-15"]);
    wait_for("interface errors counted", Duration::from_secs(30), &files, || {
        setup_errors(&ns.metrics(), "interface_add").unwrap_or(0) >= 2
    });
    nc.assert_running(&files);
    // Once the address exists on the node (here: put on lo by hand), DNS is served on it.
    assert!(ns.exec(&["ip", "addr", "add", &format!("{LOCAL_IP}/32"), "dev", "lo"]).0, "address added");
    wait_for("a DNS answer on the local IP", Duration::from_secs(10), &files, || {
        ns.dig("www.example.org.") == "192.0.2.7"
    });
    nc.assert_running(&files);
    assert!(nc.terminate().success(), "log:\n{}", files.log());
}
