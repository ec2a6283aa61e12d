//! The Cilium policy lint over the shipped example and hand-written policies.

use std::path::Path;

use nodecache::nodelocal::policy_lint::{lint_path, lint_yaml, LintOptions};
use pretty_assertions::assert_eq;

fn lint(text: &str) -> Vec<String> {
    lint_yaml("p.yaml", text, &LintOptions::default()).unwrap().iter().map(ToString::to_string).collect()
}

const KUBE_DNS_ONLY: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: unrelated}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: app
  namespace: shop
spec:
  endpointSelector: {matchLabels: {app: shop}}
  egress:
    - toEndpoints:
        - matchLabels: {app: db}
      toPorts: [{ports: [{port: "5432", protocol: TCP}]}]
    - toEndpoints:
        - matchLabels:
            k8s:io.kubernetes.pod.namespace: kube-system
            k8s:k8s-app: kube-dns
      toPorts:
        - ports: [{port: "53", protocol: ANY}]
          rules: {dns: [{matchPattern: "*"}]}
    - toFQDNs: [{matchName: api.example.com}]
      toPorts: [{ports: [{port: "443", protocol: TCP}]}]
"#;

#[test]
fn shipped_example_policy_is_clean() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/cilium-lrp");
    assert_eq!(lint_path(&dir, &LintOptions::default()).unwrap(), vec![]);
}

#[test]
fn kube_dns_only_is_reported_with_file_and_rule() {
    assert_eq!(
        lint(KUBE_DNS_ONLY),
        vec!["p.yaml: CiliumNetworkPolicy shop/app: spec.egress[1]: allows DNS egress to k8s-app=kube-dns but no egress rule allows DNS to k8s-app=node-local-dns; with node-local-dns behind a Local Redirect Policy the redirected queries are dropped".to_string()]
    );
}

#[test]
fn node_local_allowed_in_another_rule_or_by_expression() {
    let fixed = KUBE_DNS_ONLY.replace(
        "    - toFQDNs:",
        "    - toEndpoints:\n        - matchExpressions:\n            - {key: k8s-app, operator: In, values: [node-local-dns]}\n      toPorts: [{ports: [{port: \"53\", protocol: UDP}]}]\n    - toFQDNs:",
    );
    assert_eq!(lint(&fixed), Vec::<String>::new());
    // kubespray's label value.
    let fixed = KUBE_DNS_ONLY
        .replace("k8s:k8s-app: kube-dns", "k8s:k8s-app: kube-dns\n        - matchLabels: {k8s-app: nodelocaldns}");
    assert_eq!(lint(&fixed), Vec::<String>::new());
}

#[test]
fn broad_rules_count_as_allowing_node_local_dns() {
    for extra in [
        "    - toEntities: [cluster]\n",
        "    - toEndpoints: [{}]\n      toPorts: [{ports: [{port: \"53\"}]}]\n",
        "    - toEndpoints: [{matchExpressions: [{key: k8s-app, operator: Exists}]}]\n",
        "    - toEndpoints: [{matchLabels: {k8s-app: node-local-dns}}]\n      toPorts: [{ports: [{port: \"50\", endPort: 60, protocol: UDP}]}]\n",
    ] {
        let text = format!("{KUBE_DNS_ONLY}{extra}");
        assert_eq!(lint(&text), Vec::<String>::new(), "{extra}");
    }
}

#[test]
fn rules_that_do_not_carry_dns_are_ignored() {
    let no_dns = KUBE_DNS_ONLY.replace("port: \"53\", protocol: ANY", "port: \"9153\", protocol: TCP");
    assert_eq!(lint(&no_dns), Vec::<String>::new());
    // node-local-dns allowed only on a non-DNS port does not count.
    let wrong_port = format!(
        "{KUBE_DNS_ONLY}    - toEndpoints: [{{matchLabels: {{k8s-app: node-local-dns}}}}]\n      toPorts: [{{ports: [{{port: \"9253\"}}]}}]\n"
    );
    assert_eq!(lint(&wrong_port).len(), 1);
    // A selector pinned to another namespace does not admit node-local-dns in kube-system.
    let other_ns = format!(
        "{KUBE_DNS_ONLY}    - toEndpoints: [{{matchLabels: {{k8s-app: node-local-dns, k8s:io.kubernetes.pod.namespace: dns}}}}]\n"
    );
    assert_eq!(lint(&other_ns).len(), 1);
}

#[test]
fn clusterwide_specs_and_lists() {
    let text = r#"
kind: List
items:
  - apiVersion: cilium.io/v2
    kind: CiliumClusterwideNetworkPolicy
    metadata: {name: all-dns}
    specs:
      - endpointSelector: {}
        egress:
          - toEndpoints: [{matchLabels: {k8s-app: node-local-dns}}]
      - endpointSelector: {}
        egress:
          - toEndpoints: [{matchExpressions: [{key: "k8s:k8s-app", operator: In, values: [kube-dns, coredns]}]}]
"#;
    let w = lint_yaml("cw.yaml", text, &LintOptions::default()).unwrap();
    assert_eq!(w.len(), 1);
    assert_eq!((w[0].policy.as_str(), w[0].rule.as_str()), ("all-dns", "specs[1].egress[0]"));
}

#[test]
fn invalid_yaml_is_an_error() {
    assert!(lint_yaml("bad.yaml", "a: [unclosed", &LintOptions::default()).unwrap_err().starts_with("bad.yaml: "));
}
