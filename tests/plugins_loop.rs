//! `loop`: setup, probe counting, the exit action, and the probe over real UDP.

#[path = "plugins_support.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::RecordType;
use nodecache::plugin::loop_detect::handler::{probe_target, Loop};
use nodecache::plugin::loop_detect::setup::{parse, Config};
use nodecache::plugin::Plugin;
use parking_lot::Mutex;
use pretty_assertions::assert_eq;
use support::*;

fn recording_loop(zone: &str) -> (Arc<Loop>, Arc<Mutex<Vec<String>>>) {
    let fired = Arc::new(Mutex::new(Vec::new()));
    let f = fired.clone();
    let l = Loop::new(zone, Arc::new(move |m: &str| f.lock().push(m.to_string())));
    (l, fired)
}

#[tokio::test]
async fn third_probe_hit_fires_the_exit_action() {
    let (l, fired) = recording_loop(".");
    l.set_address(":53");
    let term = Arc::new(Terminal::default());
    let c = chain(vec![l.clone() as Arc<dyn Plugin>], Some(term.clone()));
    let probe = l.qname().to_string();
    assert_eq!(probe.split('.').count(), 3, "{probe}");

    // Other queries pass through and are not counted.
    let mut req = request("example.org.", RecordType::HINFO);
    run(&c, &mut req).await;
    let mut req = request(&probe, RecordType::A);
    run(&c, &mut req).await;
    assert_eq!(l.seen(), 0);

    for i in 1..=2 {
        let mut req = request(&probe, RecordType::HINFO);
        run(&c, &mut req).await;
        assert_eq!(l.seen(), i);
        assert!(fired.lock().is_empty());
    }
    let mut req = request(&probe, RecordType::HINFO);
    run(&c, &mut req).await;
    let msgs = fired.lock().clone();
    assert_eq!(
        msgs,
        vec![format!(
            "Loop (127.0.0.1:40000 -> :53) detected for zone \".\", see https://coredns.io/plugins/loop#troubleshooting. Query: \"HINFO {probe}\""
        )]
    );
    assert_eq!(term.calls(), 5);
    // Probe requests are marked so that forward does not merge them with one in flight.
    let seen = term.seen.lock();
    assert_eq!(seen[2].get_metadata(nodecache::plugin::loop_detect::handler::PROBE_METADATA), Some("1"));
    assert_eq!(seen[0].get_metadata(nodecache::plugin::loop_detect::handler::PROBE_METADATA), None);
}

#[tokio::test]
async fn disabled_loop_passes_everything() {
    let (l, fired) = recording_loop("example.org.");
    assert!(l.qname().ends_with(".example.org."));
    l.set_disabled();
    let c = chain(vec![l.clone() as Arc<dyn Plugin>], Some(Arc::new(Terminal::default())));
    for _ in 0..5 {
        let mut req = request(l.qname(), RecordType::HINFO);
        run(&c, &mut req).await;
    }
    assert_eq!(l.seen(), 0);
    assert!(fired.lock().is_empty());
}

#[tokio::test]
async fn probe_succeeds_against_a_real_listener_and_disables() {
    // A tiny UDP responder that echoes the query back as a reply.
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let port = sock.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 1500];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            buf[2] |= 0x80;
            let _ = sock.send_to(&buf[..n], from).await;
        }
    });
    let (l, _) = recording_loop(".");
    l.start_probe(&format!("dns://127.0.0.1:{port}"));
    for _ in 0..300 {
        if l.disabled() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(l.disabled());
}

#[test]
fn probe_targets() {
    assert_eq!(probe_target("dns://:53").map(|(a, d)| (a.to_string(), d)), Some(("127.0.0.1:53".into(), ":53".into())));
    assert_eq!(
        probe_target("dns://10.0.0.1:5353").map(|(a, d)| (a.to_string(), d)),
        Some(("10.0.0.1:5353".into(), "10.0.0.1:5353".into()))
    );
    assert_eq!(probe_target("dns://[::1]:53").map(|(a, _)| a.to_string()), Some("[::1]:53".into()));
}

#[test]
fn setup_checks() {
    let c = setup(parse, "loop", &["example.org."]).expect("setup");
    let c = c.as_any().downcast_ref::<Config>().expect("config");
    assert_eq!(c.zone, "example.org.");
    let c = setup(parse, "loop", &[]).expect("setup");
    assert_eq!(c.as_any().downcast_ref::<Config>().expect("config").zone, ".");
    assert_eq!(
        setup_err(parse, "loop foo", &["."]),
        "plugin/loop: Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after 'foo'"
    );
    assert_eq!(
        setup_err(parse, "loop\nloop", &["."]),
        "plugin/loop: this plugin can only be used once per Server Block"
    );
}
