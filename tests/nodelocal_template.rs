//! Corefile generation end to end: the reference template (spec §7) verbatim, the spec §2.6
//! example, the shipped example Corefile, and node-cache's write procedure over real files.

use std::collections::BTreeMap;

use nodecache::nodelocal::kubedns::{DirSync, KubeDnsConfig};
use nodecache::nodelocal::metrics::{self, SetupErrorKind};
use nodecache::nodelocal::template::{self, TemplateError, TemplateParams};
use pretty_assertions::assert_eq;

const BASE: &str = include_str!("../corefiles/node-local-dns.Corefile.base");

fn spec_params() -> TemplateParams {
    TemplateParams {
        local_ip_str: "169.254.20.10,10.96.0.10".into(),
        dns_port: "53".into(),
        cluster_dns_ip: Some("10.96.143.7".parse().unwrap()),
        prometheus_listen_address: ":9253".into(),
    }
}

fn spec_config() -> KubeDnsConfig {
    KubeDnsConfig {
        federations: BTreeMap::new(),
        stub_domains: BTreeMap::from([("corp.example".to_string(), vec!["10.0.0.53".to_string()])]),
        upstream_nameservers: vec!["1.1.1.1".into(), "8.8.8.8".into()],
    }
}

/// What node-cache writes for the spec §2.6 inputs, spelled out line by line.
const SPEC_EXPECTED: &str = concat!(
    "__PILLAR__DNS__DOMAIN__:53 {\n",
    "    errors\n",
    "    cache {\n",
    "            success 9984 30\n",
    "            denial 9984 5\n",
    "    }\n",
    "    reload\n",
    "    loop\n",
    "    bind 169.254.20.10 10.96.0.10 \n",
    "    forward . 10.96.143.7 {\n",
    "            force_tcp\n",
    "    }\n",
    "    prometheus :9253\n",
    "    health 169.254.20.10 10.96.0.10:8080\n",
    "    }\n",
    "in-addr.arpa:53 {\n",
    "    errors\n",
    "    cache 30\n",
    "    reload\n",
    "    loop\n",
    "    bind 169.254.20.10 10.96.0.10 \n",
    "    forward . 10.96.143.7 {\n",
    "            force_tcp\n",
    "    }\n",
    "    prometheus :9253\n",
    "    }\n",
    "ip6.arpa:53 {\n",
    "    errors\n",
    "    cache 30\n",
    "    reload\n",
    "    loop\n",
    "    bind 169.254.20.10 10.96.0.10 \n",
    "    forward . 10.96.143.7 {\n",
    "            force_tcp\n",
    "    }\n",
    "    prometheus :9253\n",
    "    }\n",
    ".:53 {\n",
    "    errors\n",
    "    cache 30\n",
    "    reload\n",
    "    loop\n",
    "    bind 169.254.20.10 10.96.0.10 \n",
    "    forward . 1.1.1.1 8.8.8.8\n",
    "    prometheus :9253\n",
    "    }\n",
    "\n",
    "corp.example:53 {\n",
    "    errors\n",
    "    cache 30\n",
    "    bind 169.254.20.10 10.96.0.10\n",
    "    forward . 10.0.0.53\n",
    "}\n",
);

#[test]
fn base_template_is_the_reference_configmap() {
    assert!(BASE.starts_with("__PILLAR__DNS__DOMAIN__:53 {\n    errors\n    cache {\n            success 9984 30\n"));
    assert!(BASE.ends_with("    forward . __PILLAR__UPSTREAM__SERVERS__\n    prometheus :9253\n    }\n"));
    assert_eq!(BASE.matches("force_tcp").count(), 3);
    assert_eq!(BASE.lines().count(), 46);
}

#[test]
fn spec_example_byte_for_byte() {
    let r = template::render_detailed(BASE, &spec_config(), &spec_params()).unwrap();
    assert_eq!(r.text, SPEC_EXPECTED);
    // The reference .:53 block has no force_tcp, so the fallback path (with its warning) ran.
    assert!(r.tcp_block_missing);
    assert_eq!(r.upstream_servers, "1.1.1.1 8.8.8.8");
    assert_eq!(r.stub_domains, 1);
}

#[test]
fn stub_blocks_in_sorted_order_with_port() {
    let cfg = KubeDnsConfig {
        stub_domains: BTreeMap::from([
            ("zeta.example".to_string(), vec!["10.0.0.9".to_string()]),
            ("acme.local".to_string(), vec!["10.0.0.1".to_string(), "10.0.0.2:5353".to_string()]),
        ]),
        ..Default::default()
    };
    let mut p = spec_params();
    p.dns_port = "1053".into();
    p.local_ip_str = "169.254.20.10".into();
    let text = template::render("", &cfg, &p).unwrap();
    assert_eq!(
        text,
        concat!(
            "\nacme.local:1053 {\n    errors\n    cache 30\n    bind 169.254.20.10\n    forward . 10.0.0.1 10.0.0.2:5353\n}\n",
            "\nzeta.example:1053 {\n    errors\n    cache 30\n    bind 169.254.20.10\n    forward . 10.0.0.9\n}\n",
        )
    );
}

#[test]
fn shipped_example_is_what_the_binary_writes_in_ipvs_mode() {
    // IPVS-mode kube-up sed: LOCAL, DOMAIN and CLUSTER_DNS filled; DNS_SERVER left over.
    let sed = BASE
        .replace("__PILLAR__DNS__DOMAIN__", "cluster.local")
        .replace("__PILLAR__LOCAL__DNS__", "169.254.20.10")
        .replace("__PILLAR__CLUSTER__DNS__", "10.96.0.10");
    let p = TemplateParams {
        local_ip_str: "169.254.20.10".into(),
        dns_port: "53".into(),
        cluster_dns_ip: None,
        prometheus_listen_address: ":9253".into(),
    };
    let text = template::render(&sed, &KubeDnsConfig::default(), &p).unwrap();
    assert_eq!(text, include_str!("../corefiles/node-local-dns.Corefile"));
    assert!(text.contains("    forward . /etc/resolv.conf\n"));
    assert!(text.contains("    bind 169.254.20.10 \n"));
}

#[test]
fn update_corefile_writes_from_kube_dns_directory() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("coredns/Corefile.base");
    std::fs::create_dir_all(base.parent().unwrap()).unwrap();
    std::fs::write(&base, BASE).unwrap();
    let cm = dir.path().join("kube-dns");
    std::fs::create_dir_all(&cm).unwrap();
    std::fs::write(cm.join("upstreamNameservers"), r#"["1.1.1.1", "8.8.8.8"]"#).unwrap();
    std::fs::write(cm.join("stubDomains"), r#"{"corp.example": ["10.0.0.53"]}"#).unwrap();
    let cfg = DirSync::new(&cm).once().unwrap();
    assert_eq!(cfg, spec_config());
    let out = dir.path().join("Corefile");
    // An older, longer file is truncated in place.
    std::fs::write(&out, "x".repeat(5000)).unwrap();
    let written = template::update_corefile(&base, &out, &cfg, &spec_params()).unwrap();
    assert_eq!(written, SPEC_EXPECTED);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), SPEC_EXPECTED);
}

#[test]
fn update_corefile_failures_count_configmap_and_do_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("Corefile.base");
    std::fs::write(&base, BASE).unwrap();
    let out = dir.path().join("Corefile");
    std::fs::write(&out, "old\n").unwrap();

    let before = metrics::value(SetupErrorKind::Configmap);
    let bad = KubeDnsConfig {
        stub_domains: BTreeMap::from([("corp".to_string(), vec!["ns.corp.example".to_string()])]),
        ..Default::default()
    };
    let err = template::update_corefile(&base, &out, &bad, &spec_params()).unwrap_err();
    assert_eq!(
        err,
        TemplateError::Invalid(
            "invalid nameservers [ns.corp.example] for the stub domain corp: not an IP address or file: \"ns.corp.example\""
                .into()
        )
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "old\n");

    let missing = dir.path().join("nope");
    let err = template::update_corefile(&missing, &out, &KubeDnsConfig::default(), &spec_params()).unwrap_err();
    assert!(matches!(&err, TemplateError::ReadTemplate(m) if m.starts_with("Failed to read node-cache coreFile ")));

    let err = template::update_corefile(&base, dir.path(), &KubeDnsConfig::default(), &spec_params()).unwrap_err();
    assert!(matches!(&err, TemplateError::Write(m) if m.starts_with("Failed to write config file ")));
    // Other tests may count too, so check at least our three.
    assert!(metrics::value(SetupErrorKind::Configmap) >= before + 3);
}
