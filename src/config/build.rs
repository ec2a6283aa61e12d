//! Building the plan from parsed server blocks: keys, plugin setup in CoreDNS's order,
//! duplicate/overlap checks, and listener grouping.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::path::Path;
use std::sync::Arc;

use crate::corefile::{CorefileError, Dispenser, ErrorKind, ServerBlock, Token};
use crate::plugin::{PluginConfig, SetupContext};

use super::keys::{host_port_label, normalize_key};
use super::order::{self, PLUGIN_ORDER};
use super::plan::{BlockPlan, ListenerPlan, Plan, Transport, ZoneKey};
use super::registry::setup_fn;

/// Options that influence the plan.
#[derive(Clone, Debug)]
pub struct PlanOptions {
    /// Port for `dns://` keys without one (`-dns.port`, default 53).
    pub default_port: u16,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions { default_port: 53 }
    }
}

/// The server blocks CoreDNS runs when there is no Corefile or it has no blocks:
/// `.:<port> { whoami log }`.
pub fn fallback_blocks(port: u16) -> Vec<ServerBlock> {
    let file: Arc<str> = Arc::from("Corefile");
    let tok = |text: &str, line: u32| Token::new(text, file.clone(), line, 1);
    vec![ServerBlock {
        keys: vec![tok(&format!(".:{port}"), 1)],
        directives: vec![("whoami".into(), vec![tok("whoami", 2)]), ("log".into(), vec![tok("log", 3)])],
    }]
}

/// Reads, parses and plans the Corefile at `path`.
pub fn load_file(path: &Path, opts: &PlanOptions) -> Result<Plan, CorefileError> {
    let blocks = crate::corefile::parse_file(path, &Default::default())?;
    build_plan(&blocks, opts)
}

/// Parses and plans Corefile text (`file` names it in errors).
pub fn load_str(text: &str, file: &str, opts: &PlanOptions) -> Result<Plan, CorefileError> {
    let blocks = crate::corefile::parse_str(text, file, &Default::default())?;
    build_plan(&blocks, opts)
}

/// Builds the plan: normalises keys, runs every directive's setup, checks for duplicate and
/// overlapping zones, and groups the blocks into listeners.
pub fn build_plan(blocks: &[ServerBlock], opts: &PlanOptions) -> Result<Plan, CorefileError> {
    let fallback;
    let blocks = if blocks.is_empty() {
        fallback = fallback_blocks(opts.default_port);
        &fallback[..]
    } else {
        blocks
    };

    // 1. Keys (CoreDNS inspects every block before any setup runs).
    let mut block_keys: Vec<Vec<(ZoneKey, Token)>> = Vec::with_capacity(blocks.len());
    for b in blocks {
        let mut keys = Vec::new();
        for tok in &b.keys {
            let expanded = normalize_key(tok, opts.default_port).map_err(|mut e| {
                e.message = format!("error inspecting server blocks: {}", e.message);
                e
            })?;
            keys.extend(expanded.into_iter().map(|k| (k, tok.clone())));
        }
        block_keys.push(keys);
    }

    // 2. Directives the engine cannot run.
    for b in blocks {
        for (name, toks) in &b.directives {
            let Some(first) = toks.first() else { continue };
            if !order::is_directive(name) {
                return Err(CorefileError::parse(first, format!("Unknown directive '{name}'")));
            }
        }
    }

    // 3. Setup, directive by directive in CoreDNS's order, block by block (so the first error
    //    reported is the one CoreDNS reports).
    let mut plugins: Vec<Vec<Arc<dyn PluginConfig>>> = vec![Vec::new(); blocks.len()];
    for dir in PLUGIN_ORDER {
        for (bi, b) in blocks.iter().enumerate() {
            let Some(toks) = b.directive(dir) else { continue };
            let Some(setup) = setup_fn(dir) else {
                let at = toks.first().cloned().unwrap_or_else(|| Token::new(*dir, Arc::from(""), 0, 0));
                return Err(CorefileError::at(ErrorKind::Plain, &at, "not supported by nodecache").in_plugin(dir));
            };
            let ctx = SetupContext {
                zones: block_keys[bi].iter().map(|(k, _)| k.zone.clone()).collect(),
                ports: block_keys[bi].iter().map(|(k, _)| k.port).collect(),
            };
            let file = toks.first().map(|t| t.file.clone()).unwrap_or_else(|| Arc::from(""));
            let mut d = Dispenser::new(toks.to_vec(), file);
            let cfg = setup(&mut d, &ctx).map_err(|e| e.in_plugin(dir))?;
            plugins[bi].push(Arc::from(cfg));
        }
    }

    // 4. Blocks with their listen hosts.
    let mut plan = Plan::default();
    let mut bound: Vec<Option<Vec<String>>> = Vec::with_capacity(blocks.len());
    for (bi, chain) in plugins.into_iter().enumerate() {
        let hosts = chain
            .iter()
            .find(|p| p.name() == "bind")
            .and_then(|p| p.as_any().downcast_ref::<crate::plugin::bind::setup::Config>())
            .map(|c| c.listen_hosts());
        bound.push(hosts.clone());
        plan.blocks.push(BlockPlan {
            keys: block_keys[bi].iter().map(|(k, _)| k.clone()).collect(),
            plugins: chain,
            listen_hosts: hosts.unwrap_or_default(),
        });
    }

    // 5. Listeners: one per transport://host:port, in order of first appearance.
    let mut index: HashMap<String, usize> = HashMap::new();
    for (bi, keys) in block_keys.iter().enumerate() {
        let hosts: Vec<String> = bound[bi].clone().unwrap_or_else(|| vec![String::new()]);
        for (key, _) in keys {
            for host in &hosts {
                let label = format!("{}://{}", key.transport.scheme(), host_port_label(host, key.port));
                let li = *index.entry(label.clone()).or_insert_with(|| {
                    plan.listeners.push(ListenerPlan {
                        transport: key.transport,
                        addr: socket_addr(host, key.port),
                        wildcard: host.is_empty(),
                        label: label.clone(),
                        zones: Vec::new(),
                    });
                    plan.listeners.len() - 1
                });
                plan.listeners[li].zones.push((key.zone.clone(), bi));
            }
        }
    }

    // 6. Duplicates and overlaps, with CoreDNS's messages.
    let mut checker = OverlapChecker::default();
    for (bi, keys) in block_keys.iter().enumerate() {
        let hosts: Vec<String> = bound[bi].clone().unwrap_or_else(|| vec![String::new()]);
        for (key, tok) in keys {
            for host in &hosts {
                let z = ZoneAddr {
                    transport: key.transport,
                    zone: key.zone.clone(),
                    port: key.port,
                    address: host.clone(),
                };
                match checker.register_and_check(&z) {
                    Check::Ok => {}
                    Check::Exists => {
                        let msg = format!("cannot serve {} - it is already defined", z.display());
                        return Err(CorefileError::at(ErrorKind::Plain, tok, msg));
                    }
                    Check::Overlap(other) => {
                        let msg = format!(
                            "cannot serve {} - zone overlap listener capacity with {}",
                            z.display(),
                            other.display()
                        );
                        return Err(CorefileError::at(ErrorKind::Plain, tok, msg));
                    }
                }
            }
        }
    }
    Ok(plan)
}

/// The socket address for a listen host: the wildcard is `[::]` (the server falls back to
/// 0.0.0.0 when IPv6 is unavailable); IPv6 link-local hosts keep their scope.
fn socket_addr(host: &str, port: u16) -> SocketAddr {
    if host.is_empty() {
        return SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
    }
    let (ip, zone) = match host.split_once('%') {
        Some((ip, zone)) => (ip, Some(zone)),
        None => (host, None),
    };
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => {
            if let Some(v4) = v6.to_ipv4_mapped().filter(|_| zone.is_none()) {
                return SocketAddr::new(IpAddr::V4(v4), port);
            }
            let scope = zone.map(crate::plugin::bind::ifaces::index_of).unwrap_or(0);
            SocketAddr::V6(SocketAddrV6::new(v6, port, 0, scope))
        }
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
    }
}

/// CoreDNS's identity of a served zone: transport, zone, port and bind address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ZoneAddr {
    transport: Transport,
    zone: String,
    port: u16,
    address: String,
}

impl ZoneAddr {
    fn display(&self) -> String {
        let mut s = format!("{}://{}:{}", self.transport.scheme(), self.zone, self.port);
        if !self.address.is_empty() {
            s.push_str(" on ");
            s.push_str(&self.address);
        }
        s
    }

    fn unbound(&self) -> ZoneAddr {
        ZoneAddr { address: String::new(), ..self.clone() }
    }
}

enum Check {
    Ok,
    Exists,
    Overlap(ZoneAddr),
}

/// CoreDNS's overlap checker: an unbound zone+port overlaps every bound one.
#[derive(Default)]
struct OverlapChecker {
    registered: HashMap<ZoneAddr, ZoneAddr>,
    unbound_overlap: HashMap<ZoneAddr, ZoneAddr>,
}

impl OverlapChecker {
    fn register_and_check(&mut self, z: &ZoneAddr) -> Check {
        if self.registered.contains_key(z) {
            return Check::Exists;
        }
        let uz = z.unbound();
        if let Some(already) = self.unbound_overlap.get(&uz) {
            if z.address.is_empty() {
                return Check::Overlap(already.clone());
            }
            if self.registered.contains_key(&uz) {
                return Check::Overlap(uz);
            }
        }
        self.registered.insert(z.clone(), z.clone());
        self.unbound_overlap.insert(uz, z.clone());
        Check::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corefile::token::simple_tokens;
    use pretty_assertions::assert_eq;

    /// Builds blocks from `keys => directive lines` pairs using the simple tokenizer.
    fn block(keys: &str, body: &str) -> ServerBlock {
        let keys = simple_tokens(keys, "Corefile");
        let toks = simple_tokens(body, "Corefile");
        let mut directives: Vec<(String, Vec<Token>)> = Vec::new();
        let mut depth = 0;
        let mut prev_line = 0;
        for t in toks {
            let starts = depth == 0 && t.line != prev_line;
            prev_line = t.line;
            if t.text == "{" {
                depth += 1;
            } else if t.text == "}" {
                depth -= 1;
            }
            if starts {
                match directives.iter_mut().find(|(n, _)| *n == t.text) {
                    Some((_, v)) => v.push(t),
                    None => directives.push((t.text.clone(), vec![t])),
                }
            } else if let Some((_, v)) = directives.last_mut() {
                v.push(t);
            }
        }
        ServerBlock { keys, directives }
    }

    fn plan(blocks: &[ServerBlock]) -> Result<Plan, String> {
        build_plan(blocks, &PlanOptions::default()).map_err(|e| e.coredns_message())
    }

    fn labels(p: &Plan) -> Vec<String> {
        p.listeners.iter().map(|l| l.label.clone()).collect()
    }

    #[test]
    fn chain_follows_fixed_order() {
        let p = plan(&[block("cluster.local:53", "forward . 8.8.8.8\ncache 30\nerrors\nlog\nprometheus :9253\nloop")]);
        let names: Vec<&str> =
            p.as_ref().map(|p| p.blocks[0].plugins.iter().map(|c| c.name()).collect()).unwrap_or_default();
        assert_eq!(names, vec!["prometheus", "errors", "log", "cache", "loop", "forward"]);
    }

    #[test]
    fn several_keys_share_one_block() {
        let p = plan(&[block("a.org b.org:54", "whoami")]).expect("plan");
        assert_eq!(p.blocks.len(), 1);
        assert_eq!(
            p.blocks[0].keys.iter().map(ZoneKey::to_uri).collect::<Vec<_>>(),
            vec!["dns://a.org.:53", "dns://b.org.:54"]
        );
        assert_eq!(labels(&p), vec!["dns://:53", "dns://:54"]);
        assert_eq!(p.listeners[0].zones, vec![("a.org.".to_string(), 0)]);
        assert_eq!(p.listeners[1].zones, vec![("b.org.".to_string(), 0)]);
    }

    #[test]
    fn reverse_cidr_key_expands_in_plan() {
        let p = plan(&[block("10.0.0.0/15:5053", "whoami")]).expect("plan");
        let zones: Vec<&str> = p.listeners[0].zones.iter().map(|(z, _)| z.as_str()).collect();
        assert_eq!(zones, vec!["0.10.in-addr.arpa.", "1.10.in-addr.arpa."]);
        assert_eq!(labels(&p), vec!["dns://:5053"]);
    }

    #[test]
    fn key_errors_are_prefixed() {
        assert_eq!(
            plan(&[block(":53", "whoami")]).err(),
            Some("error inspecting server blocks: zone is not a valid domain name: ".to_string())
        );
    }

    #[test]
    fn case_25_duplicate_and_overlap() {
        assert_eq!(
            plan(&[block(".:53", "whoami"), block(".:53", "whoami")]).err(),
            Some("cannot serve dns://.:53 - it is already defined".to_string())
        );
        assert_eq!(
            plan(&[block("example.org", "whoami"), block("EXAMPLE.ORG.", "whoami")]).err(),
            Some("cannot serve dns://example.org.:53 - it is already defined".to_string())
        );
        assert_eq!(
            plan(&[block(".:53", "whoami"), block(".:53", "whoami\nbind 127.0.0.1")]).err(),
            Some("cannot serve dns://.:53 on 127.0.0.1 - zone overlap listener capacity with dns://.:53".to_string())
        );
        assert_eq!(
            plan(&[
                block(".:53", "bind 127.0.0.1"),
                block(".:54", "whoami"),
                block(".:53", "bind 128.0.0.1"),
                block(".:53", "bind 129.0.0.1"),
                block(".:53", "whoami"),
            ])
            .err(),
            Some("cannot serve dns://.:53 - zone overlap listener capacity with dns://.:53 on 129.0.0.1".to_string())
        );
        // Different bind addresses and ports are fine.
        assert!(plan(&[block(".:53", "bind 127.0.0.1"), block(".:53", "bind ::1"), block(".:54", "whoami")]).is_ok());
    }

    #[test]
    fn case_26_grouping() {
        let p = plan(&[block(".:53", "whoami"), block("com.:53", "whoami")]).expect("plan");
        assert_eq!(labels(&p), vec!["dns://:53"]);
        assert_eq!(p.listeners[0].zones, vec![(".".to_string(), 0), ("com.".to_string(), 1)]);
        assert!(p.listeners[0].wildcard);
        assert_eq!(p.listeners[0].addr, "[::]:53".parse::<SocketAddr>().expect("addr"));

        let p = plan(&[block(".:53", "bind 127.0.0.1 ::1"), block("com.:53", "bind 127.0.0.1 ::1")]).expect("plan");
        assert_eq!(labels(&p), vec!["dns://127.0.0.1:53", "dns://[::1]:53"]);
        assert_eq!(p.listeners[1].zones, vec![(".".to_string(), 0), ("com.".to_string(), 1)]);
        assert_eq!(p.listeners[0].addr, "127.0.0.1:53".parse::<SocketAddr>().expect("addr"));
        assert_eq!(p.blocks[0].listen_hosts, vec!["127.0.0.1".to_string(), "::1".to_string()]);

        let p = plan(&[block(".:53", "bind 127.0.0.1 ::1"), block("com.:53", "whoami")]).expect("plan");
        assert_eq!(labels(&p), vec!["dns://127.0.0.1:53", "dns://[::1]:53", "dns://:53"]);
        assert!(!p.listeners[0].wildcard);

        let p = plan(&[block(".:53", "bind 127.0.0.1"), block(".:54", "whoami")]).expect("plan");
        assert_eq!(labels(&p), vec!["dns://127.0.0.1:53", "dns://:54"]);
    }

    #[test]
    fn transports_group_separately() {
        let p = plan(&[block("tls://.", "whoami"), block(".", "whoami")]).expect("plan");
        assert_eq!(labels(&p), vec!["tls://:853", "dns://:53"]);
        assert_eq!(p.listeners[0].transport, Transport::Tls);
    }

    #[test]
    fn unsupported_directive() {
        assert_eq!(
            plan(&[block(".", "kubernetes cluster.local")]).err(),
            Some("plugin/kubernetes: not supported by nodecache".to_string())
        );
        let err = build_plan(&[block(".", "whoami\nkubernetes cluster.local")], &PlanOptions::default()).err();
        assert_eq!(err.map(|e| (e.line, e.token)), Some((2, "kubernetes".to_string())));
    }

    #[test]
    fn setup_errors_name_the_plugin() {
        assert_eq!(
            plan(&[block(".", "bind")]).err(),
            Some("plugin/bind: at least one address or interface name is expected".to_string())
        );
    }

    #[test]
    fn first_error_follows_plugin_order() {
        // reload comes before errors in the fixed order, whatever the block order.
        let p = plan(&[block("a.", "errors a b"), block("b.", "reload 1s")]);
        assert_eq!(p.err(), Some("plugin/reload: interval value must be greater or equal to 2s".to_string()));
    }

    #[test]
    fn fallback_when_no_blocks() {
        let p = build_plan(&[], &PlanOptions { default_port: 1053 }).expect("plan");
        assert_eq!(labels(&p), vec!["dns://:1053"]);
        let names: Vec<&str> = p.blocks[0].plugins.iter().map(|c| c.name()).collect();
        assert_eq!(names, vec!["log", "whoami"]);
    }

    #[test]
    fn all_excepted_block_has_no_listener() {
        let p =
            plan(&[block(".:53", "bind 127.0.0.1 {\nexcept 127.0.0.1\n}"), block("com.:53", "whoami")]).expect("plan");
        assert_eq!(labels(&p), vec!["dns://:53"]);
        assert_eq!(p.listeners[0].zones, vec![("com.".to_string(), 1)]);
    }

    #[test]
    fn built_chain_has_handlers_only_for_query_plugins() {
        let p = plan(&[block(
            ".:1053",
            "reload 5s
bind 127.0.0.1
errors
log
whoami",
        )])
        .expect("plan");
        let ctx = crate::plugin::BuildContext {
            zones: vec![".".into()],
            servers: vec!["dns://127.0.0.1:1053".into()],
            metrics: Arc::new(crate::observe::Metrics::default()),
            carry: Arc::new(crate::plugin::Carryover::default()),
            after: String::new(),
        };
        let built: Vec<(&str, bool)> = p.blocks[0]
            .plugins
            .iter()
            .filter(|c| c.name() != "whoami")
            .map(|c| (c.name(), c.build(&ctx).map(|h| h.is_some()).unwrap_or(false)))
            .collect();
        assert_eq!(built, vec![("reload", false), ("bind", false), ("errors", true), ("log", true)]);
        assert_eq!(labels(&p), vec!["dns://127.0.0.1:1053"]);
    }

    fn load(text: &str) -> Result<Plan, String> {
        load_str(text, "Corefile", &PlanOptions::default()).map_err(|e| e.coredns_message())
    }

    #[test]
    fn node_local_dns_corefile() {
        let text = "cluster.local:53 {\n errors\n cache {\n success 9984 30\n denial 9984 5\n }\n reload\n loop\n \
                    bind 169.254.20.10 10.0.0.10\n forward . 10.0.0.11 {\n force_tcp\n }\n prometheus :9253\n \
                    health 169.254.20.10:8080\n}\n\
                    in-addr.arpa:53 {\n errors\n cache 30\n reload\n loop\n bind 169.254.20.10 10.0.0.10\n \
                    forward . 10.0.0.11 {\n force_tcp\n }\n prometheus :9253\n}\n\
                    .:53 {\n errors\n cache 30\n reload\n loop\n bind 169.254.20.10 10.0.0.10\n \
                    forward . /etc/resolv.conf\n prometheus :9253\n}\n";
        let p = load(text).expect("node-local-dns plan");
        assert_eq!(labels(&p), vec!["dns://169.254.20.10:53", "dns://10.0.0.10:53"]);
        let zones: Vec<&str> = p.listeners[0].zones.iter().map(|(z, _)| z.as_str()).collect();
        assert_eq!(zones, vec!["cluster.local.", "in-addr.arpa.", "."]);
        let names: Vec<&str> = p.blocks[0].plugins.iter().map(|c| c.name()).collect();
        assert_eq!(names, vec!["reload", "bind", "health", "prometheus", "errors", "cache", "loop", "forward"]);
    }

    #[test]
    fn parsed_corefile_errors() {
        assert_eq!(
            load(".:53 {\n whoami\n}\n.:53 {\n whoami\n}\n").err(),
            Some("cannot serve dns://.:53 - it is already defined".to_string())
        );
        assert_eq!(
            load("example.org {\n log . \"{remote} {name}\" {\n class bogus\n }\n}\n").err(),
            Some("plugin/log: invalid Class: bogus".to_string())
        );
        assert_eq!(load("").map(|p| labels(&p)), Ok(vec!["dns://:53".to_string()]));
    }

    #[test]
    fn load_file_reads_a_real_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("Corefile");
        std::fs::write(&path, "example.org:1053 {\n whoami\n log\n}\n").expect("write");
        let p = load_file(&path, &PlanOptions::default()).expect("plan");
        assert_eq!(labels(&p), vec!["dns://:1053"]);
        let missing = load_file(&dir.path().join("nope"), &PlanOptions::default());
        assert!(missing.is_err());
    }
}
