//! `conformance fuzz`, the generative differential mode: this engine against itself finds no
//! difference; against another forwarder (unbound, when installed) it finds and classifies
//! differences and prints a replay command for each class.

use nodecache_conformance::fuzz::{render, run, FuzzOptions};

fn options(reference: String, seed: u64, queries: usize, shapes: &[&str]) -> FuzzOptions {
    FuzzOptions {
        ours: format!("{} -conf {{corefile}} -dns.port {{port}}", env!("CARGO_BIN_EXE_nodecache")),
        reference,
        seed,
        queries,
        shapes: shapes.iter().map(|s| s.to_string()).collect(),
        allow: Vec::new(),
        only: None,
        ttl_tolerance: 2,
    }
}

#[test]
fn fuzzing_the_engine_against_itself_finds_no_difference() {
    let ours = format!("{} -conf {{corefile}} -dns.port {{port}}", env!("CARGO_BIN_EXE_nodecache"));
    let opts = options(ours, 20261204, 80, &[]);
    let report = run(&opts).expect("fuzz run");
    let text = render(&report, &opts);
    assert_eq!(report.compared, 320, "{text}");
    assert!(report.classes.is_empty(), "{text}");
}

#[test]
fn fuzzing_against_unbound_finds_and_classifies_differences() {
    if std::process::Command::new("unbound").arg("-V").output().is_err() {
        eprintln!("unbound is not installed: skipped (.ci/run installs it)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("unbound.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n# $1 port, $2 upstream ip, $3 upstream port\nconf=$(mktemp)\ncat > \"$conf\" <<EOF\nserver:\n  interface: 127.0.0.1\n  port: $1\n  do-daemonize: no\n  chroot: \"\"\n  username: \"\"\n  use-syslog: no\n  logfile: \"\"\n  pidfile: \"\"\n  do-not-query-localhost: no\n  module-config: \"iterator\"\n  access-control: 127.0.0.0/8 allow\nforward-zone:\n  name: \".\"\n  forward-addr: $2@$3\nEOF\nexec unbound -d -c \"$conf\"\n",
    )
    .expect("write script");
    let reference = format!("sh {} {{port}} {{upstream_ip}} {{upstream_port}}", script.display());
    let opts = options(reference, 7, 60, &["forward"]);
    let report = run(&opts).expect("fuzz run");
    let text = render(&report, &opts);
    assert!(!report.classes.is_empty(), "unbound answers differently somewhere:\n{text}");
    assert!(report.classes.keys().all(|k| k.starts_with("forward ")), "{text}");
    assert!(text.contains("  replay: conformance fuzz ") && text.contains(" --only "), "{text}");
    eprintln!("{text}");

    // The classes it found, given back as --allow patterns, are counted as allowed and no
    // longer reported (the same seed replays the same queries).
    let mut again = opts.clone();
    again.allow = report.classes.keys().cloned().collect();
    let rerun = run(&again).expect("second fuzz run");
    assert!(rerun.allowed > 0, "{}", render(&rerun, &again));
    assert!(report.classes.keys().all(|k| !rerun.classes.contains_key(k)), "{}", render(&rerun, &again));
}
