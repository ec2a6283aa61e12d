//! The kube-dns ConfigMap as node-cache reads it: a mounted directory of keys
//! (`stubDomains`, `upstreamNameservers`, `federations`), versioned by SHA-256, parsed and
//! validated with kube-dns's rules, then checked once more for what CoreDNS `forward` accepts.
//!
//! [`DirSync`] is one poller's state (`Once` at startup, `poll` every period);
//! [`KubeDnsConfig::validate`] is kube-dns's `Validate`, and
//! [`KubeDnsConfig::validate_node_local_cache`] is the check node-cache runs before writing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::goparse;

/// The parsed kube-dns configuration (kube-dns `config.Config`). Maps are ordered, so every
/// rendering is deterministic (node-cache iterates Go maps in random order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KubeDnsConfig {
    /// `federations`: federation name → domain (kubernetes/dns only).
    pub federations: BTreeMap<String, String>,
    /// `stubDomains`: domain → nameservers, as given.
    pub stub_domains: BTreeMap<String, Vec<String>>,
    /// `upstreamNameservers`, as given.
    pub upstream_nameservers: Vec<String>,
}

/// One directory read: the SHA-256 version (`""` when no files) and the key → content map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Hex SHA-256 over `name\0data\0` for each file in name order; `""` when empty.
    pub version: String,
    /// File name → content.
    pub data: BTreeMap<String, String>,
}

/// Go-style text of an I/O error: `op path: reason` with the reason in lower case.
fn io_err(op: &str, path: &Path, e: &std::io::Error) -> String {
    let mut reason = e.to_string();
    if let Some(i) = reason.find(" (os error") {
        reason.truncate(i);
    }
    let mut chars = reason.chars();
    let reason = match chars.next() {
        Some(c) => c.to_lowercase().collect::<String>() + chars.as_str(),
        None => reason,
    };
    format!("{op} {}: {reason}", path.display())
}

/// Reads one directory level as kube-dns's file sync does: the path itself must be a
/// directory (not followed if it is a symlink); subdirectories and dot-files are skipped;
/// other entries, including symlinks to files, are read and must be UTF-8.
pub fn load_dir(dir: &Path) -> Result<Snapshot, String> {
    let meta = std::fs::symlink_metadata(dir).map_err(|e| io_err("lstat", dir, &e))?;
    if !meta.is_dir() {
        return Err(format!("config path {} is not a directory", goparse::quote(&dir.to_string_lossy())));
    }
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| io_err("open", dir, &e))?
        .filter_map(|entry| entry.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    let mut hasher = Sha256::new();
    let mut data = BTreeMap::new();
    for name in names {
        let path = dir.join(&name);
        let meta = std::fs::symlink_metadata(&path).map_err(|e| io_err("lstat", &path, &e))?;
        if meta.is_dir() || name.starts_with('.') {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| io_err("read", &path, &e))?;
        let text = String::from_utf8(bytes).map_err(|_| format!("non-utf8 data in {}", path.display()))?;
        hasher.update(name.as_bytes());
        hasher.update([0u8]);
        hasher.update(text.as_bytes());
        hasher.update([0u8]);
        data.insert(name, text);
    }
    let version = if data.is_empty() { String::new() } else { hex::encode(hasher.finalize()) };
    Ok(Snapshot { version, data })
}

/// Outcome of a periodic poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Poll {
    /// Same version as before: nothing to do.
    Unchanged,
    /// A new, valid configuration.
    Changed(KubeDnsConfig),
    /// A new version that failed to parse or validate; it is remembered, so there is no
    /// retry until the files change again.
    Dropped(String),
    /// The directory could not be read (`Error loading config from …`).
    LoadError(String),
}

/// One ConfigMap directory poller's state (kube-dns `kubeSync` over a file source).
#[derive(Clone, Debug)]
pub struct DirSync {
    dir: PathBuf,
    latest_version: String,
}

impl DirSync {
    /// A poller for `dir` that has seen nothing yet.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirSync { dir: dir.into(), latest_version: String::new() }
    }

    /// The directory polled.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last version seen (also recorded for rejected updates).
    pub fn latest_version(&self) -> &str {
        &self.latest_version
    }

    /// The startup sync (`Once`): any error, including invalid JSON or a failed validation,
    /// is returned (node-cache then never starts this poller).
    pub fn once(&mut self) -> Result<KubeDnsConfig, String> {
        let snap = load_dir(&self.dir)?;
        self.process(snap, true).map(|(cfg, _)| cfg.unwrap_or_default())
    }

    /// One periodic poll.
    pub fn poll(&mut self) -> Poll {
        match load_dir(&self.dir) {
            Err(e) => {
                tracing::error!("Error loading config from {}: {e}", self.dir.display());
                Poll::LoadError(e)
            }
            Ok(snap) => match self.process(snap, false) {
                Err(e) => Poll::Dropped(e),
                Ok((Some(cfg), true)) => Poll::Changed(cfg),
                Ok(_) => Poll::Unchanged,
            },
        }
    }

    /// kube-dns `processUpdate`: records the version, then parses and validates.
    fn process(&mut self, snap: Snapshot, build_unchanged: bool) -> Result<(Option<KubeDnsConfig>, bool), String> {
        let changed = snap.version != self.latest_version;
        if changed {
            self.latest_version = snap.version.clone();
        } else if !build_unchanged {
            return Ok((None, false));
        }
        if snap.version.is_empty() && snap.data.is_empty() {
            return Ok((Some(KubeDnsConfig::default()), changed));
        }
        let cfg = parse_keys(&snap.data)?;
        if let Err(e) = cfg.validate() {
            tracing::error!("Invalid configuration: {e} (value was {}), ignoring update", cfg.go_debug());
            return Err(e);
        }
        Ok((Some(cfg), changed))
    }
}

/// Parses the three known keys; other keys are ignored.
pub fn parse_keys(data: &BTreeMap<String, String>) -> Result<KubeDnsConfig, String> {
    let mut cfg = KubeDnsConfig::default();
    for key in ["federations", "stubDomains", "upstreamNameservers"] {
        let Some(value) = data.get(key) else { continue };
        let res = match key {
            "federations" => parse_federations(value).map(|f| cfg.federations = f),
            "stubDomains" => parse_stub_domains(value).map(|s| cfg.stub_domains = s),
            _ => parse_upstreams(value).map(|u| cfg.upstream_nameservers = u),
        };
        if let Err(e) = res {
            tracing::error!("Invalid configuration for {key}, ignoring update: {e}");
            return Err(e);
        }
    }
    Ok(cfg)
}

fn parse_stub_domains(value: &str) -> Result<BTreeMap<String, Vec<String>>, String> {
    let parsed: Option<BTreeMap<String, Option<Vec<Option<String>>>>> =
        serde_json::from_str(value).map_err(|e| e.to_string())?;
    Ok(parsed
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default().into_iter().map(Option::unwrap_or_default).collect()))
        .collect())
}

fn parse_upstreams(value: &str) -> Result<Vec<String>, String> {
    let parsed: Option<Vec<Option<String>>> = serde_json::from_str(value).map_err(|e| e.to_string())?;
    Ok(parsed.unwrap_or_default().into_iter().map(Option::unwrap_or_default).collect())
}

/// kube-dns federations value: comma-separated `name=domain` pairs.
fn parse_federations(value: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    if value.trim().is_empty() {
        return Ok(out);
    }
    for pair in value.split(',') {
        let Some((name, domain)) = pair.trim().split_once('=') else {
            return Err("invalid format, must be key=value".to_string());
        };
        let (name, domain) = (name.trim(), domain.trim());
        validate_federation(name, domain)?;
        out.insert(name.to_string(), domain.to_string());
    }
    Ok(out)
}

fn validate_federation(name: &str, domain: &str) -> Result<(), String> {
    let errs = dns1123_label_errors(name);
    if !errs.is_empty() {
        return Err(format!("{} not a valid federation name: {}", goparse::quote(name), quote_list(&errs)));
    }
    let errs = dns1123_subdomain_errors(domain);
    if !errs.is_empty() {
        return Err(format!("{} not a valid domain name: {}", goparse::quote(domain), quote_list(&errs)));
    }
    Ok(())
}

fn quote_list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|s| goparse::quote(s)).collect::<Vec<_>>().join(" "))
}

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => alnum(f) && alnum(l) && b.iter().all(|c| alnum(c) || *c == b'-'),
        _ => false,
    }
}

/// `validation.IsDNS1123Subdomain` is empty for `s`.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label)
}

const LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";

fn dns1123_label_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !is_label(s) {
        if s.split('.').all(is_label) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(format!(
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '{LABEL_FMT}')"
            ));
        }
    }
    errs
}

fn dns1123_subdomain_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if !s.split('.').all(is_label) {
        errs.push(format!(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '{LABEL_FMT}(\\.{LABEL_FMT})*')"
        ));
    }
    errs
}

/// apimachinery `IsValidIP` (strict): parses, no IPv4-mapped form, canonical spelling.
fn is_strict_valid_ip(s: &str) -> bool {
    match s.parse::<std::net::IpAddr>() {
        Ok(ip @ std::net::IpAddr::V6(v6)) => v6.to_ipv4_mapped().is_none() && ip.to_string() == s,
        Ok(ip) => ip.to_string() == s,
        Err(_) => false,
    }
}

/// kube-dns `ValidateNameserverIpAndPort`: `IP` or `IP:port` with a port in 1–65535.
pub fn validate_nameserver_ip_and_port(ns: &str) -> Result<(), String> {
    if goparse::parse_ip(ns).is_some() {
        return Ok(());
    }
    let (host, port) = goparse::split_host_port(ns)?;
    if goparse::parse_ip(&host).is_none() {
        return Err(format!("bad IP address: {}", goparse::quote(&host)));
    }
    match goparse::atoi(&port) {
        Ok(p) if (1..=65535).contains(&p) => Ok(()),
        _ => Err(format!("bad port number: {}", goparse::quote(&port))),
    }
}

impl KubeDnsConfig {
    /// kube-dns `Validate`: federations, then stub domains (DNS-1123 domain; nameserver an
    /// IP, `ip:port` or DNS-1123 name with a uint16 port), then upstreams (at most 3, each
    /// `IP` or `IP:port`).
    pub fn validate(&self) -> Result<(), String> {
        for (name, domain) in &self.federations {
            validate_federation(name, domain)?;
        }
        for (domain, servers) in &self.stub_domains {
            if !is_dns1123_subdomain(domain) {
                return Err(format!("invalid domain name: {}", goparse::quote(domain)));
            }
            for ns in servers {
                let (host, port) = goparse::split_host_port(ns).unwrap_or_else(|_| (ns.clone(), String::new()));
                if !port.is_empty() && goparse::parse_uint(&port, 16).is_none() {
                    return Err(format!("invalid nameserver: {}", goparse::quote(ns)));
                }
                // kube-dns checks the whole string (port included) as a DNS name.
                if !is_strict_valid_ip(&host) && !is_dns1123_subdomain(ns) {
                    return Err(format!("invalid nameserver: {}", goparse::quote(ns)));
                }
            }
        }
        if self.upstream_nameservers.len() > 3 {
            return Err("upstreamNameserver cannot have more than three entries".to_string());
        }
        for ns in &self.upstream_nameservers {
            validate_nameserver_ip_and_port(ns)?;
        }
        Ok(())
    }

    /// node-cache's `ValidateNodeLocalCacheConfig`: every stub nameserver and upstream must
    /// be accepted by CoreDNS `parse.HostPortOrFile` with transport `dns` or `tls`.
    pub fn validate_node_local_cache(&self) -> Result<(), String> {
        for (domain, servers) in &self.stub_domains {
            if let Err(e) = validate_forward_proxy(servers) {
                return Err(format!(
                    "invalid nameservers {} for the stub domain {domain}: {e}",
                    goparse::fmt_list(servers)
                ));
            }
        }
        if let Err(e) = validate_forward_proxy(&self.upstream_nameservers) {
            return Err(format!("invalid upstream nameservers {}: {e}", goparse::fmt_list(&self.upstream_nameservers)));
        }
        Ok(())
    }

    /// Go's `%+v` of the `*config.Config` (used in kube-dns's rejection log line).
    pub fn go_debug(&self) -> String {
        let mut s = String::from("&{TypeMeta:{Kind: APIVersion:} Federations:map[");
        let fed: Vec<String> = self.federations.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        s.push_str(&fed.join(" "));
        s.push_str("] StubDomains:map[");
        let stubs: Vec<String> =
            self.stub_domains.iter().map(|(k, v)| format!("{k}:{}", goparse::fmt_list(v))).collect();
        s.push_str(&stubs.join(" "));
        let _ = write!(s, "] UpstreamNameservers:{}}}", goparse::fmt_list(&self.upstream_nameservers));
        s
    }
}

/// CoreDNS `parse.Transport`: the scheme prefix and the rest.
pub fn split_transport(s: &str) -> (&'static str, &str) {
    for t in ["tls", "dns", "quic", "grpc", "https3", "https", "unix"] {
        if let Some(rest) = s.strip_prefix(t).and_then(|r| r.strip_prefix("://")) {
            return (t, rest);
        }
    }
    ("dns", s)
}

fn strip_zone(host: &str) -> &str {
    host.rfind('%').map_or(host, |i| &host[..i])
}

/// Nameservers of a resolv.conf-like file (`miekg/dns` `ClientConfigFromFile`), each as
/// `host:53`.
fn try_file(path: &str) -> Result<Vec<String>, String> {
    let meta = std::fs::metadata(path).map_err(|e| io_err("open", Path::new(path), &e))?;
    if meta.is_dir() {
        return Ok(Vec::new());
    }
    let text = std::fs::read(path).map_err(|e| io_err("read", Path::new(path), &e))?;
    let text = String::from_utf8_lossy(&text);
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            (f.next() == Some("nameserver")).then(|| f.next()).flatten()
        })
        .map(|ns| goparse::join_host_port(strip_zone(ns), "53"))
        .collect())
}

/// CoreDNS `parse.HostPortOrFile`: normalised server addresses.
pub fn host_port_or_file(items: &[String]) -> Result<Vec<String>, String> {
    let mut servers = Vec::new();
    for h in items {
        let (trans, host) = split_transport(h);
        if host.is_empty() {
            return Err(format!("invalid address: {}", goparse::quote(h)));
        }
        if trans == "unix" {
            servers.push(format!("unix://{host}"));
            continue;
        }
        match goparse::split_host_port(host) {
            Err(_) => {
                if goparse::parse_ip(strip_zone(host)).is_none() {
                    match try_file(host) {
                        Ok(ss) => servers.extend(ss),
                        Err(_) => return Err(format!("not an IP address or file: {}", goparse::quote(host))),
                    }
                    continue;
                }
                let ss = match trans {
                    "dns" => goparse::join_host_port(host, "53"),
                    "tls" => format!("tls://{}", goparse::join_host_port(host, "853")),
                    "quic" => format!("quic://{}", goparse::join_host_port(host, "853")),
                    "grpc" => format!("grpc://{}", goparse::join_host_port(host, "443")),
                    "https" => format!("https://{}", goparse::join_host_port(host, "443")),
                    // CoreDNS has no case for https3 here and appends an empty string.
                    _ => String::new(),
                };
                servers.push(ss);
            }
            Ok((addr, _)) => {
                if goparse::parse_ip(strip_zone(&addr)).is_none() {
                    match try_file(host) {
                        Ok(ss) => servers.extend(ss),
                        Err(_) => return Err(format!("not an IP address or file: {}", goparse::quote(host))),
                    }
                    continue;
                }
                servers.push(h.clone());
            }
        }
    }
    if servers.is_empty() {
        return Err("no nameservers found".to_string());
    }
    Ok(servers)
}

fn validate_forward_proxy(nameservers: &[String]) -> Result<(), String> {
    if nameservers.is_empty() {
        return Ok(());
    }
    for host in host_port_or_file(nameservers)? {
        let (trans, _) = split_transport(&host);
        if trans != "dns" && trans != "tls" {
            return Err(format!("unsupported transport {trans} of nameserver {host}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn cfg_with(stubs: &[(&str, &[&str])], ups: &[&str]) -> KubeDnsConfig {
        KubeDnsConfig {
            federations: BTreeMap::new(),
            stub_domains: stubs
                .iter()
                .map(|(d, s)| (d.to_string(), s.iter().map(|x| x.to_string()).collect()))
                .collect(),
            upstream_nameservers: ups.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn validate_stub_domains() {
        assert_eq!(
            cfg_with(&[("corp.example", &["10.0.0.53", "10.0.0.54:5353", "[::1]:53", "::1"])], &[]).validate(),
            Ok(())
        );
        assert_eq!(cfg_with(&[("ns.corp", &["dns.corp.example"])], &[]).validate(), Ok(()));
        assert_eq!(
            cfg_with(&[("Corp.example", &["10.0.0.53"])], &[]).validate(),
            Err("invalid domain name: \"Corp.example\"".into())
        );
        assert_eq!(
            cfg_with(&[("corp.example.", &["10.0.0.53"])], &[]).validate(),
            Err("invalid domain name: \"corp.example.\"".into())
        );
        assert_eq!(
            cfg_with(&[("corp", &["10.0.0.53:70000"])], &[]).validate(),
            Err("invalid nameserver: \"10.0.0.53:70000\"".into())
        );
        // A DNS name with a port fails: kube-dns checks the full string as a name.
        assert_eq!(
            cfg_with(&[("corp", &["dns.corp:53"])], &[]).validate(),
            Err("invalid nameserver: \"dns.corp:53\"".into())
        );
        // Non-canonical IPv6 is neither a strict IP nor a DNS name.
        assert_eq!(cfg_with(&[("corp", &["FD00::1"])], &[]).validate(), Err("invalid nameserver: \"FD00::1\"".into()));
    }

    #[test]
    fn validate_upstreams() {
        assert_eq!(cfg_with(&[], &["1.1.1.1", "8.8.8.8:53", "[2001:db8::1]:53"]).validate(), Ok(()));
        assert_eq!(
            cfg_with(&[], &["1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4"]).validate(),
            Err("upstreamNameserver cannot have more than three entries".into())
        );
        assert_eq!(
            cfg_with(&[], &["dns.google"]).validate(),
            Err("address dns.google: missing port in address".into())
        );
        assert_eq!(cfg_with(&[], &["dns.google:53"]).validate(), Err("bad IP address: \"dns.google\"".into()));
        assert_eq!(cfg_with(&[], &["1.1.1.1:0"]).validate(), Err("bad port number: \"0\"".into()));
        assert_eq!(cfg_with(&[], &["1.1.1.1:65536"]).validate(), Err("bad port number: \"65536\"".into()));
    }

    #[test]
    fn validate_for_forward() {
        assert_eq!(cfg_with(&[("a", &["tls://1.1.1.1"])], &["1.1.1.1"]).validate_node_local_cache(), Ok(()));
        assert_eq!(
            cfg_with(&[("corp", &["dns.corp.example"])], &[]).validate_node_local_cache(),
            Err("invalid nameservers [dns.corp.example] for the stub domain corp: not an IP address or file: \"dns.corp.example\"".into())
        );
        assert_eq!(
            cfg_with(&[("corp", &["quic://1.1.1.1"])], &[]).validate_node_local_cache(),
            Err("invalid nameservers [quic://1.1.1.1] for the stub domain corp: unsupported transport quic of nameserver quic://1.1.1.1:853".into())
        );
        assert_eq!(
            cfg_with(&[], &["dns://"]).validate_node_local_cache(),
            Err("invalid upstream nameservers [dns://]: invalid address: \"dns://\"".into())
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("resolv.conf");
        std::fs::write(&file, "search x\nnameserver 10.1.1.1\n").unwrap();
        let f = file.to_string_lossy().to_string();
        assert_eq!(host_port_or_file(std::slice::from_ref(&f)), Ok(vec!["10.1.1.1:53".to_string()]));
        std::fs::write(&file, "search x\n").unwrap();
        assert_eq!(host_port_or_file(&[f]), Err("no nameservers found".into()));
    }

    #[test]
    fn federations_value() {
        assert_eq!(
            parse_federations("myfed=example.com, other=b.c").unwrap(),
            BTreeMap::from([("myfed".to_string(), "example.com".to_string()), ("other".into(), "b.c".into())])
        );
        assert_eq!(parse_federations("x"), Err("invalid format, must be key=value".into()));
        assert!(parse_federations("a.b=c")
            .unwrap_err()
            .starts_with("\"a.b\" not a valid federation name: [\"must not contain dots\"]"));
    }

    #[test]
    fn go_debug_shape() {
        let c = cfg_with(&[("corp", &["1.1.1.1", "2.2.2.2"])], &["8.8.8.8"]);
        assert_eq!(
            c.go_debug(),
            "&{TypeMeta:{Kind: APIVersion:} Federations:map[] StubDomains:map[corp:[1.1.1.1 2.2.2.2]] UpstreamNameservers:[8.8.8.8]}"
        );
    }
}
