//! The forward handler against real loopback responders.

mod forward_common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use forward_common::{reply_msg, request, Behavior, Responder, Setup};
use futures_util::future::join_all;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use nodecache::plugin::Carryover;
use nodecache::server::Proto;
use pretty_assertions::assert_eq;

#[tokio::test]
async fn forwards_udp_with_random_id_restored() {
    let r = Responder::start(Behavior::default()).await;
    let s = Setup::new(&format!("forward . {}", r.addr));
    let mut client_ids = Vec::new();
    for _ in 0..5 {
        let (req, out) = s.ask("example.org.", Proto::Udp).await;
        let m = reply_msg(&out);
        assert_eq!(m.metadata.id, req.id());
        assert_eq!(m.answers.len(), 1);
        assert_eq!(out.plugin, "forward");
        assert_eq!(req.get_metadata("forward/upstream"), Some(r.addr.to_string().as_str()));
        client_ids.push(req.id());
    }
    assert_eq!((r.udp(), r.tcp()), (5, 0));
    let upstream_ids = r.seen.ids.lock().clone();
    assert_ne!(upstream_ids, client_ids, "query IDs are replaced before sending");
}

#[tokio::test]
async fn transport_follows_client_unless_forced() {
    let r = Responder::start(Behavior::default()).await;
    let s = Setup::new(&format!("forward . {}", r.addr));
    s.ask("a.example.", Proto::Tcp).await;
    assert_eq!((r.udp(), r.tcp()), (0, 1));

    let forced = Setup::new(&format!("forward . {} {{\nforce_tcp\nprefer_udp\n}}", r.addr));
    let (_, out) = forced.ask("b.example.", Proto::Udp).await;
    assert_eq!(reply_msg(&out).answers.len(), 1);
    assert_eq!((r.udp(), r.tcp()), (0, 2), "force_tcp beats prefer_udp");

    let udp = Setup::new(&format!("forward . {} {{\nprefer_udp\n}}", r.addr));
    udp.ask("c.example.", Proto::Tcp).await;
    assert_eq!((r.udp(), r.tcp()), (1, 2));
}

#[tokio::test]
async fn truncated_udp_reply_is_passed_through_unless_prefer_udp() {
    let r = Responder::start(Behavior { truncate_udp: true, ..Default::default() }).await;
    let s = Setup::new(&format!("forward . {}", r.addr));
    let (_, out) = s.ask("tc.example.", Proto::Udp).await;
    let m = reply_msg(&out);
    assert!(m.metadata.truncation);
    assert_eq!(m.answers.len(), 0);
    assert_eq!((r.udp(), r.tcp()), (1, 0));

    let p = Setup::new(&format!("forward . {} {{\nprefer_udp\n}}", r.addr));
    let (_, out) = p.ask("tc.example.", Proto::Udp).await;
    let m = reply_msg(&out);
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 1);
    assert_eq!((r.udp(), r.tcp()), (2, 1));
}

#[tokio::test]
async fn overflowing_udp_reply_becomes_empty_tc() {
    // case 40: a reply larger than the client's 512 bytes
    let r = Responder::start(Behavior { answers: 40, ..Default::default() }).await;
    let s = Setup::new(&format!("forward . {}", r.addr));
    let (req, out) = s.ask("big.example.", Proto::Udp).await;
    let m = reply_msg(&out);
    assert!(m.metadata.truncation);
    assert_eq!((m.answers.len(), m.queries.len()), (0, 1));
    assert_eq!(m.metadata.id, req.id());

    // A client advertising a big buffer gets everything.
    let mut big = request("big.example.", RecordType::A, Proto::Udp, Some(4096));
    let out = s.serve(&mut big).await;
    assert_eq!(reply_msg(&out).answers.len(), 40);

    let t = Setup::new(&format!("forward . {} {{\nforce_tcp\n}}", r.addr));
    let (_, out) = t.ask("big.example.", Proto::Udp).await;
    let m = reply_msg(&out);
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 40);
}

#[tokio::test]
async fn mismatched_id_is_ignored() {
    let r = Responder::start(Behavior { wrong_id_first: true, ..Default::default() }).await;
    let s = Setup::new(&format!("forward . {}", r.addr));
    let (req, out) = s.ask("id.example.", Proto::Udp).await;
    let m = reply_msg(&out);
    assert_eq!(m.metadata.id, req.id());
    assert_eq!(m.answers.len(), 1);
    assert_eq!(r.udp(), 1);
}

#[tokio::test]
async fn mismatched_question_gives_formerr() {
    let r = Responder::start(Behavior { wrong_question: true, ..Default::default() }).await;
    let s = Setup::new(&format!("forward . {}", r.addr));
    let (req, out) = s.ask("q.example.", Proto::Udp).await;
    let m = reply_msg(&out);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(m.metadata.id, req.id());
    assert_eq!(m.queries[0].name().to_ascii(), "q.example.");
    assert!(m.answers.is_empty());
}

#[tokio::test]
async fn servfail_when_all_upstreams_drop() {
    let a = Responder::start(Behavior { drop: true, ..Default::default() }).await;
    let b = Responder::start(Behavior { drop: true, ..Default::default() }).await;
    let s = Setup::new(&format!("forward . {} {} {{\nread_timeout 100ms\nhealth_check 10s\n}}", a.addr, b.addr));
    let (_, out) = s.ask("drop.example.", Proto::Udp).await;
    assert!(out.reply.is_none());
    assert_eq!(out.rcode, ResponseCode::ServFail);
    let e = out.error.unwrap();
    assert!(e.starts_with("read udp 127.0.0.1:") && e.ends_with(": i/o timeout"), "{e}");
    // two attempts per upstream by default
    assert_eq!(a.udp() + b.udp(), 4);
    assert_eq!(s.marker.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn max_connect_attempts_caps_tries() {
    let a = Responder::start(Behavior { drop: true, ..Default::default() }).await;
    let s = Setup::new(&format!(
        "forward . {} {{\nread_timeout 50ms\nmax_connect_attempts 3\nhealth_check 10s\n}}",
        a.addr
    ));
    let (_, out) = s.ask("drop.example.", Proto::Udp).await;
    assert_eq!(out.rcode, ResponseCode::ServFail);
    assert_eq!(a.udp(), 3);
}

/// An address with nothing listening (UDP sends there fail with connection refused).
async fn dead_addr() -> std::net::SocketAddr {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.local_addr().unwrap()
}

#[tokio::test]
async fn down_upstreams_are_skipped_and_probes_decide_health() {
    // case 41
    let dead = dead_addr().await;
    let good = Responder::start(Behavior::default()).await;
    let s = Setup::new(&format!(
        "forward . {dead} {} {{\npolicy sequential\nmax_fails 1\nhealth_check 10ms\n}}",
        good.addr
    ));
    // The first query fails on the dead upstream, starts its probe, and is answered by the good one.
    let (_, out) = s.ask("h1.example.", Proto::Udp).await;
    assert_eq!(reply_msg(&out).answers.len(), 1);
    let dead_up = s.upstream(0).clone();
    for _ in 0..200 {
        if dead_up.fails() > 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(dead_up.down(1), "fails = {}", dead_up.fails());
    assert!(!dead_up.down(0), "max_fails 0 means never down");
    let before = good.udp();
    let (_, out) = s.ask("h2.example.", Proto::Udp).await;
    assert_eq!(reply_msg(&out).answers.len(), 1);
    assert_eq!(good.udp(), before + 1);

    // Any reply is healthy, even SERVFAIL; no reply counts as a failure.
    let sick = Responder::start(Behavior { rcode: 2, ..Default::default() }).await;
    let t = Setup::new(&format!("forward . {} {{\nhealth_check 1s no_rec\n}}", sick.addr));
    assert!(t.upstream(0).check().await);
    assert_eq!(t.upstream(0).fails(), 0);
    assert_eq!(sick.seen.probes.lock().clone(), vec![false], "no_rec clears RD");
    sick.set(|b| b.drop_probes = true);
    assert!(!t.upstream(0).check().await);
    assert_eq!(t.upstream(0).fails(), 1);
    sick.set(|b| b.drop_probes = false);
    assert!(t.upstream(0).check().await);
    assert_eq!(t.upstream(0).fails(), 0);
}

#[tokio::test]
async fn all_down_picks_random_or_fails_fast() {
    let dead = dead_addr().await;
    let good = Responder::start(Behavior::default()).await;
    // Make both upstreams look down by failing their probes first.
    let text = format!("forward . {dead} {} {{\nmax_fails 1\nhealth_check 10s\n}}", good.addr);
    let s = Setup::new(&text);
    good.set(|b| b.drop_probes = true);
    for i in 0..2 {
        for _ in 0..2 {
            let up = s.upstream(i).clone();
            tokio::time::timeout(Duration::from_secs(3), up.check()).await.unwrap();
        }
    }
    assert!(s.upstream(0).down(1) && s.upstream(1).down(1));
    let mut answered = 0;
    for i in 0..20 {
        let (_, out) = s.ask(&format!("r{i}.example."), Proto::Udp).await;
        if out.reply.is_some() {
            answered += 1;
        }
    }
    assert!(answered > 0, "a random upstream is still tried when all are down");

    let f = Setup::new(
        &format!("{text}\n").replace("health_check 10s", "health_check 10s\nfailfast_all_unhealthy_upstreams"),
    );
    for i in 0..2 {
        for _ in 0..2 {
            tokio::time::timeout(Duration::from_secs(3), f.upstream(i).check()).await.unwrap();
        }
    }
    let before = good.udp();
    let (_, out) = f.ask("ff.example.", Proto::Udp).await;
    assert_eq!(out.rcode, ResponseCode::ServFail);
    assert_eq!(out.error.as_deref(), Some("no healthy proxies"));
    assert_eq!(good.udp(), before);
}

#[tokio::test]
async fn policies_order_upstreams() {
    let a = Responder::start(Behavior::default()).await;
    let b = Responder::start(Behavior::default()).await;
    let seq = Setup::new(&format!("forward . {} {} {{\npolicy sequential\n}}", a.addr, b.addr));
    for i in 0..6 {
        seq.ask(&format!("s{i}.example."), Proto::Udp).await;
    }
    assert_eq!((a.udp(), b.udp()), (6, 0));

    let rr = Setup::new(&format!("forward . {} {} {{\npolicy round_robin\n}}", a.addr, b.addr));
    for i in 0..6 {
        rr.ask(&format!("r{i}.example."), Proto::Udp).await;
    }
    assert_eq!((a.udp(), b.udp()), (9, 3));

    let rnd = Setup::new(&format!("forward . {} {}", a.addr, b.addr));
    for i in 0..40 {
        rnd.ask(&format!("x{i}.example."), Proto::Udp).await;
    }
    assert!(a.udp() > 9 && b.udp() > 3, "random spreads: a={} b={}", a.udp(), b.udp());
}

#[tokio::test]
async fn from_and_except_select_queries() {
    let r = Responder::start(Behavior::default()).await;
    let s = Setup::new(&format!("forward example.org {} {{\nexcept internal.example.org\n}}", r.addr));
    let (_, out) = s.ask("www.example.org.", Proto::Udp).await;
    assert_eq!(reply_msg(&out).answers.len(), 1);
    let (_, out) = s.ask("a.internal.example.org.", Proto::Udp).await;
    assert!(out.reply.is_none());
    let (_, out) = s.ask("example.com.", Proto::Udp).await;
    assert_eq!(out.error.as_deref(), Some("marker"));
    assert_eq!(s.marker.hits.load(Ordering::SeqCst), 2);
    assert_eq!(r.udp(), 1);

    // a qname equal to FROM is never excluded
    let e = Setup::new(&format!("forward example.org {} {{\nexcept example.org\n}}", r.addr));
    let (_, out) = e.ask("Example.ORG.", Proto::Udp).await;
    assert!(out.reply.is_some());
    let (_, out) = e.ask("www.example.org.", Proto::Udp).await;
    assert!(out.reply.is_none());
    assert_eq!(r.udp(), 2);
}

#[tokio::test]
async fn max_concurrent_refuses_excess() {
    let r = Responder::start(Behavior { delay: Duration::from_millis(300), ..Default::default() }).await;
    let s = Arc::new(Setup::new(&format!("forward . {} {{\nmax_concurrent 1\n}}", r.addr)));
    let outs = join_all((0..2).map(|i| {
        let s = s.clone();
        async move { s.ask(&format!("c{i}.example."), Proto::Udp).await.1 }
    }))
    .await;
    let refused: Vec<_> = outs.iter().filter(|o| o.rcode == ResponseCode::Refused).collect();
    assert_eq!(refused.len(), 1);
    assert!(refused[0].reply.is_none());
    assert_eq!(refused[0].error.as_deref(), Some("concurrent queries exceeded maximum 1"));
    assert_eq!(r.udp(), 1);
}

#[tokio::test]
async fn failover_moves_on_and_returns_last_reply() {
    let a = Responder::start(Behavior { rcode: 2, ..Default::default() }).await;
    let b = Responder::start(Behavior::default()).await;
    let s = Setup::new(&format!("forward . {} {} {{\npolicy sequential\nfailover SERVFAIL\n}}", a.addr, b.addr));
    let (_, out) = s.ask("f.example.", Proto::Udp).await;
    assert_eq!(reply_msg(&out).metadata.response_code, ResponseCode::NoError);
    assert_eq!((a.udp(), b.udp()), (1, 1));
    b.set(|x| x.rcode = 2);
    let (req, out) = s.ask("g.example.", Proto::Udp).await;
    assert_eq!(reply_msg(&out).metadata.response_code, ResponseCode::ServFail);
    assert_eq!(req.get_metadata("forward/upstream"), Some(b.addr.to_string().as_str()));
    // without failover the first reply is returned
    let n = Setup::new(&format!("forward . {} {} {{\npolicy sequential\n}}", a.addr, b.addr));
    let before = b.udp();
    n.ask("h.example.", Proto::Udp).await;
    assert_eq!(b.udp(), before);
}

#[tokio::test]
async fn next_hands_off_only_to_a_following_forward() {
    let a = Responder::start(Behavior { rcode: 3, ..Default::default() }).await;
    let b = Responder::start(Behavior::default()).await;
    let s = Setup::new(&format!("forward . {} {{\nnext NXDOMAIN\n}}\nforward . {}", a.addr, b.addr));
    let (_, out) = s.ask("n.example.", Proto::Udp).await;
    assert_eq!(reply_msg(&out).metadata.response_code, ResponseCode::NoError);
    assert_eq!((a.udp(), b.udp()), (1, 1));

    // on the last forward line `next` has no effect
    let last = Setup::new(&format!("forward . {} {{\nnext NXDOMAIN\n}}", a.addr));
    let (_, out) = last.ask("n.example.", Proto::Udp).await;
    assert_eq!(reply_msg(&out).metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(last.marker.hits.load(Ordering::SeqCst), 0);

    // next_on_nodata: NOERROR without answers
    let empty = Responder::start(Behavior { answers: 0, ..Default::default() }).await;
    let nd = Setup::new(&format!("forward . {} {{\nnext_on_nodata\n}}\nforward . {}", empty.addr, b.addr));
    let (_, out) = nd.ask("nd.example.", Proto::Udp).await;
    assert_eq!(reply_msg(&out).answers.len(), 1);
    assert_eq!(empty.udp(), 1);

    // a first line whose FROM does not match passes to the second
    let z = Setup::new(&format!("forward example.org {}\nforward . {}", a.addr, b.addr));
    let before = (a.udp(), b.udp());
    z.ask("other.example.", Proto::Udp).await;
    assert_eq!((a.udp(), b.udp()), (before.0, before.1 + 1));
}

#[tokio::test]
async fn connections_are_pooled_and_expire() {
    let r = Responder::start(Behavior::default()).await;
    let s = Setup::new(&format!("forward . {}", r.addr));
    for i in 0..4 {
        s.ask(&format!("p{i}.example."), Proto::Udp).await;
        s.ask(&format!("t{i}.example."), Proto::Tcp).await;
    }
    assert_eq!(r.distinct_udp_ports(), 4, "every UDP query leaves from a socket of its own");
    assert_eq!(r.seen.tcp_conns.load(Ordering::SeqCst), 1, "the TCP connection is reused");
    assert_eq!(s.upstream(0).idle_conns(), (0, 1), "UDP sockets are never pooled");

    let r2 = Responder::start(Behavior::default()).await;
    let e = Setup::new(&format!("forward . {} {{\nexpire 0s\n}}", r2.addr));
    for i in 0..3 {
        e.ask(&format!("e{i}.example."), Proto::Tcp).await;
    }
    assert_eq!(r2.seen.tcp_conns.load(Ordering::SeqCst), 3, "expired connections are not reused");

    let r3 = Responder::start(Behavior::default()).await;
    let m = Setup::new(&format!("forward . {} {{\nmax_idle_conns 1\n}}", r3.addr));
    let m = Arc::new(m);
    join_all((0..4).map(|i| {
        let m = m.clone();
        async move { m.ask(&format!("m{i}.example."), Proto::Tcp).await }
    }))
    .await;
    assert_eq!(m.upstream(0).idle_conns(), (0, 1), "at most max_idle_conns idle TCP connections are kept");
}

#[tokio::test]
async fn closed_pooled_tcp_connection_is_retried() {
    let r = Responder::start(Behavior { close_after_answer: true, ..Default::default() }).await;
    let s = Setup::new(&format!("forward . {}", r.addr));
    s.ask("a.example.", Proto::Tcp).await;
    assert_eq!(s.upstream(0).idle_conns().1, 1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The pooled connection was closed by the peer: the query is retried on a new one.
    let (_, out) = s.ask("b.example.", Proto::Tcp).await;
    assert_eq!(reply_msg(&out).answers.len(), 1);
    assert_eq!(r.seen.tcp_conns.load(Ordering::SeqCst), 2);
    assert_eq!(r.tcp(), 2);
}

#[tokio::test]
async fn identical_inflight_queries_are_sent_once() {
    let r = Responder::start(Behavior { delay: Duration::from_millis(200), ..Default::default() }).await;
    let s = Arc::new(Setup::new(&format!("forward . {}", r.addr)));
    let wire_template = request("same.example.", RecordType::A, Proto::Udp, None);
    let outs = join_all((0..10u16).map(|i| {
        let s = s.clone();
        let mut req = wire_template.clone();
        req.wire[0..2].copy_from_slice(&(1000 + i).to_be_bytes());
        async move {
            let out = s.serve(&mut req).await;
            (req.id(), out)
        }
    }))
    .await;
    assert_eq!(r.udp(), 1);
    for (id, out) in outs {
        let m = reply_msg(&out);
        assert_eq!(m.metadata.id, id);
        assert_eq!(m.answers.len(), 1);
    }
    // a different transport is a different flight
    s.ask("same.example.", Proto::Tcp).await;
    assert_eq!(r.tcp(), 1);
}

#[tokio::test]
async fn upstream_state_carries_across_rebuilds() {
    let r = Responder::start(Behavior::default()).await;
    let carry = Arc::new(Carryover::default());
    let text = format!("forward . {}", r.addr);
    let a = Setup::with_carry(&text, carry.clone());
    let b = Setup::with_carry(&text, carry.clone());
    assert!(Arc::ptr_eq(a.upstream(0), b.upstream(0)));
    let c = Setup::with_carry(&format!("{text} {{\nmax_fails 5\nexpire 5s\n}}"), carry);
    assert!(!Arc::ptr_eq(a.upstream(0), c.upstream(0)));
}

#[tokio::test]
async fn tls_upstreams_verify_and_use_sni() {
    let pki = forward_common::make_pki();
    let r = Responder::start_tls(Behavior::default(), &pki).await;
    let port = r.addr.port();
    // verified against the IP address
    let s = Setup::new(&format!("forward . tls://127.0.0.1:{port} {{\ntls {}\n}}", pki.ca));
    for i in 0..3 {
        let (_, out) = s.ask(&format!("tls{i}.example."), Proto::Udp).await;
        assert_eq!(reply_msg(&out).answers.len(), 1);
    }
    assert_eq!(r.tcp(), 3);
    assert_eq!(r.seen.tcp_conns.load(Ordering::SeqCst), 1, "the TLS connection is pooled");
    // per-upstream server name
    let n = Setup::new(&format!("forward . tls://127.0.0.1%dns.test:{port} {{\ntls {}\n}}", pki.ca));
    let (_, out) = n.ask("sni.example.", Proto::Udp).await;
    assert_eq!(reply_msg(&out).answers.len(), 1);
    // a name the certificate does not carry fails the handshake
    let w = Setup::new(&format!(
        "forward . tls://127.0.0.1:{port} {{\ntls {}\ntls_servername wrong.test\nhealth_check 10s\n}}",
        pki.ca
    ));
    let (_, out) = w.ask("bad.example.", Proto::Udp).await;
    assert_eq!(out.rcode, ResponseCode::ServFail);
    assert!(out.reply.is_none());
    // the probe for a tls upstream runs over TLS
    assert!(s.upstream(0).check().await);
    assert_eq!(r.probes(), 1);
}

#[tokio::test]
async fn metrics_use_coredns_names_and_labels() {
    let r = Responder::start(Behavior::default()).await;
    let s = Setup::new(&format!("forward . {}", r.addr));
    for i in 0..3 {
        s.ask(&format!("m{i}.example."), Proto::Udp).await;
    }
    s.ask("tcp.example.", Proto::Tcp).await;
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &nodecache::observe::registry().lock()).unwrap();
    let to = r.addr.to_string();
    let has = |needle: String| assert!(text.lines().any(|l| l == needle), "missing {needle:?}");
    // Every UDP query opens a socket of its own: three misses, no hits.
    has(format!("coredns_proxy_conn_cache_misses_total{{proxy_name=\"forward\",to=\"{to}\",proto=\"udp\"}} 3"));
    assert!(!text
        .contains(&format!("coredns_proxy_conn_cache_hits_total{{proxy_name=\"forward\",to=\"{to}\",proto=\"udp\"}}")));
    has(format!("coredns_proxy_conn_cache_misses_total{{proxy_name=\"forward\",to=\"{to}\",proto=\"tcp\"}} 1"));
    has(format!(
        "coredns_proxy_request_duration_seconds_count{{proxy_name=\"forward\",to=\"{to}\",rcode=\"NOERROR\"}} 4"
    ));
    assert!(text.contains(&format!(
        "coredns_proxy_request_duration_seconds_bucket{{le=\"0.00025\",proxy_name=\"forward\",to=\"{to}\",rcode=\"NOERROR\"}}"
    )) || text.contains(&format!(
        "coredns_proxy_request_duration_seconds_bucket{{proxy_name=\"forward\",to=\"{to}\",rcode=\"NOERROR\",le=\"0.00025\"}}"
    )));
    assert!(!text.contains(&format!("proxy_name=\"forward\",to=\"{to}\",proto=\"tcp-tls\"")), "no unused series");
    let dead = dead_addr().await;
    let d = Setup::new(&format!("forward . {dead}"));
    assert!(!d.upstream(0).check().await);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &nodecache::observe::registry().lock()).unwrap();
    assert!(text
        .lines()
        .any(|l| l == format!("coredns_proxy_healthcheck_failures_total{{proxy_name=\"forward\",to=\"{dead}\"}} 1")));
    assert!(text.contains("# TYPE coredns_forward_healthcheck_broken counter"));
    assert!(text.contains("# TYPE coredns_forward_max_concurrent_rejects counter"));
    assert!(text.lines().any(|l| l.starts_with("coredns_forward_max_concurrent_rejects_total ")));
}

#[tokio::test]
async fn max_age_closes_old_connections_even_when_busy() {
    let r = Responder::start(Behavior::default()).await;
    let s = Setup::new(&format!("forward . {} {{\nexpire 200ms\nmax_age 200ms\n}}", r.addr));
    s.ask("a.example.", Proto::Tcp).await;
    for i in 0..4 {
        tokio::time::sleep(Duration::from_millis(80)).await;
        s.ask(&format!("b{i}.example."), Proto::Tcp).await;
    }
    // Used every 80ms so never idle-expired, but replaced once older than max_age.
    let conns = r.seen.tcp_conns.load(Ordering::SeqCst);
    assert!(conns >= 2, "connections: {conns}");
}

#[tokio::test]
async fn chaos_queries_pass_through() {
    // case 42: version.bind CH TXT
    let r = Responder::start(Behavior { txt: Some("CoreDNS-001".to_string()), ..Default::default() }).await;
    let s = Setup::new(&format!("forward . {}", r.addr));
    let mut m = hickory_proto::op::Message::query();
    m.metadata.id = 4242;
    let mut q =
        hickory_proto::op::Query::query(hickory_proto::rr::Name::from_ascii("version.bind.").unwrap(), RecordType::TXT);
    q.set_query_class(hickory_proto::rr::DNSClass::CH);
    m.add_query(q);
    let mut req = request("version.bind.", RecordType::TXT, Proto::Udp, None);
    req.wire = m.to_vec().unwrap();
    req.qclass = 3;
    let out = s.serve(&mut req).await;
    let reply = reply_msg(&out);
    assert_eq!(reply.metadata.id, 4242);
    assert_eq!(reply.queries[0].query_class(), hickory_proto::rr::DNSClass::CH);
    let txt = match &reply.answers[0].data {
        hickory_proto::rr::RData::TXT(t) => {
            t.txt_data.iter().map(|d| String::from_utf8_lossy(d).to_string()).collect::<Vec<_>>()
        }
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(txt, vec!["CoreDNS-001"]);
}

#[tokio::test]
async fn probes_use_tcp_with_force_tcp() {
    let r = Responder::start(Behavior::default()).await;
    let udp = Setup::new(&format!("forward . {}", r.addr));
    assert!(udp.upstream(0).check().await);
    assert_eq!((r.probes(), r.seen.stream_probes.load(Ordering::SeqCst)), (1, 0));
    let tcp = Setup::new(&format!("forward . {} {{\nforce_tcp\n}}", r.addr));
    assert!(tcp.upstream(0).check().await);
    assert_eq!((r.probes(), r.seen.stream_probes.load(Ordering::SeqCst)), (2, 1));
    assert_eq!(r.seen.probes.lock().clone(), vec![true, true], "probes ask with RD by default");
}

#[tokio::test]
async fn refused_udp_upstream_error_reads_like_go() {
    let dead = dead_addr().await;
    let s = Setup::new(&format!("forward . {dead} {{\nmax_fails 0\n}}"));
    let (_, out) = s.ask("refused.example.", Proto::Udp).await;
    assert_eq!(out.rcode, ResponseCode::ServFail);
    let e = out.error.unwrap();
    assert!(e.starts_with("read udp 127.0.0.1:"), "{e}");
    assert!(e.ends_with(&format!("->{dead}: read: connection refused")), "{e}");
}

#[tokio::test]
async fn ipv6_loopback_upstream() {
    let r = Responder::start_on("[::1]:0", Behavior::default()).await;
    let s = Setup::new(&format!("forward . {}", r.addr));
    let (req, out) = s.ask("v6.example.", Proto::Udp).await;
    assert_eq!(reply_msg(&out).answers.len(), 1);
    assert_eq!(req.get_metadata("forward/upstream"), Some(format!("[::1]:{}", r.addr.port()).as_str()));
    s.ask("v6tcp.example.", Proto::Tcp).await;
    assert_eq!((r.udp(), r.tcp()), (1, 1));
}
