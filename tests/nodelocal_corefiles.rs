//! Every shipped example Corefile parses with CoreDNS's plugin list and builds a plan.

use std::path::Path;

use nodecache::config::build::{build_plan, PlanOptions};
use nodecache::corefile::{parse_file, ParseOptions};

#[test]
fn shipped_corefiles_parse_and_plan() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corefiles");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "Corefile"))
        .collect();
    names.sort();
    assert!(names.len() >= 6, "{names:?}");
    for path in names {
        let blocks =
            parse_file(&path, &ParseOptions::default()).unwrap_or_else(|e| panic!("{}: {}", path.display(), e.message));
        if let Err(e) = build_plan(&blocks, &PlanOptions::default()) {
            panic!("{}: {}", path.display(), e.message);
        }
    }
}
