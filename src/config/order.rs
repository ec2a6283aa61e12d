//! CoreDNS's fixed plugin order (plugin.cfg of v1.14.7): the first entry is the outermost
//! handler. The Corefile's order of directives never matters.

/// Every directive name CoreDNS knows, in execution order.
pub const PLUGIN_ORDER: &[&str] = &[
    "root",
    "metadata",
    "geoip",
    "cancel",
    "proxyproto",
    "quic",
    "grpc_server",
    "https",
    "https3",
    "timeouts",
    "multisocket",
    "reload",
    "nsid",
    "bufsize",
    "bind",
    "debug",
    "trace",
    "ready",
    "health",
    "pprof",
    "shed",
    "prometheus",
    "errors",
    "log",
    "dnstap",
    "local",
    "dns64",
    "any",
    "chaos",
    "loadbalance",
    "tsig",
    "rewrite",
    "autopath",
    "acl",
    "cache",
    "header",
    "dnssec",
    "tls",
    "minimal",
    "template",
    "transfer",
    "hosts",
    "route53",
    "azure",
    "clouddns",
    "k8s_external",
    "kubernetes",
    "file",
    "auto",
    "secondary",
    "etcd",
    "loop",
    "forward",
    "grpc",
    "erratic",
    "whoami",
    "on",
    "sign",
    "view",
    "nomad",
];

/// True when `name` is a directive CoreDNS knows (exact, case-sensitive match).
pub fn is_directive(name: &str) -> bool {
    PLUGIN_ORDER.contains(&name)
}

/// The position of `name` in the execution order.
pub fn position(name: &str) -> Option<usize> {
    PLUGIN_ORDER.iter().position(|p| *p == name)
}

/// The known directive closest to `name` by edit distance, for "did you mean" hints.
pub fn nearest(name: &str) -> Option<&'static str> {
    PLUGIN_ORDER
        .iter()
        .map(|p| (edit_distance(name, p), *p))
        .filter(|(d, p)| *d <= (p.len().max(name.len()) / 2).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, p)| p)
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions and adjacent
/// transpositions each cost 1.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_local_chain_order() {
        let order: Vec<usize> =
            ["prometheus", "errors", "log", "cache", "loop", "forward"].iter().filter_map(|p| position(p)).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted);
        assert_eq!(order.len(), 6);
    }

    #[test]
    fn nearest_suggests() {
        assert_eq!(nearest("forwrd"), Some("forward"));
        assert_eq!(nearest("cahce"), Some("cache"));
        assert_eq!(nearest("zzzzzzzzzzzz"), None);
    }
}
