//! The `nodecache` binary's offline modes: `-validate` (exit 0/1 with compiler-style errors),
//! `-explain` (the plan), `-lint-policy` (Cilium policies), and flag errors.

use std::process::{Command, Output};

use pretty_assertions::assert_eq;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nodecache")).args(args).output().expect("runs nodecache")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn validate_accepts_every_shipped_corefile() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corefiles");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("corefiles/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "Corefile") {
            let out = run(&["-validate", "-conf", path.to_str().expect("utf-8 path")]);
            assert_eq!(out.status.code(), Some(0), "{}: {}", path.display(), text(&out.stderr));
            checked += 1;
        }
    }
    assert!(checked >= 4, "only {checked} Corefiles checked");
}

#[test]
fn validate_reports_file_line_column_and_coredns_wording() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("Corefile");
    std::fs::write(&path, ".:5300 {\n    cache 30\n    forwrd . 127.0.0.1\n}\n").expect("write");
    let out = run(&["-validate", "-conf", path.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let first = err.lines().next().unwrap_or_default().to_string();
    assert!(first.starts_with(&format!("{}:3:5: ", path.display())), "{err}");
    assert!(err.contains("Unknown directive 'forwrd'"), "{err}");
    assert!(err.contains("did you mean 'forward'"), "{err}");
    assert!(err.contains("3 |     forwrd . 127.0.0.1"), "{err}");
    assert!(err.contains("^^^^^^"), "{err}");
    assert!(err.contains("- Error during parsing: Unknown directive 'forwrd'"), "{err}");
}

#[test]
fn explain_prints_listeners_zones_and_chain_in_plugin_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("Corefile");
    std::fs::write(
        &path,
        "cluster.local:5300 {\n    forward . 127.0.0.1\n    cache 30\n    errors\n    bind 127.0.0.1\n}\n",
    )
    .expect("write");
    let out = run(&["-explain", "-conf", path.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    assert!(plan.contains("dns://127.0.0.1:5300"), "{plan}");
    assert!(plan.contains("cluster.local."), "{plan}");
    let pos = |name: &str| plan.find(&format!(". {name}")).unwrap_or_else(|| panic!("{name} missing in\n{plan}"));
    assert!(pos("errors") < pos("cache") && pos("cache") < pos("forward"), "{plan}");
}

#[test]
fn lint_policy_passes_the_shipped_example_and_flags_a_kube_dns_only_policy() {
    let good = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/cilium-lrp/network-policy-example.yaml");
    let out = run(&["-lint-policy", good]);
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: app\n  namespace: default\nspec:\n  \
         endpointSelector: {}\n  egress:\n  - toEndpoints:\n    - matchLabels:\n        k8s:io.kubernetes.pod.namespace: kube-system\n        \
         k8s:k8s-app: kube-dns\n    toPorts:\n    - ports:\n      - port: \"53\"\n        protocol: ANY\n",
    )
    .expect("write");
    let out = run(&["-lint-policy", bad.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1), "{}{}", text(&out.stdout), text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("[WARNING]") && stdout.contains("bad.yaml") && stdout.contains("spec.egress[0]"),
        "{stdout}"
    );
}

#[test]
fn unknown_flag_is_usage_and_exit_2() {
    let out = run(&["-nosuchflag"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.starts_with("flag provided but not defined: -nosuchflag\nUsage of "), "{err}");
}
