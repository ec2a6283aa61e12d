//! A warm cache across processes through `-statedir`: a starting instance takes the cache of
//! the one serving (unix socket handover), an instance that stops with no successor leaves a
//! snapshot the next one loads, and a snapshot that is corrupt, truncated or from another
//! configuration is ignored with a log line while the server starts and serves.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::*;
use hickory_proto::rr::RecordType;
use nodecache_conformance::fixture::Fixture;
use nodecache_conformance::ports::PortPicker;
use nodecache_conformance::server::ServerProcess;

const NAMES: usize = 200;

fn zone() -> String {
    "$ORIGIN warm.example.\n$TTL 300\n@ IN SOA ns admin 1 7200 3600 1209600 300\nns IN A 192.0.2.53\n*.w IN A 192.0.2.9\n"
        .to_string()
}

fn name(i: usize) -> String {
    format!("n{i}.w.warm.example.")
}

/// A `nodecache` with `-statedir`, serving `cache 30` + `forward` on 127.0.0.1:`port`.
struct Instance {
    process: ServerProcess,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

fn start(upstream: &Fixture, port: u16, statedir: &Path) -> Instance {
    let dir = tempfile::tempdir().expect("tempdir");
    let corefile = dir.path().join("Corefile");
    std::fs::write(
        &corefile,
        format!(".:{port} {{\n    bind 127.0.0.1\n    cache 30\n    forward . {}\n}}\n", upstream.addr()),
    )
    .expect("write Corefile");
    let cmd =
        format!("{} -conf {} -statedir {}", env!("CARGO_BIN_EXE_nodecache"), corefile.display(), statedir.display());
    let mut process = ServerProcess::spawn(&cmd, &BTreeMap::new(), dir.path()).expect("spawn");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    if let Err(e) = process.wait_ready(addr, Duration::from_secs(20)) {
        panic!("{e}\n{}", process.output());
    }
    Instance { process, addr, _dir: dir }
}

/// Whether the server's output comes to contain `needle` within a few seconds (it is read from
/// a pipe in the background).
fn says(inst: &Instance, needle: &str) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if inst.process.output().contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn ask_all(addr: SocketAddr) {
    for i in 0..NAMES {
        let reply = Q::new(&name(i), RecordType::A).send(addr).expect("answered");
        assert_eq!(reply.answers.len(), 1, "{}", name(i));
    }
}

fn stop(inst: &mut Instance) {
    inst.process.signal("TERM").expect("SIGTERM");
    let status = inst.process.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(status.success(), "{status:?}\n{}", inst.process.output());
}

#[test]
fn a_starting_instance_takes_the_running_ones_cache() {
    let upstream = fixture(&zone());
    let state = tempfile::tempdir().expect("statedir");
    let port = PortPicker.dns().expect("port");
    let mut first = start(&upstream, port, state.path());
    ask_all(first.addr);
    assert_eq!(upstream.queries(), NAMES);
    let mut second = start(&upstream, port, state.path());
    assert!(says(&second, "cache warmed from running instance"), "{}", second.process.output());
    stop(&mut first);
    assert!(!state.path().join("cache.snapshot").exists(), "the first one had a successor: no snapshot");
    upstream.reset_counters();
    ask_all(second.addr);
    assert_eq!(upstream.queries(), 0, "every name is answered from the handed-over cache");
    stop(&mut second);
}

#[test]
fn the_last_instance_leaves_a_snapshot_the_next_one_loads() {
    let upstream = fixture(&zone());
    let state = tempfile::tempdir().expect("statedir");
    let port = PortPicker.dns().expect("port");
    let mut first = start(&upstream, port, state.path());
    ask_all(first.addr);
    stop(&mut first);
    assert!(state.path().join("cache.snapshot").exists(), "{}", first.process.output());
    upstream.reset_counters();
    let mut second = start(&upstream, port, state.path());
    assert!(says(&second, &format!("{NAMES} entries loaded")), "{}", second.process.output());
    ask_all(second.addr);
    assert_eq!(upstream.queries(), 0, "every name is answered from the snapshot");
    assert!(!state.path().join("cache.snapshot").exists(), "a snapshot is used once");
    stop(&mut second);
}

#[test]
fn a_bad_snapshot_is_ignored_with_one_line_and_the_server_serves() {
    let upstream = fixture(&zone());
    let port = PortPicker.dns().expect("port");
    // A good snapshot to damage.
    let good = tempfile::tempdir().expect("statedir");
    let mut first = start(&upstream, port, good.path());
    ask_all(first.addr);
    stop(&mut first);
    let bytes = std::fs::read(good.path().join("cache.snapshot")).expect("snapshot");
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x40;
    let other_port = PortPicker.dns().expect("port");
    for (what, content, serve_port, expect) in [
        ("truncated", bytes[..bytes.len() / 3].to_vec(), port, "ignored"),
        ("corrupt", flipped, port, "ignored"),
        ("garbage", b"not a snapshot at all".to_vec(), port, "ignored"),
        // Another configuration (another listener): its caches do not match and are skipped.
        ("other configuration", bytes.clone(), other_port, "1 caches of another configuration skipped"),
    ] {
        let state = tempfile::tempdir().expect("statedir");
        std::fs::write(state.path().join("cache.snapshot"), &content).expect("write");
        upstream.reset_counters();
        let mut inst = start(&upstream, serve_port, state.path());
        assert!(says(&inst, expect), "{what}: {}", inst.process.output());
        let reply = Q::new(&name(1), RecordType::A).send(inst.addr).expect("answered");
        assert_eq!(reply.answers.len(), 1, "{what}");
        assert_eq!(upstream.queries(), 1, "{what}: nothing was loaded, the name goes upstream");
        stop(&mut inst);
    }
}
