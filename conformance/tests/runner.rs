//! The runner end to end: ConfigMap-style swap, and a deliberately wrong case against a fixture
//! acting as the server (`conformance --serve-zone`).

use std::path::Path;
use std::process::Command;

use nodecache_conformance::configmap::ConfigMapDir;
use nodecache_conformance::report::{render_failure, summary};
use nodecache_conformance::runner::{run_case, Options};
use pretty_assertions::assert_eq;

#[test]
fn configmap_swap_resolves_to_new_content_and_removes_old_dir() {
    let dir = tempfile::tempdir().unwrap();
    let cm = ConfigMapDir::create(dir.path(), "Corefile", "one").unwrap();
    assert_eq!(std::fs::read_to_string(cm.path()).unwrap(), "one");
    let first = std::fs::read_link(dir.path().join("..data")).unwrap();
    assert_eq!(std::fs::read_link(cm.path()).unwrap(), Path::new("..data/Corefile"));
    cm.update("two").unwrap();
    assert_eq!(std::fs::read_to_string(cm.path()).unwrap(), "two");
    let second = std::fs::read_link(dir.path().join("..data")).unwrap();
    assert!(first != second);
    assert!(!dir.path().join(&first).exists());
    let mut names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    names.sort();
    let mut want = vec!["..data".to_string(), second.to_string_lossy().to_string(), "Corefile".into()];
    want.sort();
    assert_eq!(names, want);
}

const CASE: &str = r#"
description = "A fixture plays the server; one step is right, one is deliberately wrong."
tags = ["selftest"]
corefile = """
$ORIGIN example.org.
$TTL 300
@    IN SOA ns1 hostmaster 1 7200 3600 1209600 60
www  IN A 192.0.2.1
"""

[[step]]
query = "www.example.org. A"
expect.rcode = "NOERROR"
expect.answer = ["www.example.org. 300 IN A 192.0.2.1"]
expect.flags_include = ["aa"]

[[step]]
query = "www.example.org. A"
proto = "tcp"
expect.rcode = "NXDOMAIN"
expect.answer = ["www.example.org. 300 IN A 192.0.2.99"]
"#;

fn server_cmd() -> String {
    format!("{} --serve-zone {{corefile}} {{port}}", env!("CARGO_BIN_EXE_conformance"))
}

#[test]
fn a_wrong_expectation_fails_with_a_readable_diff() {
    let dir = tempfile::tempdir().unwrap();
    let area = dir.path().join("selftest");
    std::fs::create_dir(&area).unwrap();
    let path = area.join("wrong.toml");
    std::fs::write(&path, CASE).unwrap();
    let opts = Options { server_cmd: server_cmd(), ..Options::default() };
    let r = run_case(&path, &opts);
    assert_eq!((r.name.as_str(), r.passed, r.failures.len()), ("selftest/wrong", false, 1));
    let f = &r.failures[0];
    let fields: Vec<&str> = f.mismatches.iter().map(|m| m.field.as_str()).collect();
    assert_eq!((f.step, fields), (2, vec!["rcode", "answer"]));
    assert_eq!((f.mismatches[0].expected.as_str(), f.mismatches[0].actual.as_str()), ("NXDOMAIN", "NOERROR"));
    let text = render_failure(&r, false);
    assert!(text.contains("www.example.org. 300 IN A 192.0.2.99"), "{text}");
    assert!(text.contains("www.example.org. 300 IN A 192.0.2.1"), "{text}");
    assert_eq!(summary(&[r]), "0 passed, 1 failed");
}

#[test]
fn cli_prints_counts_and_exits_non_zero_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let area = dir.path().join("selftest");
    std::fs::create_dir(&area).unwrap();
    std::fs::write(area.join("wrong.toml"), CASE).unwrap();
    let good = CASE.replace(
        "expect.rcode = \"NXDOMAIN\"\nexpect.answer = [\"www.example.org. 300 IN A 192.0.2.99\"]",
        "expect.rcode = \"NOERROR\"\nexpect.upstream_queries = {}",
    );
    std::fs::write(area.join("right.toml"), good).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_conformance"))
        .arg("--server-cmd")
        .arg(server_cmd())
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(stdout.lines().last(), Some("1 passed, 1 failed"), "{stdout}");
    assert!(!out.status.success());
    assert!(stdout.contains("FAIL selftest/wrong"), "{stdout}");
    assert!(stdout.contains("PASS selftest/right"), "{stdout}");
}

#[test]
fn start_error_is_detected_from_exit_status_and_output() {
    let dir = tempfile::tempdir().unwrap();
    let area = dir.path().join("selftest");
    std::fs::create_dir(&area).unwrap();
    let path = area.join("bad-zone.toml");
    std::fs::write(
        &path,
        "corefile = \"this is not a zone\"\nstart = \"error\"\nstart_error_contains = \"--serve-zone\"\n",
    )
    .unwrap();
    let opts = Options { server_cmd: server_cmd(), ..Options::default() };
    let r = run_case(&path, &opts);
    assert!(r.passed, "{}", render_failure(&r, true));
    std::fs::write(&path, "corefile = \"this is not a zone\"\nstart = \"error\"\nstart_error_contains = \"nope\"\n")
        .unwrap();
    let r = run_case(&path, &opts);
    assert_eq!(
        r.failures.iter().map(|f| f.mismatches[0].field.clone()).collect::<Vec<_>>(),
        vec!["start_error_contains".to_string()]
    );
}

#[test]
fn differential_mode_reports_every_difference() {
    let dir = tempfile::tempdir().unwrap();
    let area = dir.path().join("selftest");
    std::fs::create_dir(&area).unwrap();
    let other = dir.path().join("other.zone");
    std::fs::write(
        &other,
        "$ORIGIN example.org.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 60\nwww IN A 192.0.2.7\n",
    )
    .unwrap();
    let case = "corefile = \"\"\"\n$ORIGIN example.org.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 60\n\
www IN A 192.0.2.1\n\"\"\"\n[[step]]\nquery = \"www.example.org. A\"\n[[step]]\nquery = \"nope.example.org. A\"\n";
    let path = area.join("diff.toml");
    std::fs::write(&path, case).unwrap();
    let same = Options { server_cmd: server_cmd(), reference_cmd: Some(server_cmd()), ..Options::default() };
    let r = run_case(&path, &same);
    assert!(r.passed, "{}", render_failure(&r, true));
    let different = Options {
        reference_cmd: Some(format!("{} --serve-zone {} {{port}}", env!("CARGO_BIN_EXE_conformance"), other.display())),
        ..same
    };
    let r = run_case(&path, &different);
    let got: Vec<(usize, Vec<String>)> =
        r.failures.iter().map(|f| (f.step, f.mismatches.iter().map(|m| m.field.clone()).collect())).collect();
    assert_eq!(got, vec![(1, vec!["diff answer".to_string()])]);
    let m = &r.failures[0].mismatches[0];
    assert_eq!(
        (m.expected.as_str(), m.actual.as_str()),
        ("www.example.org. IN A 192.0.2.7 (ttl 300)", "www.example.org. IN A 192.0.2.1 (ttl 300)")
    );
}

#[test]
fn every_shipped_case_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
    let files = nodecache_conformance::case::collect(&[dir]).unwrap();
    assert!(files.len() >= 120, "only {} cases", files.len());
    let bad: Vec<String> = files
        .iter()
        .filter_map(|f| nodecache_conformance::case::validate_file(f).err().map(|e| format!("{}: {e}", f.display())))
        .collect();
    assert_eq!(bad, Vec::<String>::new());
}
