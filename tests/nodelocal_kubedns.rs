//! Reading a mounted kube-dns ConfigMap directory: kubelet's symlink layout, dot-files,
//! versioning, invalid JSON at startup versus later, and rejection rules.

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::Path;

use nodecache::nodelocal::kubedns::{load_dir, DirSync, KubeDnsConfig, Poll};
use pretty_assertions::assert_eq;
use sha2::{Digest, Sha256};

/// Lays out `files` as kubelet does: `..<ts>/<key>`, `..data -> ..<ts>`, `<key> -> ..data/<key>`.
fn kubelet_layout(dir: &Path, ts: &str, files: &[(&str, &str)]) {
    let real = dir.join(ts);
    std::fs::create_dir_all(&real).unwrap();
    for (k, v) in files {
        std::fs::write(real.join(k), v).unwrap();
    }
    let data = dir.join("..data");
    let _ = std::fs::remove_file(&data);
    symlink(ts, &data).unwrap();
    for (k, _) in files {
        let link = dir.join(k);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(format!("..data/{k}"), &link).unwrap();
        }
    }
}

fn expected_version(files: &[(&str, &str)]) -> String {
    let mut sorted = files.to_vec();
    sorted.sort();
    let mut h = Sha256::new();
    for (k, v) in sorted {
        h.update(k.as_bytes());
        h.update(b"\0");
        h.update(v.as_bytes());
        h.update(b"\0");
    }
    hex::encode(h.finalize())
}

#[test]
fn kubelet_symlink_layout_is_followed_and_dotfiles_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let files = [("upstreamNameservers", r#"["1.1.1.1"]"#), ("stubDomains", r#"{"acme.local":["10.0.0.1"]}"#)];
    kubelet_layout(dir.path(), "..2026_11_26_14_00_00.1", &files);
    std::fs::write(dir.path().join(".hidden"), "ignored").unwrap();
    std::fs::create_dir(dir.path().join("subdir")).unwrap();
    std::fs::write(dir.path().join("subdir/upstreamNameservers"), "ignored").unwrap();
    let snap = load_dir(dir.path()).unwrap();
    assert_eq!(snap.data.keys().cloned().collect::<Vec<_>>(), vec!["stubDomains", "upstreamNameservers"]);
    assert_eq!(snap.version, expected_version(&files));
    let cfg = DirSync::new(dir.path()).once().unwrap();
    assert_eq!(
        cfg,
        KubeDnsConfig {
            federations: BTreeMap::new(),
            stub_domains: BTreeMap::from([("acme.local".to_string(), vec!["10.0.0.1".to_string()])]),
            upstream_nameservers: vec!["1.1.1.1".to_string()],
        }
    );
}

#[test]
fn empty_directory_is_an_empty_config_with_empty_version() {
    let dir = tempfile::tempdir().unwrap();
    let snap = load_dir(dir.path()).unwrap();
    assert_eq!(snap.version, "");
    assert_eq!(DirSync::new(dir.path()).once().unwrap(), KubeDnsConfig::default());
}

#[test]
fn unreadable_layouts_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    assert!(load_dir(&missing).unwrap_err().starts_with("lstat "));
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    assert_eq!(load_dir(&file).unwrap_err(), format!("config path \"{}\" is not a directory", file.display()));
    // A symlinked root is not followed (filepath.Walk uses Lstat).
    let link = dir.path().join("link");
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    symlink(&real, &link).unwrap();
    assert!(load_dir(&link).unwrap_err().contains("is not a directory"));
    // Non-UTF-8 content.
    std::fs::write(real.join("stubDomains"), [0xff, 0xfe]).unwrap();
    assert_eq!(load_dir(&real).unwrap_err(), format!("non-utf8 data in {}", real.join("stubDomains").display()));
}

#[test]
fn invalid_json_at_startup_fails_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("stubDomains"), "{not json").unwrap();
    assert!(DirSync::new(dir.path()).once().is_err());
    std::fs::write(dir.path().join("stubDomains"), r#"{"Bad_Domain": ["1.1.1.1"]}"#).unwrap();
    assert_eq!(DirSync::new(dir.path()).once(), Err("invalid domain name: \"Bad_Domain\"".to_string()));
}

#[test]
fn later_invalid_update_is_dropped_without_retry() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("upstreamNameservers"), r#"["1.1.1.1"]"#).unwrap();
    let mut sync = DirSync::new(dir.path());
    let first = sync.once().unwrap();
    assert_eq!(first.upstream_nameservers, vec!["1.1.1.1".to_string()]);
    assert_eq!(sync.poll(), Poll::Unchanged);

    std::fs::write(dir.path().join("upstreamNameservers"), "[\"1.1.1.1\",").unwrap();
    assert!(matches!(sync.poll(), Poll::Dropped(_)));
    // The bad version is remembered: nothing happens until the files change again.
    assert_eq!(sync.poll(), Poll::Unchanged);

    std::fs::write(dir.path().join("upstreamNameservers"), r#"["1.1.1.1","2.2.2.2","3.3.3.3","4.4.4.4"]"#).unwrap();
    assert_eq!(sync.poll(), Poll::Dropped("upstreamNameserver cannot have more than three entries".into()));

    std::fs::write(dir.path().join("upstreamNameservers"), r#"["8.8.8.8:53"]"#).unwrap();
    match sync.poll() {
        Poll::Changed(cfg) => assert_eq!(cfg.upstream_nameservers, vec!["8.8.8.8:53".to_string()]),
        other => panic!("{other:?}"),
    }
    std::fs::remove_file(dir.path().join("upstreamNameservers")).unwrap();
    assert_eq!(sync.poll(), Poll::Changed(KubeDnsConfig::default()));
    std::fs::remove_dir(dir.path()).unwrap();
    assert!(matches!(sync.poll(), Poll::LoadError(_)));
}

#[test]
fn null_values_and_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("stubDomains"), "null").unwrap();
    std::fs::write(dir.path().join("upstreamNameservers"), "null").unwrap();
    std::fs::write(dir.path().join("somethingElse"), "{{{").unwrap();
    std::fs::write(dir.path().join("federations"), "myfed=example.com").unwrap();
    let cfg = DirSync::new(dir.path()).once().unwrap();
    assert_eq!(cfg.stub_domains, BTreeMap::new());
    assert_eq!(cfg.upstream_nameservers, Vec::<String>::new());
    assert_eq!(cfg.federations, BTreeMap::from([("myfed".to_string(), "example.com".to_string())]));
}
