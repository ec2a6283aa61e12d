//! `conformance fuzz`: generative differential testing of a server against a reference.
//!
//! One authoritative fixture serves a rich zone (CNAME chains, a dangling CNAME, a large RRset,
//! a wildcard, a delegation with glue, a reverse zone; queries also ask names with escapes). For each Corefile
//! *shape*, the server under test and the reference are started with the same Corefile forwarding
//! to that fixture. Seeded random queries (valid and malformed; names, types, classes, flags,
//! EDNS options, opcodes; UDP and TCP) are sent to both, each twice so that both the cache-miss
//! and the cache-hit path answer. Replies are compared parsed (IDs ignored, TTLs within a
//! tolerance, record order ignored); differences are grouped into classes, and each class is
//! printed with its smallest example and a command that replays exactly that query.
//!
//! Query `i` of shape `s` depends only on (`seed`, `s`, `i`), so `--only i` replays it alone.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::Message;

use crate::check::{DnsOutcome, Mismatch};
use crate::client::{self, Reply};
use crate::diff;
use crate::fixture::{Behaviour, Fixture};
use crate::ports::PortPicker;
use crate::server::{render_command, ServerProcess};
use crate::zone::ZoneSet;

/// The zone data the shared upstream fixture serves.
pub const ZONE: &str = r#"$ORIGIN example.org.
$TTL 300
@ IN SOA ns.example.org. admin.example.org. 1 7200 3600 1209600 60
@ IN NS ns.example.org.
ns IN A 192.0.2.53
www IN A 192.0.2.1
www IN AAAA 2001:db8::1
Mixed IN A 192.0.2.3
mail IN MX 10 www.example.org.
txt IN TXT "v=spf1 -all" "second string"
long IN TXT "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
_sip._udp IN SRV 10 60 5060 www.example.org.
c1 IN CNAME c2.example.org.
c2 IN CNAME c3.example.org.
c3 IN CNAME www.example.org.
dangling IN CNAME nowhere.example.org.
outside IN CNAME www.example.net.
*.wild IN A 192.0.2.77
sub IN NS ns.sub.example.org.
ns.sub IN A 192.0.2.54
"#;

/// Big RRset and reverse zone, appended to [`ZONE`] by [`zone_text`].
fn extra_zone() -> String {
    let mut z = String::new();
    for i in 1..=40 {
        let _ = writeln!(z, "big.example.org. 300 IN A 198.51.100.{i}");
    }
    z.push_str("$ORIGIN 2.0.192.in-addr.arpa.\n$TTL 300\n");
    z.push_str("@ IN SOA ns.example.org. admin.example.org. 1 7200 3600 1209600 60\n@ IN NS ns.example.org.\n");
    z.push_str("1 IN PTR www.example.org.\n53 IN PTR ns.example.org.\n");
    z
}

/// The whole fixture zone text.
pub fn zone_text() -> String {
    format!("{ZONE}{}", extra_zone())
}

/// The Corefile shapes: name and text, `{port}` and `{upstream}` to be filled in.
pub fn shapes() -> Vec<(&'static str, &'static str)> {
    vec![
        ("forward", ".:{port} {\n    cache 30\n    forward . {upstream}\n}\n"),
        (
            "nodelocal",
            "example.org:{port} {\n    errors\n    cache {\n        success 9984 30\n        denial 9984 5\n    }\n    \
             reload\n    loop\n    bind 127.0.0.1\n    forward . {upstream} {\n        force_tcp\n    }\n}\n\
             .:{port} {\n    errors\n    cache 30\n    reload\n    loop\n    bind 127.0.0.1\n    forward . {upstream}\n}\n",
        ),
        (
            "plugins",
            ".:{port} {\n    rewrite name exact rw.example.org www.example.org\n    hosts {\n        192.0.2.10 hosts-one.example.org\n        fallthrough\n    }\n    \
             template IN A tpl.example.org {\n        answer \"{{ .Name }} 60 IN A 192.0.2.99\"\n    }\n    \
             minimal\n    any\n    loadbalance\n    cache 30\n    forward . {upstream}\n}\n",
        ),
        (
            "zones",
            "example.org:{port} {\n    cache 30\n    forward . {upstream}\n}\n\
             in-addr.arpa:{port} {\n    forward . {upstream}\n}\n\
             .:{port} {\n    template ANY ANY {\n        rcode NXDOMAIN\n    }\n}\n",
        ),
    ]
}

/// What to run.
#[derive(Debug, Clone)]
pub struct FuzzOptions {
    /// Command template of the server under test (`{corefile}`, `{port}`).
    pub ours: String,
    /// Command template of the reference server. Besides `{corefile}` and `{port}` it may use
    /// `{upstream_ip}` and `{upstream_port}` (the fixture), for servers configured otherwise.
    pub reference: String,
    /// The random seed.
    pub seed: u64,
    /// Queries per shape (each sent twice).
    pub queries: usize,
    /// Shapes to run (empty: all).
    pub shapes: Vec<String>,
    /// Substrings of class keys that are known, documented differences.
    pub allow: Vec<String>,
    /// Replay only this query index.
    pub only: Option<usize>,
    /// TTL difference tolerated, in seconds.
    pub ttl_tolerance: u32,
}

/// One class of differences.
#[derive(Debug, Clone)]
pub struct Class {
    /// The key: shape, transport, the fields that differ, and the query's kind.
    pub key: String,
    /// Queries in the class.
    pub count: usize,
    /// Index of the smallest example (fewest query bytes).
    pub example: usize,
    /// The example query's bytes.
    pub example_wire: Vec<u8>,
    /// What the example query was.
    pub example_label: String,
    /// The example's mismatches.
    pub mismatches: Vec<Mismatch>,
}

/// The result of a fuzz run.
#[derive(Debug, Default)]
pub struct FuzzReport {
    /// Queries compared (each twice).
    pub compared: usize,
    /// Queries whose difference matched an `--allow` pattern.
    pub allowed: usize,
    /// Classes of differences, by key.
    pub classes: BTreeMap<String, Class>,
}

impl FuzzReport {
    /// Queries that differed outside the allowed classes.
    pub fn differing(&self) -> usize {
        self.classes.values().map(|c| c.count).sum()
    }
}

/// A small deterministic generator (xorshift64*), so that a seed names the same queries on
/// every machine and in every version of this crate's dependencies.
pub struct Rng(u64);

impl Rng {
    /// A generator for query `index` of shape number `shape` under `seed`.
    pub fn for_query(seed: u64, shape: usize, index: usize) -> Rng {
        let mut r =
            Rng(seed ^ 0x9e37_79b9_7f4a_7c15 ^ ((shape as u64) << 48) ^ (index as u64).wrapping_mul(0x2545_f491));
        for _ in 0..4 {
            r.next_u64();
        }
        r
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// One generated query.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Query bytes (ID 0; the sender sets its own).
    pub wire: Vec<u8>,
    /// Over TCP.
    pub tcp: bool,
    /// A short description, for classes and examples.
    pub label: String,
    /// The kind used in class keys (type or malformation).
    pub kind: String,
}

const NAMES: &[&str] = &[
    "www.example.org.",
    "WwW.ExAmPlE.oRg.",
    "mixed.example.org.",
    "mail.example.org.",
    "txt.example.org.",
    "long.example.org.",
    "_sip._udp.example.org.",
    "c1.example.org.",
    "c3.example.org.",
    "dangling.example.org.",
    "outside.example.org.",
    "a.wild.example.org.",
    "x.y.wild.example.org.",
    "sub.example.org.",
    "host.sub.example.org.",
    "big.example.org.",
    "missing.example.org.",
    "example.org.",
    "sp\\032ace.example.org.",
    "dot\\.ted.example.org.",
    "1.2.0.192.in-addr.arpa.",
    "53.2.0.192.in-addr.arpa.",
    "9.2.0.192.in-addr.arpa.",
    "rw.example.org.",
    "hosts-one.example.org.",
    "tpl.example.org.",
    "other.test.",
    ".",
];

const TYPES: &[(u16, &str)] = &[
    (1, "A"),
    (1, "A"),
    (28, "AAAA"),
    (5, "CNAME"),
    (16, "TXT"),
    (15, "MX"),
    (33, "SRV"),
    (2, "NS"),
    (6, "SOA"),
    (12, "PTR"),
    (255, "ANY"),
    (13, "HINFO"),
    (43, "DS"),
    (48, "DNSKEY"),
    (46, "RRSIG"),
    (10, "NULL"),
    (99, "SPF"),
    (252, "AXFR"),
    (251, "IXFR"),
    (65280, "TYPE65280"),
];

/// Encodes a presentation-format name (with `\DDD` and `\X` escapes) into wire labels.
fn encode_name(name: &str, out: &mut Vec<u8>) {
    let bytes = name.as_bytes();
    let mut label: Vec<u8> = Vec::new();
    let mut i = 0;
    let flush = |label: &mut Vec<u8>, out: &mut Vec<u8>| {
        if !label.is_empty() {
            out.push(label.len().min(63) as u8);
            out.extend_from_slice(&label[..label.len().min(63)]);
            label.clear();
        }
    };
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(u8::is_ascii_digit) => {
                let v = (bytes[i + 1] - b'0') as u16 * 100
                    + (bytes[i + 2] - b'0') as u16 * 10
                    + (bytes[i + 3] - b'0') as u16;
                label.push(v.min(255) as u8);
                i += 4;
            }
            b'\\' if i + 1 < bytes.len() => {
                label.push(bytes[i + 1]);
                i += 2;
            }
            b'.' => {
                flush(&mut label, out);
                i += 1;
            }
            c => {
                label.push(c);
                i += 1;
            }
        }
    }
    flush(&mut label, out);
    out.push(0);
}

/// An EDNS option: code and data.
fn edns_option(rng: &mut Rng) -> (u16, Vec<u8>, &'static str) {
    match rng.below(8) {
        0 => (3, Vec::new(), "nsid"),
        1 => (10, (0..8).map(|_| rng.below(256) as u8).collect(), "cookie"),
        2 => (10, (0..24).map(|_| rng.below(256) as u8).collect(), "cookie-server"),
        3 => (8, vec![0, 1, 24, 0, 192, 0, 2], "ecs"),
        4 => {
            // Malformed ECS: unknown family, or a prefix longer than the address bytes.
            let bad = [vec![0, 3, 8, 0, 1], vec![0, 1, 40, 0, 1, 2, 3], vec![0, 1]];
            (8, rng.pick(&bad).clone(), "ecs-bad")
        }
        5 => (12, vec![0; rng.below(16)], "padding"),
        6 => (11, Vec::new(), "keepalive"),
        _ => (65001, vec![1, 2, 3], "unknown-option"),
    }
}

/// Generates query `index` of shape number `shape`.
pub fn generate(seed: u64, shape: usize, index: usize) -> Probe {
    let mut rng = Rng::for_query(seed, shape, index);
    let name =
        if rng.chance(10) { format!("r{}.example.org.", rng.below(100_000)) } else { (*rng.pick(NAMES)).to_string() };
    let (qtype, tname) = if rng.chance(5) { (rng.below(65536) as u16, "random-type") } else { *rng.pick(TYPES) };
    let qclass: u16 = match rng.below(40) {
        0 => 3,
        1 => 255,
        2 => 254,
        3 => rng.below(65536) as u16,
        _ => 1,
    };
    let opcode: u16 = if rng.chance(4) { rng.below(16) as u16 } else { 0 };
    let mut flags: u16 = opcode << 11;
    if rng.chance(85) {
        flags |= 0x0100; // RD
    }
    if rng.chance(10) {
        flags |= 0x0010; // CD
    }
    if rng.chance(10) {
        flags |= 0x0020; // AD
    }
    if rng.chance(3) {
        flags |= 0x0040; // Z
    }
    if rng.chance(3) {
        flags |= 0x0400; // AA
    }
    let mut label = format!("{name} {tname} class {qclass} opcode {opcode} flags {flags:#06x}");
    let mut kind = tname.to_string();
    let mut wire = vec![0, 0];
    wire.extend_from_slice(&flags.to_be_bytes());
    wire.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    encode_name(&name, &mut wire);
    wire.extend_from_slice(&qtype.to_be_bytes());
    wire.extend_from_slice(&qclass.to_be_bytes());
    if rng.chance(70) {
        let size = *rng.pick(&[0u16, 100, 511, 512, 1232, 1232, 4096, 65535]);
        let version = if rng.chance(5) { 1u8 } else { 0 };
        let mut ttl_flags: u16 = if rng.chance(30) { 0x8000 } else { 0 };
        if rng.chance(5) {
            ttl_flags |= rng.below(0x8000) as u16;
        }
        let mut rdata = Vec::new();
        let mut opts = Vec::new();
        for _ in 0..rng.below(3) {
            let (code, data, what) = edns_option(&mut rng);
            rdata.extend_from_slice(&code.to_be_bytes());
            rdata.extend_from_slice(&(data.len() as u16).to_be_bytes());
            rdata.extend_from_slice(&data);
            opts.push(what);
        }
        wire.push(0);
        wire.extend_from_slice(&41u16.to_be_bytes());
        wire.extend_from_slice(&size.to_be_bytes());
        wire.extend_from_slice(&[0, version]);
        wire.extend_from_slice(&ttl_flags.to_be_bytes());
        wire.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        wire.extend_from_slice(&rdata);
        wire[11] = 1;
        let _ =
            write!(label, " edns size {size} version {version} flags {ttl_flags:#06x} options [{}]", opts.join(","));
        if version != 0 {
            kind = "edns-version".to_string();
        } else if let Some(o) = opts.iter().find(|o| o.ends_with("bad")) {
            kind = (*o).to_string();
        }
    }
    if rng.chance(5) {
        let what = match rng.below(6) {
            0 => {
                let cut = 2 + rng.below(wire.len().saturating_sub(2).max(1));
                wire.truncate(cut);
                "truncated"
            }
            1 => {
                let at = 2 + rng.below(wire.len().saturating_sub(2).max(1));
                if let Some(b) = wire.get_mut(at) {
                    *b ^= 1 << rng.below(8);
                }
                "bit-flip"
            }
            2 => {
                wire[5] = *rng.pick(&[0u8, 2, 5]);
                "qdcount"
            }
            3 => {
                wire[2] |= 0x80;
                "qr-set"
            }
            4 => {
                wire.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
                "trailing"
            }
            _ => {
                // A question name that points at itself.
                wire.truncate(12);
                wire.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
                "pointer-loop"
            }
        };
        let _ = write!(label, " malformed {what}");
        kind = format!("malformed-{what}");
    }
    let tcp = rng.chance(25);
    Probe { wire, tcp, label, kind }
}

/// Sends the probe under ID `id` and returns the reply bytes, None without a reply in `wait`.
fn send(server: SocketAddr, probe: &Probe, id: u16, wait: Duration) -> Option<Vec<u8>> {
    let mut wire = probe.wire.clone();
    if wire.len() >= 2 {
        wire[..2].copy_from_slice(&id.to_be_bytes());
    }
    let raw = if probe.tcp {
        client::tcp_exchange(server, &wire, wait)
    } else {
        client::udp_exchange(server, &wire, id, wait)
    };
    raw.ok().flatten()
}

fn outcome(raw: Option<Vec<u8>>) -> DnsOutcome {
    match raw {
        None => DnsOutcome::NoReply,
        Some(raw) => match Message::from_vec(&raw) {
            Ok(msg) => DnsOutcome::Reply(Reply { msg, size: raw.len() }),
            Err(e) => DnsOutcome::Error(format!("unparsable reply: {e}")),
        },
    }
}

/// Compares two outcomes; an unparsable reply is compared by its error text.
fn compare(a: &DnsOutcome, b: &DnsOutcome, tol: u32) -> Vec<Mismatch> {
    match (a, b) {
        (DnsOutcome::Error(x), DnsOutcome::Error(y)) if x != y => {
            vec![Mismatch::new("diff error", y.clone(), x.clone())]
        }
        (DnsOutcome::Error(x), DnsOutcome::Reply(_)) => vec![Mismatch::new("diff reply", "a reply", x.clone())],
        (DnsOutcome::Reply(_), DnsOutcome::Error(y)) => vec![Mismatch::new("diff reply", y.clone(), "a reply")],
        (DnsOutcome::Error(_), DnsOutcome::NoReply) => vec![Mismatch::new("diff reply", "no reply", "unparsable")],
        (DnsOutcome::NoReply, DnsOutcome::Error(_)) => vec![Mismatch::new("diff reply", "unparsable", "no reply")],
        _ => diff::compare(a, b, tol),
    }
}

/// A running server for one shape.
struct Running {
    process: ServerProcess,
    addr: SocketAddr,
    _dir: tempfile_dir::Dir,
}

mod tempfile_dir {
    //! A scratch directory removed on drop (no extra dependency).

    /// The directory.
    pub struct Dir(pub std::path::PathBuf);

    impl Dir {
        /// A new directory under the system's temporary directory.
        pub fn new(tag: &str) -> std::io::Result<Dir> {
            let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            let path = std::env::temp_dir().join(format!("conformance-fuzz-{tag}-{}-{stamp}", std::process::id()));
            std::fs::create_dir_all(&path)?;
            Ok(Dir(path))
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn start(template: &str, corefile_template: &str, upstream: SocketAddr, tag: &str) -> Result<Running, String> {
    let port = PortPicker.dns()?;
    let dir = tempfile_dir::Dir::new(tag).map_err(|e| e.to_string())?;
    let text = corefile_template.replace("{port}", &port.to_string()).replace("{upstream}", &upstream.to_string());
    let path = dir.0.join("Corefile");
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    let cmd = render_command(template, &path.display().to_string(), port)
        .replace("{upstream_ip}", &upstream.ip().to_string())
        .replace("{upstream_port}", &upstream.port().to_string());
    let mut process = ServerProcess::spawn(&cmd, &BTreeMap::new(), &dir.0)?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    process.wait_ready(addr, Duration::from_secs(20)).map_err(|e| format!("{tag}: {e}\n{}", process.output()))?;
    Ok(Running { process, addr, _dir: dir })
}

/// Runs the comparison.
pub fn run(opts: &FuzzOptions) -> Result<FuzzReport, String> {
    let zones = ZoneSet::parse(&zone_text())?;
    let fixture = Fixture::start(Behaviour { zones, ..Behaviour::default() }, true).map_err(|e| e.to_string())?;
    let mut report = FuzzReport::default();
    // Longer than a forward attempt's 2 s read timeout; an answer that never comes costs this.
    let wait = Duration::from_secs(3);
    for (shape_no, (shape, corefile)) in shapes().into_iter().enumerate() {
        if !opts.shapes.is_empty() && !opts.shapes.iter().any(|s| s == shape) {
            continue;
        }
        let mut ours = start(&opts.ours, corefile, fixture.addr(), "ours")?;
        let mut reference = start(&opts.reference, corefile, fixture.addr(), "reference")?;
        let indexes: Vec<usize> = match opts.only {
            Some(i) => vec![i],
            None => (0..opts.queries).collect(),
        };
        for index in indexes {
            let probe = generate(opts.seed, shape_no, index);
            let mut mismatches = Vec::new();
            for round in ["miss", "hit"] {
                let id = (index as u16).wrapping_mul(2).wrapping_add(u16::from(round == "hit"));
                // Both at once: a query neither answers costs one wait, not two.
                let (a, b) = std::thread::scope(|scope| {
                    let theirs = scope.spawn(|| send(reference.addr, &probe, id, wait));
                    let a = send(ours.addr, &probe, id, wait);
                    (a, theirs.join().ok().flatten())
                });
                let (a, b) = (outcome(a), outcome(b));
                for m in compare(&a, &b, opts.ttl_tolerance) {
                    mismatches.push(Mismatch::new(format!("{round} {}", m.field), m.expected, m.actual));
                }
            }
            report.compared += 1;
            if mismatches.is_empty() {
                continue;
            }
            let mut fields: Vec<&str> =
                mismatches.iter().map(|m| m.field.split_whitespace().last().unwrap_or("")).collect();
            fields.sort_unstable();
            fields.dedup();
            let key = format!("{shape} {} {} {}", if probe.tcp { "tcp" } else { "udp" }, fields.join("+"), probe.kind);
            if opts.allow.iter().any(|p| key.contains(p.as_str())) {
                report.allowed += 1;
                continue;
            }
            let class = report.classes.entry(key.clone()).or_insert_with(|| Class {
                key,
                count: 0,
                example: index,
                example_wire: probe.wire.clone(),
                example_label: probe.label.clone(),
                mismatches: mismatches.clone(),
            });
            class.count += 1;
            if probe.wire.len() < class.example_wire.len() {
                class.example = index;
                class.example_wire = probe.wire.clone();
                class.example_label = probe.label.clone();
                class.mismatches = mismatches;
            }
        }
        if let Some(status) = ours.process.exited() {
            return Err(format!("{shape}: the server under test exited ({status}):\n{}", ours.process.output()));
        }
        if let Some(status) = reference.process.exited() {
            return Err(format!("{shape}: the reference exited ({status}):\n{}", reference.process.output()));
        }
    }
    Ok(report)
}

/// The report as text: one block per class with its smallest example and a replay command.
pub fn render(report: &FuzzReport, opts: &FuzzOptions) -> String {
    let mut out = String::new();
    let mut classes: Vec<&Class> = report.classes.values().collect();
    classes.sort_by(|a, b| b.count.cmp(&a.count).then(a.key.cmp(&b.key)));
    for c in classes {
        let _ = writeln!(out, "CLASS {} ({} queries)", c.key, c.count);
        let _ = writeln!(out, "  example #{}: {}", c.example, c.example_label);
        let hex: String = c.example_wire.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(out, "  query bytes: {hex}");
        for m in &c.mismatches {
            let _ = writeln!(out, "  {}:\n    reference: {}\n    ours:      {}", m.field, m.expected, m.actual);
        }
        let shape = c.key.split_whitespace().next().unwrap_or("");
        let _ = writeln!(
            out,
            "  replay: conformance fuzz --server-cmd '{}' --reference '{}' --seed {} --shapes {shape} --only {}",
            opts.ours, opts.reference, opts.seed, c.example
        );
    }
    let _ = writeln!(
        out,
        "fuzz: {} queries compared (each twice), {} allowed, {} differing in {} classes",
        report.compared,
        report.allowed,
        report.differing(),
        report.classes.len()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zone_parses_and_queries_are_deterministic() {
        let zones = ZoneSet::parse(&zone_text()).expect("zone");
        assert!(zones.records.len() > 60);
        let a = generate(7, 1, 42);
        let b = generate(7, 1, 42);
        assert_eq!((&a.wire, a.tcp, &a.label), (&b.wire, b.tcp, &b.label));
        let c = generate(8, 1, 42);
        let d = generate(7, 1, 43);
        assert!(c.label != b.label || d.label != b.label);
    }

    #[test]
    fn valid_probes_parse_and_some_are_malformed() {
        let (mut parsed, mut malformed) = (0, 0);
        for i in 0..2000 {
            let p = generate(1, 0, i);
            if p.kind.starts_with("malformed") {
                malformed += 1;
            } else if Message::from_vec(&p.wire).is_ok() {
                parsed += 1;
            }
        }
        assert!(malformed > 40 && malformed < 200, "{malformed}");
        assert!(parsed > 1500, "{parsed} of the well-formed probes parse");
    }

    #[test]
    fn escaped_names_are_encoded() {
        let mut out = Vec::new();
        encode_name("sp\\032ace.dot\\.ted.", &mut out);
        assert_eq!(out, b"\x06sp ace\x07dot.ted\x00");
    }
}
