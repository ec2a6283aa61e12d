//! An empty or comment-only Corefile seen on reload is refused: the running configuration
//! keeps answering, `coredns_reload_failed_total` goes up once, and the next good Corefile is
//! still picked up (by the watcher, the poll, or SIGUSR1). Real `nodecache` and `node-cache`
//! processes on loopback.

mod reload_common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use nodecache_conformance::configmap::ConfigMapDir;
use nodecache_conformance::server::ServerProcess;
use pretty_assertions::assert_eq;
use reload_common::*;

const REFUSED: &str = "is empty: keeping the running configuration";

/// A block answering `a.example.` with `ip`, with `reload` (unless `signal_only`) and
/// `prometheus` on `mp`.
fn corefile(p: u16, mp: u16, ip: &str, signal_only: bool) -> String {
    let reload = if signal_only { "" } else { "    reload 2s 1s\n" };
    template_block("example.", p, ip, &format!("{reload}    prometheus 127.0.0.1:{mp}\n"))
}

fn failed(mp: u16) -> Option<f64> {
    metric(mp, "coredns_reload_failed_total")
}

/// For `hold`, the old answer keeps coming and the failure stays counted once.
fn holds_old_answer(p: u16, mp: u16, hold: Duration, out: impl Fn() -> String) {
    let start = std::time::Instant::now();
    while start.elapsed() < hold {
        assert_eq!(a_of(p, "a.example."), vec!["10.0.0.1"], "{}", out());
        assert_eq!(failed(mp), Some(1.0), "{}", out());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_truncated_corefile_keeps_the_old_config_and_the_next_good_one_loads() {
    let (p, mp) = (port(), port());
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("Corefile");
    std::fs::write(&conf, corefile(p, mp, "10.0.0.1", false)).expect("write");
    let proc = spawn(&conf, p, dir.path());
    assert_eq!(a_of(p, "a.example."), vec!["10.0.0.1"]);
    assert_eq!(failed(mp), Some(0.0));

    // Truncated in place (what a non-atomic writer leaves for a moment, or for good).
    std::fs::File::create(&conf).expect("truncate");
    let counted = wait_until(Duration::from_secs(5), || failed(mp) == Some(1.0));
    assert!(counted.is_some(), "the empty Corefile was not refused:\n{}", proc.output());
    // Longer than a poll period (2 s + up to 1 s jitter): neither the poll nor the watcher
    // loads it or counts it again.
    holds_old_answer(p, mp, Duration::from_millis(3500), || proc.output());
    let out = proc.output();
    let line = format!("Corefile {} {REFUSED}", conf.display());
    assert_eq!(out.matches(&line).count(), 1, "{out}");
    assert!(!out.contains("Reloading complete"), "{out}");

    std::fs::write(&conf, corefile(p, mp, "10.0.0.2", false)).expect("write");
    let loaded = wait_until(Duration::from_secs(5), || a_of(p, "a.example.") == vec!["10.0.0.2"]);
    assert!(loaded.is_some(), "the good Corefile after the empty one was not loaded:\n{}", proc.output());
    assert_eq!(failed(mp), Some(1.0));
}

#[test]
fn a_configmap_swap_to_comments_only_keeps_the_old_config_and_a_fix_loads() {
    let (p, mp) = (port(), port());
    let served = Served::start(&corefile(p, mp, "10.0.0.1", false), p);
    assert_eq!(failed(mp), Some(0.0));

    served.update("# The ConfigMap was emptied.\n   # Nothing but comments here.\n\n");
    let counted = wait_until(Duration::from_secs(5), || failed(mp) == Some(1.0));
    assert!(counted.is_some(), "the comment-only Corefile was not refused:\n{}", served.proc.output());
    holds_old_answer(p, mp, Duration::from_millis(3500), || served.proc.output());
    assert_eq!(served.count(REFUSED), 1, "{}", served.proc.output());

    // The `..data` symlink moves again: the watcher still follows the directory.
    served.update(&corefile(p, mp, "10.0.0.2", false));
    let loaded = wait_until(Duration::from_secs(2), || a_of(p, "a.example.") == vec!["10.0.0.2"]);
    assert!(loaded.is_some(), "the fixed ConfigMap was not loaded:\n{}", served.proc.output());
    assert_eq!(failed(mp), Some(1.0));
}

#[test]
fn sigusr1_with_an_empty_corefile_keeps_the_old_config() {
    let (p, mp) = (port(), port());
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("Corefile");
    std::fs::write(&conf, corefile(p, mp, "10.0.0.1", true)).expect("write");
    let proc = spawn(&conf, p, dir.path());
    assert_eq!(failed(mp), Some(0.0));

    std::fs::write(&conf, "\n\t \n").expect("write");
    proc.signal("USR1").expect("signal");
    let line = format!("SIGUSR1: Corefile {} {REFUSED}", conf.display());
    let logged = wait_until(Duration::from_secs(5), || proc.output().contains(&line));
    assert!(logged.is_some(), "no refusal logged:\n{}", proc.output());
    holds_old_answer(p, mp, Duration::from_millis(600), || proc.output());

    std::fs::write(&conf, corefile(p, mp, "10.0.0.2", true)).expect("write");
    proc.signal("USR1").expect("signal");
    let loaded = wait_until(Duration::from_secs(5), || a_of(p, "a.example.") == vec!["10.0.0.2"]);
    assert!(loaded.is_some(), "{}", proc.output());
}

/// `node-cache` regenerating its Corefile from a template ConfigMap that is emptied: the
/// generated comment-only Corefile is refused, and the repaired template is served.
#[test]
fn node_cache_keeps_serving_when_its_template_is_emptied() {
    let (p, mp, metrics) = (port(), port(), port());
    let root = tempfile::tempdir().expect("tempdir");
    let tpl_dir = root.path().join("tpl");
    std::fs::create_dir(&tpl_dir).expect("mkdir");
    let tpl = ConfigMapDir::create(&tpl_dir, "Corefile.base", &corefile(p, mp, "10.0.0.1", false)).expect("template");
    let conf = root.path().join("Corefile");
    let proc = node_cache(root.path(), &tpl.path(), &conf, p, metrics);
    assert_eq!(a_of(p, "a.example."), vec!["10.0.0.1"]);
    assert_eq!(failed(mp), Some(0.0));

    tpl.update("# emptied by mistake\n").expect("update");
    let written =
        wait_until(Duration::from_secs(5), || std::fs::read_to_string(&conf).is_ok_and(|t| t.starts_with("# emptied")));
    assert!(written.is_some(), "the Corefile was not regenerated:\n{}", proc.output());
    let counted = wait_until(Duration::from_secs(5), || failed(mp) == Some(1.0));
    assert!(counted.is_some(), "the regenerated empty Corefile was not refused:\n{}", proc.output());
    holds_old_answer(p, mp, Duration::from_millis(1000), || proc.output());

    tpl.update(&corefile(p, mp, "10.0.0.2", false)).expect("update");
    let loaded = wait_until(Duration::from_secs(5), || a_of(p, "a.example.") == vec!["10.0.0.2"]);
    assert!(loaded.is_some(), "{}", proc.output());
    assert_eq!(failed(mp), Some(1.0));
}

/// `node-cache` without interface or iptables set-up, rendering `template` into `conf`.
fn node_cache(cwd: &Path, template: &Path, conf: &Path, p: u16, metrics: u16) -> ServerProcess {
    let cmd = format!(
        "{} -localip 127.0.0.1 -setupinterface=false -setupiptables=false -basecorefile {} -conf {} \
         -metrics-listen-address 127.0.0.1:{metrics} -dns.port {p}",
        env!("CARGO_BIN_EXE_node-cache"),
        template.display(),
        conf.display()
    );
    let mut proc = ServerProcess::spawn(&cmd, &BTreeMap::new(), cwd).expect("spawn node-cache");
    if let Err(e) = proc.wait_ready(addr(p), Duration::from_secs(10)) {
        panic!("{e}\n{}", proc.output());
    }
    proc
}
