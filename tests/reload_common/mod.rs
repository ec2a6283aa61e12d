//! Shared helpers for the reload tests: the real `nodecache` binary serving a Corefile that
//! lives in a ConfigMap-style directory (symlink swaps), queries over loopback, /metrics.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};
use nodecache_conformance::client::{exchange, QuerySpec};
use nodecache_conformance::configmap::ConfigMapDir;
use nodecache_conformance::ports::PortPicker;
use nodecache_conformance::server::ServerProcess;

/// A free port for DNS (UDP and TCP) on 127.0.0.1.
pub fn port() -> u16 {
    PortPicker.dns().expect("free port")
}

/// `nodecache` serving a Corefile from a ConfigMap-style directory.
pub struct Served {
    /// The process.
    pub proc: ServerProcess,
    /// The projected directory holding `Corefile`.
    pub cm: ConfigMapDir,
    _dir: tempfile::TempDir,
}

impl Served {
    /// Writes `corefile` and starts the server; waits until `ready_on` answers.
    pub fn start(corefile: &str, ready_on: u16) -> Served {
        let dir = tempfile::tempdir().expect("tempdir");
        let cm = ConfigMapDir::create(dir.path(), "Corefile", corefile).expect("configmap");
        let proc = spawn(&cm.path(), ready_on, dir.path());
        Served { proc, cm, _dir: dir }
    }

    /// Replaces the Corefile the way kubelet does (new dir, `..data` renamed over).
    pub fn update(&self, corefile: &str) {
        self.cm.update(corefile).expect("configmap update");
    }

    /// How many `Running configuration SHA512` lines were logged so far.
    pub fn sha_lines(&self) -> usize {
        self.proc.output().matches("Running configuration SHA512 = ").count()
    }

    /// How many times `needle` appears in the output so far.
    pub fn count(&self, needle: &str) -> usize {
        self.proc.output().matches(needle).count()
    }
}

/// Starts `nodecache -conf CONF -dns.port PORT` in `cwd`; waits until `port` answers.
pub fn spawn(conf: &std::path::Path, port: u16, cwd: &std::path::Path) -> ServerProcess {
    let cmd = format!("{} -conf {} -dns.port {port}", env!("CARGO_BIN_EXE_nodecache"), conf.display());
    let mut proc = ServerProcess::spawn(&cmd, &BTreeMap::new(), cwd).expect("spawn nodecache");
    if let Err(e) = proc.wait_ready(addr(port), Duration::from_secs(10)) {
        panic!("{e}\n{}", proc.output());
    }
    proc
}

/// `127.0.0.1:port`.
pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// One query; `None` when nothing came back within `wait`.
pub fn ask(port: u16, name: &str, qtype: &str, tcp: bool, wait: Duration) -> Option<Message> {
    let mut spec = QuerySpec::parse(&format!("{name} {qtype}"), "").expect("query");
    spec.tcp = tcp;
    exchange(addr(port), &spec, wait).ok().flatten().map(|r| r.msg)
}

/// The A records of a reply, as text.
pub fn a_records(msg: &Message) -> Vec<String> {
    msg.answers
        .iter()
        .filter(|r| r.record_type() == RecordType::A)
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

/// The A answer for `name` over UDP (empty when none or no reply).
pub fn a_of(port: u16, name: &str) -> Vec<String> {
    ask(port, name, "A", false, Duration::from_millis(500)).map(|m| a_records(&m)).unwrap_or_default()
}

/// Polls `check` every 20 ms until it holds or `limit` passes; returns the time it took.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Sum of a metric's series at `http://127.0.0.1:port/metrics` (None: absent or unreachable).
pub fn metric(port: u16, name: &str) -> Option<f64> {
    let reply =
        nodecache_conformance::http::get(&format!("http://127.0.0.1:{port}/metrics"), Duration::from_secs(2)).ok()?;
    nodecache_conformance::http::metric_sum(&reply.body, name)
}

/// A Corefile block answering A queries for `zone` with `ip` through the template plugin.
pub fn template_block(zone: &str, port: u16, ip: &str, extra: &str) -> String {
    format!(
        "{zone}:{port} {{\n    bind 127.0.0.1\n{extra}    template IN A {zone} {{\n        answer \"{{{{ .Name }}}} 60 IN A {ip}\"\n    }}\n}}\n"
    )
}
