//! `hosts`: setup checks, lookups from a real file and inline lines, reload on change.

#[path = "plugins_support.rs"]
mod support;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use nodecache::plugin::hosts::handler::Hosts;
use nodecache::plugin::hosts::setup::{parse, parse_config, Config};
use nodecache::plugin::{Chain, Plugin, SetupContext};
use pretty_assertions::assert_eq;
use support::*;

fn config(text: &str, zones: &[&str]) -> Config {
    let mut d = nodecache::corefile::Dispenser::new(tokens(text), Arc::from("Corefile"));
    let ctx = SetupContext { zones: zones.iter().map(|z| z.to_string()).collect(), ports: vec![53] };
    parse_config(&mut d, &ctx).expect("setup")
}

fn with_terminal(h: Arc<Hosts>) -> (Chain, Arc<Terminal>) {
    let t = Arc::new(Terminal::default());
    (chain(vec![h as Arc<dyn Plugin>], Some(t.clone())), t)
}

fn write_file(path: &std::path::Path, text: &str) {
    let mut f = std::fs::File::create(path).expect("create");
    f.write_all(text.as_bytes()).expect("write");
}

#[tokio::test]
async fn answers_from_file_and_inline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hosts");
    write_file(&path, "10.0.0.1 web.example.org web\n::2 web.example.org\n# comment\n10.0.0.9 outside.net\n");
    let text = format!("hosts {} example.org {{\n 10.0.0.5 inline.example.org\n ttl 60\n}}", path.display());
    let h = Hosts::start(config(&text, &["."]));
    let (c, term) = with_terminal(h);

    let mut req = request("WEB.example.org.", RecordType::A);
    let out = run(&c, &mut req).await;
    let m = reply(&out);
    assert!(m.metadata.authoritative);
    assert_eq!(texts(&m.answers), vec!["web.example.org. 60 IN A 10.0.0.1"]);

    let mut req = request("web.example.org.", RecordType::AAAA);
    assert_eq!(texts(&reply(&run(&c, &mut req).await).answers), vec!["web.example.org. 60 IN AAAA ::2"]);

    let mut req = request("inline.example.org.", RecordType::A);
    assert_eq!(texts(&reply(&run(&c, &mut req).await).answers), vec!["inline.example.org. 60 IN A 10.0.0.5"]);

    // Known name, other type: NODATA.
    let mut req = request("web.example.org.", RecordType::MX);
    let m = reply(&run(&c, &mut req).await);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());

    // Reverse lookups are answered even outside the zones.
    let mut req = request("1.0.0.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(
        texts(&reply(&run(&c, &mut req).await).answers),
        vec!["1.0.0.10.in-addr.arpa. 60 IN PTR web.example.org."]
    );

    // Unknown name without fallthrough: unwritten SERVFAIL; outside the zone: next plugin.
    let mut req = request("nope.example.org.", RecordType::A);
    assert!(is_unwritten_servfail(&run(&c, &mut req).await));
    let mut req = request("outside.net.", RecordType::A);
    run(&c, &mut req).await;
    assert_eq!(term.calls(), 1);
}

#[tokio::test]
async fn fallthrough_and_no_reverse() {
    let h = Hosts::start(config(
        "hosts /nonexistent/hosts {\n 10.1.1.1 a.example\n no_reverse\n fallthrough\n}",
        &["example."],
    ));
    let (c, term) = with_terminal(h);
    let mut req = request("b.example.", RecordType::A);
    let out = run(&c, &mut req).await;
    assert_eq!(out.plugin, "terminal");
    let mut req = request("1.1.1.10.in-addr.arpa.", RecordType::PTR);
    run(&c, &mut req).await;
    assert_eq!(term.calls(), 2);
    let mut req = request("a.example.", RecordType::A);
    assert_eq!(texts(&reply(&run(&c, &mut req).await).answers), vec!["a.example. 3600 IN A 10.1.1.1"]);
}

#[tokio::test]
async fn rereads_the_file_when_it_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hosts");
    write_file(&path, "10.0.0.1 a.example\n");
    let h = Hosts::start(config(&format!("hosts {} {{\n reload 0\n}}", path.display()), &["."]));
    let (c, _) = with_terminal(h.clone());
    let mut req = request("a.example.", RecordType::A);
    assert_eq!(texts(&reply(&run(&c, &mut req).await).answers), vec!["a.example. 3600 IN A 10.0.0.1"]);

    write_file(&path, "10.0.0.22 a.example\n10.0.0.3 b.example\n");
    h.read_hosts();
    let mut req = request("a.example.", RecordType::A);
    assert_eq!(texts(&reply(&run(&c, &mut req).await).answers), vec!["a.example. 3600 IN A 10.0.0.22"]);
}

#[tokio::test]
async fn periodic_reload_picks_up_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hosts");
    write_file(&path, "10.0.0.1 a.example\n");
    let h = Hosts::start(config(&format!("hosts {} {{\n reload 20ms\n}}", path.display()), &["."]));
    let (c, _) = with_terminal(h);
    write_file(&path, "10.0.0.2 a.example\n10.0.0.3 c.example\n");
    let mut got = Vec::new();
    for _ in 0..500 {
        let mut req = request("a.example.", RecordType::A);
        got = texts(&reply(&run(&c, &mut req).await).answers);
        if got == vec!["a.example. 3600 IN A 10.0.0.2"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(got, vec!["a.example. 3600 IN A 10.0.0.2"]);
}

#[test]
fn setup_checks() {
    let c = config("hosts", &["example.org."]);
    assert_eq!((c.path.as_str(), c.ttl, c.auto_reverse), ("/etc/hosts", 3600, true));
    assert_eq!(c.reload, Duration::from_secs(5));
    assert_eq!(c.origins, vec!["example.org."]);
    let c = config("hosts /nonexistent a.org b.org {\n 1.2.3.4 x.a.org\n reload 0\n}", &["."]);
    assert_eq!(c.origins, vec!["a.org.", "b.org."]);
    assert_eq!(c.inline, vec!["1.2.3.4 x.a.org"]);
    assert!(c.reload.is_zero());

    let e = |t: &str| setup_err(parse, t, &["."]);
    assert_eq!(e("hosts {\n ttl\n}"), "plugin/hosts: Corefile:2 - Error during parsing: ttl needs a time in second");
    assert_eq!(
        e("hosts {\n ttl x\n}"),
        "plugin/hosts: Corefile:2 - Error during parsing: ttl needs a number of second"
    );
    assert_eq!(e("hosts {\n ttl 0\n}"), "plugin/hosts: Corefile:2 - Error during parsing: ttl provided is invalid");
    assert_eq!(e("hosts {\n ttl 65536\n}"), "plugin/hosts: Corefile:2 - Error during parsing: ttl provided is invalid");
    assert_eq!(
        e("hosts {\n reload\n}"),
        "plugin/hosts: Corefile:2 - Error during parsing: reload needs a duration (zero seconds to disable)"
    );
    assert_eq!(
        e("hosts {\n reload 5\n}"),
        "plugin/hosts: Corefile:2 - Error during parsing: invalid duration for reload '5'"
    );
    assert_eq!(
        e("hosts {\n reload -5s\n}"),
        "plugin/hosts: Corefile:2 - Error during parsing: invalid negative duration for reload '-5s'"
    );
    assert_eq!(
        e("hosts {\n fallthrough\n 1.2.3.4 x\n}"),
        "plugin/hosts: Corefile:3 - Error during parsing: unknown property '1.2.3.4'"
    );
    assert!(e("hosts {\n fallthrough_unsupported\n}").ends_with("fallthrough_unsupported requires fallthrough"));
    assert_eq!(e("hosts\nhosts"), "plugin/hosts: this plugin can only be used once per Server Block");
}
