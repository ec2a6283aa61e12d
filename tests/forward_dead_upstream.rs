//! A dead upstream under a flood of unique names: the queries waiting for it are bounded (the
//! rest fail at once with SERVFAIL and are counted), so descriptors stay within the process's
//! limit and the rest of the server (TCP clients of other zones, /health, /metrics) keeps
//! working. Memory under the same load is measured by `bench/dead_upstream.sh`, not here.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use nodecache_conformance::ports::PortPicker;
use nodecache_conformance::server::ServerProcess;

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(conn, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut page = String::new();
    conn.read_to_string(&mut page).ok()?;
    Some(page)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn a_dead_upstream_cannot_exhaust_descriptors_or_stop_other_service() {
    let dead = dead_fixture();
    let port = PortPicker.dns().expect("port");
    let (health, prom) = (PortPicker.tcp().expect("port"), PortPicker.tcp().expect("port"));
    let dir = tempfile::tempdir().expect("tempdir");
    let corefile = format!(
        "local.test:{port} {{\n    template IN A local.test {{\n        answer \"{{{{ .Name }}}} 60 IN A 192.0.2.7\"\n    }}\n}}\n\
         .:{port} {{\n    errors\n    cache 30\n    forward . {}\n    health 127.0.0.1:{health}\n    prometheus 127.0.0.1:{prom}\n}}\n",
        dead.addr()
    );
    std::fs::write(dir.path().join("Corefile"), corefile).expect("write");
    // A small open-file limit (soft and hard), as a crowded node might impose.
    let cmd = format!(
        "prlimit --nofile=1024:1024 {} -conf {}",
        env!("CARGO_BIN_EXE_nodecache"),
        dir.path().join("Corefile").display()
    );
    let mut server = ServerProcess::spawn(&cmd, &BTreeMap::new(), dir.path()).expect("spawn");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    server.wait_ready(addr, Duration::from_secs(20)).expect("ready");
    let pid = server.pid();

    // 3,000 unique names within 150 ms, far more than may wait for one upstream under this
    // limit. Those over the bound fail at once, long before the 2 s read timeout.
    let client = UdpSocket::bind("127.0.0.1:0").expect("bind");
    client.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
    let reader = {
        let client = client.try_clone().expect("clone");
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut fast_servfails = 0;
            let mut buf = [0u8; 512];
            while started.elapsed() < Duration::from_millis(1500) {
                if let Ok(n) = client.recv(&mut buf) {
                    if Message::from_vec(&buf[..n]).is_ok_and(|m| m.metadata.response_code == ResponseCode::ServFail) {
                        fast_servfails += 1;
                    }
                }
            }
            fast_servfails
        })
    };
    for i in 0..3000u16 {
        let mut m = Message::new(i, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(format!("u{i}.dead.example.")).expect("name"), RecordType::A));
        client.send_to(&m.to_vec().expect("encode"), addr).expect("send");
        if i % 100 == 99 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let fast_servfails = reader.join().expect("reader");
    assert!(fast_servfails >= 2000, "only {fast_servfails} of 3000 failed fast");

    // Meanwhile (queries still wait on the dead upstream) the rest of the server works.
    let fds = open_fds(pid);
    assert!(fds < 1024 / 2, "{fds} descriptors open");
    let local = Q::new("x.local.test.", RecordType::A).tcp().send(addr);
    assert!(local.is_some_and(|m| m.answers.len() == 1), "TCP query to a local zone not answered");
    let h = http_get(health, "/health").unwrap_or_default();
    assert!(h.starts_with("HTTP/1.1 200") && h.ends_with("OK"), "/health: {h:?}");
    let page = http_get(prom, "/metrics").unwrap_or_default();
    let rejects: f64 = page
        .lines()
        .filter(|l| l.starts_with("nodecache_forward_waiting_rejects_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(rejects >= 2000.0, "waiting rejects counted: {rejects}\n{page}");
    assert!(!server.output().contains("Too many open files"), "{}", server.output());
    assert!(server.exited().is_none(), "server exited:\n{}", server.output());
}
