//! Layering: the folders listed in [`LOWER_LAYERS`] must not reach into any plugin's own
//! module (`crate::plugin::<dir>::...` for a directory `<dir>` of `src/plugin/`). Items defined
//! in `src/plugin/mod.rs` itself (`crate::plugin::Chain`, `crate::plugin::PluginConfig`) and in
//! its file modules (`crate::plugin::fast`, the fast-path capabilities) are fine: that is the
//! interface plugins implement.
//!
//! To hold another folder to the same rule, add it to [`LOWER_LAYERS`].

use std::fs;
use std::path::{Path, PathBuf};

/// Source folders (relative to the crate root) that may not import plugin modules.
const LOWER_LAYERS: &[&str] = &["src/observe", "src/server"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Names of the directories under `src/plugin/`: the plugin modules.
fn plugin_dirs() -> Vec<String> {
    let mut dirs: Vec<String> = fs::read_dir(root().join("src/plugin"))
        .expect("src/plugin")
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    dirs
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The plugin directory that `line` reaches into, if any: `plugin::<dir>` as a whole path
/// segment, in any form (`crate::plugin::x::`, `super::super::plugin::x::`,
/// `use crate::plugin::{Chain, x::Y}`, paths inside expressions, doc links in comments).
fn offending<'a>(line: &str, dirs: &'a [String]) -> Option<&'a str> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut rest = line;
    while let Some(at) = rest.find("plugin::") {
        let before = &rest[..at];
        let after = &rest[at + "plugin::".len()..];
        rest = after;
        // `plugin` must be a whole path segment (not `my_plugin::`).
        if before.chars().last().is_some_and(is_ident) {
            continue;
        }
        // A group `{a, b::c, ...}` names several first segments; a plain path names one.
        let heads: Vec<&str> = match after.strip_prefix('{') {
            Some(group) => group.split('}').next().unwrap_or("").split(',').collect(),
            None => vec![after],
        };
        for head in heads {
            let head = head.trim_start();
            let ident = &head[..head.find(|c: char| !is_ident(c)).unwrap_or(head.len())];
            if let Some(dir) = dirs.iter().find(|d| **d == ident) {
                return Some(dir.as_str());
            }
        }
    }
    None
}

#[test]
fn lower_layers_import_no_plugin_module() {
    let dirs = plugin_dirs();
    assert!(dirs.iter().any(|d| d == "cache"), "plugin directories not found: {dirs:?}");
    let mut problems = Vec::new();
    for layer in LOWER_LAYERS {
        let mut files = Vec::new();
        rust_files(&root().join(layer), &mut files);
        files.sort();
        assert!(!files.is_empty(), "no .rs files under {layer}");
        for file in files {
            let text = fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                if let Some(dir) = offending(line, &dirs) {
                    let rel = file.strip_prefix(root()).unwrap_or(&file).display().to_string();
                    problems.push(format!("{rel}:{}: refers to plugin module `{dir}`: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(problems.is_empty(), "layering violations:\n{}", problems.join("\n"));
}

#[test]
fn detector_recognises_the_forms() {
    let dirs = vec!["ready".to_string(), "health".to_string()];
    assert_eq!(offending("use crate::plugin::ready::setup::Config;", &dirs), Some("ready"));
    assert_eq!(offending("x.downcast_ref::<crate::plugin::health::setup::Config>()", &dirs), Some("health"));
    assert_eq!(offending("use super::super::plugin::ready;", &dirs), Some("ready"));
    assert_eq!(offending("use crate::plugin::{ready::X, Chain};", &dirs), Some("ready"));
    assert_eq!(offending("use crate::plugin::Chain;", &dirs), None);
    assert_eq!(offending("fn f(c: &dyn crate::plugin::PluginConfig) {}", &dirs), None);
    assert_eq!(offending("use crate::my_plugin::ready;", &dirs), None);
    assert_eq!(offending("use crate::plugin::{Chain, health::X};", &dirs), Some("health"));
    assert_eq!(offending("//! served by [`crate::plugin::ready`]", &dirs), Some("ready"));
    assert_eq!(offending("use crate::plugin::{readiness, Chain};", &dirs), None);
}
