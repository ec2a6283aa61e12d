//! The case model (`conformance-format.md`), loading, and placeholder substitution.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One conformance case file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What the case shows.
    #[serde(default)]
    pub description: String,
    /// Free words for filtering.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The Corefile the server starts with.
    pub corefile: String,
    /// `"ok"` or `"error"`.
    #[serde(default = "default_start")]
    pub start: String,
    /// With `start = "error"`: text the error output must contain.
    #[serde(default)]
    pub start_error_contains: String,
    /// Files written into `{{dir}}` before start.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Environment variables for the server process.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Upstream fixtures.
    #[serde(default)]
    pub upstream: Vec<UpstreamSpec>,
    /// Steps, in order.
    #[serde(default)]
    pub step: Vec<Step>,
}

fn default_start() -> String {
    "ok".into()
}

fn default_main() -> String {
    "main".into()
}

fn default_true() -> bool {
    true
}

/// One upstream fixture.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSpec {
    /// Fixture name (default `main`).
    #[serde(default = "default_main")]
    pub name: String,
    /// Master-file text.
    #[serde(default)]
    pub zone: String,
    /// Delay before answering.
    #[serde(default)]
    pub delay_ms: u64,
    /// Answer everything with this rcode.
    #[serde(default)]
    pub rcode: String,
    /// Never answer.
    #[serde(default)]
    pub drop: bool,
    /// TC=1 over UDP.
    #[serde(default)]
    pub truncate_udp: bool,
    /// Also listen on TCP.
    #[serde(default = "default_true")]
    pub tcp: bool,
}

/// A runtime change to a fixture.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSet {
    /// Fixture name (default `main`).
    #[serde(default = "default_main")]
    pub name: String,
    /// New zone text.
    pub zone: Option<String>,
    /// New delay.
    pub delay_ms: Option<u64>,
    /// New forced rcode (`""` clears it).
    pub rcode: Option<String>,
    /// New drop flag.
    pub drop: Option<bool>,
    /// New truncate flag.
    pub truncate_udp: Option<bool>,
}

/// One step: an action plus expectations.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// `"NAME TYPE"` to query.
    pub query: Option<String>,
    /// `"udp"` (default) or `"tcp"`.
    pub proto: Option<String>,
    /// RD bit (default true).
    pub rd: Option<bool>,
    /// EDNS DO bit.
    #[serde(rename = "do")]
    pub dnssec_ok: Option<bool>,
    /// CD bit.
    pub cd: Option<bool>,
    /// Send OPT.
    pub edns: Option<bool>,
    /// EDNS UDP size.
    pub bufsize: Option<u16>,
    /// Exact wire spelling of the name.
    pub case_as_sent: Option<String>,
    /// A whole query message as hex (spaces allowed), sent as is: for malformed and unusual wire forms.
    pub raw_query: Option<String>,
    /// Sleep.
    pub sleep_ms: Option<u64>,
    /// GET this URL.
    pub http_get: Option<String>,
    /// Replace the Corefile (ConfigMap-style).
    pub write_corefile: Option<String>,
    /// Retry until the expectations hold, up to this long.
    pub wait_ms: Option<u64>,
    /// Change a fixture.
    pub upstream_set: Option<UpstreamSet>,
    /// Send a signal to the server.
    pub signal: Option<String>,
    /// Expectations.
    #[serde(default)]
    pub expect: Expect,
}

/// Everything a step may check.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Response code name.
    pub rcode: Option<String>,
    /// Exact answer set.
    pub answer: Option<Vec<String>>,
    /// Records that must be among the answers.
    pub answer_contains: Option<Vec<String>>,
    /// Records that must be among the additional records.
    pub additional_contains: Option<Vec<String>>,
    /// Exact authority set.
    pub authority: Option<Vec<String>>,
    /// Exact additional set (OPT excluded).
    pub additional: Option<Vec<String>>,
    /// Number of answers.
    pub answer_count: Option<usize>,
    /// Upper bound on every answer and authority TTL.
    pub ttl_max: Option<u32>,
    /// Lower bound on every answer and authority TTL.
    pub ttl_min: Option<u32>,
    /// Exact flag set.
    pub flags: Option<Vec<String>>,
    /// Flags that must be set.
    pub flags_include: Option<Vec<String>>,
    /// Flags that must be clear.
    pub flags_exclude: Option<Vec<String>>,
    /// Echoed question, byte-exact.
    pub question: Option<String>,
    /// Reply carries OPT.
    pub edns: Option<bool>,
    /// Header opcode name (`QUERY`, `STATUS`, ... or a number).
    pub opcode: Option<String>,
    /// The UDP size the reply's OPT advertises.
    pub edns_udp_size: Option<u16>,
    /// The option codes in the reply's OPT, in order (e.g. `[10, 3]`); `[]` for none.
    pub edns_options: Option<Vec<u16>>,
    /// No reply within 2 s.
    pub timeout: Option<bool>,
    /// Queries each fixture has seen.
    pub upstream_queries: Option<BTreeMap<String, Count>>,
    /// Of those, over TCP.
    pub upstream_tcp: Option<BTreeMap<String, Count>>,
    /// HTTP status.
    pub status: Option<u16>,
    /// HTTP body, exact.
    pub body: Option<String>,
    /// HTTP body substrings.
    pub body_contains: Option<Vec<String>>,
    /// Prometheus sums with comparisons.
    pub metric: Option<BTreeMap<String, Count>>,
}

/// A counting expectation: a number (exact) or a comparison string such as `">=1"`, `"<3"`,
/// `"==2"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Count {
    /// Exactly this many.
    Exactly(f64),
    /// A comparison: an operator (`==`, `=`, `>=`, `<=`, `>`, `<`) and a number.
    Comparison(String),
}

impl Count {
    /// The expectation as a comparison string.
    pub fn spec(&self) -> String {
        match self {
            Count::Exactly(n) => format!("=={n}"),
            Count::Comparison(s) => s.clone(),
        }
    }

    /// Whether `value` meets it (an error for a malformed comparison).
    pub fn holds(&self, value: f64) -> Result<bool, String> {
        crate::http::compare(value, &self.spec())
    }
}

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Count::Exactly(n) => write!(f, "{n}"),
            Count::Comparison(s) => f.write_str(s),
        }
    }
}

impl Expect {
    /// True when a DNS-reply expectation is present.
    pub fn has_dns(&self) -> bool {
        self.rcode.is_some()
            || self.opcode.is_some()
            || self.edns_udp_size.is_some()
            || self.edns_options.is_some()
            || self.answer.is_some()
            || self.answer_contains.is_some()
            || self.additional_contains.is_some()
            || self.authority.is_some()
            || self.additional.is_some()
            || self.answer_count.is_some()
            || self.ttl_max.is_some()
            || self.ttl_min.is_some()
            || self.flags.is_some()
            || self.flags_include.is_some()
            || self.flags_exclude.is_some()
            || self.question.is_some()
            || self.edns.is_some()
            || self.timeout.is_some()
    }

    /// True when an HTTP expectation is present.
    pub fn has_http(&self) -> bool {
        self.status.is_some() || self.body.is_some() || self.body_contains.is_some() || self.metric.is_some()
    }
}

impl Step {
    /// A short label of the step's action for reports.
    pub fn label(&self) -> String {
        if let Some(q) = &self.query {
            let proto = self.proto.as_deref().unwrap_or("udp");
            return format!("query {q} ({proto})");
        }
        if let Some(q) = &self.raw_query {
            let proto = self.proto.as_deref().unwrap_or("udp");
            return format!("raw_query {q} ({proto})");
        }
        if let Some(u) = &self.http_get {
            return format!("http_get {u}");
        }
        if self.write_corefile.is_some() {
            return "write_corefile".into();
        }
        if let Some(u) = &self.upstream_set {
            return format!("upstream_set {}", u.name);
        }
        if let Some(s) = &self.signal {
            return format!("signal {s}");
        }
        if let Some(ms) = self.sleep_ms {
            return format!("sleep_ms {ms}");
        }
        "step".into()
    }

    /// Number of actions (must be exactly one).
    pub fn action_count(&self) -> usize {
        [
            self.query.is_some(),
            self.raw_query.is_some(),
            self.http_get.is_some(),
            self.write_corefile.is_some(),
            self.upstream_set.is_some(),
            self.signal.is_some(),
            self.sleep_ms.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count()
    }
}

/// Values for the placeholders of one run of a case.
#[derive(Debug, Clone, Default)]
pub struct Placeholders {
    /// `{{port}}`.
    pub port: u16,
    /// `{{http_port}}`.
    pub http_port: u16,
    /// `{{http_port2}}`.
    pub http_port2: u16,
    /// `{{metrics_port}}`.
    pub metrics_port: u16,
    /// `{{dir}}`.
    pub dir: String,
    /// Fixture name → `127.0.0.1:PORT`.
    pub upstreams: BTreeMap<String, String>,
}

impl Placeholders {
    /// Replaces every known placeholder in `text`; unknown `{{...}}` (e.g. Go templates) stay.
    pub fn apply(&self, text: &str) -> String {
        let mut out = text
            .replace("{{port}}", &self.port.to_string())
            .replace("{{http_port}}", &self.http_port.to_string())
            .replace("{{http_port2}}", &self.http_port2.to_string())
            .replace("{{metrics_port}}", &self.metrics_port.to_string())
            .replace("{{dir}}", &self.dir);
        for (name, addr) in &self.upstreams {
            out = out.replace(&format!("{{{{upstream.{name}}}}}"), addr);
        }
        if let Some(main) = self.upstreams.get("main") {
            out = out.replace("{{upstream}}", main);
        }
        out
    }
}

/// Reads a case file without substituting anything.
pub fn load(path: &Path) -> Result<Case, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses case text and checks the structural rules.
pub fn parse(text: &str) -> Result<Case, String> {
    let case: Case = toml::from_str(text).map_err(|e| e.to_string())?;
    validate(case)
}

fn validate(case: Case) -> Result<Case, String> {
    if case.start != "ok" && case.start != "error" {
        return Err(format!("start must be \"ok\" or \"error\", not {:?}", case.start));
    }
    for (i, s) in case.step.iter().enumerate() {
        if s.action_count() != 1 && !(s.action_count() == 0 && s.wait_ms.is_some()) {
            return Err(format!("step {} must have exactly one action", i + 1));
        }
    }
    Ok(case)
}

/// Substitutes placeholders into every string of the case.
pub fn substitute(text: &str, ph: &Placeholders) -> Result<Case, String> {
    let mut value: toml::Value = toml::from_str(text).map_err(|e| e.to_string())?;
    walk(&mut value, ph);
    let case: Case = value.try_into().map_err(|e: toml::de::Error| e.to_string())?;
    validate(case)
}

fn walk(v: &mut toml::Value, ph: &Placeholders) {
    match v {
        toml::Value::String(s) => *s = ph.apply(s),
        toml::Value::Array(a) => a.iter_mut().for_each(|x| walk(x, ph)),
        toml::Value::Table(t) => t.iter_mut().for_each(|(_, x)| walk(x, ph)),
        _ => {}
    }
}

/// Loads a case and checks everything that can be checked without running it: structure, record
/// texts in expectations, fixture zones, rcode names and query strings.
pub fn validate_file(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut ph = Placeholders {
        port: 1,
        http_port: 2,
        http_port2: 3,
        metrics_port: 4,
        dir: "/tmp/x".into(),
        ..Default::default()
    };
    let raw = parse(&text)?;
    for u in &raw.upstream {
        ph.upstreams.insert(u.name.clone(), "127.0.0.1:5".into());
        crate::zone::ZoneSet::parse(&u.zone).map_err(|e| format!("upstream {}: {e}", u.name))?;
        if !u.rcode.is_empty() {
            crate::records::parse_rcode(&u.rcode)?;
        }
    }
    let case = substitute(&text, &ph)?;
    if case.start == "error" && !case.step.is_empty() {
        return Err("a start = \"error\" case has no steps".into());
    }
    for (i, s) in case.step.iter().enumerate() {
        let e = &s.expect;
        let lists = [&e.answer, &e.answer_contains, &e.additional_contains, &e.authority, &e.additional];
        for list in lists.into_iter().flatten() {
            crate::records::parse_all(list).map_err(|err| format!("step {}: {err}", i + 1))?;
        }
        if let Some(q) = &s.query {
            crate::client::QuerySpec::parse(q, s.case_as_sent.as_deref().unwrap_or(""))
                .map_err(|err| format!("step {}: {err}", i + 1))?;
        }
        for name in e.upstream_queries.iter().chain(e.upstream_tcp.iter()).flat_map(|m| m.keys()) {
            if !ph.upstreams.contains_key(name) {
                return Err(format!("step {}: no upstream named {name}", i + 1));
            }
        }
        if (e.has_http() && s.http_get.is_none()) || (e.has_dns() && s.query.is_none() && s.raw_query.is_none()) {
            return Err(format!("step {}: expectations do not fit the action", i + 1));
        }
    }
    Ok(())
}

/// Expands files and directories into a sorted list of `.toml` case files.
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut stack = vec![p.clone()];
            while let Some(d) = stack.pop() {
                let entries = std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
                for e in entries.flatten() {
                    let path = e.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if path.extension().is_some_and(|x| x == "toml") {
                        out.push(path);
                    }
                }
            }
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(format!("{}: no such file or directory", p.display()));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {

    #[test]
    fn counting_expectations_take_numbers_or_comparisons() {
        let e: Expect = toml::from_str(
            "upstream_queries = { main = 1, other = \">=2\" }\nmetric = { \"coredns_cache_hits_total\" = \">0\", x = 3 }",
        )
        .expect("parses");
        let q = e.upstream_queries.expect("queries");
        assert_eq!(q["main"], Count::Exactly(1.0));
        assert_eq!((q["main"].holds(1.0), q["main"].holds(2.0)), (Ok(true), Ok(false)));
        assert_eq!((q["other"].holds(2.0), q["other"].holds(1.0)), (Ok(true), Ok(false)));
        let m = e.metric.expect("metric");
        assert_eq!(m["x"].holds(3.0), Ok(true));
        assert_eq!(m["coredns_cache_hits_total"].holds(0.0), Ok(false));
        assert!(Count::Comparison("about 3".into()).holds(3.0).is_err());
    }

    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn placeholders_replace_known_names_only() {
        let mut ph = Placeholders { port: 5300, dir: "/tmp/x".into(), ..Default::default() };
        ph.upstreams.insert("main".into(), "127.0.0.1:1".into());
        ph.upstreams.insert("b".into(), "127.0.0.1:2".into());
        assert_eq!(
            ph.apply(".:{{port}} {{upstream}} {{upstream.b}} {{ .Name }} {{dir}}/f {{nope}}"),
            ".:5300 127.0.0.1:1 127.0.0.1:2 {{ .Name }} /tmp/x/f {{nope}}"
        );
    }

    #[test]
    fn steps_need_one_action() {
        let bad = "corefile = \"x\"\n[[step]]\nquery = \"a. A\"\nsleep_ms = 1\n";
        assert!(parse(bad).is_err());
        let ok = "corefile = \"x\"\n[[step]]\nquery = \"a. A\"\nexpect.rcode = \"NOERROR\"\n[[step]]\nsleep_ms = 1\n";
        assert_eq!(parse(ok).map(|c| c.step.len()), Ok(2));
        assert!(parse("corefile = \"x\"\nbogus = 1\n").is_err());
    }
}
