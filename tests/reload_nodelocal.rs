//! node-cache's ConfigMap directories are watched: with a poll period far too long to matter,
//! a ConfigMap-style update of the kube-dns config or of the template still regenerates the
//! Corefile at once.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nodecache::nodelocal::app::CacheApp;
use nodecache::nodelocal::flags::{self, FlagsOutcome};
use nodecache::nodelocal::setup::NetworkSetup;
use nodecache_conformance::configmap::ConfigMapDir;

const TEMPLATE: &str = ".:53 {\n    bind __PILLAR__LOCAL__DNS__\n    forward . __PILLAR__UPSTREAM__SERVERS__\n}\n";

fn app(root: &Path) -> Arc<CacheApp> {
    let args: Vec<String> = [
        "-localip",
        "169.254.20.10",
        "-setupinterface=false",
        "-setupiptables=false",
        "-basecorefile",
        root.join("tpl/Corefile.base").to_str().unwrap_or_default(),
        "-conf",
        root.join("Corefile").to_str().unwrap_or_default(),
        "-kubednscm",
        root.join("kube-dns").to_str().unwrap_or_default(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let f = match flags::parse("node-cache", &args) {
        Ok(FlagsOutcome::Run { flags, .. }) => *flags,
        other => panic!("{other:?}"),
    };
    let setup = NetworkSetup::from_flags(&f);
    Arc::new(CacheApp::with_parts(f, "10.96.0.10".parse().ok(), setup))
}

/// How long until the output contains `needle` (None: not within 5 s).
fn until_written(path: &Path, needle: &str) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if std::fs::read_to_string(path).unwrap_or_default().contains(needle) {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn configmap_updates_regenerate_the_corefile_without_waiting_for_the_poll() {
    let root = tempfile::tempdir().expect("tempdir");
    let (tpl_dir, kube_dir) = (root.path().join("tpl"), root.path().join("kube-dns"));
    std::fs::create_dir_all(&tpl_dir).expect("mkdir");
    std::fs::create_dir_all(&kube_dir).expect("mkdir");
    let tpl = ConfigMapDir::create(&tpl_dir, "Corefile.base", TEMPLATE).expect("template");
    let kube = ConfigMapDir::create(&kube_dir, "upstreamNameservers", r#"["1.1.1.1"]"#).expect("kube-dns");
    let app = app(root.path());
    let out = root.path().join("Corefile");
    app.start_config_sync(Duration::from_secs(600)).expect("sync");
    assert!(until_written(&out, "forward . 1.1.1.1\n").is_some());

    kube.update(r#"["8.8.8.8"]"#).expect("update");
    let took = until_written(&out, "forward . 8.8.8.8\n");
    println!("kube-dns change written after {took:?}");
    assert!(took.is_some_and(|t| t < Duration::from_secs(2)), "kube-dns change not picked up: {took:?}");

    tpl.update(&TEMPLATE.replace(".:53", ".:1053")).expect("update");
    let took = until_written(&out, ".:1053 {");
    println!("template change written after {took:?}");
    assert!(took.is_some_and(|t| t < Duration::from_secs(2)), "template change not picked up: {took:?}");
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(text.contains("forward . 8.8.8.8\n"), "{text}");
    app.stop_config_sync();
}
