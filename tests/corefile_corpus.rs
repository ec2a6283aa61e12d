//! Parses every Corefile of the shared corpus (`shared/corpus/corefiles/{general,nodelocal}`)
//! and checks the outcome CoreDNS would give, file by file, using INDEX.md's notes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use nodecache::corefile::{parse_file, parse_str, CorefileError, ParseOptions, ServerBlock};
use pretty_assertions::assert_eq;

/// What parsing a corpus file gives.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// `Unknown directive 'name'` at `line` with CoreDNS's plugin list (out-of-tree or removed
    /// plugins, template text in directive position, fragments, negative tests); without
    /// directive validation the file then parses.
    Unknown(&'static str, u32),
    /// Like `Unknown`, and without validation the file still fails with `lax` (message, line).
    UnknownThenLax(&'static str, u32, &'static str, u32),
    /// The same error with and without directive validation.
    Error(&'static str, u32),
    /// Checked by a dedicated test below.
    Dedicated,
}

use Expect::*;

/// Every file whose expectation is not "parses with CoreDNS's plugin list". Templates that are
/// lexically fine Corefiles (k3s `%{X}%`, shell `$X`, `__PILLAR__`, `<...>`) parse and so are
/// not listed.
const TABLE: &[(&str, Expect)] = &[
    // Jinja / Go / Helm templates: template control text sits where a directive must be.
    ("general/001-", Unknown("{%", 4)),
    ("general/004-", Unknown("{{", 4)),
    ("general/024-", Unknown("{{-", 22)),
    ("general/026-", Unknown("{{-", 19)),
    ("general/033-", Unknown("{{range", 5)),
    ("general/056-", Unknown("{{", 4)),
    ("nodelocal/003-", UnknownThenLax("{%", 4, "Unexpected EOF", 92)),
    ("nodelocal/007-", Unknown("{{", 4)),
    ("nodelocal/012-", Unknown("{{-", 4)),
    ("nodelocal/015-", Unknown("{{-", 12)),
    ("nodelocal/018-", Unknown("{{-", 4)),
    ("nodelocal/021-", Unknown("{{", 9)),
    ("nodelocal/022-", Unknown("{{-", 4)),
    ("nodelocal/030-", Unknown("{{-", 11)),
    ("nodelocal/036-", UnknownThenLax("{{-", 13, "Unexpected EOF", 167)),
    ("nodelocal/045-", Unknown("{{", 4)),
    // sed template: '}STUBDOMAINS' is one token, so the block is never closed.
    ("general/010-", UnknownThenLax("}STUBDOMAINS", 20, "Unexpected token '}STUBDOMAINS', expecting '}'", 20)),
    // Go template output glued after '}' ('}{{ .Federation }}'): the kubernetes block never closes.
    ("general/028-", Error("Unexpected EOF", 20)),
    // Removed plugins (proxy, federation) and out-of-tree plugins.
    ("general/007-", Unknown("proxy", 10)),
    ("general/013-", Unknown("proxy", 12)),
    ("general/014-", Unknown("proxy", 12)),
    ("general/016-", Unknown("proxy", 12)),
    ("general/019-", Unknown("proxy", 17)),
    ("general/023-", Unknown("k8s_gateway", 10)),
    ("general/029-", Unknown("federation", 11)),
    ("general/037-", Unknown("ocp_dnsnameresolver", 17)),
    ("general/039-", Unknown("mdns", 6)),
    ("general/040-", Unknown("mdns", 6)),
    ("general/044-", Unknown("pforward", 7)),
    ("general/045-", Unknown("pforward", 16)),
    ("general/049-", Unknown("filterlist", 7)),
    ("general/057-", Unknown("vcluster", 13)),
    ("general/059-", Unknown("proxy", 16)),
    ("general/061-", Unknown("proxy", 5)),
    ("general/067-", Unknown("proxy", 12)),
    ("general/090-", Unknown("mdns", 5)),
    ("general/092-", Unknown("proxy", 13)),
    ("general/093-", Unknown("proxy", 6)),
    ("nodelocal/044-", Unknown("kubeforward", 6)),
    ("nodelocal/052-", Unknown("nodecache", 13)),
    ("nodelocal/054-", Unknown("nodecache", 6)),
    // A directive fragment, not a Corefile: 'hosts ...' becomes the keys, '8.8.4.4' a directive.
    ("general/095-", Unknown("8.8.4.4", 4)),
    // Glued '{' ('cluster.local:53{'): brace-less block, plugin options read as directives.
    ("nodelocal/039-", Unknown("force_tcp", 8)),
    // NEGATIVE / MALFORMED / NOT-A-COREFILE.
    ("general/091-", Unknown("key", 7)),
    ("general/094-", Dedicated),
    ("nodelocal/041-", Unknown("cluster.local:53", 9)),
    // Relative imports of fragment files that are not in the corpus.
    ("general/089-", Dedicated),
];

fn corpus_dir() -> PathBuf {
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/corefiles");
    if beside.is_dir() {
        beside
    } else {
        PathBuf::from("/work/shared/corpus/corefiles")
    }
}

fn corpus_files() -> Vec<(String, PathBuf)> {
    let root = corpus_dir();
    let mut out = Vec::new();
    for set in ["general", "nodelocal"] {
        let dir = root.join(set);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus directory {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".Corefile") {
                out.push((format!("{set}/{name}"), path));
            }
        }
    }
    out.sort();
    out
}

fn strict() -> ParseOptions {
    ParseOptions { validate_directives: true, env: Some(HashMap::new()) }
}

fn lax() -> ParseOptions {
    ParseOptions { validate_directives: false, env: Some(HashMap::new()) }
}

fn expect_err(r: Result<Vec<ServerBlock>, CorefileError>, what: &str) -> CorefileError {
    match r {
        Ok(_) => panic!("{what}: parsed, expected an error"),
        Err(e) => e,
    }
}

#[test]
fn every_corpus_file_gives_the_coredns_outcome() {
    let files = corpus_files();
    assert!(files.len() >= 150, "corpus has {} files", files.len());
    let mut used = vec![false; TABLE.len()];
    for (id, path) in &files {
        let entry = TABLE.iter().position(|(prefix, _)| id.starts_with(prefix));
        if let Some(i) = entry {
            used[i] = true;
        }
        let expect = entry.map(|i| TABLE[i].1);
        let strict_result = parse_file(path, &strict());
        match expect {
            None => {
                assert!(
                    !id.contains("NEGATIVE") && !id.contains("MALFORMED") && !id.contains("NOT-A-COREFILE"),
                    "{id} must have an entry"
                );
                if let Err(e) = strict_result {
                    panic!("{id} should parse: {}", e.coredns_message());
                }
            }
            Some(Unknown(name, line)) | Some(UnknownThenLax(name, line, _, _)) => {
                let e = expect_err(strict_result, id);
                assert!(e.message.starts_with(&format!("Unknown directive '{name}'")), "{id}: {}", e.message);
                assert_eq!((e.line, &*e.file), (line, &*path.to_string_lossy()), "{id}");
                let lax_result = parse_file(path, &lax());
                match expect {
                    Some(UnknownThenLax(_, _, msg, l)) => {
                        let e = expect_err(lax_result, id);
                        assert_eq!((e.message.as_str(), e.line), (msg, l), "{id} (lax)");
                    }
                    _ => {
                        if let Err(e) = lax_result {
                            panic!("{id} should parse without directive validation: {}", e.coredns_message());
                        }
                    }
                }
            }
            Some(Error(msg, line)) => {
                let e = expect_err(strict_result, id);
                assert_eq!((e.message.as_str(), e.line), (msg, line), "{id}");
                let e = expect_err(parse_file(path, &lax()), id);
                assert_eq!((e.message.as_str(), e.line), (msg, line), "{id} (lax)");
            }
            Some(Dedicated) => {}
        }
    }
    for (i, u) in used.iter().enumerate() {
        assert!(u, "table entry {} matches no corpus file", TABLE[i].0);
    }
}

fn file(id_prefix: &str) -> PathBuf {
    corpus_files()
        .into_iter()
        .find(|(id, _)| id.starts_with(id_prefix))
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("no corpus file {id_prefix}"))
}

fn texts(b: &ServerBlock, dir: &str) -> Vec<String> {
    b.directive(dir).unwrap_or_default().iter().map(|t| t.text.clone()).collect()
}

fn env(vars: &[(&str, &str)]) -> ParseOptions {
    ParseOptions {
        validate_directives: true,
        env: Some(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
    }
}

#[test]
fn negative_094_kubernetes_twice_is_left_to_setup() {
    // CoreDNS rejects it in the kubernetes setup ("can only be used once per Server Block");
    // the parser's job is to hand both occurrences over. With CoreDNS's plugin list the
    // removed `proxy` plugin fails first.
    let path = file("general/094-");
    let e = parse_file(&path, &strict()).unwrap_err();
    assert!(e.message.starts_with("Unknown directive 'proxy'"), "{}", e.message);
    let blocks = parse_file(&path, &lax()).unwrap();
    let k8s = texts(&blocks[0], "kubernetes");
    assert_eq!(k8s.iter().filter(|t| *t == "kubernetes").count(), 2, "{k8s:?}");
}

#[test]
fn env_vars_008_substitute_per_token() {
    let path = file("general/008-");
    let o = env(&[("DNS_HEALTH_PORT", "8080"), ("DNS_UPSTREAM", "1.1.1.1 8.8.8.8"), ("DNS_CACHE_TIME", "30")]);
    let blocks = parse_file(&path, &o).unwrap();
    assert_eq!(texts(&blocks[0], "health"), vec!["health", ":8080"]);
    assert_eq!(texts(&blocks[0], "forward"), vec!["forward", ".", "1.1.1.1 8.8.8.8"]);
    // Unset variables become empty arguments, not missing ones.
    assert_eq!(texts(&blocks[0], "prometheus"), vec!["prometheus", ":"]);
    assert_eq!(texts(&blocks[0], "cache")[..3], ["cache", "30", "{"]);
}

#[test]
fn env_vars_in_keys_088() {
    let path = file("general/088-");
    let o = env(&[
        ("DNS_PORT", "53"),
        ("DNS_OVER_TLS_PORT", "853"),
        ("DNS_OVER_GRPC_PORT", "553"),
        ("DOMAIN", "d.example"),
    ]);
    let blocks = parse_file(&path, &o).unwrap();
    let keys: Vec<&str> = blocks.iter().map(|b| b.keys[0].text.as_str()).collect();
    assert_eq!(keys, vec![".:53", "tls://.:853", "grpc://.:553"]);
    assert_eq!(texts(&blocks[1], "tls")[1], "/certs/certificates/d.example.crt");
}

#[test]
fn env_glued_to_port_nodelocal_005() {
    let path = file("nodelocal/005-");
    let blocks = parse_file(&path, &env(&[("MY_HOST_IP", "10.0.0.7")])).unwrap();
    assert_eq!(texts(&blocks[0], "prometheus"), vec!["prometheus", "10.0.0.7:9253"]);
}

#[test]
fn relative_fragment_imports_089() {
    let path = file("general/089-");
    let text = std::fs::read_to_string(&path).unwrap();
    // Without its fragment files, CoreDNS stops at the first plain (non-glob) import.
    let e = parse_file(&path, &strict()).unwrap_err();
    assert_eq!((e.message.as_str(), e.line), ("File to import not found: snips/hosts.conf", 6));
    // With them beside the Corefile, imports resolve against the Corefile's directory.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("snips")).unwrap();
    for (name, body) in [
        ("hosts.conf", "hosts {\n  fallthrough\n}\n"),
        ("forward.conf", "forward . 1.1.1.1\n"),
        ("cache.conf", "# comment\ncache 3600\n"),
        ("monitor.conf", "errors\nlog\n"),
    ] {
        std::fs::write(dir.path().join("snips").join(name), body).unwrap();
    }
    let main = dir.path().join("Corefile");
    let o = env(&[("DNS_PORT", "53"), ("DNS_OVER_TLS_PORT", "853"), ("HEALTHCHECK_QUESTION", "health.example")]);
    let blocks = parse_str(&text, main.to_str().unwrap(), &o).unwrap();
    let keys: Vec<&str> = blocks.iter().map(|b| b.keys[0].text.as_str()).collect();
    assert_eq!(keys, vec!["tls://.:853", ".:53", "health.example:53", "whoami:53"]);
    let names: Vec<&str> = blocks[1].directives.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, vec!["hosts", "forward", "cache", "errors", "log"]);
    let cache = blocks[1].directive("cache").unwrap();
    assert_eq!((&*cache[0].file, cache[0].line), (dir.path().join("snips/cache.conf").to_str().unwrap(), 2));
}

#[test]
fn glob_imports_matching_nothing_are_fine_030_031_041_055() {
    for id in ["general/030-", "general/031-", "general/041-", "general/055-"] {
        let text = std::fs::read_to_string(file(id)).unwrap();
        // As installed: /etc/coredns/Corefile with an empty custom/ directory.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("custom")).unwrap();
        let main = dir.path().join("Corefile");
        let blocks = parse_str(&text, main.to_str().unwrap(), &strict()).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert!(!blocks.is_empty(), "{id}");
        if id == "general/030-" || id == "general/031-" {
            continue; // absolute /etc/coredns/custom paths
        }
        // With fragments present, relative globs resolve against the Corefile's directory:
        // the override's directives join the block, the server file adds a block.
        let fragment = dir.path().join("custom/extra.override");
        std::fs::write(&fragment, "whoami\n").unwrap();
        std::fs::write(dir.path().join("custom/extra.server"), "extra.example:53 {\n  whoami\n}\n").unwrap();
        let more = parse_str(&text, main.to_str().unwrap(), &strict()).unwrap();
        assert_eq!(more.len(), blocks.len() + 1, "{id}");
        let whoami = more[0].directive("whoami").unwrap_or_else(|| panic!("{id}: no whoami"));
        assert_eq!(&*whoami[0].file, fragment.to_str().unwrap(), "{id}");
        assert_eq!(more.last().unwrap().keys[0].text, "extra.example:53", "{id}");
    }
}
