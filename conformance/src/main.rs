//! `conformance`: runs Corefile conformance cases against a DNS server process.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use nodecache_conformance::case;
use nodecache_conformance::fixture::{Behaviour, Fixture};
use nodecache_conformance::fuzz;
use nodecache_conformance::report;
use nodecache_conformance::runner::{case_name, run_case, CaseResult, Options};
use nodecache_conformance::zone::ZoneSet;

const USAGE: &str = "usage: conformance [--server-cmd 'CMD {corefile} {port}'] [--reference 'CMD {corefile} {port}']
                   [--lenient-errors] [--filter TAG]... [--skip TAG]... [--ttl-tolerance SECS]
                   [--json FILE] [--junit FILE] [--verbose] [--check] [--jobs N] [PATHS...]
--check only validates the case files (format, records, zones) without running anything.
PATHS are case files or directories (default conformance/cases). The default server command is
'<dir of this binary>/nodecache -conf {corefile} -dns.port {port}'.";

struct Args {
    opts: Options,
    filters: Vec<String>,
    skips: Vec<String>,
    json: Option<PathBuf>,
    junit: Option<PathBuf>,
    verbose: bool,
    check: bool,
    jobs: usize,
    paths: Vec<PathBuf>,
}

fn default_server_cmd() -> String {
    let dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("."));
    format!("{}/nodecache -conf {{corefile}} -dns.port {{port}}", dir.display())
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        opts: Options { server_cmd: default_server_cmd(), ..Options::default() },
        filters: Vec::new(),
        skips: Vec::new(),
        json: None,
        junit: None,
        verbose: false,
        check: false,
        jobs: 1,
        paths: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--server-cmd" => a.opts.server_cmd = value(&arg)?,
            "--reference" => a.opts.reference_cmd = Some(value(&arg)?),
            "--lenient-errors" => a.opts.lenient_errors = true,
            "--filter" => a.filters.push(value(&arg)?),
            "--skip" => a.skips.push(value(&arg)?),
            "--json" => a.json = Some(PathBuf::from(value(&arg)?)),
            "--junit" => a.junit = Some(PathBuf::from(value(&arg)?)),
            "--ttl-tolerance" => {
                a.opts.ttl_tolerance = value(&arg)?.parse().map_err(|_| "--ttl-tolerance takes seconds")?
            }
            "--verbose" | "-v" => a.verbose = true,
            "--check" => a.check = true,
            "--jobs" | "-j" => a.jobs = value(&arg)?.parse().map_err(|_| "--jobs takes a number")?,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            s => a.paths.push(PathBuf::from(s)),
        }
    }
    if a.paths.is_empty() {
        a.paths.push(PathBuf::from("conformance/cases"));
    }
    Ok(a)
}

/// `conformance --serve-zone FILE PORT`: run one fixture as a stand-alone DNS server (for tests).
fn serve_zone(file: &str, port: &str) -> ExitCode {
    let run = || -> Result<(), String> {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
        let behaviour = Behaviour { zones: ZoneSet::parse(&text)?, ..Behaviour::default() };
        let port: u16 = port.parse().map_err(|_| format!("bad port {port}"))?;
        let _fixture = Fixture::start_at(behaviour, true, port).map_err(|e| e.to_string())?;
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("conformance --serve-zone: {e}");
            ExitCode::FAILURE
        }
    }
}

const FUZZ_USAGE: &str =
    "usage: conformance fuzz --reference 'CMD {corefile} {port}' [--server-cmd 'CMD {corefile} {port}']
                        [--seed N] [--queries N] [--shapes forward,nodelocal,plugins,zones] [--allow FILE]
                        [--only INDEX] [--ttl-tolerance SECS]
Sends the same seeded random queries (each twice) to the server and the reference, both started with the
same Corefile shapes forwarding to one authoritative fixture, and prints every class of difference with its
smallest example and a replay command. --allow FILE: one substring of a class key per line (known,
documented differences; # comments). Exit status 1 when a difference is left.";

/// `conformance fuzz ...`: the generative differential mode (see `nodecache_conformance::fuzz`).
fn fuzz_main(args: &[String]) -> ExitCode {
    let parse = || -> Result<fuzz::FuzzOptions, String> {
        let mut o = fuzz::FuzzOptions {
            ours: default_server_cmd(),
            reference: String::new(),
            seed: 1,
            queries: 500,
            shapes: Vec::new(),
            allow: Vec::new(),
            only: None,
            ttl_tolerance: 2,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || it.next().cloned().ok_or_else(|| format!("{arg} needs a value"));
            let number = |v: String| v.parse::<u64>().map_err(|_| format!("{arg} takes a number"));
            match arg.as_str() {
                "--server-cmd" => o.ours = value()?,
                "--reference" => o.reference = value()?,
                "--seed" => o.seed = number(value()?)?,
                "--queries" => o.queries = number(value()?)? as usize,
                "--only" => o.only = Some(number(value()?)? as usize),
                "--ttl-tolerance" => o.ttl_tolerance = number(value()?)? as u32,
                "--shapes" => o.shapes = value()?.split(',').map(str::to_string).collect(),
                "--allow" => {
                    let file = value()?;
                    let text = std::fs::read_to_string(&file).map_err(|e| format!("{file}: {e}"))?;
                    o.allow.extend(
                        text.lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty() && !l.starts_with('#'))
                            .map(str::to_string),
                    );
                }
                "-h" | "--help" => {
                    println!("{FUZZ_USAGE}");
                    std::process::exit(0);
                }
                s => return Err(format!("unknown argument {s}")),
            }
        }
        if o.reference.is_empty() {
            return Err("--reference is required".to_string());
        }
        Ok(o)
    };
    let opts = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("conformance fuzz: {e}\n{FUZZ_USAGE}");
            return ExitCode::from(2);
        }
    };
    match fuzz::run(&opts) {
        Ok(report) => {
            print!("{}", fuzz::render(&report, &opts));
            if report.classes.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("conformance fuzz: {e}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--serve-zone") && argv.len() == 4 {
        return serve_zone(&argv[2], &argv[3]);
    }
    if argv.get(1).map(String::as_str) == Some("fuzz") {
        return fuzz_main(&argv[2..]);
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("conformance: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let files = match case::collect(&args.paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("conformance: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        let mut bad = 0;
        for path in &files {
            if let Err(e) = case::validate_file(path) {
                bad += 1;
                let _ = writeln!(std::io::stdout(), "INVALID {}: {e}", path.display());
            }
        }
        let _ = writeln!(std::io::stdout(), "{} cases, {bad} invalid", files.len());
        return if bad == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    }
    let selected: Vec<PathBuf> = files
        .into_iter()
        .filter(|path| {
            if args.filters.is_empty() && args.skips.is_empty() {
                return true;
            }
            let tags = case::load(path).map(|c| c.tags).unwrap_or_default();
            let name = case_name(path);
            let area = name.split('/').next().unwrap_or("").to_string();
            let has = |t: &String| tags.contains(t) || *t == area || *t == name;
            (args.filters.is_empty() || args.filters.iter().any(has)) && !args.skips.iter().any(has)
        })
        .collect();
    let color = std::io::stdout().is_terminal();
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, CaseResult)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(path) = selected.get(i) else { break };
                let r = run_case(path, &args.opts);
                let secs = r.duration_ms as f64 / 1000.0;
                let mut text = if r.passed {
                    format!("PASS {} ({secs:.1}s)\n", r.name)
                } else {
                    format!("FAIL {} ({secs:.1}s)\n", r.name)
                };
                if !r.passed {
                    text.push_str(&report::render_failure(&r, args.verbose || r.failures.iter().any(|f| f.step == 0)));
                }
                if !color {
                    text = report::strip_ansi(&text);
                }
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
                if let Ok(mut d) = done.lock() {
                    d.push((i, r));
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_default();
    done.sort_by_key(|(i, _)| *i);
    let results: Vec<CaseResult> = done.into_iter().map(|(_, r)| r).collect();
    let write = |path: &Option<PathBuf>, text: String| {
        if let Some(p) = path {
            if let Err(e) = std::fs::write(p, text) {
                eprintln!("conformance: {}: {e}", p.display());
            }
        }
    };
    write(&args.json, report::json(&results));
    write(&args.junit, report::junit(&results));
    let _ = writeln!(std::io::stdout(), "{}", report::summary(&results));
    if results.iter().all(|r| r.passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
