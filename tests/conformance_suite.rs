//! Runs every conformance case in `conformance/cases/` against the `nodecache` binary built by
//! this package, four cases at a time, and fails listing each case that did not pass.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nodecache_conformance::report;
use nodecache_conformance::runner::{run_case, CaseResult, Options};

fn case_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            case_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "toml") {
            out.push(p);
        }
    }
}

#[test]
fn every_case_passes_against_nodecache() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/cases");
    let mut files = Vec::new();
    case_files(&root, &mut files);
    assert!(files.len() >= 120, "expected at least 120 cases, found {}", files.len());
    let opts = Options {
        server_cmd: format!("{} -conf {{corefile}} -dns.port {{port}}", env!("CARGO_BIN_EXE_nodecache")),
        ..Options::default()
    };
    let queue = Mutex::new(files.into_iter());
    let results: Mutex<Vec<CaseResult>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let next = queue.lock().map(|mut q| q.next()).unwrap_or(None);
                let Some(path) = next else { break };
                let r = run_case(&path, &opts);
                if let Ok(mut all) = results.lock() {
                    all.push(r);
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_default();
    let failed: Vec<&CaseResult> = results.iter().filter(|r| !r.passed).collect();
    for r in &failed {
        eprintln!("{}", report::render_failure(r, true));
    }
    eprintln!("conformance: {}", report::summary(&results));
    assert!(failed.is_empty(), "{} conformance case(s) failed", failed.len());
}
