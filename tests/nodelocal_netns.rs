//! Dummy interface and iptables rules against the real kernel, inside a network namespace
//! each test creates (`ip netns add`); the code under test runs on a thread that joined that
//! namespace. Skipped (with the reason printed) when not root or when `ip`/`iptables` are
//! missing. The host's interfaces and rules are never touched.

mod netns_common;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nodecache::nodelocal::flags::{self, FlagsOutcome, NodeCacheFlags};
use nodecache::nodelocal::iptables::{Iptables, COMMENT_ALLOW_TRAFFIC, COMMENT_SKIP_CONNTRACK};
use nodecache::nodelocal::metrics::{self, SetupErrorKind};
use nodecache::nodelocal::netif::NetifManager;
use nodecache::nodelocal::setup::{NetworkSetup, SetupParams};
use pretty_assertions::assert_eq;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Serialises the namespace tests: iptables calls contend for the xtables lock.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn have(cmd: &str) -> bool {
    Command::new(cmd).arg("--version").output().is_ok_and(|o| o.status.success())
        || Command::new(cmd).arg("-V").output().is_ok_and(|o| o.status.success())
}

/// A named network namespace, deleted on drop.
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
        for cmd in ["ip", "iptables", "ip6tables"] {
            if !have(cmd) {
                println!("SKIP: `{cmd}` not installed");
                return None;
            }
        }
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let name = format!("nctest-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
        let ok = Command::new("ip").args(["netns", "add", &name]).status().is_ok_and(|s| s.success());
        if !ok {
            println!("SKIP: cannot create a network namespace");
            return None;
        }
        Some(Netns { name, _serial: serial })
    }

    /// Whether the kernel can create `dummy` links (some VM kernels lack the module).
    fn dummy_supported(&self) -> bool {
        let ok = Command::new("ip")
            .args(["netns", "exec", &self.name, "ip", "link", "add", "ncprobe", "type", "dummy"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            self.exec(&["ip", "link", "del", "ncprobe"]);
        }
        ok
    }

    /// Pre-creates `name` as a bridge when dummy links are unsupported, so the
    /// existing-link path (any link type is reused) still runs.
    fn prepare_link(&self, name: &str) {
        if !self.dummy_supported() {
            println!("NOTE: kernel lacks dummy links; pre-creating {name} as a bridge");
            self.exec(&["ip", "link", "add", name, "type", "bridge"]);
        }
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Runs `f` on a thread inside this namespace (verified before `f` runs).
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        netns_common::run_in(&self.path(), f)
    }

    /// Runs a command inside the namespace from the outside and returns stdout.
    fn exec(&self, args: &[&str]) -> String {
        let out = Command::new("ip").args(["netns", "exec", &self.name]).args(args).output().expect("ip netns exec");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn rules(&self, cmd: &str, table: &str, chain: &str) -> Vec<String> {
        self.exec(&[cmd, "-t", table, "-S", chain])
            .lines()
            .filter(|l| l.starts_with("-A "))
            .map(str::to_string)
            .collect()
    }

    fn all_rules(&self, cmd: &str) -> usize {
        ["raw", "filter"]
            .iter()
            .map(|t| self.exec(&[cmd, "-t", t, "-S"]).lines().filter(|l| l.contains("NodeLocal DNS Cache")).count())
            .sum()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

fn flags(args: &[&str]) -> NodeCacheFlags {
    let v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    match flags::parse("node-cache", &v) {
        Ok(FlagsOutcome::Run { flags, .. }) => *flags,
        other => panic!("{other:?}"),
    }
}

#[test]
fn dummy_interface_lifecycle() {
    let Some(ns) = Netns::create() else { return };
    if !ns.dummy_supported() {
        println!("SKIP: kernel cannot create dummy links");
        return;
    }
    let mgr = NetifManager::new(&["169.254.20.10".parse().unwrap(), "10.96.0.10".parse().unwrap()]);
    let (existed, res) = ns.run(|| mgr.ensure_dummy_device("nodelocaldns"));
    assert!(!existed);
    assert_eq!(res, Ok(()));
    let link = ns.exec(&["ip", "-d", "-o", "link", "show", "dev", "nodelocaldns"]);
    assert!(link.contains(" dummy "), "{link}");
    assert!(link.contains("state DOWN"), "never set UP: {link}");
    let addrs = ns.exec(&["ip", "-o", "addr", "show", "dev", "nodelocaldns"]);
    assert!(addrs.contains("inet 169.254.20.10/32"), "{addrs}");
    assert!(addrs.contains("inet 10.96.0.10/32"), "{addrs}");

    // An address removed by someone else comes back; existing ones are not an error.
    ns.exec(&["ip", "addr", "del", "10.96.0.10/32", "dev", "nodelocaldns"]);
    let (existed, res) = ns.run(|| mgr.ensure_dummy_device("nodelocaldns"));
    assert!(existed);
    assert_eq!(res, Ok(()));
    let addrs = ns.exec(&["ip", "-o", "addr", "show", "dev", "nodelocaldns"]);
    assert!(addrs.contains("inet 10.96.0.10/32"), "{addrs}");

    assert_eq!(
        ns.run(|| mgr.add_dummy_device("nodelocaldns")),
        Err(nodecache::nodelocal::netif::NetifError("Link nodelocaldns exists".into()))
    );
    assert_eq!(ns.run(|| mgr.remove_dummy_device("nodelocaldns")), Ok(()));
    assert_eq!(ns.run(|| NetifManager::link_exists("nodelocaldns")), Ok(false));
    assert!(ns.run(|| mgr.remove_dummy_device("nodelocaldns")).is_err());
}

#[test]
fn existing_link_of_another_type_is_reused() {
    let Some(ns) = Netns::create() else { return };
    ns.exec(&["ip", "link", "add", "nodelocaldns", "type", "bridge"]);
    let mgr = NetifManager::new(&["fd00::10".parse().unwrap()]);
    let (existed, res) = ns.run(|| mgr.ensure_dummy_device("nodelocaldns"));
    assert!(existed);
    assert_eq!(res, Ok(()));
    let addrs = ns.exec(&["ip", "-o", "addr", "show", "dev", "nodelocaldns"]);
    assert!(addrs.contains("inet6 fd00::10/128"), "{addrs}");
}

#[test]
fn interface_creation_failure_counts_add_and_check() {
    let Some(ns) = Netns::create() else { return };
    let f = flags(&["-localip", "169.254.20.10", "-setupiptables=false", "-interfacename", "a-name-longer-than-15"]);
    let setup = NetworkSetup::from_flags(&f);
    let (add, check) = (metrics::value(SetupErrorKind::InterfaceAdd), metrics::value(SetupErrorKind::InterfaceCheck));
    ns.run(|| setup.setup_networking(true));
    assert_eq!(metrics::value(SetupErrorKind::InterfaceAdd), add + 1);
    assert_eq!(metrics::value(SetupErrorKind::InterfaceCheck), check + 1);
}

#[test]
fn rules_are_ensured_repaired_and_torn_down_ipv4() {
    let Some(ns) = Netns::create() else { return };
    ns.prepare_link("nodelocaldns");
    let f = flags(&["-localip", "169.254.20.10,10.96.0.10", "-conf", "/etc/Corefile"]);
    let setup = ns.run(|| NetworkSetup::from_flags(&f));
    assert_eq!(setup.rules().len(), 24);

    // Init: interface only.
    ns.run(|| setup.setup_networking(false));
    assert_eq!(ns.all_rules("iptables"), 0);
    assert!(ns.exec(&["ip", "-o", "addr", "show", "dev", "nodelocaldns"]).contains("169.254.20.10/32"));

    ns.run(|| setup.setup_networking(true));
    assert_eq!(ns.all_rules("iptables"), 24);
    // Prepended: the last rule inserted into raw PREROUTING comes first.
    let pre = ns.rules("iptables", "raw", "PREROUTING");
    assert_eq!(
        pre,
        vec![
            format!("-A PREROUTING -d 10.96.0.10/32 -p udp -m udp --dport 53 -m comment --comment \"{COMMENT_SKIP_CONNTRACK}\" -j NOTRACK"),
            format!("-A PREROUTING -d 10.96.0.10/32 -p tcp -m tcp --dport 53 -m comment --comment \"{COMMENT_SKIP_CONNTRACK}\" -j NOTRACK"),
            format!("-A PREROUTING -d 169.254.20.10/32 -p udp -m udp --dport 53 -m comment --comment \"{COMMENT_SKIP_CONNTRACK}\" -j NOTRACK"),
            format!("-A PREROUTING -d 169.254.20.10/32 -p tcp -m tcp --dport 53 -m comment --comment \"{COMMENT_SKIP_CONNTRACK}\" -j NOTRACK"),
        ]
    );
    let input = ns.rules("iptables", "filter", "INPUT");
    assert_eq!(input.len(), 4);
    assert!(input.iter().all(|r| r.contains(COMMENT_ALLOW_TRAFFIC) && r.ends_with("-j ACCEPT")));
    let raw_out = ns.rules("iptables", "raw", "OUTPUT");
    assert_eq!(raw_out.len(), 12);
    assert!(raw_out.iter().any(|r| r.contains("-s 169.254.20.10/32 -p tcp -m tcp --sport 8080")), "{raw_out:?}");

    // Idempotent; a rule deleted by someone else comes back.
    ns.run(|| setup.setup_networking(true));
    assert_eq!(ns.all_rules("iptables"), 24);
    ns.exec(&[
        "iptables",
        "-t",
        "filter",
        "-D",
        "INPUT",
        "-p",
        "udp",
        "-d",
        "169.254.20.10",
        "--dport",
        "53",
        "-j",
        "ACCEPT",
        "-m",
        "comment",
        "--comment",
        COMMENT_ALLOW_TRAFFIC,
    ]);
    assert_eq!(ns.all_rules("iptables"), 23);
    ns.run(|| setup.setup_networking(true));
    assert_eq!(ns.all_rules("iptables"), 24);

    // Duplicates added by another agent are removed too by teardown.
    for _ in 0..2 {
        ns.exec(&[
            "iptables",
            "-t",
            "raw",
            "-I",
            "OUTPUT",
            "-p",
            "tcp",
            "-d",
            "10.96.0.10",
            "--dport",
            "8080",
            "-j",
            "NOTRACK",
            "-m",
            "comment",
            "--comment",
            COMMENT_SKIP_CONNTRACK,
        ]);
    }
    assert_eq!(ns.all_rules("iptables"), 26);
    assert_eq!(ns.run(|| setup.teardown()), Ok(()));
    assert_eq!(ns.all_rules("iptables"), 0);
    assert!(setup.is_stopped());
    assert_eq!(ns.run(|| NetifManager::link_exists("nodelocaldns")), Ok(false));
}

#[test]
fn ipv6_uses_ip6tables_and_custom_ports() {
    let Some(ns) = Netns::create() else { return };
    ns.prepare_link("nlcache6");
    let f = flags(&["-localip", "fd00::10", "-p", "1053", "-health-port", "9090", "-interfacename", "nlcache6"]);
    let setup = ns.run(|| NetworkSetup::from_flags(&f));
    ns.run(|| setup.setup_networking(true));
    assert_eq!(ns.all_rules("ip6tables"), 12);
    assert_eq!(ns.all_rules("iptables"), 0);
    let raw_out = ns.rules("ip6tables", "raw", "OUTPUT");
    assert!(raw_out.iter().any(|r| r.contains("-d fd00::10/128 -p tcp -m tcp --dport 9090")), "{raw_out:?}");
    assert!(raw_out.iter().any(|r| r.contains("--sport 1053")), "{raw_out:?}");
    assert!(ns.exec(&["ip", "-o", "addr", "show", "dev", "nlcache6"]).contains("fd00::10/128"));
    assert_eq!(ns.run(|| setup.teardown()), Ok(()));
    assert_eq!(ns.all_rules("ip6tables"), 0);
}

#[test]
fn skipped_parts_are_left_alone() {
    let Some(ns) = Netns::create() else { return };
    let f = flags(&["-localip", "169.254.20.10", "-setupinterface=false"]);
    let setup = ns.run(|| NetworkSetup::from_flags(&f));
    ns.run(|| setup.setup_networking(true));
    assert_eq!(ns.all_rules("iptables"), 12);
    assert_eq!(ns.run(|| NetifManager::link_exists("nodelocaldns")), Ok(false));
    let f = flags(&["-localip", "169.254.20.10", "-setupiptables=false"]);
    let only_if = ns.run(|| NetworkSetup::from_flags(&f));
    assert!(only_if.rules().is_empty());
    ns.run(|| only_if.teardown()).ok();
    assert_eq!(ns.all_rules("iptables"), 12, "a manager without -setupiptables never deletes rules");
}

#[test]
fn pidfile_gates_the_first_full_setup() {
    let Some(ns) = Netns::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("node-cache.pid");
    let f = flags(&["-localip", "169.254.20.10", "-setupinterface=false", "-pidfile", pidfile.to_str().unwrap()]);
    let setup = Arc::new(ns.run(|| NetworkSetup::from_flags(&f)));
    let handle = ns.run(|| setup.spawn_periodic(Duration::from_secs(3600)).unwrap());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(ns.all_rules("iptables"), 0, "no rules before the pidfile exists");
    std::fs::write(&pidfile, "1\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ns.all_rules("iptables") < 12 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(ns.all_rules("iptables"), 12);
    setup.stop();
    handle.join().unwrap();
}

#[test]
fn periodic_loop_repairs_rules_each_interval() {
    let Some(ns) = Netns::create() else { return };
    let f = flags(&["-localip", "169.254.20.10", "-setupinterface=false", "-syncinterval", "1ns"]);
    let interval = f.sync_interval().unwrap();
    assert_eq!(interval, Duration::from_secs(1));
    let setup = Arc::new(ns.run(|| NetworkSetup::from_flags(&f)));
    let handle = ns.run(|| setup.spawn_periodic(interval).unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    while ns.all_rules("iptables") < 12 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(ns.all_rules("iptables"), 12);
    ns.exec(&["iptables", "-t", "raw", "-F"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while ns.all_rules("iptables") < 12 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(ns.all_rules("iptables"), 12);
    // Teardown stops the loop and removes the rules.
    assert_eq!(ns.run(|| setup.teardown()), Ok(()));
    handle.join().unwrap();
    assert_eq!(ns.all_rules("iptables"), 0);
}

/// A stand-in `iptables` that reports a held xtables lock for everything but `--version`.
#[test]
fn lock_errors_are_classified() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("iptables-locked");
    std::fs::write(
        &script,
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'iptables v1.8.9 (legacy)'; exit 0; fi\n\
         echo 'Another app is currently holding the xtables lock. Perhaps you want to use the -w option?' >&2\nexit 4\n",
    )
    .unwrap();
    let broken = dir.path().join("iptables-broken");
    std::fs::write(&broken, "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'iptables v1.4.21'; exit 0; fi\necho 'Bad argument' >&2\nexit 2\n").unwrap();
    for p in [&script, &broken] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let rules = nodecache::nodelocal::iptables::node_cache_rules("169.254.20.10", "53", "8080");
    let params = SetupParams {
        setup_interface: false,
        setup_iptables: true,
        interface_name: "x".into(),
        pidfile: String::new(),
    };

    let locked = Iptables::with_command(script.to_str().unwrap(), false);
    assert_eq!(locked.wait_flag(), &["-w".to_string(), "5".to_string()]);
    let before = metrics::value(SetupErrorKind::IptablesLock);
    NetworkSetup::with_parts(params.clone(), rules.clone(), Some(locked), None).setup_networking(true);
    assert_eq!(metrics::value(SetupErrorKind::IptablesLock), before + 12);

    let old = Iptables::with_command(broken.to_str().unwrap(), false);
    assert_eq!(old.wait_flag(), &["-w".to_string()]);
    let err = old.check_rule(&rules[0]).unwrap_err();
    assert_eq!(err.0, "error checking rule: exit status 2: Bad argument\n");
    let before = metrics::value(SetupErrorKind::Iptables);
    NetworkSetup::with_parts(params, rules, Some(old), None).setup_networking(true);
    assert_eq!(metrics::value(SetupErrorKind::Iptables), before + 12);
}
