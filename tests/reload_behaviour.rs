//! Live reload of the real `nodecache` binary: Corefiles in a ConfigMap-style directory are
//! swapped the way kubelet does it, and the effect is observed over loopback DNS and /metrics.

mod reload_common;

use std::time::Duration;

use nodecache_conformance::fixture::{Behaviour, Fixture};
use nodecache_conformance::zone::ZoneSet;
use pretty_assertions::assert_eq;
use reload_common::*;

const SETTLE: Duration = Duration::from_millis(3000);

#[test]
fn a_changed_answer_is_served_within_two_seconds() {
    let p = port();
    let served = Served::start(&template_block("example.", p, "10.0.0.1", "    reload 2s\n"), p);
    assert_eq!(a_of(p, "a.example."), vec!["10.0.0.1"]);
    assert_eq!(served.sha_lines(), 1, "startup logs the running SHA512 once:\n{}", served.proc.output());
    served.update(&template_block("example.", p, "10.0.0.2", "    reload 2s\n"));
    let took = wait_until(Duration::from_secs(5), || a_of(p, "a.example.") == vec!["10.0.0.2"]);
    println!("new answer served after {took:?}");
    let took = took.unwrap_or_else(|| panic!("never reloaded:\n{}", served.proc.output()));
    assert!(took < Duration::from_secs(2), "reload took {took:?}");
    assert_eq!(served.sha_lines(), 2);
    let out = served.proc.output();
    let tail = out.rsplit("[INFO] Reloading\n").next().unwrap_or("");
    assert!(tail.contains("Running configuration SHA512") && tail.contains("[INFO] Reloading complete"), "{out}");
}

#[test]
fn a_broken_corefile_keeps_the_old_answers_and_a_fix_is_picked_up() {
    let (p, mp) = (port(), port());
    let extra = format!("    reload 2s 1s\n    prometheus 127.0.0.1:{mp}\n");
    let served = Served::start(&template_block("example.", p, "10.0.0.1", &extra), p);
    assert_eq!(metric(mp, "coredns_reload_failed_total"), Some(0.0));

    // A setup error: the template plugin rejects an unknown property.
    let broken = template_block("example.", p, "10.0.0.2", &format!("{extra}    template IN A x. {{\n bogus\n }}\n"));
    served.update(&broken);
    let failed = wait_until(Duration::from_secs(5), || metric(mp, "coredns_reload_failed_total") == Some(1.0));
    assert!(failed.is_some(), "no failed reload counted:\n{}", served.proc.output());
    assert_eq!(served.count("Corefile changed but reload failed: "), 1, "{}", served.proc.output());
    assert_eq!(a_of(p, "a.example."), vec!["10.0.0.1"]);
    // The same content is not tried again on the next checks.
    std::thread::sleep(SETTLE);
    assert_eq!(metric(mp, "coredns_reload_failed_total"), Some(1.0));
    assert_eq!(a_of(p, "a.example."), vec!["10.0.0.1"]);

    // A bind failure: the new port is held by a socket without SO_REUSEPORT.
    let q = port();
    let _holder = std::net::UdpSocket::bind(("127.0.0.1", q)).expect("hold port");
    served.update(&template_block("example.", q, "10.0.0.3", &extra));
    let failed = wait_until(Duration::from_secs(5), || metric(mp, "coredns_reload_failed_total") == Some(2.0));
    assert!(failed.is_some(), "bind failure not counted:\n{}", served.proc.output());
    assert_eq!(a_of(p, "a.example."), vec!["10.0.0.1"]);

    // A syntax error is a parse failure: warned about, not counted, old config serving.
    served.update(&format!("{}bar.:{p} {{\n    whoami\n", template_block("example.", p, "10.0.0.4", &extra)));
    let warned = wait_until(Duration::from_secs(5), || served.count("Corefile parse failed: ") >= 1);
    assert!(warned.is_some(), "{}", served.proc.output());
    assert_eq!(metric(mp, "coredns_reload_failed_total"), Some(2.0));
    assert_eq!(a_of(p, "a.example."), vec!["10.0.0.1"]);

    // The fix is picked up.
    served.update(&template_block("example.", p, "10.0.0.5", &extra));
    let fixed = wait_until(Duration::from_secs(5), || a_of(p, "a.example.") == vec!["10.0.0.5"]);
    assert!(fixed.is_some(), "fix not picked up:\n{}", served.proc.output());
    assert_eq!(metric(mp, "coredns_reload_failed_total"), Some(2.0));
    let out = served.proc.output();
    let version = out.rsplit("Running configuration SHA512 = ").next().unwrap_or("").split_whitespace().next();
    let scraped = nodecache_conformance::http::get(&format!("http://127.0.0.1:{mp}/metrics"), Duration::from_secs(2))
        .expect("scrape")
        .body;
    let series = format!("coredns_reload_version_info{{hash=\"sha512\",value=\"{}\"}} 1", version.unwrap_or("?"));
    assert!(scraped.contains(&series), "missing {series} in\n{scraped}");
}

fn upstream() -> Fixture {
    let zone = "$ORIGIN example.\n@ 3600 IN SOA ns.example. admin.example. 1 7200 3600 1209600 3600\n\
                cached 300 IN A 192.0.2.1\nother 300 IN A 192.0.2.2\n";
    Fixture::start(Behaviour { zones: ZoneSet::parse(zone).expect("zone"), ..Behaviour::default() }, true)
        .expect("fixture")
}

fn asked(f: &Fixture, name: &str) -> usize {
    f.seen().iter().filter(|s| s.question.to_ascii_lowercase().starts_with(name)).count()
}

fn cached_corefile(p: u16, up: &Fixture, other_ip: &str, pad: &str) -> String {
    format!(
        "example.:{p} {{\n    bind 127.0.0.1\n    reload 2s 1s{pad}\n    cache 30\n    forward . {}\n}}\n{}",
        up.addr(),
        template_block("other.", p, other_ip, "    reload 2s 1s\n")
    )
}

#[test]
fn whitespace_and_comment_edits_do_not_reload() {
    let up = upstream();
    let p = port();
    let served = Served::start(&cached_corefile(p, &up, "10.1.0.1", ""), p);
    assert_eq!(a_of(p, "cached.example."), vec!["192.0.2.1"]);
    assert_eq!(asked(&up, "cached.example."), 1);
    // Same tokens on the same lines: trailing blanks, a comment, tabs.
    served.update(&cached_corefile(p, &up, "10.1.0.1", "  \t # a comment that changes nothing"));
    std::thread::sleep(SETTLE);
    assert_eq!(served.sha_lines(), 1, "{}", served.proc.output());
    assert_eq!(a_of(p, "cached.example."), vec!["192.0.2.1"]);
    assert_eq!(asked(&up, "cached.example."), 1, "the cache was emptied");
}

#[test]
fn cache_entries_survive_a_change_of_another_block() {
    let up = upstream();
    let p = port();
    let served = Served::start(&cached_corefile(p, &up, "10.1.0.1", ""), p);
    assert_eq!(a_of(p, "cached.example."), vec!["192.0.2.1"]);
    assert_eq!(asked(&up, "cached.example."), 1);
    served.update(&cached_corefile(p, &up, "10.1.0.2", ""));
    let done = wait_until(Duration::from_secs(5), || a_of(p, "x.other.") == vec!["10.1.0.2"]);
    assert!(done.is_some(), "{}", served.proc.output());
    assert_eq!(served.sha_lines(), 2);
    assert_eq!(a_of(p, "cached.example."), vec!["192.0.2.1"]);
    assert_eq!(asked(&up, "cached.example."), 1, "a cached name was asked upstream again after the reload");
    // A changed cache configuration starts empty.
    served.update(&cached_corefile(p, &up, "10.1.0.2", "\n    cache 40").replace("    cache 30\n", ""));
    let done = wait_until(Duration::from_secs(5), || served.sha_lines() == 3);
    assert!(done.is_some(), "{}", served.proc.output());
    assert_eq!(a_of(p, "cached.example."), vec!["192.0.2.1"]);
    assert_eq!(asked(&up, "cached.example."), 2);
}

#[test]
fn a_listener_moved_to_another_port_serves_there_and_the_old_port_stops() {
    let (p, q) = (port(), port());
    let served = Served::start(&template_block("example.", p, "10.0.0.1", "    reload 2s\n"), p);
    served.update(&template_block("example.", q, "10.0.0.1", "    reload 2s\n"));
    let moved = wait_until(Duration::from_secs(5), || a_of(q, "a.example.") == vec!["10.0.0.1"]);
    assert!(moved.is_some(), "{}", served.proc.output());
    let tcp = ask(q, "a.example.", "A", true, Duration::from_secs(1)).map(|m| a_records(&m));
    assert_eq!(tcp, Some(vec!["10.0.0.1".to_string()]));
    let gone = wait_until(Duration::from_secs(2), || {
        ask(p, "a.example.", "A", false, Duration::from_millis(200)).is_none()
            && ask(p, "a.example.", "A", true, Duration::from_millis(200)).is_none()
    });
    assert!(gone.is_some(), "the old port still answers");
    // The old port can be bound again by someone else once released.
    assert!(std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
}

#[test]
fn sigusr1_reloads_without_the_reload_plugin() {
    let p = port();
    let served = Served::start(&template_block("example.", p, "10.0.0.1", ""), p);
    served.update(&template_block("example.", p, "10.0.0.2", ""));
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(a_of(p, "a.example."), vec!["10.0.0.1"], "reloaded without `reload`");
    served.proc.signal("USR1").expect("signal");
    let done = wait_until(Duration::from_secs(5), || a_of(p, "a.example.") == vec!["10.0.0.2"]);
    assert!(done.is_some(), "{}", served.proc.output());
    assert_eq!(served.count("SIGUSR1: Reloading"), 1, "{}", served.proc.output());
    // Without `reload` there is no SHA512 line.
    assert_eq!(served.sha_lines(), 0);
}

#[test]
fn editor_renames_deletion_recreation_and_a_replaced_directory_are_followed() {
    let p = port();
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("conf");
    std::fs::create_dir(&dir).expect("mkdir");
    let conf = dir.join("Corefile");
    let corefile = |ip: &str| template_block("example.", p, ip, "    reload 2s 0s\n");
    std::fs::write(&conf, corefile("10.0.0.1")).expect("write");
    let proc = spawn(&conf, p, root.path());
    let answer = |ip: &str| wait_until(Duration::from_secs(5), || a_of(p, "a.example.") == vec![ip.to_string()]);

    // An editor's save: write a temporary file, rename it over the original.
    std::fs::write(dir.join(".Corefile.swp"), corefile("10.0.0.2")).expect("write");
    std::fs::rename(dir.join(".Corefile.swp"), &conf).expect("rename");
    let took = answer("10.0.0.2");
    assert!(took.is_some_and(|t| t < Duration::from_secs(1)), "{took:?}\n{}", proc.output());

    // Deleted (old config keeps serving), then created again.
    std::fs::remove_file(&conf).expect("rm");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(a_of(p, "a.example."), vec!["10.0.0.2"]);
    std::fs::write(&conf, corefile("10.0.0.3")).expect("write");
    let took = answer("10.0.0.3");
    assert!(took.is_some_and(|t| t < Duration::from_secs(1)), "{took:?}\n{}", proc.output());

    // The whole directory replaced: the poll notices, and the new directory is watched.
    std::fs::rename(&dir, root.path().join("conf.old")).expect("rename dir");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(&conf, corefile("10.0.0.4")).expect("write");
    assert!(answer("10.0.0.4").is_some(), "{}", proc.output());
    std::fs::write(&conf, corefile("10.0.0.5")).expect("write");
    let took = answer("10.0.0.5");
    assert!(took.is_some_and(|t| t < Duration::from_secs(1)), "{took:?}\n{}", proc.output());
    assert_eq!(proc.output().matches("reload failed").count(), 0, "{}", proc.output());
}

/// Names of the process's threads that serve an upstream's direct UDP path (`fwd-<addr>`).
fn direct_path_threads(pid: u32) -> usize {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with("fwd-"))
        .count()
}

/// A reload that replaces the upstream moves cache misses to the new upstream's direct path and
/// ends the old one's responder thread: reloads do not pile up threads or sockets.
#[test]
fn a_replaced_upstream_stops_its_direct_path() {
    let (a, b) = (upstream(), upstream());
    let p = port();
    let corefile = |up: &Fixture| {
        format!(
            "example.:{p} {{\n    bind 127.0.0.1\n    reload 2s 1s\n    cache 30\n    forward . {}\n}}\n",
            up.addr()
        )
    };
    let served = Served::start(&corefile(&a), p);
    let pid = served.proc.pid();
    assert_eq!(a_of(p, "cached.example."), vec!["192.0.2.1"]);
    assert_eq!((asked(&a, "cached.example."), direct_path_threads(pid)), (1, 1));
    // Each switch is done once a name never asked before reaches the new upstream.
    let mut fresh = 0;
    for (i, up) in [&b, &a, &b, &a, &b].into_iter().enumerate() {
        served.update(&corefile(up));
        let switched = wait_until(Duration::from_secs(5), || {
            fresh += 1;
            let name = format!("fresh{fresh}.example.");
            a_of(p, &name);
            asked(up, &name) == 1
        });
        assert!(switched.is_some(), "switch {i} not served: {}", served.proc.output());
    }
    let ended = wait_until(Duration::from_secs(5), || direct_path_threads(pid) == 1);
    assert!(ended.is_some(), "responder threads left: {}", direct_path_threads(pid));
}

/// The cache is carried over a reload only when nothing that decides its answers changed: a
/// NXDOMAIN cached from the old upstream a moment before the swap is not served after the
/// block's `forward` points elsewhere.
#[test]
fn a_changed_upstream_starts_the_cache_afresh() {
    let empty = "$ORIGIN example.\n@ 3600 IN SOA ns.example. admin.example. 1 7200 3600 1209600 3600\n";
    let old_up =
        Fixture::start(Behaviour { zones: ZoneSet::parse(empty).expect("zone"), ..Behaviour::default() }, true)
            .expect("fixture");
    let new_up = upstream();
    let p = port();
    let corefile = |up: &Fixture| {
        format!(
            "example.:{p} {{\n    bind 127.0.0.1\n    reload 2s 1s\n    cache 30\n    forward . {}\n}}\n",
            up.addr()
        )
    };
    let served = Served::start(&corefile(&old_up), p);
    assert_eq!(a_of(p, "cached.example."), Vec::<String>::new(), "NXDOMAIN from the old upstream");
    assert_eq!(asked(&old_up, "cached.example."), 1);
    served.update(&corefile(&new_up));
    let done = wait_until(Duration::from_secs(6), || served.sha_lines() == 2);
    assert!(done.is_some(), "{}", served.proc.output());
    assert_eq!(a_of(p, "cached.example."), vec!["192.0.2.1"], "the old upstream's cached NXDOMAIN was served");
    assert_eq!(asked(&new_up, "cached.example."), 1);
}
