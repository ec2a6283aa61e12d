//! cache options over the real server in front of forward and a real upstream (spec §4.2).

mod common;

use std::time::Duration;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use pretty_assertions::assert_eq;

fn serve(cache: &str, up: &nodecache_conformance::fixture::Fixture) -> Server {
    Server::start(&format!(".:{{PORT}} {{\n    {cache}\n    forward . {}\n}}\n", up.addr()))
}

#[test]
fn hit_does_not_reach_upstream_and_ttl_counts_down() {
    let up = fixture(&example_zone(300));
    let srv = serve("cache 300", &up);
    let first = Q::new("www.example.org.", RecordType::A).ask(srv.addr);
    assert_eq!(answer_ttls(&first), vec![300]);
    std::thread::sleep(Duration::from_millis(2100));
    let second = Q::new("WWW.example.org.", RecordType::A).ask(srv.addr);
    assert_eq!(up.queries(), 1, "second answer from the cache");
    assert!(second.metadata.authoritative, "cache hits set AA");
    assert_eq!(second.queries[0].name().to_string(), "WWW.example.org.");
    let ttl = second.answers[0].ttl;
    assert!((296..=298).contains(&ttl), "ttl {ttl} after ~2s");
}

#[test]
fn ttl_is_capped_and_raised_to_the_minimum() {
    let up = fixture(&example_zone(3600));
    let srv = serve("cache 10", &up);
    assert_eq!(answer_ttls(&Q::new("www.example.org.", RecordType::A).ask(srv.addr)), vec![10]);
    let up1 = fixture(&example_zone(1));
    let srv1 = serve("cache 10", &up1);
    assert_eq!(answer_ttls(&Q::new("www.example.org.", RecordType::A).ask(srv1.addr)), vec![5]);
    // success CAPACITY TTL MINTTL.
    let srv2 = Server::start(&format!(
        ".:{{PORT}} {{\n    cache {{\n        success 1000 60 30\n    }}\n    forward . {}\n}}\n",
        up1.addr()
    ));
    assert_eq!(answer_ttls(&Q::new("mail.example.org.", RecordType::A).ask(srv2.addr)), vec![30]);
}

#[test]
fn denial_with_soa_is_cached_with_the_denial_ttl() {
    let up = fixture(&example_zone(300));
    let srv = Server::start(&format!(
        ".:{{PORT}} {{\n    cache 300 {{\n        denial 100 7\n    }}\n    forward . {}\n}}\n",
        up.addr()
    ));
    for _ in 0..3 {
        let m = Q::new("missing.example.org.", RecordType::A).ask(srv.addr);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        let soa: Vec<u32> =
            m.authorities.iter().filter(|r| r.record_type() == RecordType::SOA).map(|r| r.ttl).collect();
        assert_eq!(soa.len(), 1);
        assert!(soa[0] <= 7 && soa[0] >= 6, "SOA ttl {soa:?}");
    }
    // NODATA too.
    for _ in 0..2 {
        let m = Q::new("www.example.org.", RecordType::AAAA).ask(srv.addr);
        assert_eq!((m.metadata.response_code, m.answers.len()), (ResponseCode::NoError, 0));
    }
    assert_eq!(up.queries(), 2);
}

#[test]
fn serve_stale_answers_while_upstream_drops() {
    let up = fixture(&example_zone(300));
    let srv = serve("cache 1 {\n        serve_stale\n    }", &up);
    assert_eq!(Q::new("www.example.org.", RecordType::A).ask(srv.addr).answers.len(), 1);
    up.update(|b| b.drop = true);
    std::thread::sleep(Duration::from_millis(1600));
    let m = Q::new("www.example.org.", RecordType::A).ask(srv.addr);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answer_ttls(&m), vec![0], "stale answers carry TTL 0");
    // Without serve_stale the expired entry is not used.
    let up2 = fixture(&example_zone(300));
    let srv2 = serve("cache 1", &up2);
    Q::new("www.example.org.", RecordType::A).ask(srv2.addr);
    up2.update(|b| b.drop = true);
    std::thread::sleep(Duration::from_millis(1600));
    let m = Q::new("www.example.org.", RecordType::A).send(srv2.addr);
    assert!(m.clone().is_none_or(|m| m.metadata.response_code == ResponseCode::ServFail), "{m:?}");
}

#[test]
fn prefetch_refreshes_a_popular_entry_over_tcp() {
    let up = fixture(&example_zone(300));
    let srv = serve("cache 10 {\n        prefetch 1 1m 90%\n    }", &up);
    Q::new("www.example.org.", RecordType::A).ask(srv.addr);
    std::thread::sleep(Duration::from_millis(1600));
    let hit = Q::new("www.example.org.", RecordType::A).ask(srv.addr);
    assert!(hit.answers[0].ttl <= 9, "served from the cache");
    assert!(eventually(Duration::from_secs(3), || up.queries() == 2), "prefetch reached upstream");
    assert_eq!(up.tcp_queries(), 1, "prefetch uses TCP");
    let after = Q::new("www.example.org.", RecordType::A).ask(srv.addr);
    assert_eq!(answer_ttls(&after), vec![10], "refreshed entry");
    assert_eq!(up.queries(), 2);
}

#[test]
fn opt_rules_through_cache_and_forward() {
    let up = fixture(&example_zone(3600));
    let srv = serve("cache 10", &up);
    let m = Q::new("www.example.org.", RecordType::A).ask(srv.addr);
    assert!(m.edns.is_none(), "no OPT in → none out");
    let m = Q::new("www.example.org.", RecordType::A).dnssec(4096).ask(srv.addr);
    let opt = m.edns.as_ref().expect("OPT");
    assert_eq!((opt.max_payload(), opt.flags().dnssec_ok), (4096, true));
    assert_eq!(answer_ttls(&m).len(), 1);
}
