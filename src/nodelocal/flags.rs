//! node-cache's command line, parsed with Go's `flag` grammar (one global flag set holding
//! node-cache's own flags and CoreDNS's), then validated as node-cache's
//! `parseAndValidateFlags` does.
//!
//! Grammar: `-f` and `--f` are the same; values as `-f=v` or `-f v`; booleans take only `-f`
//! or `-f=<bool>`; parsing stops at the first non-flag argument or after `--`; the last
//! occurrence wins; names are case-sensitive; `-h`/`-help` ask for help.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::goparse;

/// CoreDNS version the usage text names (the one vendored by node-cache 1.26.8).
pub const COREDNS_VERSION: &str = "1.13.2";

/// Directory used for the kube-dns ConfigMap when `-kubednscm` is empty and it exists.
pub const DEFAULT_KUBEDNS_CM_PATH: &str = "/etc/kube-dns";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Bool,
    Str,
    Duration,
}

struct FlagDef {
    name: &'static str,
    kind: Kind,
    default: &'static str,
    usage: &'static str,
}

/// Every flag in node-cache's global flag set: node-cache's own (incl. the sigs-HEAD
/// `-prometheus-listen-address`) and CoreDNS's `coremain` flags. Defaults are Go's `DefValue`.
const FLAGS: &[FlagDef] = &[
    FlagDef {
        name: "localip",
        kind: Kind::Str,
        default: "",
        usage: "comma-separated string of ip addresses to bind dnscache to",
    },
    FlagDef {
        name: "setupinterface",
        kind: Kind::Bool,
        default: "true",
        usage: "indicates whether network interface should be setup",
    },
    FlagDef {
        name: "interfacename",
        kind: Kind::Str,
        default: "nodelocaldns",
        usage: "name of the interface to be created",
    },
    FlagDef {
        name: "syncinterval",
        kind: Kind::Duration,
        default: "60ns",
        usage: "interval(in seconds) to check for iptables rules",
    },
    FlagDef {
        name: "metrics-listen-address",
        kind: Kind::Str,
        default: "0.0.0.0:9353",
        usage: "address to serve metrics on",
    },
    FlagDef {
        name: "prometheus-listen-address",
        kind: Kind::Str,
        default: ":9253",
        usage: "address to serve Prometheus metrics on",
    },
    FlagDef {
        name: "setupiptables",
        kind: Kind::Bool,
        default: "true",
        usage: "indicates whether iptables rules should be setup",
    },
    FlagDef {
        name: "basecorefile",
        kind: Kind::Str,
        default: "/etc/coredns/Corefile.base",
        usage: "Path to the template Corefile for node-cache",
    },
    FlagDef {
        name: "corefile",
        kind: Kind::Str,
        default: "/etc/Corefile",
        usage: "Path to the Corefile to be used by node-cache",
    },
    FlagDef {
        name: "kubednscm",
        kind: Kind::Str,
        default: "",
        usage: "Path where the kube-dns configmap will be mounted",
    },
    FlagDef {
        name: "upstreamsvc",
        kind: Kind::Str,
        default: "kube-dns",
        usage: "Service name whose cluster IP is upstream for node-cache",
    },
    FlagDef { name: "health-port", kind: Kind::Str, default: "8080", usage: "port used by health plugin" },
    FlagDef {
        name: "skipteardown",
        kind: Kind::Bool,
        default: "false",
        usage: "indicates whether iptables rules should be torn down on exit",
    },
    FlagDef {
        name: "statedir",
        kind: Kind::Str,
        default: "",
        usage: "Directory shared by the instances on this node (a hostPath): the last one to exit tears the node setup down, a starting one takes the running one's cache",
    },
    FlagDef {
        name: "reloadwithsignal",
        kind: Kind::Bool,
        default: "false",
        usage: "use SIGUSR1 on self to reload CoreDNS",
    },
    FlagDef { name: "conf", kind: Kind::Str, default: "", usage: "Corefile to load (default \"Corefile\")" },
    FlagDef { name: "plugins", kind: Kind::Bool, default: "false", usage: "List installed plugins" },
    FlagDef { name: "pidfile", kind: Kind::Str, default: "", usage: "Path to write pid file" },
    FlagDef { name: "version", kind: Kind::Bool, default: "false", usage: "Show version" },
    FlagDef { name: "quiet", kind: Kind::Bool, default: "false", usage: "Quiet mode (no initialization output)" },
    FlagDef { name: "dns.port", kind: Kind::Str, default: "53", usage: "Default port" },
    FlagDef { name: "p", kind: Kind::Str, default: "53", usage: "Default port" },
];

fn lookup(name: &str) -> Option<&'static FlagDef> {
    FLAGS.iter().find(|f| f.name == name)
}

/// node-cache's validated settings (node-cache's `ConfigParams` plus CoreDNS's flags).
#[derive(Clone, Debug, PartialEq)]
pub struct NodeCacheFlags {
    /// `-localip` as given (comma-separated); used verbatim in rules and `bind` lines.
    pub local_ip_str: String,
    /// The parsed `-localip` addresses, all of one family.
    pub local_ips: Vec<IpAddr>,
    /// `-setupinterface`.
    pub setup_interface: bool,
    /// `-interfacename`.
    pub interface_name: String,
    /// `-syncinterval` as a Go duration in nanoseconds (multiplied by 1 s when used).
    pub sync_interval_raw: i64,
    /// `-metrics-listen-address`.
    pub metrics_listen_address: String,
    /// `-prometheus-listen-address` (fills `__PROMETHEUS__ENDPOINT__`).
    pub prometheus_listen_address: String,
    /// `-setupiptables`.
    pub setup_iptables: bool,
    /// `-basecorefile`: the template.
    pub base_corefile: String,
    /// The Corefile node-cache writes: `-conf` (which always overrides the dead `-corefile`).
    pub corefile: String,
    /// `-kubednscm` as given (see [`NodeCacheFlags::kubedns_cm_dir`]).
    pub kubedns_cm: String,
    /// `-upstreamsvc`.
    pub upstream_svc: String,
    /// `-health-port` (Atoi-checked string, used only in the NOTRACK rules).
    pub health_port: String,
    /// `-skipteardown`.
    pub skip_teardown: bool,
    /// `-reloadwithsignal`.
    pub reload_with_signal: bool,
    /// `-statedir` (empty: node-cache's behaviour, no coordination).
    pub statedir: String,
    /// CoreDNS `-conf`.
    pub conf: String,
    /// CoreDNS `-pidfile`.
    pub pidfile: String,
    /// CoreDNS `-dns.port` / `-p` (the last one given wins; both set the same variable).
    pub dns_port: String,
    /// CoreDNS `-plugins`.
    pub plugins: bool,
    /// CoreDNS `-version`.
    pub version: bool,
    /// CoreDNS `-quiet`.
    pub quiet: bool,
}

/// Result of a successful parse.
#[derive(Clone, Debug, PartialEq)]
pub enum FlagsOutcome {
    /// Run with these settings; `args` are the positional leftovers (CoreDNS's `Run` turns
    /// a non-empty list into FATAL `extra command line arguments: [..]`).
    Run {
        /// The validated settings.
        flags: Box<NodeCacheFlags>,
        /// Arguments after the flags.
        args: Vec<String>,
    },
    /// `-h`/`-help`: print `usage` to stderr, exit 0.
    Help {
        /// The usage text.
        usage: String,
    },
}

/// Why the command line was refused.
#[derive(Clone, Debug, PartialEq)]
pub enum FlagError {
    /// A grammar error (Go's `flag` package): print `message`, a newline and `usage` to
    /// stderr, exit 2.
    Syntax {
        /// E.g. `flag provided but not defined: -x`.
        message: String,
        /// The usage text.
        usage: String,
    },
    /// A validation error: node-cache logs FATAL `Error parsing flags - <msg>, Exiting` and
    /// exits 1.
    Invalid(String),
}

impl FlagError {
    /// What Go prints to stderr for a syntax error (`message\nusage`), or the FATAL line's
    /// message for a validation error.
    pub fn stderr_text(&self) -> String {
        match self {
            FlagError::Syntax { message, usage } => format!("{message}\n{usage}"),
            FlagError::Invalid(msg) => format!("Error parsing flags - {msg}, Exiting"),
        }
    }

    /// Process exit code Go uses.
    pub fn exit_code(&self) -> i32 {
        match self {
            FlagError::Syntax { .. } => 2,
            FlagError::Invalid(_) => 1,
        }
    }
}

impl std::fmt::Display for FlagError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.stderr_text())
    }
}

impl std::error::Error for FlagError {}

/// The usage text (`Usage of <argv0>:`, the banner, a blank line, then Go's
/// `PrintDefaults` listing in name order).
pub fn usage(argv0: &str) -> String {
    let mut out = format!(
        "Usage of {argv0}:\nRuns CoreDNS v{COREDNS_VERSION} as a nodelocal cache listening on the specified ip:port\n\n"
    );
    let mut defs: Vec<&FlagDef> = FLAGS.iter().collect();
    defs.sort_by_key(|f| f.name);
    for def in defs {
        let mut line = format!("  -{}", def.name);
        let type_name = match def.kind {
            Kind::Bool => "",
            Kind::Str => "string",
            Kind::Duration => "duration",
        };
        if !type_name.is_empty() {
            line.push(' ');
            line.push_str(type_name);
        }
        if line.len() <= 4 {
            line.push('\t');
        } else {
            line.push_str("\n    \t");
        }
        line.push_str(&def.usage.replace('\n', "\n    \t"));
        let zero = match def.kind {
            Kind::Bool => "false",
            Kind::Str => "",
            Kind::Duration => "0s",
        };
        if def.default != zero {
            if def.kind == Kind::Str {
                line.push_str(&format!(" (default {})", goparse::quote(def.default)));
            } else {
                line.push_str(&format!(" (default {})", def.default));
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Raw flag values after Go-grammar parsing, before node-cache's validation.
struct RawFlags {
    values: BTreeMap<&'static str, String>,
    /// `-dns.port` and `-p` share one variable: the last one set wins.
    port: String,
}

impl RawFlags {
    fn get(&self, name: &str) -> &str {
        self.values.get(name).map_or_else(|| lookup(name).map_or("", |d| d.default), String::as_str)
    }

    fn get_bool(&self, name: &str) -> bool {
        goparse::parse_bool(self.get(name)).unwrap_or(false)
    }
}

/// Go's `FlagSet.Parse` over `args` (without argv0). Returns the raw values and leftovers.
fn parse_grammar(argv0: &str, args: &[String]) -> Result<Result<(RawFlags, Vec<String>), String>, FlagError> {
    let mut raw = RawFlags { values: BTreeMap::new(), port: "53".to_string() };
    let mut rest: &[String] = args;
    let syntax = |message: String| FlagError::Syntax { message, usage: usage(argv0) };
    while let Some(s) = rest.first() {
        if s.len() < 2 || !s.starts_with('-') {
            break;
        }
        let mut minuses = 1;
        if s.as_bytes()[1] == b'-' {
            minuses = 2;
            if s.len() == 2 {
                rest = &rest[1..];
                break;
            }
        }
        let name_part = &s[minuses..];
        if name_part.is_empty() || name_part.starts_with('-') || name_part.starts_with('=') {
            return Err(syntax(format!("bad flag syntax: {s}")));
        }
        rest = &rest[1..];
        let (name, value) = match name_part[1..].find('=') {
            Some(i) => (&name_part[..i + 1], Some(name_part[i + 2..].to_string())),
            None => (name_part, None),
        };
        let Some(def) = lookup(name) else {
            if name == "help" || name == "h" {
                return Ok(Err(usage(argv0)));
            }
            return Err(syntax(format!("flag provided but not defined: -{name}")));
        };
        match def.kind {
            Kind::Bool => {
                let v = value.unwrap_or_else(|| "true".to_string());
                match goparse::parse_bool(&v) {
                    Some(b) => {
                        raw.values.insert(def.name, b.to_string());
                    }
                    None => {
                        return Err(syntax(format!(
                            "invalid boolean value {} for -{name}: parse error",
                            goparse::quote(&v)
                        )))
                    }
                }
            }
            Kind::Str | Kind::Duration => {
                let v = match value {
                    Some(v) => v,
                    None => match rest.first() {
                        Some(next) => {
                            rest = &rest[1..];
                            next.clone()
                        }
                        None => return Err(syntax(format!("flag needs an argument: -{name}"))),
                    },
                };
                if def.kind == Kind::Duration {
                    match goparse::parse_duration(&v) {
                        Ok(ns) => {
                            raw.values.insert(def.name, ns.to_string());
                        }
                        Err(_) => {
                            return Err(syntax(format!(
                                "invalid value {} for flag -{name}: parse error",
                                goparse::quote(&v)
                            )))
                        }
                    }
                } else {
                    if def.name == "dns.port" || def.name == "p" {
                        raw.port = v.clone();
                    }
                    raw.values.insert(def.name, v);
                }
            }
        }
    }
    Ok(Ok((raw, rest.to_vec())))
}

/// Parses and validates node-cache's command line (`args` excludes argv0).
pub fn parse(argv0: &str, args: &[String]) -> Result<FlagsOutcome, FlagError> {
    let (raw, rest) = match parse_grammar(argv0, args)? {
        Ok(v) => v,
        Err(usage) => return Ok(FlagsOutcome::Help { usage }),
    };
    let local_ip_str = raw.get("localip").to_string();
    let mut local_ips = Vec::new();
    for piece in local_ip_str.split(',') {
        match goparse::parse_ip(piece) {
            Some(ip) => local_ips.push(ip),
            None => return Err(FlagError::Invalid(format!("invalid localip specified - {}", goparse::quote(piece)))),
        }
    }
    if let Some(first) = local_ips.first() {
        let want_v6 = goparse::is_ipv6(first);
        for ip in &local_ips {
            if goparse::is_ipv6(ip) != want_v6 {
                return Err(FlagError::Invalid(format!(
                    "unexpected IP Family for localIP - {}, want IPv6={want_v6}",
                    goparse::quote(&goparse::ip_string(ip))
                )));
            }
        }
    }
    let dns_port = raw.port.clone();
    if goparse::atoi(&dns_port).is_err() {
        return Err(FlagError::Invalid(format!("invalid port specified - {}", goparse::quote(&dns_port))));
    }
    let health_port = raw.get("health-port").to_string();
    if goparse::atoi(&health_port).is_err() {
        return Err(FlagError::Invalid(format!(
            "invalid healthcheck port specified - {}",
            goparse::quote(&health_port)
        )));
    }
    let conf = raw.get("conf").to_string();
    let flags = NodeCacheFlags {
        local_ip_str,
        local_ips,
        setup_interface: raw.get_bool("setupinterface"),
        interface_name: raw.get("interfacename").to_string(),
        sync_interval_raw: raw.values.get("syncinterval").and_then(|v| v.parse().ok()).unwrap_or(60),
        metrics_listen_address: raw.get("metrics-listen-address").to_string(),
        prometheus_listen_address: raw.get("prometheus-listen-address").to_string(),
        setup_iptables: raw.get_bool("setupiptables"),
        base_corefile: raw.get("basecorefile").to_string(),
        corefile: conf.clone(),
        kubedns_cm: raw.get("kubednscm").to_string(),
        upstream_svc: raw.get("upstreamsvc").to_string(),
        health_port,
        skip_teardown: raw.get_bool("skipteardown"),
        reload_with_signal: raw.get_bool("reloadwithsignal"),
        statedir: raw.get("statedir").to_string(),
        conf,
        pidfile: raw.get("pidfile").to_string(),
        dns_port,
        plugins: raw.get_bool("plugins"),
        version: raw.get_bool("version"),
        quiet: raw.get_bool("quiet"),
    };
    Ok(FlagsOutcome::Run { flags: Box::new(flags), args: rest })
}

/// Parses the process's own command line; on help or error prints what Go prints and exits
/// (help: usage to stderr, exit 0; grammar error: message and usage to stderr, exit 2;
/// validation error: `[FATAL] Error parsing flags - …, Exiting` to stderr, exit 1).
pub fn parse_or_exit() -> (NodeCacheFlags, Vec<String>) {
    let mut argv = std::env::args();
    let argv0 = argv.next().unwrap_or_else(|| "node-cache".to_string());
    let rest: Vec<String> = argv.collect();
    match parse(&argv0, &rest) {
        Ok(FlagsOutcome::Run { flags, args }) => (*flags, args),
        Ok(FlagsOutcome::Help { usage }) => {
            eprint!("{usage}");
            std::process::exit(0)
        }
        Err(e @ FlagError::Syntax { .. }) => {
            eprint!("{}", e.stderr_text());
            std::process::exit(e.exit_code())
        }
        Err(e) => {
            eprintln!("[FATAL] {}", e.stderr_text());
            std::process::exit(e.exit_code())
        }
    }
}

/// CoreDNS's FATAL text for positional leftovers (`extra command line arguments: [a b]`), or
/// `None` when there are none.
pub fn extra_args_message(args: &[String]) -> Option<String> {
    (!args.is_empty()).then(|| format!("extra command line arguments: {}", goparse::fmt_list(args)))
}

impl NodeCacheFlags {
    /// The INFO lines node-cache logs after parsing: `Using Corefile <conf>` and
    /// `Using Pidfile <pidfile>` (both always, even when empty).
    pub fn startup_messages(&self) -> Vec<String> {
        vec![format!("Using Corefile {}", self.corefile), format!("Using Pidfile {}", self.pidfile)]
    }

    /// True when the local IPs are IPv6 (picks `ip6tables`).
    pub fn is_ipv6(&self) -> bool {
        self.local_ips.first().is_some_and(goparse::is_ipv6)
    }

    /// The ticker period: `-syncinterval` multiplied by one second with Go's wrapping int64
    /// arithmetic (`1m` wraps to about 147 years). Go's `time.NewTicker` panics on a
    /// non-positive period; that case is returned as an error with Go's panic text.
    pub fn sync_interval(&self) -> Result<Duration, String> {
        let ns = self.sync_interval_raw.wrapping_mul(1_000_000_000);
        if ns <= 0 {
            return Err("non-positive interval for NewTicker".to_string());
        }
        Ok(Duration::from_nanos(ns as u64))
    }

    /// The kube-dns ConfigMap directory: `-kubednscm`, or `/etc/kube-dns` when the flag is
    /// empty and that path exists; `None` when neither applies.
    pub fn kubedns_cm_dir(&self) -> Option<PathBuf> {
        self.kubedns_cm_dir_with_default(Path::new(DEFAULT_KUBEDNS_CM_PATH))
    }

    /// [`NodeCacheFlags::kubedns_cm_dir`] with another fallback path (for tests).
    pub fn kubedns_cm_dir_with_default(&self, default: &Path) -> Option<PathBuf> {
        if !self.kubedns_cm.is_empty() {
            return Some(PathBuf::from(&self.kubedns_cm));
        }
        // Go: any Stat result other than "does not exist" counts as present.
        match std::fs::metadata(default) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            _ => Some(default.to_path_buf()),
        }
    }

    /// The environment variable holding the upstream Service's ClusterIP, with the `$`
    /// node-cache expands: `kube-dns-upstream` → `$KUBE_DNS_UPSTREAM_SERVICE_HOST`.
    pub fn upstream_env_ref(&self) -> String {
        upstream_env_ref(&self.upstream_svc)
    }

    /// Reads the upstream ClusterIP as node-cache does (`os.ExpandEnv` then `net.ParseIP`),
    /// returning the IP and, when it does not parse, the WARNING text node-cache logs.
    pub fn upstream_ip(&self, env: impl Fn(&str) -> Option<String>) -> (Option<IpAddr>, Option<String>) {
        let reference = self.upstream_env_ref();
        let value = goparse::expand_env(&reference, env);
        match goparse::parse_ip(&value) {
            Some(ip) => (Some(ip), None),
            None => (
                None,
                Some(format!(
                    "Unable to lookup IP address of Upstream service {}, env {reference} `{value}`",
                    self.upstream_svc
                )),
            ),
        }
    }

    /// [`NodeCacheFlags::upstream_ip`] over the process environment.
    pub fn upstream_ip_from_env(&self) -> (Option<IpAddr>, Option<String>) {
        self.upstream_ip(|k| std::env::var(k).ok())
    }

    /// `-localip` with commas turned into spaces (the `bind` argument list).
    pub fn local_ips_spaced(&self) -> String {
        self.local_ip_str.replace(',', " ")
    }
}

/// `-upstreamsvc` → `$<NAME>_SERVICE_HOST` (dashes to underscores, upper case).
pub fn upstream_env_ref(svc: &str) -> String {
    format!("${}_SERVICE_HOST", svc.replace('-', "_").to_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn run(v: &[&str]) -> (NodeCacheFlags, Vec<String>) {
        match parse("node-cache", &args(v)) {
            Ok(FlagsOutcome::Run { flags, args }) => (*flags, args),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn err(v: &[&str]) -> FlagError {
        parse("node-cache", &args(v)).expect_err("should fail")
    }

    #[test]
    fn defaults() {
        let (f, rest) = run(&["-localip", "169.254.20.10"]);
        assert!(rest.is_empty());
        assert_eq!(f.local_ips, vec!["169.254.20.10".parse::<IpAddr>().unwrap()]);
        assert!(f.setup_interface && f.setup_iptables);
        assert!(!f.skip_teardown && !f.reload_with_signal);
        assert_eq!(f.interface_name, "nodelocaldns");
        assert_eq!(f.sync_interval_raw, 60);
        assert_eq!(f.sync_interval(), Ok(Duration::from_secs(60)));
        assert_eq!(f.metrics_listen_address, "0.0.0.0:9353");
        assert_eq!(f.prometheus_listen_address, ":9253");
        assert_eq!(f.base_corefile, "/etc/coredns/Corefile.base");
        assert_eq!(f.corefile, "");
        assert_eq!(f.upstream_svc, "kube-dns");
        assert_eq!(f.health_port, "8080");
        assert_eq!(f.dns_port, "53");
        assert_eq!(f.pidfile, "");
    }

    #[test]
    fn grammar_forms() {
        let (f, rest) = run(&[
            "--localip=10.0.0.1,10.0.0.2",
            "-conf",
            "/etc/Corefile",
            "-setupiptables=false",
            "--skipteardown",
            "-p",
            "5353",
            "-syncinterval=2s",
            "pos1",
            "-version",
        ]);
        assert_eq!(f.local_ip_str, "10.0.0.1,10.0.0.2");
        assert_eq!(f.corefile, "/etc/Corefile");
        assert!(!f.setup_iptables);
        assert!(f.skip_teardown);
        assert_eq!(f.dns_port, "5353");
        assert_eq!(f.sync_interval(), Ok(Duration::from_secs(2_000_000_000)));
        assert!(!f.version, "parsing stops at the first non-flag");
        assert_eq!(rest, args(&["pos1", "-version"]));
    }

    #[test]
    fn last_wins_and_port_alias_shares_a_variable() {
        let (f, _) = run(&["-localip", "1.1.1.1", "-localip", "2.2.2.2", "-dns.port", "1053", "-p", "2053"]);
        assert_eq!(f.local_ip_str, "2.2.2.2");
        assert_eq!(f.dns_port, "2053");
        let (f, _) = run(&["-p", "2053", "-dns.port=1053", "-localip=::1"]);
        assert_eq!(f.dns_port, "1053");
        assert!(f.is_ipv6());
    }

    #[test]
    fn double_dash_terminates() {
        let (f, rest) = run(&["-localip=1.1.1.1", "--", "-quiet"]);
        assert!(!f.quiet);
        assert_eq!(rest, args(&["-quiet"]));
        let (_, rest) = run(&["-localip=1.1.1.1", "-", "x"]);
        assert_eq!(rest, args(&["-", "x"]));
    }

    #[test]
    fn bool_does_not_take_next_argument() {
        let (f, rest) = run(&["-localip=1.1.1.1", "-skipteardown", "false"]);
        assert!(f.skip_teardown);
        assert_eq!(rest, args(&["false"]));
        for v in ["1", "t", "T", "TRUE", "True"] {
            let (f, _) = run(&["-localip=1.1.1.1", &format!("-quiet={v}")]);
            assert!(f.quiet, "{v}");
        }
        let e = err(&["-localip=1.1.1.1", "-quiet=yes"]);
        match e {
            FlagError::Syntax { message, .. } => {
                assert_eq!(message, "invalid boolean value \"yes\" for -quiet: parse error")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_flag_and_case_sensitivity() {
        let e = err(&["-localip=1.1.1.1", "-LocalIP=2.2.2.2"]);
        assert_eq!(e.exit_code(), 2);
        let text = e.stderr_text();
        assert!(text.starts_with("flag provided but not defined: -LocalIP\nUsage of node-cache:\n"), "{text}");
        let e = err(&["-setupebtables"]);
        assert!(e.stderr_text().starts_with("flag provided but not defined: -setupebtables\n"));
        let e = err(&["---x"]);
        assert!(e.stderr_text().starts_with("bad flag syntax: ---x\n"));
        let e = err(&["-=x"]);
        assert!(e.stderr_text().starts_with("bad flag syntax: -=x\n"));
        let e = err(&["-localip"]);
        assert!(e.stderr_text().starts_with("flag needs an argument: -localip\n"));
    }

    #[test]
    fn extra_args() {
        assert_eq!(extra_args_message(&[]), None);
        assert_eq!(
            extra_args_message(&args(&["false", "x"])).as_deref(),
            Some("extra command line arguments: [false x]")
        );
    }

    #[test]
    fn help() {
        for h in ["-h", "-help", "--help"] {
            match parse("/node-cache", &args(&[h])) {
                Ok(FlagsOutcome::Help { usage: u }) => assert_eq!(u, usage("/node-cache")),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn localip_rules() {
        assert_eq!(err(&[]), FlagError::Invalid("invalid localip specified - \"\"".into()));
        assert_eq!(err(&["-localip", "169.254.20.10,"]), FlagError::Invalid("invalid localip specified - \"\"".into()));
        assert_eq!(
            err(&["-localip", "169.254.20.10,__PILLAR__DNS__SERVER__"]),
            FlagError::Invalid("invalid localip specified - \"__PILLAR__DNS__SERVER__\"".into())
        );
        assert_eq!(
            err(&["-localip", "169.254.20.10,fd00::10"]),
            FlagError::Invalid("unexpected IP Family for localIP - \"fd00::10\", want IPv6=false".into())
        );
        assert_eq!(err(&["-localip", "x"]).exit_code(), 1, "validation errors exit 1");
    }

    #[test]
    fn ports_are_atoi_checked() {
        assert_eq!(
            err(&["-localip=1.1.1.1", "-p", "dns"]),
            FlagError::Invalid("invalid port specified - \"dns\"".into())
        );
        assert_eq!(
            err(&["-localip=1.1.1.1", "-health-port", ""]),
            FlagError::Invalid("invalid healthcheck port specified - \"\"".into())
        );
        let (f, _) = run(&["-localip=1.1.1.1", "-health-port", "+8080"]);
        assert_eq!(f.health_port, "+8080");
    }

    #[test]
    fn syncinterval_quirks() {
        let e = err(&["-localip=1.1.1.1", "-syncinterval", "60"]);
        assert!(e.stderr_text().starts_with("invalid value \"60\" for flag -syncinterval: parse error\n"));
        let (f, _) = run(&["-localip=1.1.1.1", "-syncinterval", "60ns"]);
        assert_eq!(f.sync_interval(), Ok(Duration::from_secs(60)));
        let (f, _) = run(&["-localip=1.1.1.1", "-syncinterval", "1m"]);
        // 60e9 * 1e9 wraps in int64.
        assert_eq!(f.sync_interval(), Ok(Duration::from_nanos(4_659_767_778_871_345_152)));
        let (f, _) = run(&["-localip=1.1.1.1", "-syncinterval", "0"]);
        assert_eq!(f.sync_interval(), Err("non-positive interval for NewTicker".into()));
        let (f, _) = run(&["-localip=1.1.1.1", "-syncinterval", "-1ns"]);
        assert!(f.sync_interval().is_err());
    }

    #[test]
    fn kubednscm_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let (f, _) = run(&["-localip=1.1.1.1"]);
        assert_eq!(f.kubedns_cm_dir_with_default(dir.path()), Some(dir.path().to_path_buf()));
        assert_eq!(f.kubedns_cm_dir_with_default(&dir.path().join("missing")), None);
        let (f, _) = run(&["-localip=1.1.1.1", "-kubednscm", "/x"]);
        assert_eq!(f.kubedns_cm_dir_with_default(dir.path()), Some(PathBuf::from("/x")));
    }

    #[test]
    fn upstream_env() {
        let (f, _) = run(&["-localip=1.1.1.1", "-upstreamsvc", "kube-dns-upstream"]);
        assert_eq!(f.upstream_env_ref(), "$KUBE_DNS_UPSTREAM_SERVICE_HOST");
        let env = |k: &str| (k == "KUBE_DNS_UPSTREAM_SERVICE_HOST").then(|| "10.96.143.7".to_string());
        assert_eq!(f.upstream_ip(env), (Some("10.96.143.7".parse().unwrap()), None));
        let (ip, warn) = f.upstream_ip(|_| None);
        assert_eq!(ip, None);
        assert_eq!(
            warn.as_deref(),
            Some(
                "Unable to lookup IP address of Upstream service kube-dns-upstream, env $KUBE_DNS_UPSTREAM_SERVICE_HOST ``"
            )
        );
    }

    #[test]
    fn usage_text_layout() {
        let u = usage("/node-cache");
        let expected_head = concat!(
            "Usage of /node-cache:\n",
            "Runs CoreDNS v1.13.2 as a nodelocal cache listening on the specified ip:port\n",
            "\n",
            "  -basecorefile string\n    \tPath to the template Corefile for node-cache (default \"/etc/coredns/Corefile.base\")\n",
            "  -conf string\n    \tCorefile to load (default \"Corefile\")\n",
            "  -corefile string\n    \tPath to the Corefile to be used by node-cache (default \"/etc/Corefile\")\n",
            "  -dns.port string\n    \tDefault port (default \"53\")\n",
        );
        assert!(u.starts_with(expected_head), "{u}");
        assert!(
            u.contains("  -setupinterface\n    \tindicates whether network interface should be setup (default true)\n")
        );
        assert!(u.contains("  -skipteardown\n    \tindicates whether iptables rules should be torn down on exit\n"));
        assert!(u.contains(
            "  -syncinterval duration\n    \tinterval(in seconds) to check for iptables rules (default 60ns)\n"
        ));
        assert!(u.contains("  -p string\n    \tDefault port (default \"53\")\n"));
        assert!(u.ends_with("  -version\n    \tShow version\n"));
    }
}
