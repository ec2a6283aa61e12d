//! Corefile syntax of `health`, `ready` and `prometheus`, and the log line shapes.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nodecache::corefile::Dispenser;
use nodecache::observe::logging;
use nodecache::plugin::{health, prometheus, ready, SetupContext};
use pretty_assertions::assert_eq;

fn ctx() -> SetupContext {
    SetupContext { zones: vec!["example.org.".to_string()], ports: vec![53] }
}

fn health(text: &str) -> Result<health::setup::Config, String> {
    let mut d = Dispenser::from_text(text);
    health::setup::parse(&mut d, &ctx())
        .map(|c| c.as_any().downcast_ref::<health::setup::Config>().cloned().unwrap())
        .map_err(|e| e.coredns_message())
}

fn ready(text: &str) -> Result<ready::setup::Config, String> {
    let mut d = Dispenser::from_text(text);
    ready::setup::parse(&mut d, &ctx())
        .map(|c| c.as_any().downcast_ref::<ready::setup::Config>().cloned().unwrap())
        .map_err(|e| e.coredns_message())
}

fn prom(text: &str) -> Result<prometheus::setup::Config, String> {
    let mut d = Dispenser::from_text(text);
    prometheus::setup::parse(&mut d, &ctx())
        .map(|c| c.as_any().downcast_ref::<prometheus::setup::Config>().cloned().unwrap())
        .map_err(|e| e.coredns_message())
}

#[test]
fn health_accepts() {
    assert_eq!(health("health").map(|c| (c.addr, c.lameduck)), Ok((":8080".to_string(), Duration::ZERO)));
    assert_eq!(health("health localhost:1234").map(|c| c.addr), Ok("localhost:1234".to_string()));
    assert_eq!(health("health bla:a").map(|c| c.addr), Ok("bla:a".to_string()));
    assert_eq!(health("health [::1]:8080").map(|c| c.addr), Ok("[::1]:8080".to_string()));
    assert_eq!(health("health :8080 {\n lameduck 5s\n}").map(|c| c.lameduck), Ok(Duration::from_secs(5)));
    assert_eq!(
        health("health {\n lameduck 1m30s\n}").map(|c| (c.addr, c.lameduck)),
        Ok((":8080".to_string(), Duration::from_secs(90)))
    );
}

#[test]
fn health_rejects() {
    assert_eq!(health("health bla"), Err("plugin/health: address bla: missing port in address".to_string()));
    assert_eq!(
        health("health bla bla"),
        Err("plugin/health: Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after 'bla'"
            .to_string())
    );
    assert_eq!(
        health("health :8080 {\n lameduck x\n}"),
        Err("plugin/health: unable to parse lameduck duration value: 'x' : time: invalid duration \"x\"".to_string())
    );
    assert!(health("health :8080 {\n lameduck\n}").unwrap_err().contains("Wrong argument count"));
    assert_eq!(
        health("health :8080 {\n foo\n}"),
        Err("plugin/health: Corefile:2 - Error during parsing: unknown property 'foo'".to_string())
    );
}

#[test]
fn ready_syntax() {
    assert_eq!(ready("ready").map(|c| (c.addr, c.continuously)), Ok((":8181".to_string(), false)));
    assert_eq!(ready("ready localhost:1234").map(|c| c.addr), Ok("localhost:1234".to_string()));
    assert_eq!(ready("ready {\n monitor continuously\n}").map(|c| c.continuously), Ok(true));
    assert_eq!(ready("ready {\n monitor until-ready\n}").map(|c| c.continuously), Ok(false));
    assert_eq!(
        ready("ready\nready :9"),
        Err("plugin/ready: this plugin can only be used once per Server Block".to_string())
    );
    assert_eq!(ready("ready bla"), Err("plugin/ready: address bla: missing port in address".to_string()));
    assert_eq!(
        ready("ready {\n monitor sometimes\n}"),
        Err("plugin/ready: Corefile:2 - Error during parsing: monitor type 'sometimes' not supported".to_string())
    );
    assert!(ready("ready a:1 b:2").unwrap_err().contains("Wrong argument count"));
}

#[test]
fn prometheus_syntax() {
    let c = prom("prometheus").unwrap();
    assert_eq!((c.addr.as_str(), c.zones.clone()), ("localhost:9153", vec!["example.org.".to_string()]));
    assert_eq!(prom("prometheus :9253").map(|c| c.addr), Ok(":9253".to_string()));
    assert_eq!(prom("prometheus localhost:0 {\n runtime_metrics\n}").map(|c| c.runtime_metrics), Ok(true));
    assert_eq!(prom("prometheus {\n tls /x.yml\n}").map(|c| c.tls_config), Ok(Some("/x.yml".to_string())));
    assert_eq!(
        prom("prometheus\nprometheus :9"),
        Err("plugin/prometheus: this plugin can only be used once per Server Block".to_string())
    );
    assert_eq!(prom("prometheus bla"), Err("plugin/prometheus: address bla: missing port in address".to_string()));
    assert!(prom("prometheus a:1 b:2").unwrap_err().contains("Wrong argument count"));
    assert_eq!(
        prom("prometheus {\n foo\n}"),
        Err("plugin/prometheus: Corefile:2 - Error during parsing: unknown option: foo".to_string())
    );
    assert_eq!(
        prom("prometheus {\n tls a\n tls b\n}"),
        Err("plugin/prometheus: Corefile:3 - Error during parsing: tls block already specified".to_string())
    );
    assert!(prom("prometheus {\n runtime_metrics x\n}").unwrap_err().contains("Wrong argument count"));
}

/// A writer collecting everything into a shared buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn log_line_shapes() {
    let cap = Capture::default();
    let writer = cap.clone();
    let sub = logging::subscriber(move || writer.clone());
    tracing::subscriber::with_default(sub, || {
        logging::set_debug(false);
        tracing::info!(target: "plugin/reload", "Running configuration SHA512 = {}", "abc");
        tracing::warn!(target: "plugin/health", "Local health request to {:?} failed", "http://:8080/health");
        tracing::error!(target: "plugin/errors", "2 example.org. A: boom");
        tracing::info!("plain message");
        tracing::debug!(target: "plugin/cache", "hidden");
        logging::set_debug(true);
        tracing::debug!(target: "plugin/cache", "shown");
        logging::set_debug(false);
        tracing::debug!(target: "plugin/cache", "hidden again");
    });
    let out = String::from_utf8(cap.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        out,
        "[INFO] plugin/reload: Running configuration SHA512 = abc\n\
         [WARNING] plugin/health: Local health request to \"http://:8080/health\" failed\n\
         [ERROR] plugin/errors: 2 example.org. A: boom\n\
         [INFO] plain message\n\
         [DEBUG] plugin/cache: shown\n"
    );
}
