//! The application glue over real files: startup write, kube-dns and template pollers,
//! and the "invalid at startup means never polled" rule.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nodecache::nodelocal::app::CacheApp;
use nodecache::nodelocal::flags::{self, FlagsOutcome, NodeCacheFlags};
use nodecache::nodelocal::setup::NetworkSetup;
use pretty_assertions::assert_eq;

const TEMPLATE: &str = "cluster.local:53 {\n    bind __PILLAR__LOCAL__DNS__ __PILLAR__DNS__SERVER__\n    forward . __PILLAR__CLUSTER__DNS__ {\n            force_tcp\n    }\n}\n.:53 {\n    bind __PILLAR__LOCAL__DNS__\n    forward . __PILLAR__UPSTREAM__SERVERS__\n}\n";

fn flags_for(root: &Path, kubedns: &Path) -> NodeCacheFlags {
    let args: Vec<String> = [
        "-localip",
        "169.254.20.10",
        "-setupinterface=false",
        "-setupiptables=false",
        "-basecorefile",
        root.join("coredns/Corefile.base").to_str().unwrap(),
        "-conf",
        root.join("Corefile").to_str().unwrap(),
        "-kubednscm",
        kubedns.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    match flags::parse("node-cache", &args) {
        Ok(FlagsOutcome::Run { flags, .. }) => *flags,
        other => panic!("{other:?}"),
    }
}

fn app(root: &Path, kubedns: &Path) -> Arc<CacheApp> {
    let f = flags_for(root, kubedns);
    let setup = NetworkSetup::from_flags(&f);
    Arc::new(CacheApp::with_parts(f, Some("10.96.143.7".parse().unwrap()), setup))
}

fn wait_for(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn layout() -> (tempfile::TempDir, std::path::PathBuf) {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("coredns")).unwrap();
    std::fs::write(root.path().join("coredns/Corefile.base"), TEMPLATE).unwrap();
    let kubedns = root.path().join("kube-dns");
    std::fs::create_dir_all(&kubedns).unwrap();
    (root, kubedns)
}

#[test]
fn startup_write_then_pollers_follow_changes() {
    let (root, kubedns) = layout();
    std::fs::write(kubedns.join("stubDomains"), r#"{"acme.local":["10.0.0.1"]}"#).unwrap();
    let app = app(root.path(), &kubedns);
    let out = root.path().join("Corefile");
    app.start_config_sync(Duration::from_millis(100)).unwrap();
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        concat!(
            "cluster.local:53 {\n    bind 169.254.20.10 \n    forward . 10.96.143.7 {\n            force_tcp\n    }\n}\n",
            ".:53 {\n    bind 169.254.20.10\n    forward . /etc/resolv.conf\n}\n",
            "\nacme.local:53 {\n    errors\n    cache 30\n    bind 169.254.20.10\n    forward . 10.0.0.1\n}\n",
        )
    );

    // kube-dns change: custom upstreams.
    std::fs::write(kubedns.join("upstreamNameservers"), r#"["1.1.1.1"]"#).unwrap();
    let text = wait_for(&out, "forward . 1.1.1.1\n");
    assert!(text.contains(".:53 {\n    bind 169.254.20.10\n    forward . 1.1.1.1\n}\n"), "{text}");

    // Template change: re-rendered with the last kube-dns config.
    std::fs::write(root.path().join("coredns/Corefile.base"), TEMPLATE.replace(".:53", ".:1053")).unwrap();
    let text = wait_for(&out, ".:1053");
    assert!(text.contains(".:1053 {\n    bind 169.254.20.10\n    forward . 1.1.1.1\n}\n"), "{text}");
    assert!(text.contains("acme.local:53"), "{text}");
    assert_eq!(app.kubedns_config().upstream_nameservers, vec!["1.1.1.1".to_string()]);

    // A rejected update leaves the file alone.
    std::fs::write(kubedns.join("upstreamNameservers"), r#"["not-an-ip"]"#).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(std::fs::read_to_string(&out).unwrap().contains("forward . 1.1.1.1\n"));
    app.stop_config_sync();
}

#[test]
fn invalid_kube_dns_config_at_startup_is_never_polled() {
    let (root, kubedns) = layout();
    std::fs::write(kubedns.join("upstreamNameservers"), "[broken").unwrap();
    let app = app(root.path(), &kubedns);
    let out = root.path().join("Corefile");
    app.init_with_period(false, Duration::from_millis(50));
    // The empty-config write happened; the kube-dns sync failed.
    assert!(std::fs::read_to_string(&out).unwrap().contains("forward . /etc/resolv.conf\n"));
    std::fs::write(kubedns.join("upstreamNameservers"), r#"["1.1.1.1"]"#).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    app.stop_config_sync();
    assert!(std::fs::read_to_string(&out).unwrap().contains("forward . /etc/resolv.conf\n"));
}
