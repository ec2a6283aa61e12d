//! The HTTP endpoints over real loopback sockets, the metrics page, and the prometheus handler.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use hickory_proto::op::ResponseCode;
use nodecache::observe::dns_metrics::{self, Observation};
use nodecache::observe::http::{self, EndpointSpec, Route};
use nodecache::observe::{encode_text, readiness};
use nodecache::plugin::{prometheus, BuildContext, Carryover, Chain, Next, Plugin, SetupContext};
use nodecache::server::{Outcome, Proto, Reply, Request};
use pretty_assertions::assert_eq;

/// The endpoint hub is process-wide: tests that apply endpoints take turns.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct HttpReply {
    status: u16,
    head: String,
    body: String,
}

fn request(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<HttpReply> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw.as_str(), ""));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok(HttpReply { status, head: head.to_string(), body: body.to_string() })
}

fn get(addr: SocketAddr, path: &str) -> HttpReply {
    request(addr, "GET", path).unwrap()
}

#[test]
fn health_answers_ok_on_exact_path_only() {
    let _g = serial();
    let spec = format!("127.0.0.1:{}", free_port());
    http::apply(vec![EndpointSpec::health(&spec, Duration::from_secs(3))]).unwrap();
    let addr = http::local_addr(&spec).unwrap();
    let r = get(addr, "/health");
    assert_eq!((r.status, r.body.as_str()), (200, "OK"));
    assert!(r.head.to_ascii_lowercase().contains("content-type: text/plain; charset=utf-8"), "{}", r.head);
    let r = request(addr, "POST", "/health").unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "OK"));
    assert_eq!(get(addr, "/health/").status, 404);
    assert_eq!(get(addr, "/healthz").status, 404);
    assert_eq!(get(addr, "/metrics").status, 404);
    assert_eq!(get(addr, "/ready").status, 404);
    assert_eq!(http::lameduck_duration(), Duration::from_secs(3));
    http::apply(vec![]).unwrap();
    assert_eq!(http::lameduck_duration(), Duration::ZERO);
    assert!(request(addr, "GET", "/health").is_err(), "endpoint still up after removal");
}

#[test]
fn ready_reports_plugins_not_ready_then_ok_then_shutting_down() {
    let _g = serial();
    let spec = format!("127.0.0.1:{}", free_port());
    http::apply(vec![EndpointSpec::ready(&spec)]).unwrap();
    let addr = http::local_addr(&spec).unwrap();
    let zeta = Arc::new(AtomicBool::new(false));
    let beta = Arc::new(AtomicBool::new(false));
    let (z, b) = (zeta.clone(), beta.clone());
    readiness::set_ready_checks(
        vec![
            ("zeta".to_string(), Arc::new(move || z.load(Ordering::SeqCst))),
            ("alpha".to_string(), Arc::new(|| true)),
            ("beta".to_string(), Arc::new(move || b.load(Ordering::SeqCst))),
        ],
        false,
    );
    let r = get(addr, "/ready");
    assert_eq!((r.status, r.body.as_str()), (503, "beta,zeta"));
    beta.store(true, Ordering::SeqCst);
    let r = get(addr, "/ready");
    assert_eq!((r.status, r.body.as_str()), (503, "zeta"));
    zeta.store(true, Ordering::SeqCst);
    let r = get(addr, "/ready");
    assert_eq!((r.status, r.body.as_str()), (200, "OK"));
    // until-ready: once ready, a plugin is not asked again.
    zeta.store(false, Ordering::SeqCst);
    assert_eq!(get(addr, "/ready").status, 200);
    // continuously: asked every time.
    let z = zeta.clone();
    readiness::set_ready_checks(vec![("zeta".to_string(), Arc::new(move || z.load(Ordering::SeqCst)))], true);
    assert_eq!(get(addr, "/ready").status, 503);
    zeta.store(true, Ordering::SeqCst);
    assert_eq!(get(addr, "/ready").status, 200);
    readiness::set_shutting_down();
    let r = get(addr, "/ready");
    assert_eq!((r.status, r.body.as_str()), (503, "Shutting down"));
    readiness::clear_shutting_down();
    readiness::set_ready_checks(vec![], false);
    assert_eq!(get(addr, "/health").status, 404);
    http::apply(vec![]).unwrap();
}

#[test]
fn apply_keeps_unchanged_endpoints_and_swaps_others() {
    let _g = serial();
    // Port 0: a restarted endpoint would get a different port.
    let keep = "127.0.0.1:0".to_string();
    let gone = format!("127.0.0.1:{}", free_port());
    let new = format!("[::1]:{}", free_port());
    http::apply(vec![EndpointSpec::health(&keep, Duration::ZERO), EndpointSpec::metrics(&gone)]).unwrap();
    let keep_addr = http::local_addr(&keep).unwrap();
    let gone_addr = http::local_addr(&gone).unwrap();
    assert_eq!(get(gone_addr, "/metrics").status, 200);

    let with_v6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    let mut want = vec![EndpointSpec::health(&keep, Duration::ZERO)];
    if with_v6 {
        want.push(EndpointSpec::ready(&new));
    }
    http::apply(want).unwrap();
    assert_eq!(http::local_addr(&keep), Some(keep_addr));
    assert_eq!(get(keep_addr, "/health").body, "OK");
    assert!(request(gone_addr, "GET", "/metrics").is_err(), "removed endpoint still answers");
    assert_eq!(http::local_addr(&gone), None);
    if with_v6 {
        let r = get(http::local_addr(&new).unwrap(), "/ready");
        assert_eq!((r.status, r.body.as_str()), (200, "OK"));
    }

    // Same address, more routes: updated in place, not rebound.
    http::apply(vec![
        EndpointSpec::health(&keep, Duration::ZERO),
        EndpointSpec { addr: keep.clone(), routes: vec![Route::Metrics], lameduck: Duration::ZERO, tls: None },
    ])
    .unwrap();
    assert_eq!(http::local_addr(&keep), Some(keep_addr));
    assert_eq!(get(keep_addr, "/metrics").status, 200);
    assert_eq!(get(keep_addr, "/health").status, 200);
    assert_eq!(http::running(), vec![keep.clone()]);
    http::apply(vec![]).unwrap();
}

#[test]
fn groups_are_reconciled_independently() {
    let _g = serial();
    let own = format!("127.0.0.1:{}", free_port());
    let corefile = format!("127.0.0.1:{}", free_port());
    http::apply_group("node-cache", vec![EndpointSpec::metrics(&own)]).unwrap();
    http::apply(vec![EndpointSpec::health(&corefile, Duration::ZERO)]).unwrap();
    let mut running = http::running();
    running.sort();
    let mut want = vec![own.clone(), corefile.clone()];
    want.sort();
    assert_eq!(running, want);
    // A Corefile reload without HTTP plugins leaves node-cache's listener alone.
    http::apply(vec![]).unwrap();
    assert_eq!(http::running(), vec![own.clone()]);
    assert_eq!(get(http::local_addr(&own).unwrap(), "/metrics").status, 200);
    http::apply_group("node-cache", vec![]).unwrap();
    assert_eq!(http::running(), Vec::<String>::new());
}

#[test]
fn endpoints_follow_plugin_configs() {
    let ctx = SetupContext { zones: vec![".".to_string()], ports: vec![53] };
    let parse = |text: &str, f: nodecache::config::registry::SetupFn| {
        let mut d = nodecache::corefile::Dispenser::from_text(text);
        http::endpoint_for(f(&mut d, &ctx).unwrap().as_ref())
    };
    assert_eq!(
        parse("health 127.0.0.1:8080 {\n lameduck 2s\n}", nodecache::plugin::health::setup::parse),
        Some(EndpointSpec::health("127.0.0.1:8080", Duration::from_secs(2)))
    );
    assert_eq!(parse("ready", nodecache::plugin::ready::setup::parse), Some(EndpointSpec::ready(":8181")));
    assert_eq!(parse("prometheus :9253", prometheus::setup::parse), Some(EndpointSpec::metrics(":9253")));
}

#[test]
fn apply_reports_bind_failures_in_go_words() {
    let _g = serial();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let spec = taken.local_addr().unwrap().to_string();
    // The plain std listener has no SO_REUSEPORT, so ours cannot share its port.
    let err = http::apply(vec![EndpointSpec::health(&spec, Duration::ZERO)]).unwrap_err();
    assert_eq!(err, format!("listen tcp {spec}: bind: address already in use"));
    assert_eq!(http::running(), Vec::<String>::new());
    let err = http::apply(vec![EndpointSpec::health("bla:a", Duration::ZERO)]).unwrap_err();
    assert_eq!(err, "listen tcp: lookup tcp/a: unknown port");
    // Another owner's apply does not report the Corefile's failing endpoint.
    http::apply_group("other", vec![]).unwrap();
    http::apply(vec![]).unwrap();
}

fn observation(proto: Proto, qtype: u16, rcode: u16, plugin: &'static str) -> Observation {
    Observation {
        proto,
        family: 1,
        qtype,
        do_bit: true,
        request_size: 40,
        response_size: 120,
        rcode,
        plugin,
        duration: Duration::from_micros(300),
    }
}

/// Sample lines of the text page as (name, labels, value).
fn samples(text: &str) -> Vec<(String, String, f64)> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n.to_string(), l.trim_end_matches('}').to_string()),
            None => (series.to_string(), String::new()),
        };
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'), "bad metric name in {line:?}");
        out.push((name, labels, value));
    }
    out
}

fn value(text: &str, name: &str, labels: &str) -> Option<f64> {
    samples(text).into_iter().find(|(n, l, _)| n == name && l == labels).map(|(_, _, v)| v)
}

#[test]
fn metrics_page_has_coredns_families() {
    let _g = serial();
    let server = "dns://:1053";
    let rec = dns_metrics::recorder(server, "example.org.");
    rec.record(&observation(Proto::Udp, 1, 0, "forward"));
    rec.record(&observation(Proto::Udp, 1, 3, "forward"));
    rec.record(&observation(Proto::Tcp, 99, 0, "cache"));
    dns_metrics::record_dropped(server, &observation(Proto::Udp, 28, 5, ""));
    dns_metrics::set_plugin_enabled(server, "example.org.", "forward");
    dns_metrics::set_reload_version("abc123");
    dns_metrics::panic_inc();
    dns_metrics::record_dropped_request(&query("dns://:1054", "x.test.", 16), 5, 45);

    let spec = format!("127.0.0.1:{}", free_port());
    http::apply(vec![EndpointSpec::metrics(&spec)]).unwrap();
    let r = get(http::local_addr(&spec).unwrap(), "/metrics");
    http::apply(vec![]).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{}", r.head);
    let text = r.body;

    let base = format!("server=\"{server}\",zone=\"example.org.\",view=\"\"");
    assert_eq!(
        value(&text, "coredns_dns_requests_total", &format!("{base},proto=\"udp\",family=\"1\",type=\"A\"")),
        Some(2.0)
    );
    assert_eq!(
        value(&text, "coredns_dns_requests_total", &format!("{base},proto=\"tcp\",family=\"1\",type=\"other\"")),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "coredns_dns_responses_total", &format!("{base},rcode=\"NXDOMAIN\",plugin=\"forward\"")),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "coredns_dns_responses_total", &format!("{base},rcode=\"NOERROR\",plugin=\"cache\"")),
        Some(1.0)
    );
    assert_eq!(value(&text, "coredns_dns_do_requests_total", &base), Some(3.0));
    let dropped = format!("server=\"{server}\",zone=\"dropped\",view=\"\"");
    assert_eq!(
        value(&text, "coredns_dns_responses_total", &format!("{dropped},rcode=\"REFUSED\",plugin=\"\"")),
        Some(1.0)
    );
    assert_eq!(value(&text, "coredns_dns_request_duration_seconds_count", &base), Some(3.0));
    assert_eq!(
        value(&text, "coredns_dns_request_duration_seconds_bucket", &format!("{base},le=\"0.00025\"")),
        Some(0.0)
    );
    assert_eq!(
        value(&text, "coredns_dns_request_duration_seconds_bucket", &format!("{base},le=\"0.0005\"")),
        Some(3.0)
    );
    assert_eq!(value(&text, "coredns_dns_request_duration_seconds_bucket", &format!("{base},le=\"8.192\"")), Some(3.0));
    assert_eq!(value(&text, "coredns_dns_request_duration_seconds_bucket", &format!("{base},le=\"+Inf\"")), Some(3.0));
    let udp = format!("{base},proto=\"udp\"");
    assert_eq!(value(&text, "coredns_dns_request_size_bytes_bucket", &format!("{udp},le=\"0\"")), Some(0.0));
    assert_eq!(value(&text, "coredns_dns_request_size_bytes_bucket", &format!("{udp},le=\"100\"")), Some(2.0));
    assert_eq!(value(&text, "coredns_dns_response_size_bytes_bucket", &format!("{udp},le=\"100\"")), Some(0.0));
    assert_eq!(value(&text, "coredns_dns_response_size_bytes_bucket", &format!("{udp},le=\"200\"")), Some(2.0));
    assert_eq!(value(&text, "coredns_dns_response_size_bytes_bucket", &format!("{udp},le=\"16000\"")), Some(2.0));
    assert_eq!(value(&text, "coredns_dns_response_size_bytes_sum", &udp), Some(240.0));
    assert_eq!(value(&text, "coredns_plugin_enabled", &format!("{base},name=\"forward\"")), Some(1.0));
    assert_eq!(value(&text, "coredns_reload_version_info", "hash=\"sha512\",value=\"abc123\""), Some(1.0));
    assert_eq!(value(&text, "coredns_panics_total", ""), Some(1.0));
    let dropped2 = "server=\"dns://:1054\",zone=\"dropped\",view=\"\"";
    assert_eq!(
        value(&text, "coredns_dns_requests_total", &format!("{dropped2},proto=\"udp\",family=\"2\",type=\"TXT\"")),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "coredns_dns_responses_total", &format!("{dropped2},rcode=\"REFUSED\",plugin=\"\"")),
        Some(1.0)
    );
    assert_eq!(value(&text, "coredns_dns_response_size_bytes_sum", &format!("{dropped2},proto=\"udp\"")), Some(45.0));
    assert_eq!(value(&text, "coredns_reload_failed_total", ""), Some(0.0));
    assert!(value(&text, "coredns_health_request_failures_total", "").is_some());
    assert!(value(&text, "coredns_health_request_duration_seconds_bucket", "le=\"2.5\"").is_some());
    assert!(value(&text, "process_resident_memory_bytes", "").unwrap() > 0.0);
    assert!(value(&text, "process_cpu_seconds_total", "").is_some());
    assert!(value(&text, "process_open_fds", "").unwrap() > 0.0);
    assert!(value(&text, "process_start_time_seconds", "").unwrap() > 1e9);
    assert!(text.contains("# TYPE coredns_dns_requests_total counter\n"), "{text}");
    assert!(text.contains("# TYPE coredns_dns_request_duration_seconds histogram\n"), "{text}");
    assert!(text.contains("# HELP coredns_panics_total A metrics that counts the number of panics.\n"), "{text}");
    assert!(!text.contains("_total_total"), "{text}");
    assert!(!text.contains("# EOF"), "{text}");
}

#[test]
fn health_self_probe_records_duration() {
    let _g = serial();
    let spec = "127.0.0.1:0";
    http::apply(vec![EndpointSpec::health(spec, Duration::ZERO)]).unwrap();
    let count = || value(&encode_text(), "coredns_health_request_duration_seconds_count", "").unwrap_or(0.0);
    let before = count();
    let deadline = Instant::now() + Duration::from_secs(10);
    while count() < before + 1.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    http::apply(vec![]).unwrap();
    assert!(count() >= before + 1.0, "no probe recorded");
}

/// A plugin answering every query with a fixed reply (or failing without one).
struct Answer(Option<Vec<u8>>);

impl Plugin for Answer {
    fn name(&self) -> &'static str {
        "whoami"
    }
    fn serve<'a>(&'a self, _req: &'a mut Request, _next: Next<'a>) -> BoxFuture<'a, Outcome> {
        let out = match &self.0 {
            Some(w) => Outcome::written("whoami", Reply::Wire(w.clone())),
            None => Outcome::unwritten(ResponseCode::ServFail, Some("plugin/whoami: no".to_string())),
        };
        Box::pin(async move { out })
    }
}

fn query(server: &str, qname: &str, qtype: u16) -> Request {
    let mut wire = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in qname.trim_end_matches('.').split('.') {
        wire.push(label.len() as u8);
        wire.extend_from_slice(label.as_bytes());
    }
    wire.extend_from_slice(&[0, (qtype >> 8) as u8, qtype as u8, 0, 1]);
    Request {
        received_len: wire.len(),
        wire,
        qname: qname.to_string(),
        qname_lower: qname.to_ascii_lowercase(),
        qtype,
        qclass: 1,
        edns: None,
        client: "[::1]:5353".parse().unwrap(),
        local: "[::1]:53".parse().unwrap(),
        proto: Proto::Udp,
        server: Arc::from(server),
        zone: Arc::from("."),
        started: Instant::now(),
        metadata: Vec::new(),
    }
}

async fn run(chain: &Chain, req: &mut Request) -> Outcome {
    Next::start(chain).serve(req).await
}

#[test]
fn prometheus_handler_labels_zone_rcode_and_plugin() {
    let _g = serial();
    let setup =
        SetupContext { zones: vec!["example.org.".to_string(), "sub.example.org.".to_string()], ports: vec![53] };
    let mut d = nodecache::corefile::Dispenser::from_text("prometheus localhost:0");
    let cfg = prometheus::setup::parse(&mut d, &setup).unwrap();
    let server = "dns://:2053";
    let ctx = BuildContext {
        zones: setup.zones.clone(),
        servers: vec![server.to_string()],
        metrics: Arc::default(),
        carry: Arc::new(Carryover::default()),
        after: String::new(),
    };
    let handler = cfg.build(&ctx).unwrap().unwrap();
    // NXDOMAIN reply, 33 bytes.
    let mut reply = vec![0x12, 0x34, 0x81, 0x83, 0, 0, 0, 0, 0, 0, 0, 0];
    reply.extend_from_slice(&[0u8; 21]);
    let answering: Chain = Arc::from(vec![handler.clone(), Arc::new(Answer(Some(reply))) as Arc<dyn Plugin>]);
    let failing: Chain = Arc::from(vec![handler, Arc::new(Answer(None)) as Arc<dyn Plugin>]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let out = run(&answering, &mut query(server, "www.sub.example.org.", 1)).await;
        assert_eq!(out.rcode, ResponseCode::NXDomain);
        run(&answering, &mut query(server, "a.example.org.", 28)).await;
        run(&failing, &mut query(server, "a.example.org.", 28)).await;
        // A listener label the build did not know about still gets recorded.
        run(&failing, &mut query("dns://127.0.0.1:2053", "example.org.", 15)).await;
    });
    let text = encode_text();
    let sub = format!("server=\"{server}\",zone=\"sub.example.org.\",view=\"\"");
    let top = format!("server=\"{server}\",zone=\"example.org.\",view=\"\"");
    assert_eq!(
        value(&text, "coredns_dns_responses_total", &format!("{sub},rcode=\"NXDOMAIN\",plugin=\"whoami\"")),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "coredns_dns_requests_total", &format!("{sub},proto=\"udp\",family=\"2\",type=\"A\"")),
        Some(1.0)
    );
    assert_eq!(value(&text, "coredns_dns_response_size_bytes_sum", &format!("{sub},proto=\"udp\"")), Some(33.0));
    assert_eq!(
        value(&text, "coredns_dns_responses_total", &format!("{top},rcode=\"SERVFAIL\",plugin=\"\"")),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "coredns_dns_requests_total", &format!("{top},proto=\"udp\",family=\"2\",type=\"AAAA\"")),
        Some(2.0)
    );
    // Unwritten replies count as 0 bytes.
    assert_eq!(
        value(&text, "coredns_dns_response_size_bytes_bucket", &format!("{top},proto=\"udp\",le=\"0\"")),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "coredns_dns_requests_total",
            "server=\"dns://127.0.0.1:2053\",zone=\"example.org.\",view=\"\",proto=\"udp\",family=\"2\",type=\"MX\""
        ),
        Some(1.0)
    );
    assert!(value(
        &text,
        "coredns_build_info",
        &format!("version=\"{}\",revision=\"\",goversion=\"rust\"", env!("CARGO_PKG_VERSION"))
    )
    .is_some());
}

#[test]
fn probe_reports_go_style_errors() {
    let port = free_port();
    let target: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let err = rt.block_on(http::probe::probe_once(target, "localhost")).unwrap_err();
    assert_eq!(err, format!("dial tcp 127.0.0.1:{port}: connect: connection refused"));
}

#[test]
fn final_shutdown_marks_ready_and_logs_lameduck() {
    let _g = serial();
    let spec = format!("127.0.0.1:{}", free_port());
    http::apply(vec![EndpointSpec::health(&spec, Duration::from_millis(20)), EndpointSpec::ready(&spec)]).unwrap();
    let addr = http::local_addr(&spec).unwrap();
    let lines = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = lines.clone();
    let sub = nodecache::observe::logging::subscriber(move || Sink(sink.clone()));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    tracing::subscriber::with_default(sub, || rt.block_on(http::final_shutdown()));
    let r = get(addr, "/ready");
    assert_eq!((r.status, r.body.as_str()), (503, "Shutting down"));
    assert_eq!(get(addr, "/health").body, "OK");
    readiness::clear_shutting_down();
    http::stop_all();
    assert!(request(addr, "GET", "/health").is_err());
    let out = String::from_utf8(lines.lock().unwrap().clone()).unwrap();
    assert_eq!(out, "[INFO] plugin/health: Going into lameduck mode for 20ms\n");
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/observe").join(name)
}

/// GET `path` over TLS (server name `localhost`), optionally presenting the test client cert.
fn tls_get(addr: SocketAddr, path: &str, client_cert: bool) -> Result<HttpReply, String> {
    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pem = std::fs::read(fixture("ca.crt")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = if client_cert {
        let cert_pem = std::fs::read(fixture("client.crt")).unwrap();
        let key_pem = std::fs::read(fixture("client.key")).unwrap();
        let certs = rustls_pemfile::certs(&mut cert_pem.as_slice()).map(Result::unwrap).collect();
        let key = rustls_pemfile::private_key(&mut key_pem.as_slice()).unwrap().unwrap();
        builder.with_client_auth_cert(certs, key).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut tls =
            connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.map_err(|e| e.to_string())?;
        tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        tls.read_to_end(&mut raw).await.map_err(|e| e.to_string())?;
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = raw.split_once("\r\n\r\n").ok_or_else(|| format!("no HTTP reply: {raw:?}"))?;
        let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        Ok(HttpReply { status, head: head.to_string(), body: body.to_string() })
    })
}

#[test]
fn metrics_over_tls_with_web_config() {
    let _g = serial();
    dns_metrics::init();
    let dir = tempfile::tempdir().unwrap();
    // Relative paths are resolved against the web config's directory.
    std::fs::copy(fixture("server.crt"), dir.path().join("server.crt")).unwrap();
    std::fs::copy(fixture("server.key"), dir.path().join("server.key")).unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, "tls_server_config:\n  cert_file: \"server.crt\"\n  key_file: server.key\n").unwrap();
    let spec = format!("127.0.0.1:{}", free_port());
    http::apply(vec![EndpointSpec::metrics_tls(&spec, web.to_str().unwrap())]).unwrap();
    let addr = http::local_addr(&spec).unwrap();
    let r = tls_get(addr, "/metrics", false).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.contains("# TYPE coredns_panics_total counter"), "{}", r.body);
    // Plain HTTP gets no HTTP answer from a TLS endpoint.
    assert!(request(addr, "GET", "/metrics").map(|r| r.status).unwrap_or(0) != 200);

    // Client certificates required and verified against client_ca_file.
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n",
            fixture("ca.crt").display()
        ),
    )
    .unwrap();
    let spec2 = format!("127.0.0.1:{}", free_port());
    http::apply(vec![EndpointSpec::metrics_tls(&spec2, web.to_str().unwrap())]).unwrap();
    let addr2 = http::local_addr(&spec2).unwrap();
    assert_eq!(tls_get(addr2, "/metrics", true).map(|r| r.status), Ok(200));
    assert!(tls_get(addr2, "/metrics", false).is_err(), "served a client without a certificate");
    http::apply(vec![]).unwrap();

    // A web config without TLS settings serves plain HTTP; a broken one fails to start.
    std::fs::write(&web, "").unwrap();
    http::apply(vec![EndpointSpec::metrics_tls(&spec, web.to_str().unwrap())]).unwrap();
    assert_eq!(get(http::local_addr(&spec).unwrap(), "/metrics").status, 200);
    std::fs::write(&web, "tls_server_config:\n  key_file: server.key\n").unwrap();
    let err = http::apply(vec![EndpointSpec::metrics_tls(&spec2, web.to_str().unwrap())]).unwrap_err();
    assert_eq!(err, "missing one of cert or cert_file");
    http::apply(vec![]).unwrap();
}

#[test]
fn after_build_wires_endpoints_readiness_and_plugin_enabled() {
    use nodecache::config::{BlockPlan, ListenerPlan, Plan, Transport, ZoneKey};
    let _g = serial();
    let ready_port = free_port();
    let metrics_port = free_port();
    let setup = SetupContext { zones: vec!["wired.test.".to_string()], ports: vec![53] };
    let cfg = |text: &str, f: nodecache::config::registry::SetupFn| {
        let mut d = nodecache::corefile::Dispenser::from_text(text);
        Arc::<dyn nodecache::plugin::PluginConfig>::from(f(&mut d, &setup).unwrap())
    };
    let plan = Plan {
        blocks: vec![BlockPlan {
            keys: vec![ZoneKey { transport: Transport::Dns, zone: "wired.test.".to_string(), port: 53 }],
            plugins: vec![
                cfg(&format!("ready 127.0.0.1:{ready_port}"), nodecache::plugin::ready::setup::parse),
                cfg(&format!("prometheus 127.0.0.1:{metrics_port}"), prometheus::setup::parse),
            ],
            listen_hosts: vec![],
        }],
        listeners: vec![ListenerPlan {
            transport: Transport::Dns,
            addr: "[::]:53".parse().unwrap(),
            wildcard: true,
            label: "dns://:3053".to_string(),
            zones: vec![("wired.test.".to_string(), 0)],
        }],
    };
    let not_ready = Arc::new(AtomicBool::new(false));
    struct Slow(Arc<AtomicBool>);
    impl Plugin for Slow {
        fn name(&self) -> &'static str {
            "slow"
        }
        fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> BoxFuture<'a, Outcome> {
            next.serve(req)
        }
        fn ready(&self) -> bool {
            self.0.load(Ordering::SeqCst)
        }
    }
    let chain: Chain = Arc::from(vec![Arc::new(Slow(not_ready.clone())) as Arc<dyn Plugin>]);
    nodecache::observe::wiring::after_build(&plan, &[chain]).unwrap();
    let ready_addr: SocketAddr = format!("127.0.0.1:{ready_port}").parse().unwrap();
    let r = get(ready_addr, "/ready");
    assert_eq!((r.status, r.body.as_str()), (503, "slow"));
    not_ready.store(true, Ordering::SeqCst);
    assert_eq!(get(ready_addr, "/ready").status, 200);
    let page = get(format!("127.0.0.1:{metrics_port}").parse().unwrap(), "/metrics").body;
    assert_eq!(
        value(&page, "coredns_plugin_enabled", "server=\"dns://:3053\",zone=\"wired.test.\",view=\"\",name=\"slow\""),
        Some(1.0)
    );
    readiness::set_ready_checks(vec![], false);
    http::apply(vec![]).unwrap();
}

#[test]
fn apply_works_from_inside_a_tokio_runtime() {
    let _g = serial();
    let spec = format!("127.0.0.1:{}", free_port());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let addr = rt.block_on(async {
        http::apply(vec![EndpointSpec::health(&spec, Duration::ZERO)]).unwrap();
        http::local_addr(&spec).unwrap()
    });
    assert_eq!(get(addr, "/health").body, "OK");
    rt.block_on(async { http::apply(vec![]).unwrap() });
    assert!(request(addr, "GET", "/health").is_err());
}
