//! A lint for Cilium network policies in clusters that run node-local-dns behind a Local
//! Redirect Policy: once redirected, DNS packets go to the node-local-dns pod, so a policy
//! that allows DNS egress to kube-dns but not to node-local-dns drops them (and starves any
//! `toFQDNs` rule of DNS data). [`lint_yaml`] warns about such policies, naming the file and
//! the egress rule.
//!
//! Understood: `CiliumNetworkPolicy` and `CiliumClusterwideNetworkPolicy` (`spec` and
//! `specs`), also inside `kind: List`; `toEndpoints` selectors (`matchLabels`,
//! `matchExpressions`, label source prefixes like `k8s:`), `toEntities` (`all`, `cluster`),
//! and `toPorts` (absent means every port; `port`/`endPort`).

use std::fmt;
use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

/// What identifies the DNS pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LintOptions {
    /// Label key that names the DNS apps (without source prefix).
    pub app_label: String,
    /// Values of [`LintOptions::app_label`] that mean kube-dns / CoreDNS.
    pub kube_dns_values: Vec<String>,
    /// Values that mean node-local-dns (the first is used in messages).
    pub node_local_values: Vec<String>,
    /// Namespace both run in.
    pub namespace: String,
}

impl Default for LintOptions {
    fn default() -> Self {
        LintOptions {
            app_label: "k8s-app".into(),
            kube_dns_values: vec!["kube-dns".into()],
            node_local_values: vec!["node-local-dns".into(), "nodelocaldns".into()],
            namespace: "kube-system".into(),
        }
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LintWarning {
    /// The file the policy came from.
    pub file: String,
    /// `CiliumNetworkPolicy` or `CiliumClusterwideNetworkPolicy`.
    pub kind: String,
    /// `namespace/name` (or `name` for clusterwide policies).
    pub policy: String,
    /// The rule, e.g. `spec.egress[0]` or `specs[1].egress[2]`.
    pub rule: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for LintWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} {}: {}: {}", self.file, self.kind, self.policy, self.rule, self.message)
    }
}

const NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";

/// Label key without its Cilium source prefix (`k8s:`, `any:`, ...).
fn strip_source(key: &str) -> &str {
    match key.split_once(':') {
        Some((src, rest)) if !src.contains('.') && !src.contains('/') => rest,
        _ => key,
    }
}

fn as_str(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Real(r) => Some(r.clone()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn list(y: &Yaml) -> &[Yaml] {
    match y {
        Yaml::Array(a) => a,
        _ => &[],
    }
}

/// Whether selector `sel` admits a pod whose `app_label` is `value` in `namespace`.
/// Constraints on other labels are assumed to hold.
fn selector_admits(sel: &Yaml, opts: &LintOptions, value: &str) -> bool {
    let check = |key: &str, pass: &dyn Fn(Option<&str>) -> bool| -> bool {
        let key = strip_source(key);
        if key == opts.app_label {
            pass(Some(value))
        } else if key == NAMESPACE_LABEL {
            pass(Some(&opts.namespace))
        } else {
            true
        }
    };
    if let Yaml::Hash(h) = &sel["matchLabels"] {
        for (k, v) in h {
            let (Some(k), Some(v)) = (as_str(k), as_str(v)) else { continue };
            if !check(&k, &|have| have == Some(v.as_str())) {
                return false;
            }
        }
    }
    for expr in list(&sel["matchExpressions"]) {
        let Some(key) = as_str(&expr["key"]) else { continue };
        let values: Vec<String> = list(&expr["values"]).iter().filter_map(as_str).collect();
        let op = as_str(&expr["operator"]).unwrap_or_default();
        let ok = check(&key, &|have| match op.as_str() {
            "In" => have.is_some_and(|h| values.iter().any(|v| v == h)),
            "NotIn" => !have.is_some_and(|h| values.iter().any(|v| v == h)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => true,
        });
        if !ok {
            return false;
        }
    }
    true
}

/// Whether selector `sel` explicitly names one of `values` for the app label.
fn selector_names(sel: &Yaml, opts: &LintOptions, values: &[String]) -> bool {
    let named = |k: &str, v: &str| strip_source(k) == opts.app_label && values.iter().any(|x| x == v);
    if let Yaml::Hash(h) = &sel["matchLabels"] {
        if h.iter().any(|(k, v)| matches!((as_str(k), as_str(v)), (Some(k), Some(v)) if named(&k, &v))) {
            return true;
        }
    }
    list(&sel["matchExpressions"]).iter().any(|e| {
        as_str(&e["operator"]).as_deref() == Some("In")
            && as_str(&e["key"]).is_some_and(|k| list(&e["values"]).iter().filter_map(as_str).any(|v| named(&k, &v)))
    })
}

/// Whether the rule's `toPorts` lets DNS (port 53) through; no `toPorts` means all ports.
fn allows_dns_port(rule: &Yaml) -> bool {
    let to_ports = list(&rule["toPorts"]);
    if to_ports.is_empty() {
        return true;
    }
    to_ports.iter().any(|pr| {
        let ports = list(&pr["ports"]);
        if ports.is_empty() {
            return true;
        }
        ports.iter().any(|p| {
            let port = as_str(&p["port"]).unwrap_or_default();
            let proto = as_str(&p["protocol"]).unwrap_or_else(|| "ANY".into()).to_ascii_uppercase();
            let proto_ok = matches!(proto.as_str(), "UDP" | "TCP" | "ANY");
            let port_ok = match port.parse::<u32>() {
                Ok(0) => true,
                Ok(start) => {
                    let end = as_str(&p["endPort"]).and_then(|e| e.parse::<u32>().ok()).unwrap_or(start);
                    (start..=end.max(start)).contains(&53)
                }
                Err(_) => port.is_empty() || port == "dns" || port == "domain" || port == "dns-tcp",
            };
            proto_ok && port_ok
        })
    })
}

fn entities_admit_pods(rule: &Yaml) -> bool {
    list(&rule["toEntities"]).iter().filter_map(as_str).any(|e| e == "all" || e == "cluster")
}

/// Whether `rule` allows DNS to a pod with app label `value`.
fn rule_admits_dns_to(rule: &Yaml, opts: &LintOptions, value: &str) -> bool {
    allows_dns_port(rule)
        && (entities_admit_pods(rule) || list(&rule["toEndpoints"]).iter().any(|s| selector_admits(s, opts, value)))
}

fn lint_spec(spec: &Yaml, path: &str, opts: &LintOptions) -> Vec<(String, String)> {
    let egress = list(&spec["egress"]);
    let Some(local) = opts.node_local_values.first() else { return Vec::new() };
    let node_local_ok = egress.iter().any(|r| opts.node_local_values.iter().any(|v| rule_admits_dns_to(r, opts, v)));
    if node_local_ok {
        return Vec::new();
    }
    egress
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            allows_dns_port(r) && list(&r["toEndpoints"]).iter().any(|s| selector_names(s, opts, &opts.kube_dns_values))
        })
        .map(|(i, _)| {
            (
                format!("{path}.egress[{i}]"),
                format!(
                    "allows DNS egress to {}={} but no egress rule allows DNS to {}={}; with node-local-dns behind a Local Redirect Policy the redirected queries are dropped",
                    opts.app_label,
                    opts.kube_dns_values.join("|"),
                    opts.app_label,
                    local
                ),
            )
        })
        .collect()
}

fn lint_doc(doc: &Yaml, file: &str, opts: &LintOptions, out: &mut Vec<LintWarning>) {
    let kind = as_str(&doc["kind"]).unwrap_or_default();
    if kind == "List" || kind.ends_with("List") {
        for item in list(&doc["items"]) {
            lint_doc(item, file, opts, out);
        }
        return;
    }
    if kind != "CiliumNetworkPolicy" && kind != "CiliumClusterwideNetworkPolicy" {
        return;
    }
    let name = as_str(&doc["metadata"]["name"]).unwrap_or_else(|| "<unnamed>".into());
    let policy = match as_str(&doc["metadata"]["namespace"]) {
        Some(ns) if kind == "CiliumNetworkPolicy" => format!("{ns}/{name}"),
        _ => name,
    };
    let mut found = Vec::new();
    if !doc["spec"].is_badvalue() && !doc["spec"].is_null() {
        found.extend(lint_spec(&doc["spec"], "spec", opts));
    }
    for (i, spec) in list(&doc["specs"]).iter().enumerate() {
        found.extend(lint_spec(spec, &format!("specs[{i}]"), opts));
    }
    out.extend(found.into_iter().map(|(rule, message)| LintWarning {
        file: file.to_string(),
        kind: kind.clone(),
        policy: policy.clone(),
        rule,
        message,
    }));
}

/// Lints every policy in a (multi-document) YAML text; `file` names it in the warnings.
pub fn lint_yaml(file: &str, text: &str, opts: &LintOptions) -> Result<Vec<LintWarning>, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| format!("{file}: {e}"))?;
    let mut out = Vec::new();
    for doc in &docs {
        lint_doc(doc, file, opts, &mut out);
    }
    Ok(out)
}

/// Lints a file, or every `*.yaml`/`*.yml` file under a directory (sorted, recursive).
pub fn lint_path(path: &Path, opts: &LintOptions) -> Result<Vec<LintWarning>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        let mut out = Vec::new();
        for p in entries {
            let is_yaml = p.extension().is_some_and(|e| e == "yaml" || e == "yml");
            if p.is_dir() || is_yaml {
                out.extend(lint_path(&p, opts)?);
            }
        }
        return Ok(out);
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    lint_yaml(&path.display().to_string(), &text, opts)
}
