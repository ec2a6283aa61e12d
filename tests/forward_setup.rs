//! `forward` setup: accepted forms, defaults, and CoreDNS's error wording.

mod forward_common;

use std::time::Duration;

use forward_common::parse;
use nodecache::plugin::forward::policy::PolicyKind;
use nodecache::plugin::forward::setup::{Config, Stanza};
use nodecache::plugin::forward::upstream::Scheme;
use pretty_assertions::assert_eq;

fn stanzas(text: &str) -> Vec<Stanza> {
    let cfg = parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"));
    cfg.as_any().downcast_ref::<Config>().unwrap().stanzas.clone()
}

fn one(text: &str) -> Stanza {
    stanzas(text).remove(0)
}

fn err(text: &str) -> String {
    match parse(text) {
        Ok(c) => panic!("{text:?} should fail, got {c:?}"),
        Err(e) => e,
    }
}

fn addrs(s: &Stanza) -> Vec<String> {
    s.upstreams
        .iter()
        .map(|u| match u.scheme {
            Scheme::Dns => u.addr.to_string(),
            other => format!("{}://{}", other.as_str(), u.addr),
        })
        .collect()
}

#[test]
fn defaults_match_coredns() {
    // case 38
    let s = one("forward . 127.0.0.1");
    assert_eq!(s.from, ".");
    assert_eq!(s.max_fails, 2);
    assert_eq!(s.hc_domain, ".");
    assert!(s.hc_rd);
    assert_eq!(s.hc_interval, Duration::from_millis(500));
    assert_eq!(s.expire, Duration::from_secs(10));
    assert_eq!(s.read_timeout, Duration::from_secs(2));
    assert_eq!(s.policy, PolicyKind::Random);
    assert_eq!(s.max_concurrent, 0);
    assert_eq!(s.max_idle_conns, 0);
    assert_eq!(s.max_connect_attempts, None);
    assert!(!s.force_tcp && !s.prefer_udp);
    assert_eq!(addrs(&s), vec!["127.0.0.1:53"]);
}

#[test]
fn from_is_normalised_and_cidr_keeps_first_zone() {
    assert_eq!(one("forward 10.9.3.0/18 127.0.0.1").from, "0.9.10.in-addr.arpa.");
    assert_eq!(one("forward Example.ORG 127.0.0.1").from, "example.org.");
    assert_eq!(one("forward dns://example.org:53 127.0.0.1").from, "example.org.");
}

#[test]
fn to_forms() {
    let s = one("forward . 127.0.0.1:8080 [::1]:53 [2003::1]:53 dns://127.0.0.2 tls://127.0.0.3 tls://127.0.0.4%dns.example:854 ::1");
    assert_eq!(
        addrs(&s),
        vec![
            "127.0.0.1:8080",
            "[::1]:53",
            "[2003::1]:53",
            "127.0.0.2:53",
            "tls://127.0.0.3:853",
            "tls://127.0.0.4:854"
        ]
    );
    assert_eq!(s.upstreams[5].sni.as_deref(), Some("dns.example"));
    // duplicates are removed, first one wins
    assert_eq!(addrs(&one("forward . 127.0.0.1 127.0.0.1:53 dns://127.0.0.1")), vec!["127.0.0.1:53"]);
    // hostnames are resolved at setup
    let s = one("forward . localhost:1053");
    assert!(s.upstreams.iter().all(|u| u.addr.ip().is_loopback() && u.addr.port() == 1053), "{s:?}");
    // DoH upstream is accepted by the parser
    assert_eq!(addrs(&one("forward . https://127.0.0.1")), vec!["https://127.0.0.1:443"]);
}

#[test]
fn resolv_conf_files() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("resolv.conf");
    std::fs::write(&f, "nameserver 10.10.255.252\nnameserver 10.10.255.253\n").unwrap();
    let empty = dir.path().join("empty.conf");
    std::fs::write(&empty, "# nameserver 1.0.0.1\n").unwrap();
    let s = one(&format!("forward . {} {}", f.display(), empty.display()));
    assert_eq!(addrs(&s), vec!["10.10.255.252:53", "10.10.255.253:53"]);
    assert_eq!(err(&format!("forward . {}", empty.display())), "plugin/forward: no valid upstream addresses found");
}

#[test]
fn options_parse() {
    let s = one("forward . 127.0.0.1 {
            except miek.nl Example.com
            max_fails 3
            max_connect_attempts 5
            health_check 1s no_rec domain example.org
            force_tcp
            prefer_udp
            expire 20s
            max_age 30s
            max_idle_conns 10
            read_timeout 1s
            policy round_robin
            max_concurrent 1000
            next NXDOMAIN servfail
            next_on_nodata
            failfast_all_unhealthy_upstreams
            failover SERVFAIL REFUSED
            source_address ::ffff:192.0.2.1
            doh_method GET
        }");
    assert_eq!(s.ignored, vec!["miek.nl.", "example.com."]);
    assert_eq!((s.max_fails, s.max_connect_attempts), (3, Some(5)));
    assert_eq!((s.hc_interval, s.hc_domain.as_str(), s.hc_rd), (Duration::from_secs(1), "example.org.", false));
    assert!(s.force_tcp && s.prefer_udp && s.next_on_nodata && s.failfast);
    assert_eq!((s.expire, s.max_age, s.max_idle_conns), (Duration::from_secs(20), Duration::from_secs(30), 10));
    assert_eq!(s.read_timeout, Duration::from_secs(1));
    assert_eq!(s.policy, PolicyKind::RoundRobin);
    assert_eq!(s.max_concurrent, 1000);
    assert_eq!(s.next_rcodes, vec![3, 2]);
    assert_eq!(s.failover, vec![2, 5]);
    assert_eq!(s.source_address, Some("192.0.2.1".parse().unwrap()));
    assert_eq!(one("forward . 127.0.0.1 {\nhealth_check 0.5s domain example.org.\n}").hc_domain, "example.org.");
    assert_eq!(one("forward . 127.0.0.1 {\npolicy sequential\n}").policy, PolicyKind::Sequential);
}

#[test]
fn several_lines_form_a_chain() {
    let s = stanzas("forward example.org 127.0.0.1\nforward . 127.0.0.2");
    assert_eq!(s.iter().map(|s| s.from.as_str()).collect::<Vec<_>>(), vec!["example.org.", "."]);
}

#[test]
fn errors_use_coredns_wording() {
    // case 39
    assert!(err("forward . https://1.1.1.1/").contains("paths are not allowed in HTTPS upstream addresses"));
    assert_eq!(
        err("forward . 127.0.0.1 {\nblaatl\n}\n"),
        "plugin/forward: Corefile:2 - Error during parsing: unknown property 'blaatl'"
    );
    assert!(err("forward . 127.0.0.1 {\nhealth_check 0.5s domain\n}\n")
        .ends_with("Wrong argument count or unexpected line ending after 'domain'"));
    let long = "x".repeat(64);
    assert_eq!(err(&format!("forward {long} 127.0.0.1")), format!("plugin/forward: unable to normalize '{long}'"));
    assert!(err("forward . a27.0.0.1").contains("failed to resolve"));
    let many: Vec<String> = (1..=16).map(|i| format!("127.0.0.{i}")).collect();
    assert_eq!(err(&format!("forward . {}", many.join(" "))), "plugin/forward: more than 15 TOs configured: 16");
    assert!(err("forward .").ends_with("Wrong argument count or unexpected line ending after '.'"));
    assert!(err("forward").ends_with("Wrong argument count or unexpected line ending after 'forward'"));
    assert_eq!(
        err("forward . 127.0.0.1 {\nhealth_check no_rec\n}"),
        "plugin/forward: time: invalid duration \"no_rec\""
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\nhealth_check 0.5s rec\n}"),
        "plugin/forward: health_check: unknown option rec"
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\nhealth_check 0.5s domain example..org\n}"),
        "plugin/forward: health_check: invalid domain name example..org"
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\nmax_concurrent many\n}"),
        "plugin/forward: strconv.Atoi: parsing \"many\": invalid syntax"
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\nmax_concurrent -4\n}"),
        "plugin/forward: max_concurrent can't be negative: -4"
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\nmax_connect_attempts -4\n}"),
        "plugin/forward: strconv.ParseUint: parsing \"-4\": invalid syntax"
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\nmax_idle_conns -1\n}"),
        "plugin/forward: max_idle_conns can't be negative: -1"
    );
    assert_eq!(err("forward . 127.0.0.1 {\nexpire -1s\n}"), "plugin/forward: expire can't be negative: -1s");
    assert_eq!(err("forward . 127.0.0.1 {\nread_timeout 0s\n}"), "plugin/forward: read_timeout must be positive: 0s");
    assert_eq!(
        err("forward . 127.0.0.1 {\nexpire 20s\nmax_age 10s\n}"),
        "plugin/forward: max_age (10s) must not be less than expire (20s)"
    );
    assert_eq!(err("forward . 127.0.0.1 {\nfailover NOERROR\n}"), "plugin/forward: NoError cannot be used in failover");
    assert_eq!(err("forward . 127.0.0.1 {\nnext FOO\n}"), "plugin/forward: FOO is not a valid rcode");
    assert_eq!(
        err("forward . 127.0.0.1 {\npolicy fastest\n}"),
        "plugin/forward: Corefile:2 - Error during parsing: unknown policy 'fastest'"
    );
    assert!(err("forward . 127.0.0.1 {\nforce_tcp yes\n}")
        .ends_with("Wrong argument count or unexpected line ending after 'yes'"));
    assert_eq!(
        err("forward . 127.0.0.1 {\nsource_address not-an-ip\n}"),
        "plugin/forward: Corefile:2 - Error during parsing: invalid IP address: not-an-ip"
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\nresolver example.com\n}"),
        "plugin/forward: resolver must be an IP address or IP:port: \"example.com\""
    );
    assert_eq!(
        err("forward . quic://127.0.0.1"),
        "plugin/forward: 'quic' is not supported as a destination protocol in forward: quic://127.0.0.1:853"
    );
    assert_eq!(
        err("forward . tls://127.0.0.1%a.example {\ntls_servername b.example\n}"),
        "plugin/forward: both forward ('b.example') and proxy level ('a.example') TLS servernames are set for upstream proxy 'tls://127.0.0.1:853'"
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\ndoh_method PUT\n}"),
        "plugin/forward: doh_method must be either POST or GET"
    );
}

#[test]
fn describe_is_readable() {
    let cfg = parse("forward example.org 127.0.0.1 tls://127.0.0.2%dns.example {\npolicy sequential\n}").unwrap();
    let d = cfg.describe();
    assert!(d.starts_with("forward example.org. -> 127.0.0.1:53, tls://127.0.0.2:853 (servername dns.example)"), "{d}");
    assert!(d.contains("policy sequential"), "{d}");
}
