//! End to end over real loopback sockets: a Corefile is planned, built and served; the `log`
//! plugin's lines and the plan's listeners are checked.

use std::net::SocketAddr;
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use nodecache::config::{load_str, PlanOptions};
use nodecache::plugin::Carryover;
use nodecache::server::{runtime, Listeners};
use parking_lot::Mutex;
use pretty_assertions::assert_eq;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<(String, String)>>>);

struct Msg(String);

impl Visit for Msg {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut m = Msg(String::new());
        event.record(&mut m);
        self.0.lock().push((event.metadata().target().to_string(), m.0));
    }
}

fn query(name: &str, qtype: RecordType, edns: bool) -> Vec<u8> {
    let mut m = Message::new(777, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.set_edns(e);
    }
    m.to_vec().expect("encode")
}

async fn serve_and_query(corefile: &str) -> (Vec<(String, ResponseCode)>, Vec<String>) {
    let plan = load_str(corefile, "Corefile", &PlanOptions::default()).expect("plan");
    let labels: Vec<String> = plan.listeners.iter().map(|l| l.label.clone()).collect();
    let rt = runtime::build(plan, Arc::new(Carryover::default())).expect("runtime");
    let listeners = Listeners::new(1);
    listeners.apply(&rt).expect("listen");
    let addr: SocketAddr = listeners.bound().first().map(|(_, a)| *a).expect("bound");

    let mut results = Vec::new();
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("udp");
    for (name, qtype) in [("www.example.org.", RecordType::A), ("other.test.", RecordType::A)] {
        udp.send_to(&query(name, qtype, true), addr).await.expect("send");
        let mut buf = vec![0u8; 4096];
        let (n, _) = udp.recv_from(&mut buf).await.expect("recv");
        let reply = Message::from_vec(&buf[..n]).expect("reply");
        results.push((format!("udp {name}"), reply.metadata.response_code));
    }
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    let q = query("Example.ORG.", RecordType::AAAA, false);
    tcp.write_all(&(q.len() as u16).to_be_bytes()).await.expect("write");
    tcp.write_all(&q).await.expect("write");
    let len = tcp.read_u16().await.expect("len");
    let mut buf = vec![0u8; usize::from(len)];
    tcp.read_exact(&mut buf).await.expect("read");
    let reply = Message::from_vec(&buf).expect("reply");
    results.push(("tcp Example.ORG.".to_string(), reply.metadata.response_code));
    listeners.stop_all();
    (results, labels)
}

#[test]
fn log_lines_from_a_served_corefile() {
    let corefile = "example.org:0 {\n bind 127.0.0.1\n errors\n log . \"{name} {type} {class} {proto} {rcode} {>rflags} {>bufsize}\"\n whoami\n}\n";
    let capture = Capture::default();
    let store = capture.0.clone();
    let subscriber = tracing_subscriber::registry().with(capture);
    let (results, labels) = tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
        rt.block_on(serve_and_query(corefile))
    });
    assert_eq!(labels, vec!["dns://127.0.0.1:0"]);
    assert_eq!(
        results,
        vec![
            ("udp www.example.org.".to_string(), ResponseCode::NoError),
            // Outside every zone: the server refuses it and no plugin (so no log) runs.
            ("udp other.test.".to_string(), ResponseCode::Refused),
            ("tcp Example.ORG.".to_string(), ResponseCode::NoError),
        ]
    );
    let lines: Vec<String> = store.lock().iter().filter(|(t, _)| t == "log").map(|(_, m)| m.clone()).collect();
    assert_eq!(
        lines,
        vec![
            "www.example.org. A IN udp NOERROR qr,aa,rd 1232".to_string(),
            "example.org. AAAA IN tcp NOERROR qr,aa,rd 65535".to_string(),
        ]
    );
}

#[test]
fn errors_line_from_a_failing_upstream() {
    // A closed loopback port: the upstream refuses, forward fails and errors logs it.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").expect("probe");
    let port = closed.local_addr().map(|a| a.port()).unwrap_or(9);
    drop(closed);
    let corefile = format!("example.org:0 {{\n bind 127.0.0.1\n errors\n forward . 127.0.0.1:{port}\n}}\n");
    let capture = Capture::default();
    let store = capture.0.clone();
    let subscriber = tracing_subscriber::registry().with(capture);
    let rcode = tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
        rt.block_on(async {
            let plan = load_str(&corefile, "Corefile", &PlanOptions::default()).expect("plan");
            let rt = runtime::build(plan, Arc::new(Carryover::default())).expect("runtime");
            let listeners = Listeners::new(1);
            listeners.apply(&rt).expect("listen");
            let addr: SocketAddr = listeners.bound().first().map(|(_, a)| *a).expect("bound");
            let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("udp");
            udp.send_to(&query("www.example.org.", RecordType::A, false), addr).await.expect("send");
            let mut buf = vec![0u8; 4096];
            let (n, _) = udp.recv_from(&mut buf).await.expect("recv");
            listeners.stop_all();
            Message::from_vec(&buf[..n]).expect("reply").metadata.response_code
        })
    });
    assert_eq!(rcode, ResponseCode::ServFail);
    let lines: Vec<(String, String)> = store.lock().iter().filter(|(t, _)| t == "plugin/errors").cloned().collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].1.starts_with("2 www.example.org. A: "), "{lines:?}");
}
