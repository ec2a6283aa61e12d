//! The shipped Kubernetes manifests (`deploy/classic`, `deploy/cilium-lrp`) and the Dockerfile
//! agree with the reference deployment (spec node-cache.md §7) and with the flags the binary
//! accepts; the shipped CiliumNetworkPolicy passes the node-local-dns policy lint and a policy
//! that allows only kube-dns is flagged.

use std::path::{Path, PathBuf};

use nodecache::nodelocal::flags::{self, FlagsOutcome, NodeCacheFlags};
use nodecache::nodelocal::policy_lint::{lint_path, lint_yaml, LintOptions};
use pretty_assertions::assert_eq;
use yaml_rust2::{Yaml, YamlLoader};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn docs(rel: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn find<'a>(docs: &'a [Yaml], kind: &str, name: &str) -> &'a Yaml {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn s(y: &Yaml) -> &str {
    y.as_str().unwrap_or_else(|| panic!("not a string: {y:?}"))
}

fn strs(y: &Yaml) -> Vec<String> {
    y.as_vec().unwrap_or_else(|| panic!("not a list: {y:?}")).iter().map(|v| s(v).to_string()).collect()
}

/// The container args with the deploy-time sed applied, parsed by the binary's flag parser.
fn parse_args(args: &[String]) -> NodeCacheFlags {
    let filled: Vec<String> = args
        .iter()
        .map(|a| a.replace("__PILLAR__LOCAL__DNS__", "169.254.20.10").replace("__PILLAR__DNS__SERVER__", "10.96.0.10"))
        .collect();
    match flags::parse("node-cache", &filled) {
        Ok(FlagsOutcome::Run { flags, args }) => {
            assert_eq!(args, Vec::<String>::new(), "no positional leftovers");
            *flags
        }
        other => panic!("{filled:?} rejected: {other:?}"),
    }
}

/// (name, containerPort, protocol) of every container port.
fn ports(c: &Yaml) -> Vec<(String, i64, String)> {
    c["ports"]
        .as_vec()
        .expect("ports")
        .iter()
        .map(|p| (s(&p["name"]).to_string(), p["containerPort"].as_i64().expect("port"), s(&p["protocol"]).to_string()))
        .collect()
}

fn volume<'a>(pod: &'a Yaml, name: &str) -> &'a Yaml {
    pod["volumes"].as_vec().expect("volumes").iter().find(|v| v["name"].as_str() == Some(name)).expect(name)
}

fn mount_path<'a>(c: &'a Yaml, name: &str) -> &'a str {
    let m = c["volumeMounts"].as_vec().expect("mounts").iter().find(|m| m["name"].as_str() == Some(name)).expect(name);
    s(&m["mountPath"])
}

/// What both modes share: probes, Corefile.base mount, kube-dns ConfigMap, ports, tolerations,
/// priority, requests, annotations, and the upstream/headless Services.
fn check_common(docs: &[Yaml], base_file: &str) -> (Yaml, Yaml) {
    let ds = find(docs, "DaemonSet", "node-local-dns");
    assert_eq!(s(&ds["metadata"]["namespace"]), "kube-system");
    // Surge rolling updates: a new pod serves next to the old one before it stops.
    let strategy = &ds["spec"]["updateStrategy"];
    assert_eq!(s(&strategy["type"]), "RollingUpdate");
    assert_eq!(strategy["rollingUpdate"]["maxSurge"].as_i64(), Some(1));
    assert_eq!(strategy["rollingUpdate"]["maxUnavailable"].as_i64(), Some(0));
    let tpl = &ds["spec"]["template"];
    assert_eq!(s(&tpl["metadata"]["labels"]["k8s-app"]), "node-local-dns");
    assert_eq!(s(&tpl["metadata"]["annotations"]["prometheus.io/port"]), "9253");
    assert_eq!(s(&tpl["metadata"]["annotations"]["prometheus.io/scrape"]), "true");
    let pod = &tpl["spec"];
    assert_eq!(s(&pod["priorityClassName"]), "system-node-critical");
    assert_eq!(s(&pod["serviceAccountName"]), "node-local-dns");
    assert_eq!(s(&pod["dnsPolicy"]), "Default");
    let tols: Vec<(Option<&str>, Option<&str>, Option<&str>)> = pod["tolerations"]
        .as_vec()
        .expect("tolerations")
        .iter()
        .map(|t| (t["key"].as_str(), t["effect"].as_str(), t["operator"].as_str()))
        .collect();
    assert_eq!(
        tols,
        vec![
            (Some("CriticalAddonsOnly"), None, Some("Exists")),
            (None, Some("NoExecute"), Some("Exists")),
            (None, Some("NoSchedule"), Some("Exists")),
        ]
    );
    let containers = pod["containers"].as_vec().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(s(&c["name"]), "node-cache");
    assert_eq!(s(&c["resources"]["requests"]["cpu"]), "25m");
    assert_eq!(s(&c["resources"]["requests"]["memory"]), "5Mi");
    assert!(c["resources"]["limits"].is_badvalue(), "no limits, like the reference");
    if pod["hostNetwork"].as_bool() == Some(true) {
        assert!(c["ports"].is_badvalue(), "no hostPorts: they would keep the surge pod off the node");
    } else {
        let p = ports(c);
        for want in [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9253, "TCP")] {
            assert!(p.contains(&(want.0.to_string(), want.1, want.2.to_string())), "{want:?} in {p:?}");
        }
    }
    // The state directory on the host, shared by the old and the new pod of a node.
    let state = volume(pod, "node-cache-state");
    assert_eq!((s(&state["hostPath"]["path"]), s(&state["hostPath"]["type"])), ("/run/nodecache", "DirectoryOrCreate"));
    assert_eq!(mount_path(c, "node-cache-state"), "/run/nodecache");
    let args = strs(&c["args"]);
    assert!(args.windows(2).any(|w| w == ["-statedir", "/run/nodecache"]), "{args:?}");
    let live = &c["livenessProbe"];
    assert_eq!(s(&live["httpGet"]["path"]), "/health");
    assert_eq!(live["httpGet"]["port"].as_i64(), Some(8080));
    assert_eq!(live["initialDelaySeconds"].as_i64(), Some(60));
    assert_eq!(live["timeoutSeconds"].as_i64(), Some(5));
    assert!(c["readinessProbe"].is_badvalue(), "node-cache has no ready plugin");

    // ConfigMap key Corefile → Corefile.base under /etc/coredns (the -basecorefile default).
    let cfg = volume(pod, "config-volume");
    assert_eq!(s(&cfg["configMap"]["name"]), "node-local-dns");
    let items = cfg["configMap"]["items"].as_vec().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!((s(&items[0]["key"]), s(&items[0]["path"])), ("Corefile", "Corefile.base"));
    assert_eq!(mount_path(c, "config-volume"), "/etc/coredns");
    let kd = volume(pod, "kube-dns-config");
    assert_eq!(s(&kd["configMap"]["name"]), "kube-dns");
    assert_eq!(kd["configMap"]["optional"].as_bool(), Some(true));
    assert_eq!(mount_path(c, "kube-dns-config"), "/etc/kube-dns");

    // The ConfigMap's Corefile is the shipped base Corefile, byte for byte.
    let cm = find(docs, "ConfigMap", "node-local-dns");
    assert_eq!(s(&cm["data"]["Corefile"]), read(base_file));

    let up = find(docs, "Service", "kube-dns-upstream");
    assert_eq!(s(&up["spec"]["selector"]["k8s-app"]), "kube-dns");
    assert_eq!(s(&up["metadata"]["labels"]["k8s-app"]), "kube-dns");
    assert_eq!(s(&up["metadata"]["labels"]["kubernetes.io/name"]), "KubeDNSUpstream");
    let up_ports: Vec<(String, i64, String, i64)> = up["spec"]["ports"]
        .as_vec()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                s(&p["name"]).into(),
                p["port"].as_i64().expect("port"),
                s(&p["protocol"]).into(),
                p["targetPort"].as_i64().expect("tp"),
            )
        })
        .collect();
    assert_eq!(up_ports, vec![("dns".into(), 53, "UDP".into(), 53), ("dns-tcp".into(), 53, "TCP".into(), 53)]);
    let headless = find(docs, "Service", "node-local-dns");
    assert_eq!(s(&headless["spec"]["clusterIP"]), "None");
    assert_eq!(headless["spec"]["ports"][0]["port"].as_i64(), Some(9253));
    assert_eq!(s(&headless["spec"]["selector"]["k8s-app"]), "node-local-dns");
    find(docs, "ServiceAccount", "node-local-dns");
    (pod.clone(), c.clone())
}

/// `image: nodecache:<target>` names a Dockerfile stage whose entrypoint is `/node-cache`.
fn check_image(c: &Yaml, target: &str) {
    assert_eq!(s(&c["image"]), format!("nodecache:{target}"));
    let stages = dockerfile_stages();
    let stage = stages.iter().find(|(name, _)| name == target).unwrap_or_else(|| panic!("no stage {target}"));
    assert!(stage.1.iter().any(|l| l == "ENTRYPOINT [\"/node-cache\"]"), "{stage:?}");
}

/// (stage name, its lines) for every `FROM ... AS name` in the Dockerfile.
fn dockerfile_stages() -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in read("Dockerfile").lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"FROM") {
            let name = words.iter().position(|w| w.eq_ignore_ascii_case("AS")).and_then(|i| words.get(i + 1));
            out.push((name.map_or(String::new(), |n| n.to_string()), vec![line.to_string()]));
        } else if let Some(last) = out.last_mut() {
            last.1.push(line.to_string());
        }
    }
    out
}

#[test]
fn classic_manifest_matches_reference_and_flags() {
    let docs = docs("deploy/classic/node-local-dns.yaml");
    let (pod, c) = check_common(&docs, "corefiles/node-local-dns.Corefile.base");
    assert_eq!(pod["hostNetwork"].as_bool(), Some(true));
    check_image(&c, "classic");
    let args = strs(&c["args"]);
    assert_eq!(
        args,
        ["-localip", "__PILLAR__LOCAL__DNS__,__PILLAR__DNS__SERVER__", "-conf", "/etc/Corefile"]
            .iter()
            .chain(&[
                "-upstreamsvc",
                "kube-dns-upstream",
                "-pidfile",
                "/tmp/node-cache.pid",
                "-statedir",
                "/run/nodecache"
            ])
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
    );
    let f = parse_args(&args);
    assert_eq!(f.local_ips, vec!["169.254.20.10".parse::<std::net::IpAddr>().unwrap(), "10.96.0.10".parse().unwrap()]);
    assert!(f.setup_interface && f.setup_iptables && !f.skip_teardown);
    assert_eq!(
        (f.conf.as_str(), f.upstream_svc.as_str(), f.pidfile.as_str()),
        ("/etc/Corefile", "kube-dns-upstream", "/tmp/node-cache.pid")
    );
    assert_eq!(f.base_corefile, "/etc/coredns/Corefile.base", "default -basecorefile matches the mount");
    assert_eq!(f.kubedns_cm, "", "falls back to /etc/kube-dns, where the ConfigMap is mounted");
    assert_eq!(f.health_port, "8080", "NOTRACK rules cover the probe port");
    assert_eq!(f.statedir, "/run/nodecache");

    assert_eq!(s(&c["livenessProbe"]["httpGet"]["host"]), "__PILLAR__LOCAL__DNS__");
    let caps = strs(&c["securityContext"]["capabilities"]["add"]);
    assert_eq!(caps, vec!["NET_ADMIN".to_string()]);
    let lock = volume(&pod, "xtables-lock");
    assert_eq!((s(&lock["hostPath"]["path"]), s(&lock["hostPath"]["type"])), ("/run/xtables.lock", "FileOrCreate"));
    assert_eq!(mount_path(&c, "xtables-lock"), "/run/xtables.lock");
}

#[test]
fn cilium_lrp_manifest_runs_without_interface_or_iptables() {
    let docs = docs("deploy/cilium-lrp/node-local-dns.yaml");
    let (pod, c) = check_common(&docs, "corefiles/cilium-lrp.Corefile.base");
    assert!(!pod["hostNetwork"].as_bool().unwrap_or(false), "LRP backends are ordinary pods");
    check_image(&c, "lrp");
    let args = strs(&c["args"]);
    for pair in [["-localip", "0.0.0.0"], ["-upstreamsvc", "kube-dns-upstream"], ["-conf", "/etc/Corefile"]] {
        assert!(args.windows(2).any(|w| w == pair), "{pair:?} in {args:?}");
    }
    for flag in ["-setupinterface=false", "-setupiptables=false"] {
        assert!(args.iter().any(|a| a == flag), "{flag} in {args:?}");
    }
    let f = parse_args(&args);
    assert_eq!(f.local_ips, vec!["0.0.0.0".parse::<std::net::IpAddr>().unwrap()]);
    assert!(!f.setup_interface && !f.setup_iptables);
    assert!(c["livenessProbe"]["httpGet"]["host"].is_badvalue(), "probe goes to the pod IP");
    let base = read("corefiles/cilium-lrp.Corefile.base");
    assert!(base.contains("health :8080"), "health listens on the pod IP:\n{base}");
    assert!(!base.contains("__PILLAR__LOCAL__DNS__"), "binds 0.0.0.0, not the link-local IP");
}

#[test]
fn local_redirect_policy_redirects_udp_and_tcp_53() {
    let docs = docs("deploy/cilium-lrp/local-redirect-policy.yaml");
    let lrp = find(&docs, "CiliumLocalRedirectPolicy", "nodelocaldns");
    assert_eq!(s(&lrp["apiVersion"]), "cilium.io/v2");
    assert_eq!(s(&lrp["metadata"]["namespace"]), "kube-system");
    let fe = &lrp["spec"]["redirectFrontend"]["serviceMatcher"];
    assert_eq!((s(&fe["serviceName"]), s(&fe["namespace"])), ("kube-dns", "kube-system"));
    let be = &lrp["spec"]["redirectBackend"];
    assert_eq!(s(&be["localEndpointSelector"]["matchLabels"]["k8s-app"]), "node-local-dns");
    let to: Vec<(String, String, String)> = be["toPorts"]
        .as_vec()
        .expect("toPorts")
        .iter()
        .map(|p| (s(&p["port"]).into(), s(&p["name"]).into(), s(&p["protocol"]).into()))
        .collect();
    // Port names must match the kube-dns Service's port names.
    assert_eq!(to, vec![("53".into(), "dns".into(), "UDP".into()), ("53".into(), "dns-tcp".into(), "TCP".into())]);
    // The backend label selects the DaemonSet's pods.
    let ds = docs_label("deploy/cilium-lrp/node-local-dns.yaml");
    assert_eq!(ds, "node-local-dns");
}

fn docs_label(rel: &str) -> String {
    let d = docs(rel);
    s(&find(&d, "DaemonSet", "node-local-dns")["spec"]["template"]["metadata"]["labels"]["k8s-app"]).to_string()
}

#[test]
fn shipped_network_policy_passes_the_lint() {
    let path = root().join("deploy/cilium-lrp/network-policy-example.yaml");
    let warnings = lint_path(&path, &LintOptions::default()).expect("lint");
    assert_eq!(warnings, vec![], "the shipped example must allow node-local-dns");
    let docs = docs("deploy/cilium-lrp/network-policy-example.yaml");
    let cnp = docs.iter().find(|d| d["kind"].as_str() == Some("CiliumNetworkPolicy")).expect("a CNP");
    let egress = cnp["spec"]["egress"].as_vec().expect("egress");
    let apps: Vec<&str> = egress
        .iter()
        .flat_map(|r| r["toEndpoints"].as_vec().into_iter().flatten())
        .filter_map(|e| e["matchLabels"]["k8s:k8s-app"].as_str())
        .collect();
    assert_eq!(apps, vec!["kube-dns", "node-local-dns"]);
    let dns_rule = egress.iter().find(|r| !r["toEndpoints"].is_badvalue()).expect("dns rule");
    let protos: Vec<&str> =
        dns_rule["toPorts"][0]["ports"].as_vec().expect("ports").iter().map(|p| s(&p["protocol"])).collect();
    assert_eq!(protos, vec!["UDP", "TCP"]);
    assert!(!dns_rule["toPorts"][0]["rules"]["dns"].is_badvalue(), "DNS proxy rule feeds toFQDNs");
    assert!(egress.iter().any(|r| !r["toFQDNs"].is_badvalue()), "an FQDN rule");
}

#[test]
fn policy_allowing_only_kube_dns_is_flagged() {
    // The shipped example with the node-local-dns selector removed.
    let text = read("deploy/cilium-lrp/network-policy-example.yaml");
    let bad = text.replace(
        "        - matchLabels:\n            k8s:io.kubernetes.pod.namespace: kube-system\n            k8s:k8s-app: node-local-dns\n",
        "",
    );
    assert_ne!(bad, text, "the selector to remove was found");
    let warnings = lint_yaml("bad.yaml", &bad, &LintOptions::default()).expect("lint");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = &warnings[0];
    assert_eq!(
        (w.file.as_str(), w.kind.as_str(), w.policy.as_str(), w.rule.as_str()),
        ("bad.yaml", "CiliumNetworkPolicy", "default/my-app-egress", "spec.egress[0]")
    );
    assert!(w.message.contains("node-local-dns"), "{w}");
}

#[test]
fn static_image_stage_is_scratch_with_node_cache_entrypoint() {
    let stages = dockerfile_stages();
    let (_, lines) = stages.iter().find(|(n, _)| n == "static").expect("static stage");
    assert_eq!(lines[0], "FROM scratch AS static");
    assert!(lines.iter().any(|l| l.starts_with("ARG STATIC_BINARY=target/x86_64-unknown-linux-gnu/")), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains("--from=")), "scratch stage must build offline: {lines:?}");
    assert!(lines.iter().any(|l| l == "ENTRYPOINT [\"/node-cache\"]"), "{lines:?}");
    for target in ["classic", "lrp"] {
        assert!(stages.iter().any(|(n, _)| n == target), "stage {target}");
    }
}
