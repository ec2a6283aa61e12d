//! forward options over the real server against real upstream fixtures (spec §4.3).

mod common;

use std::time::Duration;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use pretty_assertions::assert_eq;

fn www() -> Q {
    Q::new("www.example.org.", RecordType::A)
}

#[test]
fn force_tcp_and_prefer_udp_choose_the_upstream_transport() {
    let up = fixture(&example_zone(300));
    let srv = Server::start(&format!(".:{{PORT}} {{\n    forward . {} {{\n        force_tcp\n    }}\n}}\n", up.addr()));
    assert_eq!(www().ask(srv.addr).metadata.response_code, ResponseCode::NoError);
    assert_eq!((up.queries(), up.tcp_queries()), (1, 1), "UDP client, TCP upstream");
    drop(srv);

    let up = fixture(&example_zone(300));
    let srv =
        Server::start(&format!(".:{{PORT}} {{\n    forward . {} {{\n        prefer_udp\n    }}\n}}\n", up.addr()));
    assert_eq!(www().tcp().ask(srv.addr).metadata.response_code, ResponseCode::NoError);
    assert_eq!((up.queries(), up.tcp_queries()), (1, 0), "TCP client, UDP upstream");
    // prefer_udp retries a truncated UDP reply over TCP itself.
    let m = Q::new("big.example.org.", RecordType::A).tcp().ask(srv.addr);
    assert_eq!((m.answers.len(), m.metadata.truncation), (40, false));
    assert_eq!(up.tcp_queries(), 1);
    drop(srv);

    // Without options the client's transport is used.
    let up = fixture(&example_zone(300));
    let srv = Server::start(&format!(".:{{PORT}} {{\n    forward . {}\n}}\n", up.addr()));
    www().ask(srv.addr);
    www().tcp().ask(srv.addr);
    assert_eq!((up.queries(), up.tcp_queries()), (2, 1));
}

#[test]
fn policy_sequential_and_round_robin() {
    let (a, b) = (fixture(&example_zone(300)), fixture(&example_zone(300)));
    let srv = Server::start(&format!(
        ".:{{PORT}} {{\n    forward . {} {} {{\n        policy sequential\n    }}\n}}\n",
        a.addr(),
        b.addr()
    ));
    for _ in 0..6 {
        assert_eq!(www().ask(srv.addr).metadata.response_code, ResponseCode::NoError);
    }
    assert_eq!((a.queries(), b.queries()), (6, 0));
    drop(srv);

    let (a, b) = (fixture(&example_zone(300)), fixture(&example_zone(300)));
    let srv = Server::start(&format!(
        ".:{{PORT}} {{\n    forward . {} {} {{\n        policy round_robin\n    }}\n}}\n",
        a.addr(),
        b.addr()
    ));
    for _ in 0..6 {
        www().ask(srv.addr);
    }
    assert_eq!((a.queries(), b.queries()), (3, 3));
}

#[test]
fn dead_upstream_is_skipped_after_max_fails() {
    let dead = dead_fixture();
    let live = fixture(&example_zone(300));
    let srv = Server::start(&format!(
        ".:{{PORT}} {{\n    forward . {} {} {{\n        policy sequential\n        max_fails 1\n        health_check 100ms\n    }}\n}}\n",
        dead.addr(),
        live.addr()
    ));
    // The first query times out on the dead upstream, then the live one answers.
    let first = Q::new("www.example.org.", RecordType::A);
    let mut spec = first.0.clone();
    spec.rd = true;
    let m = nodecache_conformance::client::exchange(srv.addr, &spec, Duration::from_secs(8))
        .expect("exchange")
        .expect("answered by the live upstream");
    assert_eq!(m.msg.metadata.response_code, ResponseCode::NoError);
    // Health probes to the dead upstream fail (1s read timeout each); after more than
    // max_fails of them it is down and queries go straight to the live one. Timing on a loaded
    // machine varies, so wait until one query bypasses it, then require the next five to.
    let reached_dead = |name: &str| dead.seen().iter().any(|s| s.question == format!("{name} A"));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut i = 0;
    loop {
        let name = format!("w{i}.example.org.");
        let m = Q::new(&name, RecordType::A).ask(srv.addr);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        if !reached_dead(&name) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the dead upstream was never marked down");
        i += 1;
    }
    for i in 0..5 {
        let name = format!("n{i}.example.org.");
        let m = Q::new(&name, RecordType::A).ask(srv.addr);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(!reached_dead(&name), "{name} was sent to the down upstream");
    }
    assert!(dead.seen().iter().any(|s| s.question == ". NS"), "health probes reached the dead upstream");
}

#[test]
fn except_names_go_to_the_next_plugin() {
    let up = fixture(&example_zone(300));
    let srv = Server::start(&format!(
        ".:{{PORT}} {{\n    whoami\n    forward . {} {{\n        except internal.example.org\n    }}\n}}\n",
        up.addr()
    ));
    let m = Q::new("host.internal.example.org.", RecordType::A).ask(srv.addr);
    assert_eq!((m.metadata.response_code, m.additionals.len()), (ResponseCode::NoError, 2), "whoami answered");
    assert_eq!(up.queries(), 0);
    let m = www().ask(srv.addr);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(up.queries(), 1);
}

#[test]
fn max_concurrent_refuses_the_excess() {
    let up = fixture(&example_zone(300));
    up.update(|b| b.delay_ms = 1500);
    let srv = Server::start(&format!(
        ".:{{PORT}} {{\n    forward . {} {{\n        max_concurrent 1\n    }}\n}}\n",
        up.addr()
    ));
    let addr = srv.addr;
    let slow = std::thread::spawn(move || www().ask(addr));
    std::thread::sleep(Duration::from_millis(300));
    let m = Q::new("mail.example.org.", RecordType::A).ask(srv.addr);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert_eq!(slow.join().expect("slow query").metadata.response_code, ResponseCode::NoError);
    assert_eq!(up.queries(), 1);
}

#[test]
fn expired_pooled_connections_are_replaced() {
    let up = fixture(&example_zone(300));
    let srv = Server::start(&format!(
        ".:{{PORT}} {{\n    forward . {} {{\n        force_tcp\n        expire 200ms\n    }}\n}}\n",
        up.addr()
    ));
    for _ in 0..3 {
        assert_eq!(www().ask(srv.addr).answers.len(), 1);
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(up.tcp_queries(), 3);
}
