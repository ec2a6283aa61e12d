//! node-cache's iptables rules and the small iptables runner they need (Kubernetes'
//! `util/iptables` behaviour): version probe for the wait flag, check with `-C` (exit 1 means
//! absent, 5-minute timeout), insert with `-I` (prepend), delete with `-D`, `ip6tables` for
//! IPv6. The real binaries are executed.
//!
//! Unlike Kubernetes' runner, a failed version probe (e.g. iptables missing at startup) is
//! repeated, at most once a second, until one succeeds, so a binary that appears later is
//! used with the right wait flag and `-C` checks.

use std::fmt;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::metrics::SetupErrorKind;

/// Comment on the NOTRACK rules.
pub const COMMENT_SKIP_CONNTRACK: &str = "NodeLocal DNS Cache: skip conntrack";
/// Comment on the ACCEPT rules.
pub const COMMENT_ALLOW_TRAFFIC: &str = "NodeLocal DNS Cache: allow DNS traffic";

/// How long a `-C` check may run.
const CHECK_TIMEOUT: Duration = Duration::from_secs(300);

/// One rule: table, chain and the match/target arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// `raw` or `filter`.
    pub table: String,
    /// `PREROUTING`, `INPUT` or `OUTPUT`.
    pub chain: String,
    /// Everything after `-t <table>` (the comment is a single element).
    pub args: Vec<String>,
}

impl fmt::Display for Rule {
    /// Go's `%v` of node-cache's rule struct: `{raw PREROUTING [-p tcp …]}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{} {} [{}]}}", self.table, self.chain, self.args.join(" "))
    }
}

fn rule(table: &str, chain: &str, args: &[&str]) -> Rule {
    Rule { table: table.into(), chain: chain.into(), args: args.iter().map(|s| s.to_string()).collect() }
}

/// The 12 rules per local IP, in node-cache's order. `local_ip_str` is `-localip` as given
/// (split on commas, used verbatim), `port` is `-dns.port`, `health_port` is `-health-port`.
pub fn node_cache_rules(local_ip_str: &str, port: &str, health_port: &str) -> Vec<Rule> {
    let (skip, allow) = (COMMENT_SKIP_CONNTRACK, COMMENT_ALLOW_TRAFFIC);
    let mut rules = Vec::new();
    for ip in local_ip_str.split(',') {
        let notrack_in =
            |p: &'static str| ["-p", p, "-d", ip, "--dport", port, "-j", "NOTRACK", "-m", "comment", "--comment", skip];
        let accept_in =
            |p: &'static str| ["-p", p, "-d", ip, "--dport", port, "-j", "ACCEPT", "-m", "comment", "--comment", allow];
        let notrack_out =
            |p: &'static str| ["-p", p, "-s", ip, "--sport", port, "-j", "NOTRACK", "-m", "comment", "--comment", skip];
        let accept_out =
            |p: &'static str| ["-p", p, "-s", ip, "--sport", port, "-j", "ACCEPT", "-m", "comment", "--comment", allow];
        rules.push(rule("raw", "PREROUTING", &notrack_in("tcp")));
        rules.push(rule("raw", "PREROUTING", &notrack_in("udp")));
        rules.push(rule("filter", "INPUT", &accept_in("tcp")));
        rules.push(rule("filter", "INPUT", &accept_in("udp")));
        rules.push(rule("raw", "OUTPUT", &notrack_out("tcp")));
        rules.push(rule("raw", "OUTPUT", &notrack_out("udp")));
        rules.push(rule("filter", "OUTPUT", &accept_out("tcp")));
        rules.push(rule("filter", "OUTPUT", &accept_out("udp")));
        rules.push(rule("raw", "OUTPUT", &notrack_in("tcp")));
        rules.push(rule("raw", "OUTPUT", &notrack_in("udp")));
        rules.push(rule(
            "raw",
            "OUTPUT",
            &["-p", "tcp", "-d", ip, "--dport", health_port, "-j", "NOTRACK", "-m", "comment", "--comment", skip],
        ));
        rules.push(rule(
            "raw",
            "OUTPUT",
            &["-p", "tcp", "-s", ip, "--sport", health_port, "-j", "NOTRACK", "-m", "comment", "--comment", skip],
        ));
    }
    rules
}

/// An iptables failure, with Go's error text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IptablesError(pub String);

impl fmt::Display for IptablesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IptablesError {}

impl IptablesError {
    /// The `errortype` this error counts as: `iptables_lock` when the message mentions the
    /// xtables lock, `iptables` otherwise.
    pub fn kind(&self) -> SetupErrorKind {
        if self.0.contains("holding the xtables lock") {
            SetupErrorKind::IptablesLock
        } else {
            SetupErrorKind::Iptables
        }
    }
}

/// A parsed `iptables --version` (`vX.Y.Z`).
fn parse_version(text: &str) -> Option<Vec<u32>> {
    let re = regex::Regex::new(r"v([0-9]+(\.[0-9]+)+)").ok()?;
    let caps = re.captures(text)?;
    caps.get(1)?.as_str().split('.').map(|p| p.parse().ok()).collect()
}

fn at_least(v: &[u32], min: &[u32]) -> bool {
    for i in 0..min.len().max(v.len()) {
        let (a, b) = (v.get(i).copied().unwrap_or(0), min.get(i).copied().unwrap_or(0));
        if a != b {
            return a > b;
        }
    }
    true
}

/// Output and exit status of one command.
struct Ran {
    status: Option<i32>,
    out: String,
    spawn_error: Option<String>,
    timed_out: bool,
}

fn run(cmd: &str, args: &[String], timeout: Option<Duration>) -> Ran {
    let child = Command::new(cmd).args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            let why = if e.kind() == std::io::ErrorKind::NotFound {
                format!("exec: \"{cmd}\": executable file not found in $PATH")
            } else {
                format!("fork/exec {cmd}: {e}")
            };
            return Ran { status: None, out: String::new(), spawn_error: Some(why), timed_out: false };
        }
    };
    // Drain both pipes on threads so a chatty child cannot block.
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(o) = stdout.as_mut() {
            let _ = o.read_to_end(&mut s);
        }
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.read_to_end(&mut s);
        }
        s
    });
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st.code(),
            Ok(None) => {
                if timeout.is_some_and(|t| start.elapsed() >= t) {
                    let _ = child.kill();
                    let _ = child.wait();
                    timed_out = true;
                    break None;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => break None,
        }
    };
    let mut out = t_out.join().unwrap_or_default();
    out.extend(t_err.join().unwrap_or_default());
    Ran { status, out: String::from_utf8_lossy(&out).into_owned(), spawn_error: None, timed_out }
}

fn exit_text(r: &Ran) -> String {
    match (&r.spawn_error, r.status) {
        (Some(e), _) => e.clone(),
        (None, Some(code)) => format!("exit status {code}"),
        (None, None) => "signal: killed".to_string(),
    }
}

/// How often a failed version probe may be repeated.
const REPROBE_EVERY: Duration = Duration::from_secs(1);

/// What `<cmd> --version` told us.
#[derive(Clone, Debug)]
struct Probe {
    wait_flag: Vec<String>,
    has_check: bool,
    /// True once a probe succeeded (never probed again).
    known: bool,
    at: Instant,
}

impl Probe {
    fn run(cmd: &str) -> Probe {
        let ran = run(cmd, &["--version".to_string()], None);
        let version = if ran.spawn_error.is_none() && ran.status == Some(0) { parse_version(&ran.out) } else { None };
        let (wait_flag, has_check) = match &version {
            Some(v) if at_least(v, &[1, 4, 22]) => (vec!["-w".to_string(), "5".to_string()], true),
            Some(v) if at_least(v, &[1, 4, 20]) => (vec!["-w".to_string()], true),
            Some(v) => (Vec::new(), at_least(v, &[1, 4, 11])),
            None => (Vec::new(), false),
        };
        Probe { wait_flag, has_check, known: version.is_some(), at: Instant::now() }
    }
}

/// Runs `iptables` or `ip6tables`.
#[derive(Clone, Debug)]
pub struct Iptables {
    cmd: String,
    probe: Arc<Mutex<Probe>>,
    ipv6: bool,
}

impl Iptables {
    /// Runner for `iptables` (or `ip6tables` when `ipv6`); runs `<cmd> --version` once to
    /// pick the wait flag (`-w 5` from 1.4.22, `-w` from 1.4.20).
    pub fn new(ipv6: bool) -> Self {
        Self::with_command(if ipv6 { "ip6tables" } else { "iptables" }, ipv6)
    }

    /// Runner with an explicit command name or path (e.g. a wrapper script).
    pub fn with_command(cmd: &str, ipv6: bool) -> Self {
        Iptables { cmd: cmd.to_string(), probe: Arc::new(Mutex::new(Probe::run(cmd))), ipv6 }
    }

    /// The current probe result, probing again first if the last probe failed long enough
    /// ago.
    fn probe(&self) -> Probe {
        let Ok(mut p) = self.probe.lock() else { return Probe::run(&self.cmd) };
        if !p.known && p.at.elapsed() >= REPROBE_EVERY {
            *p = Probe::run(&self.cmd);
        }
        p.clone()
    }

    /// The command run (`iptables`/`ip6tables` or the override).
    pub fn command(&self) -> &str {
        &self.cmd
    }

    /// The wait flag in use (`["-w", "5"]`, `["-w"]` or empty).
    pub fn wait_flag(&self) -> Vec<String> {
        self.probe().wait_flag
    }

    /// True for `ip6tables`.
    pub fn is_ipv6(&self) -> bool {
        self.ipv6
    }

    /// Full argument vector for `op` (`-C`, `-I`, `-D`) on `rule`.
    pub fn argv(&self, op: &str, rule: &Rule) -> Vec<String> {
        let mut v = self.probe().wait_flag;
        v.push(op.to_string());
        v.push(rule.chain.clone());
        v.push("-t".to_string());
        v.push(rule.table.clone());
        v.extend(rule.args.iter().cloned());
        v
    }

    /// Whether `rule` exists.
    pub fn check_rule(&self, rule: &Rule) -> Result<bool, IptablesError> {
        if !self.probe().has_check {
            return self.check_rule_with_save(rule);
        }
        let r = run(&self.cmd, &self.argv("-C", rule), Some(CHECK_TIMEOUT));
        if r.timed_out {
            return Err(IptablesError("timed out while checking rules".into()));
        }
        match (&r.spawn_error, r.status) {
            (None, Some(0)) => Ok(true),
            (None, Some(1)) => Ok(false),
            _ => Err(IptablesError(format!("error checking rule: {}: {}", exit_text(&r), r.out))),
        }
    }

    /// Check for iptables older than 1.4.11 (or an unknown version): scan `iptables-save`.
    fn check_rule_with_save(&self, rule: &Rule) -> Result<bool, IptablesError> {
        let save = if self.ipv6 { "ip6tables-save" } else { "iptables-save" };
        let r = run(save, &["-t".to_string(), rule.table.clone()], None);
        if r.spawn_error.is_some() || r.status != Some(0) {
            return Err(IptablesError(format!("error checking rule: {}", exit_text(&r))));
        }
        let trim = |s: &str| s.trim_matches('"').to_string();
        let wanted: std::collections::BTreeSet<String> =
            rule.args.iter().flat_map(|a| trim(a).split_whitespace().map(str::to_string).collect::<Vec<_>>()).collect();
        let count: usize = rule.args.iter().map(|a| trim(a).split_whitespace().count()).sum();
        let prefix = format!("-A {}", rule.chain);
        Ok(r.out.lines().any(|line| {
            let fields: Vec<String> = line.split_whitespace().map(trim).collect();
            line.starts_with(&prefix)
                && fields.len() == count + 2
                && wanted.iter().all(|w| fields.iter().any(|f| f == w))
        }))
    }

    /// Kubernetes `EnsureRule(Prepend, …)`: `Ok(true)` if it already existed, `Ok(false)` if
    /// it was inserted with `-I`.
    pub fn ensure_rule(&self, rule: &Rule) -> Result<bool, IptablesError> {
        if self.check_rule(rule)? {
            return Ok(true);
        }
        let r = run(&self.cmd, &self.argv("-I", rule), None);
        if r.spawn_error.is_some() || r.status != Some(0) {
            return Err(IptablesError(format!("error appending rule: {}: {}", exit_text(&r), r.out)));
        }
        Ok(false)
    }

    /// Kubernetes `DeleteRule`: deletes one copy of `rule` if it exists.
    pub fn delete_rule(&self, rule: &Rule) -> Result<(), IptablesError> {
        if !self.check_rule(rule)? {
            return Ok(());
        }
        let r = run(&self.cmd, &self.argv("-D", rule), None);
        if r.spawn_error.is_some() || r.status != Some(0) {
            return Err(IptablesError(format!("error deleting rule: {}: {}", exit_text(&r), r.out)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn twelve_rules_per_ip_in_order() {
        let rules = node_cache_rules("169.254.20.10,10.96.0.10", "53", "8080");
        assert_eq!(rules.len(), 24);
        assert_eq!(
            rules[0].to_string(),
            "{raw PREROUTING [-p tcp -d 169.254.20.10 --dport 53 -j NOTRACK -m comment --comment NodeLocal DNS Cache: skip conntrack]}"
        );
        let summary: Vec<String> =
            rules[..12].iter().map(|r| format!("{} {} {}", r.table, r.chain, r.args[..8].join(" "))).collect();
        assert_eq!(
            summary,
            vec![
                "raw PREROUTING -p tcp -d 169.254.20.10 --dport 53 -j NOTRACK",
                "raw PREROUTING -p udp -d 169.254.20.10 --dport 53 -j NOTRACK",
                "filter INPUT -p tcp -d 169.254.20.10 --dport 53 -j ACCEPT",
                "filter INPUT -p udp -d 169.254.20.10 --dport 53 -j ACCEPT",
                "raw OUTPUT -p tcp -s 169.254.20.10 --sport 53 -j NOTRACK",
                "raw OUTPUT -p udp -s 169.254.20.10 --sport 53 -j NOTRACK",
                "filter OUTPUT -p tcp -s 169.254.20.10 --sport 53 -j ACCEPT",
                "filter OUTPUT -p udp -s 169.254.20.10 --sport 53 -j ACCEPT",
                "raw OUTPUT -p tcp -d 169.254.20.10 --dport 53 -j NOTRACK",
                "raw OUTPUT -p udp -d 169.254.20.10 --dport 53 -j NOTRACK",
                "raw OUTPUT -p tcp -d 169.254.20.10 --dport 8080 -j NOTRACK",
                "raw OUTPUT -p tcp -s 169.254.20.10 --sport 8080 -j NOTRACK",
            ]
        );
        assert_eq!(rules[2].args.last().map(String::as_str), Some(COMMENT_ALLOW_TRAFFIC));
        assert_eq!(rules[12].args[3], "10.96.0.10");
    }

    #[test]
    fn versions_and_error_kinds() {
        assert_eq!(parse_version("iptables v1.8.9 (nf_tables)"), Some(vec![1, 8, 9]));
        assert_eq!(parse_version("nothing"), None);
        assert!(at_least(&[1, 4, 22], &[1, 4, 22]));
        assert!(!at_least(&[1, 4, 21], &[1, 4, 22]));
        assert!(at_least(&[1, 8], &[1, 4, 22]));
        assert_eq!(
            IptablesError(
                "error checking rule: exit status 4: Another app is currently holding the xtables lock. ".into()
            )
            .kind(),
            SetupErrorKind::IptablesLock
        );
        assert_eq!(IptablesError("error appending rule: exit status 2: x".into()).kind(), SetupErrorKind::Iptables);
    }

    #[test]
    fn argv_shape() {
        let probe =
            Probe { wait_flag: vec!["-w".into(), "5".into()], has_check: true, known: true, at: Instant::now() };
        let ipt = Iptables { cmd: "iptables".into(), probe: Arc::new(Mutex::new(probe)), ipv6: false };
        let r = &node_cache_rules("169.254.20.10", "53", "8080")[0];
        let argv = ipt.argv("-C", r);
        assert_eq!(&argv[..6], &["-w", "5", "-C", "PREROUTING", "-t", "raw"]);
        assert_eq!(argv.last().map(String::as_str), Some("NodeLocal DNS Cache: skip conntrack"));
    }
}
