//! Runs one case: fixtures, scratch dir, Corefile, server process, then the steps.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::case::{self, Case, Placeholders, Step, UpstreamSpec};
use crate::check::{check_dns, check_http, check_upstreams, DnsOutcome, Mismatch};
use crate::client::{exchange, exchange_raw, parse_hex_query, QuerySpec};
use crate::configmap::ConfigMapDir;
use crate::fixture::{Behaviour, Fixture};
use crate::ports::PortPicker;
use crate::records::{parse_rcode, render_message};
use crate::server::{render_command, ServerProcess};
use crate::zone::ZoneSet;

/// How to run cases.
#[derive(Debug, Clone)]
pub struct Options {
    /// Server command template with `{corefile}` and `{port}`.
    pub server_cmd: String,
    /// Reference server command for differential mode.
    pub reference_cmd: Option<String>,
    /// Do not check `start_error_contains`.
    pub lenient_errors: bool,
    /// TTL tolerance (seconds) in differential mode.
    pub ttl_tolerance: u32,
    /// How long to wait for the server to answer the readiness probe.
    pub ready_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            server_cmd: String::new(),
            reference_cmd: None,
            lenient_errors: false,
            ttl_tolerance: 3,
            ready_timeout: Duration::from_secs(20),
        }
    }
}

/// A step (0 = start) whose expectations did not hold.
#[derive(Debug, Clone, Serialize)]
pub struct StepFailure {
    /// 1-based step number; 0 for start-up.
    pub step: usize,
    /// The step's action.
    pub label: String,
    /// What differed.
    pub mismatches: Vec<Mismatch>,
    /// Extra context (the full reply, what the fixtures saw).
    pub note: String,
}

/// The result of one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// `area/name`.
    pub name: String,
    /// The case file.
    pub path: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// True when every step held.
    pub passed: bool,
    /// The failed steps.
    pub failures: Vec<StepFailure>,
    /// Wall time.
    pub duration_ms: u64,
    /// The server's output (only kept for failed cases).
    pub server_output: String,
}

/// `area/name` from a case path.
pub fn case_name(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    match path.parent().and_then(|p| p.file_name()) {
        Some(area) => format!("{}/{stem}", area.to_string_lossy()),
        None => stem,
    }
}

/// Runs the case at `path`.
pub fn run_case(path: &Path, opts: &Options) -> CaseResult {
    let started = Instant::now();
    let name = case_name(path);
    let mut result = CaseResult {
        name,
        path: path.display().to_string(),
        tags: Vec::new(),
        passed: false,
        failures: Vec::new(),
        duration_ms: 0,
        server_output: String::new(),
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            result.failures.push(fail(0, "load", Mismatch::new("case", "readable file", e.to_string())));
            return result;
        }
    };
    run_text(&text, opts, &mut result);
    result.passed = result.failures.is_empty();
    result.duration_ms = started.elapsed().as_millis() as u64;
    result
}

/// Runs case text (already read) into `result`.
pub fn run_text(text: &str, opts: &Options, result: &mut CaseResult) {
    let raw = match case::parse(text) {
        Ok(c) => c,
        Err(e) => {
            result.failures.push(fail(0, "load", Mismatch::new("case", "a valid case", e)));
            return;
        }
    };
    result.tags = raw.tags.clone();
    let mut instances = Vec::new();
    let mut cmds = vec![("server", opts.server_cmd.clone())];
    if let Some(r) = &opts.reference_cmd {
        cmds.push(("reference", r.clone()));
    }
    for (label, cmd) in cmds {
        match Instance::prepare(text, &raw, label) {
            Ok(i) => instances.push((i, cmd)),
            Err(e) => {
                result.failures.push(fail(0, "prepare", Mismatch::new(label, "fixtures and files ready", e)));
                return;
            }
        }
    }
    let mut ok = true;
    for (idx, (inst, cmd)) in instances.iter_mut().enumerate() {
        let check_text = idx == 0 && !opts.lenient_errors;
        if let Some(f) = inst.start(cmd, opts, check_text) {
            result.failures.push(f);
            ok = false;
        }
    }
    let mut insts: Vec<Instance> = instances.into_iter().map(|(i, _)| i).collect();
    if ok && raw.start == "ok" {
        for (n, step) in insts[0].case.step.clone().iter().enumerate() {
            if let Some(f) = run_step(n + 1, step, &mut insts, opts) {
                result.failures.push(f);
            }
        }
    }
    if !result.failures.is_empty() {
        result.server_output = insts
            .iter_mut()
            .map(|i| {
                let out = i.output();
                format!("--- {} output ---\n{out}", i.label)
            })
            .collect::<Vec<_>>()
            .join("\n");
    }
    for mut i in insts {
        i.stop();
    }
}

fn fail(step: usize, label: &str, m: Mismatch) -> StepFailure {
    StepFailure { step, label: label.into(), mismatches: vec![m], note: String::new() }
}

/// One server under test with its own fixtures, scratch dir and ports.
pub struct Instance {
    label: String,
    /// The case with placeholders filled.
    pub case: Case,
    dir: ScratchDir,
    configmap: ConfigMapDir,
    fixtures: BTreeMap<String, Fixture>,
    server: Option<ServerProcess>,
    port: u16,
}

static SCRATCH: AtomicUsize = AtomicUsize::new(0);

struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(label: &str) -> std::io::Result<Self> {
        let n = SCRATCH.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("nodecache-conformance-{}-{n}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn behaviour(spec: &UpstreamSpec) -> Result<Behaviour, String> {
    Ok(Behaviour {
        zones: ZoneSet::parse(&spec.zone).map_err(|e| format!("upstream {}: {e}", spec.name))?,
        delay_ms: spec.delay_ms,
        rcode: if spec.rcode.is_empty() { None } else { Some(parse_rcode(&spec.rcode)?) },
        drop: spec.drop,
        truncate_udp: spec.truncate_udp,
    })
}

impl Instance {
    /// Starts the fixtures, picks ports, fills placeholders, writes files and the Corefile.
    pub fn prepare(text: &str, raw: &Case, label: &str) -> Result<Self, String> {
        let dir = ScratchDir::new(label).map_err(|e| format!("scratch dir: {e}"))?;
        let mut fixtures = BTreeMap::new();
        let mut ph = Placeholders { dir: dir.0.display().to_string(), ..Default::default() };
        for spec in &raw.upstream {
            if fixtures.contains_key(&spec.name) {
                return Err(format!("upstream {} defined twice", spec.name));
            }
            let f = Fixture::start(behaviour(spec)?, spec.tcp).map_err(|e| format!("fixture {}: {e}", spec.name))?;
            ph.upstreams.insert(spec.name.clone(), f.addr().to_string());
            fixtures.insert(spec.name.clone(), f);
        }
        let mut picker = PortPicker;
        ph.port = picker.dns()?;
        ph.http_port = picker.tcp()?;
        ph.http_port2 = picker.tcp()?;
        ph.metrics_port = picker.tcp()?;
        let case = case::substitute(text, &ph)?;
        for (name, content) in &case.files {
            let path = dir.0.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            std::fs::write(&path, content).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        let configmap =
            ConfigMapDir::create(&dir.0, "Corefile", &case.corefile).map_err(|e| format!("write Corefile: {e}"))?;
        Ok(Self { label: label.to_string(), case, dir, configmap, fixtures, server: None, port: ph.port })
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Starts the server and checks the `start` expectation. Returns a failure, if any.
    pub fn start(&mut self, cmd: &str, opts: &Options, check_text: bool) -> Option<StepFailure> {
        let command = render_command(cmd, &self.configmap.path().display().to_string(), self.port);
        let mut server = match ServerProcess::spawn(&command, &self.case.env, &self.dir.0) {
            Ok(s) => s,
            Err(e) => return Some(fail(0, "start", Mismatch::new(self.label.clone(), "server process", e))),
        };
        let result = if self.case.start == "error" {
            match server.wait_exit(Duration::from_secs(15)) {
                None => Some(fail(
                    0,
                    "start",
                    Mismatch::new("start", "the server refuses this Corefile and exits", "still running after 15s"),
                )),
                Some(st) if st.success() => {
                    Some(fail(0, "start", Mismatch::new("start", "exit with an error status", st.to_string())))
                }
                Some(_) => {
                    let out = server.output();
                    let want = &self.case.start_error_contains;
                    if check_text && !want.is_empty() && !out.contains(want.as_str()) {
                        Some(fail(0, "start", Mismatch::new("start_error_contains", want.clone(), out)))
                    } else {
                        None
                    }
                }
            }
        } else {
            match server.wait_ready(self.addr(), opts.ready_timeout) {
                Ok(()) => {
                    self.fixtures.values().for_each(|f| f.reset_counters());
                    None
                }
                Err(e) => Some(fail(0, "start", Mismatch::new(format!("start ({})", self.label), "ready", e))),
            }
        };
        self.server = Some(server);
        result
    }

    fn output(&mut self) -> String {
        self.server.as_mut().map(|s| s.output()).unwrap_or_default()
    }

    fn counts(&self) -> BTreeMap<String, (usize, usize)> {
        self.fixtures.iter().map(|(n, f)| (n.clone(), (f.queries(), f.tcp_queries()))).collect()
    }

    fn seen_note(&self) -> String {
        self.fixtures
            .iter()
            .map(|(n, f)| {
                let seen: Vec<String> =
                    f.seen().iter().map(|s| format!("{}/{}", s.question, if s.tcp { "tcp" } else { "udp" })).collect();
                format!("upstream {n} saw [{}]", seen.join(", "))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn act(&mut self, step: &Step) -> Result<(), String> {
        if let Some(text) = &step.write_corefile {
            self.configmap.update(text).map_err(|e| format!("write_corefile: {e}"))?;
        }
        if let Some(sig) = &step.signal {
            match &self.server {
                Some(s) => s.signal(sig)?,
                None => return Err("no server to signal".into()),
            }
        }
        if let Some(set) = &step.upstream_set {
            let f = self
                .fixtures
                .get(&set.name)
                .ok_or_else(|| format!("upstream_set: no upstream named {:?}", set.name))?;
            let zones = match &set.zone {
                Some(z) => Some(ZoneSet::parse(z)?),
                None => None,
            };
            let rcode = match set.rcode.as_deref() {
                Some("") => Some(None),
                Some(r) => Some(Some(parse_rcode(r)?)),
                None => None,
            };
            f.update(|b| {
                if let Some(z) = zones {
                    b.zones = z;
                }
                if let Some(d) = set.delay_ms {
                    b.delay_ms = d;
                }
                if let Some(r) = rcode {
                    b.rcode = r;
                }
                if let Some(d) = set.drop {
                    b.drop = d;
                }
                if let Some(t) = set.truncate_udp {
                    b.truncate_udp = t;
                }
            });
        }
        Ok(())
    }

    /// Kills the server; fixtures and the scratch dir go with `self`.
    pub fn stop(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.kill();
        }
    }
}

fn query_spec(step: &Step, q: &str) -> Result<QuerySpec, String> {
    let mut spec = QuerySpec::parse(q, step.case_as_sent.as_deref().unwrap_or(""))?;
    spec.tcp = match step.proto.as_deref().unwrap_or("udp") {
        "udp" => false,
        "tcp" => true,
        other => return Err(format!("proto must be udp or tcp, not {other:?}")),
    };
    spec.rd = step.rd.unwrap_or(true);
    spec.cd = step.cd.unwrap_or(false);
    spec.dnssec_ok = step.dnssec_ok.unwrap_or(false);
    let bufsize = step.bufsize.unwrap_or(0);
    spec.edns = if bufsize > 0 {
        Some(bufsize)
    } else if step.edns.unwrap_or(false) || spec.dnssec_ok {
        Some(1232)
    } else {
        None
    };
    Ok(spec)
}

fn outcome(result: Result<Option<crate::client::Reply>, String>) -> DnsOutcome {
    match result {
        Ok(Some(r)) => DnsOutcome::Reply(r),
        Ok(None) => DnsOutcome::NoReply,
        Err(err) => DnsOutcome::Error(err),
    }
}

fn render_outcome(o: &DnsOutcome) -> String {
    match o {
        DnsOutcome::Reply(r) => render_message(&r.msg),
        DnsOutcome::NoReply => "no reply".into(),
        DnsOutcome::Error(err) => format!("error: {err}"),
    }
}

fn run_step(n: usize, step: &Step, insts: &mut [Instance], opts: &Options) -> Option<StepFailure> {
    let label = step.label();
    if let Some(ms) = step.sleep_ms {
        thread::sleep(Duration::from_millis(ms));
    }
    for inst in insts.iter_mut() {
        let own = inst.case.step.get(n - 1).cloned().unwrap_or_else(|| step.clone());
        if let Err(e) = inst.act(&own) {
            return Some(fail(n, &label, Mismatch::new("action", "done", e)));
        }
    }
    let e = &step.expect;
    let has_expect = e.has_dns() || e.has_http() || e.upstream_queries.is_some() || e.upstream_tcp.is_some();
    let wait = Duration::from_millis(step.wait_ms.unwrap_or(0));
    if step.query.is_none() && step.raw_query.is_none() && step.http_get.is_none() && !has_expect {
        thread::sleep(wait);
        return None;
    }
    let deadline = Instant::now() + wait;
    loop {
        let (mismatches, note) = evaluate(step, insts, opts);
        if mismatches.is_empty() {
            return None;
        }
        if Instant::now() >= deadline {
            return Some(StepFailure { step: n, label, mismatches, note });
        }
        thread::sleep(Duration::from_millis(200));
    }
}

fn evaluate(step: &Step, insts: &mut [Instance], opts: &Options) -> (Vec<Mismatch>, String) {
    let e = &step.expect;
    let mut mismatches = Vec::new();
    let mut note = Vec::new();
    if let Some(q) = &step.query {
        let spec = match query_spec(step, q) {
            Ok(s) => s,
            Err(err) => return (vec![Mismatch::new("query", "a valid query", err)], String::new()),
        };
        let wait = if e.timeout == Some(true) { Duration::from_secs(2) } else { Duration::from_secs(10) };
        let outcomes: Vec<DnsOutcome> = insts.iter().map(|i| outcome(exchange(i.addr(), &spec, wait))).collect();
        mismatches.extend(check_dns(e, &outcomes[0]));
        if let Some(reference) = outcomes.get(1) {
            mismatches.extend(crate::diff::compare(&outcomes[0], reference, opts.ttl_tolerance));
        }
        note.extend(insts.iter().zip(&outcomes).map(|(i, o)| format!("{} reply: {}", i.label, render_outcome(o))));
    } else if let Some(hex) = &step.raw_query {
        let wire = match parse_hex_query(hex) {
            Ok(w) => w,
            Err(err) => return (vec![Mismatch::new("raw_query", "hex of a DNS message", err)], String::new()),
        };
        let tcp = step.proto.as_deref() == Some("tcp");
        let wait = if e.timeout == Some(true) { Duration::from_secs(2) } else { Duration::from_secs(10) };
        let outcomes: Vec<DnsOutcome> =
            insts.iter().map(|i| outcome(exchange_raw(i.addr(), &wire, tcp, wait))).collect();
        mismatches.extend(check_dns(e, &outcomes[0]));
        if let Some(reference) = outcomes.get(1) {
            mismatches.extend(crate::diff::compare(&outcomes[0], reference, opts.ttl_tolerance));
        }
        note.extend(insts.iter().zip(&outcomes).map(|(i, o)| format!("{} reply: {}", i.label, render_outcome(o))));
    } else if let Some(url) = &step.http_get {
        let got = crate::http::get(url, Duration::from_secs(5));
        mismatches.extend(check_http(e, &got));
    }
    mismatches.extend(check_upstreams(e, &insts[0].counts()));
    note.push(insts[0].seen_note());
    (mismatches, note.join("\n"))
}
