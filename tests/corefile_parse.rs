//! Parser behaviour: CoreDNS/caddy grammar rules, spec §6 cases 10–19, and bad input.

use std::collections::HashMap;
use std::path::Path;

use nodecache::corefile::{
    parse_bytes, parse_file, parse_str, render_error, CorefileError, ErrorKind, ParseOptions, ServerBlock,
};
use pretty_assertions::assert_eq;

fn lax() -> ParseOptions {
    ParseOptions { validate_directives: false, env: Some(HashMap::new()) }
}

fn strict() -> ParseOptions {
    ParseOptions { validate_directives: true, env: Some(HashMap::new()) }
}

fn with_env(vars: &[(&str, &str)]) -> ParseOptions {
    ParseOptions {
        validate_directives: false,
        env: Some(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
    }
}

fn parse(text: &str) -> Result<Vec<ServerBlock>, CorefileError> {
    parse_str(text, "Corefile", &lax())
}

fn keys(b: &ServerBlock) -> Vec<&str> {
    b.keys.iter().map(|k| k.text.as_str()).collect()
}

/// Directive name → token count, in first-appearance order.
fn shape(b: &ServerBlock) -> Vec<(&str, usize)> {
    b.directives.iter().map(|(n, t)| (n.as_str(), t.len())).collect()
}

fn texts(b: &ServerBlock, dir: &str) -> Vec<String> {
    b.directive(dir).unwrap_or_default().iter().map(|t| t.text.clone()).collect()
}

fn err_of(text: &str) -> CorefileError {
    match parse(text) {
        Ok(b) => panic!("expected an error for {text:?}, got {b:?}"),
        Err(e) => e,
    }
}

// ----- keys -----

#[test]
fn keys_whitespace_and_comma_separated() {
    let cases: &[(&str, &[&str])] = &[
        ("localhost", &["localhost"]),
        ("http://localhost https://localhost\ndir1 foo bar", &["http://localhost", "https://localhost"]),
        ("http://localhost, https://localhost {\n dir1 foo bar\n}", &["http://localhost", "https://localhost"]),
        ("host1:80, http://host2.com\n dir1 foo bar\n dir2 baz", &["host1:80", "http://host2.com"]),
        (
            "http://host1.com,\nhttp://host2.com,\nhttps://host3.com",
            &["http://host1.com", "http://host2.com", "https://host3.com"],
        ),
        ("a,b {\n}", &["a,b"]),
        ("\"\" a {\n}", &["a"]),
    ];
    for (src, want) in cases {
        let blocks = parse(src).unwrap();
        assert_eq!(keys(&blocks[0]), want.to_vec(), "{src:?}");
    }
}

#[test]
fn case11_commas() {
    let b = parse("a, b {\n whoami\n}").unwrap();
    assert_eq!(keys(&b[0]), vec!["a", "b"]);
    let e = err_of("http://localhost, {\n}");
    assert_eq!(e.message, "Expected another address but had '{' - check for extra comma");
    assert_eq!((e.kind, e.line, e.token.as_str()), (ErrorKind::Parse, 1, "{"));
    let b = parse("a,\nb,\nc {\n}").unwrap();
    assert_eq!(keys(&b[0]), vec!["a", "b", "c"]);
    let e = err_of("localhost:1234, http://host2,");
    assert_eq!(e.message, "Unexpected EOF");
}

#[test]
fn open_brace_on_next_line() {
    let b = parse(".:53\n{\n  whoami\n}\nexample.org {\n log\n}").unwrap();
    assert_eq!(keys(&b[0]), vec![".:53"]);
    assert_eq!(shape(&b[0]), vec![("whoami", 1)]);
    assert_eq!(keys(&b[1]), vec!["example.org"]);
}

#[test]
fn empty_key_block_is_dropped() {
    assert_eq!(parse("\"\"").unwrap(), vec![]);
    assert_eq!(parse("").unwrap(), vec![]);
    assert_eq!(parse("\"\" {\n whoami\n}\n. {\n}").unwrap().len(), 1);
}

// ----- blocks and directives -----

#[test]
fn parse_one_table_from_caddy() {
    type Case<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, usize)]);
    let cases: &[Case] = &[
        ("localhost", &["localhost"], &[]),
        ("localhost\n  dir1", &["localhost"], &[("dir1", 1)]),
        ("localhost:1234\n  dir1 foo bar", &["localhost:1234"], &[("dir1", 3)]),
        ("localhost {\n  dir1\n}", &["localhost"], &[("dir1", 1)]),
        ("localhost:1234 {\n  dir1 foo bar\n  dir2\n}", &["localhost:1234"], &[("dir1", 3), ("dir2", 1)]),
        (
            "http://host1.com:1234, https://host2.com\n dir1 foo {\n bar baz\n }\n dir2",
            &["http://host1.com:1234", "https://host2.com"],
            &[("dir1", 6), ("dir2", 1)],
        ),
        ("127.0.0.1\n dir1 {\n bar baz\n }\n dir2 {\n foo bar\n }", &["127.0.0.1"], &[("dir1", 5), ("dir2", 5)]),
        ("localhost\n dir1 {\n }", &["localhost"], &[("dir1", 3)]),
        ("localhost\n dir1 {\n nested {\n foo\n }\n }\n dir2 foo bar", &["localhost"], &[("dir1", 7), ("dir2", 3)]),
    ];
    for (src, want_keys, want_shape) in cases {
        let blocks = parse(src).unwrap_or_else(|e| panic!("{src:?}: {e}"));
        assert_eq!(keys(&blocks[0]), want_keys.to_vec(), "{src:?}");
        assert_eq!(shape(&blocks[0]), want_shape.to_vec(), "{src:?}");
    }
}

#[test]
fn case10_braceless_block() {
    let b = parse("localhost:1234\n dir1 foo bar").unwrap();
    assert_eq!(texts(&b[0], "dir1"), vec!["dir1", "foo", "bar"]);
    // A glued `{` is part of the key; the block is brace-less and a `}` in directive
    // position simply ends it.
    let b = parse("www.example.com:1053{\n forward . 1.1.1.1\n}").unwrap();
    assert_eq!(keys(&b[0]), vec!["www.example.com:1053{"]);
    assert_eq!(shape(&b[0]), vec![("forward", 3)]);
}

#[test]
fn case12_nesting_errors() {
    let e = err_of("localhost\n dir1 {\n foo");
    assert_eq!((e.message.as_str(), e.line, e.token.as_str()), ("Unexpected EOF", 3, "foo"));
    let e = err_of("localhost\n dir1 {\n } }");
    assert_eq!(e.message, "Unexpected '}' because no matching opening brace");
    assert_eq!(e.line, 3);
    let b = parse("localhost\n dir1 { nested { foo } }").unwrap();
    assert_eq!(shape(&b[0]), vec![("dir1", 7)]);
}

#[test]
fn repeated_directives_concatenate_in_order() {
    let b = parse(". {\n forward a 1\n cache 30\n forward b 2\n}").unwrap();
    assert_eq!(texts(&b[0], "forward"), vec!["forward", "a", "1", "forward", "b", "2"]);
    assert_eq!(shape(&b[0]), vec![("forward", 6), ("cache", 2)]);
}

#[test]
fn missing_close_brace_is_a_syntax_error() {
    let e = err_of(". {\n whoami\n log");
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert_eq!(e.message, "Unexpected token 'log', expecting '}'");
    assert_eq!(e.coredns_message(), "Corefile:3 - Syntax error: Unexpected token 'log', expecting '}'");
}

#[test]
fn missing_close_brace_after_nested_block_goes_unnoticed() {
    let b = parse(". {\n forward . 1.1.1.1 {\n force_tcp\n }\n").unwrap();
    assert_eq!(shape(&b[0]), vec![("forward", 6)]);
}

#[test]
fn one_line_blocks_fail_like_coredns() {
    let e = err_of(". { bind 127.0.0.1 }");
    assert_eq!(e.message, "Unexpected '}' because no matching opening brace");
    let b = parse(". {\n forward . 127.0.0.1 { max_fails 2 }\n}").unwrap();
    assert_eq!(texts(&b[0], "forward"), vec!["forward", ".", "127.0.0.1", "{", "max_fails", "2", "}"]);
}

#[test]
fn stray_close_brace_at_top_level_becomes_a_key() {
    let b = parse(". {\n whoami\n}\n}").unwrap();
    assert_eq!(b.len(), 2);
    assert_eq!(keys(&b[1]), vec!["}"]);
}

#[test]
fn open_brace_on_own_line_belongs_to_directive() {
    let b = parse(". {\n forward . 1.1.1.1\n {\n force_tcp\n }\n}").unwrap();
    assert_eq!(texts(&b[0], "forward"), vec!["forward", ".", "1.1.1.1", "{", "force_tcp", "}"]);
}

#[test]
fn unknown_directive_with_suggestion() {
    let e = parse_str(". {\n  forwrd . 1.1.1.1\n}", "Corefile", &strict()).unwrap_err();
    assert_eq!(e.message, "Unknown directive 'forwrd' (did you mean 'forward'?)");
    assert_eq!((e.line, e.col, e.token.as_str()), (2, 3, "forwrd"));
    assert_eq!(
        e.coredns_message(),
        "Corefile:2 - Error during parsing: Unknown directive 'forwrd' (did you mean 'forward'?)"
    );
    let e = parse_str(". {\n  zzzzzzzzzz\n}", "Corefile", &strict()).unwrap_err();
    assert_eq!(e.message, "Unknown directive 'zzzzzzzzzz'");
    // Case-sensitive.
    assert!(parse_str(". {\n  Cache\n}", "Corefile", &strict()).is_err());
    assert!(parse_str(". {\n  cache\n}", "Corefile", &strict()).is_ok());
}

#[test]
fn glued_brace_reads_following_lines_as_directives() {
    let e = parse_str("cluster.local:53{\n errors\n forward . 10.0.0.25{\n force_tcp\n }\n}", "Corefile", &strict())
        .unwrap_err();
    assert_eq!(e.message, "Unknown directive 'force_tcp'");
}

#[test]
fn error_rendering_points_at_token() {
    let src = ". {\n  forwrd . 1.1.1.1\n}";
    let e = parse_str(src, "Corefile", &strict()).unwrap_err();
    let r = render_error(&e, Some(("Corefile", src)));
    assert!(r.starts_with("Corefile:2:3: Unknown directive 'forwrd'"), "{r}");
    assert!(r.contains("2 |   forwrd . 1.1.1.1\n"), "{r}");
    assert!(r.contains("  |   ^^^^^^\n"), "{r}");
    assert!(r.contains("= coredns: Corefile:2 - Error during parsing: Unknown directive"), "{r}");
}

// ----- environment -----

#[test]
fn case15_env_in_keys_and_args() {
    let o = with_env(&[("PORT", "8080"), ("ADDRESS", "servername.com"), ("FOOBAR", "foobar")]);
    let b = parse_str("{$ADDRESS}:{$PORT}", "Corefile", &o).unwrap();
    assert_eq!(keys(&b[0]), vec!["servername.com:8080"]);
    let b = parse_str("{%ADDRESS%}:{$PORT}", "Corefile", &o).unwrap();
    assert_eq!(keys(&b[0]), vec!["servername.com:8080"]);
    let b = parse_str(":1234\ndir1 {%ADDRESS}", "Corefile", &o).unwrap();
    assert_eq!(texts(&b[0], "dir1"), vec!["dir1", "{%ADDRESS}"]);
    let b = parse_str(":{$PORT$}", "Corefile", &o).unwrap();
    assert_eq!(keys(&b[0]), vec![":"]);
    let b = parse_str(":1234\ndir1 \"Test {$FOOBAR} test\"", "Corefile", &o).unwrap();
    assert_eq!(texts(&b[0], "dir1"), vec!["dir1", "Test foobar test"]);
}

#[test]
fn case16_env_inside_template_text() {
    let o = with_env(&[("FOOBAR", "foobar")]);
    let b = parse_str(":1234\nanswer \"{{ .Name }} {$FOOBAR}\"", "Corefile", &o).unwrap();
    assert_eq!(texts(&b[0], "answer"), vec!["answer", "{{ .Name }} foobar"]);
}

#[test]
fn env_value_with_spaces_stays_one_token_and_names_directives() {
    let o = ParseOptions {
        validate_directives: true,
        env: Some(
            [("FWD", "1.1.1.1 8.8.8.8"), ("D", "forward")]
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        ),
    };
    let b = parse_str(". {\n {$D} . {$FWD}\n}", "Corefile", &o).unwrap();
    assert_eq!(texts(&b[0], "forward"), vec!["forward", ".", "1.1.1.1 8.8.8.8"]);
    // Unset variable in key position: the key is dropped.
    let b = parse_str("{$NOPE} . {\n}", "Corefile", &o).unwrap();
    assert_eq!(keys(&b[0]), vec!["."]);
}

// ----- import and snippets -----

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn case13_import_forms() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("Corefile");
    let main = main.to_str().unwrap();
    write(dir.path(), "testdata/import_test1.txt", "dir2 arg1 arg2\ndir3");
    write(dir.path(), "testdata/import_test2.txt", "host1 {\n\tdir1\n\tdir2 arg1\n}\n");
    write(dir.path(), "testdata/import_glob0.txt", "glob0.host0 {\n\tdir2 arg1\n}\n\nglob0.host1 {\n}\n");
    write(dir.path(), "testdata/import_glob1.txt", "glob1.host0 {\n\tdir1\n\tdir2 arg1\n}\n");
    write(dir.path(), "testdata/import_glob2.txt", "glob2.host0 {\n\tdir2 arg1\n}\n");

    let b = parse_str("localhost\n dir1 arg1\n import testdata/import_test1.txt", main, &lax()).unwrap();
    assert_eq!(shape(&b[0]), vec![("dir1", 2), ("dir2", 3), ("dir3", 1)]);
    let imported = &b[0].directive("dir2").unwrap()[0];
    assert_eq!(&*imported.file, dir.path().join("testdata/import_test1.txt").to_str().unwrap());
    assert_eq!(imported.line, 1);

    let b = parse_str("import testdata/import_test2.txt", main, &lax()).unwrap();
    assert_eq!(keys(&b[0]), vec!["host1"]);
    assert_eq!(shape(&b[0]), vec![("dir1", 1), ("dir2", 2)]);

    let e = parse_str("import testdata/import_test1.txt testdata/import_test2.txt", main, &lax()).unwrap_err();
    assert_eq!(e.message, "Import takes only one argument (glob pattern or file)");
    let e = parse_str("import missing.txt", main, &lax()).unwrap_err();
    assert_eq!(e.message, "File to import not found: missing.txt");
    assert_eq!(e.token, "missing.txt");
    assert_eq!(parse_str("import notfound/*", main, &lax()).unwrap(), vec![]);

    let b = parse_str("import testdata/import_glob*.txt", main, &lax()).unwrap();
    let all: Vec<Vec<&str>> = b.iter().map(keys).collect();
    assert_eq!(all, vec![vec!["glob0.host0"], vec!["glob0.host1"], vec!["glob1.host0"], vec!["glob2.host0"]]);
}

#[test]
fn import_argument_errors() {
    let e = err_of("import");
    assert_eq!(e.message, "Wrong argument count or unexpected line ending after 'import'");
    let e = err_of("import \"\"");
    assert_eq!(e.message, "Import requires a non-empty filepath");
    for src in ["import {$}", "import {%}", "import {$$}", "import {%%}", "import }{$\""] {
        assert!(parse(src).is_err(), "{src}");
    }
}

#[test]
fn case14_glob_restrictions() {
    let e = err_of("import /*/*.txt");
    assert_eq!(e.message, "Glob pattern may only contain one wildcard (*), but has others: /*/*.txt");
    let e = err_of("import /[a-z]");
    assert_eq!(e.message, "Glob pattern may only contain one wildcard (*), but has others: /[a-z]");
    assert!(parse("import /???/?*?o").is_err());
    assert!(parse("import /??").is_err());
    let e = err_of("import /tmp/[abc");
    assert!(e.message.starts_with("Failed to use import pattern /tmp/[abc"), "{}", e.message);
}

#[test]
fn import_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let main = dir.path().join("Corefile");
    let e = parse_str(". {\n import sub\n}", main.to_str().unwrap(), &lax()).unwrap_err();
    assert_eq!(e.message, format!("Could not import {}: is a directory", dir.path().join("sub").display()));
}

#[test]
fn import_relative_to_importing_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "conf/a.conf", "import b.conf\n");
    write(dir.path(), "conf/b.conf", ". {\n whoami\n}\n");
    let main = write(dir.path(), "Corefile", "import conf/a.conf\n");
    let b = parse_file(Path::new(&main), &lax()).unwrap();
    assert_eq!(keys(&b[0]), vec!["."]);
    assert_eq!(&*b[0].keys[0].file, dir.path().join("conf/b.conf").to_str().unwrap());
}

#[test]
fn import_in_nested_block_and_as_directive() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "props", "prop1 1\nprop2 2");
    let main = dir.path().join("Corefile");
    let b =
        parse_str("localhost\ndir1\nproxy {\n import props\n transparent\n}", main.to_str().unwrap(), &lax()).unwrap();
    assert_eq!(shape(&b[0]), vec![("dir1", 1), ("proxy", 8)]);
    let e = parse_str("localhost\nproxy {\n import nonexistent_file\n}", main.to_str().unwrap(), &lax()).unwrap_err();
    assert_eq!(e.message, "File to import not found: nonexistent_file");
}

#[test]
fn case19_import_not_at_line_start_is_an_argument() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "site",
        "http://example.com {\n # This isn't an import directive\n basicauth / import password\n}\n",
    );
    let b = parse(&format!("import {f}")).unwrap();
    assert_eq!(texts(&b[0], "basicauth"), vec!["basicauth", "/", "import", "password"]);
}

#[test]
fn case17_snippets() {
    let b = parse("(common) {\n gzip foo\n errors stderr\n}\nhttp://example.com {\n import common\n}").unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(keys(&b[0]), vec!["http://example.com"]);
    assert_eq!(texts(&b[0], "gzip"), vec!["gzip", "foo"]);
    assert_eq!(texts(&b[0], "errors"), vec!["errors", "stderr"]);
}

#[test]
fn snippet_rules() {
    let e = err_of("(a) {\n x\n}\n(a) {\n y\n}");
    assert_eq!(e.message, "redeclaration of previously declared snippet a");
    // Used before its definition: looked up as a file.
    let e = err_of(". {\n import later\n}\n(later) {\n x\n}");
    assert_eq!(e.message, "File to import not found: later");
    // Braces are mandatory.
    let e = err_of("(s)\nwhoami\n");
    assert_eq!(e.message, "Unexpected token 'whoami', expecting '{'");
    // Snippets can supply server blocks at top level, and be empty.
    let b = parse("(blk) {\n. {\n whoami\n}\n}\n(none) {\n}\nimport blk\nimport none").unwrap();
    assert_eq!(keys(&b[0]), vec!["."]);
    assert_eq!(shape(&b[0]), vec![("whoami", 1)]);
}

#[test]
fn snippet_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "derived", "\nhttp://example.com {\n import common\n}\n");
    let b = parse(&format!("(common) {{\n gzip foo\n}}\nimport {f}\n")).unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(shape(&b[0]), vec![("gzip", 2)]);
}

#[test]
fn case18_self_import_and_cycles() {
    let e = err_of("(loop) {\nimport loop\n}\nimport loop\n");
    assert_eq!(e.message, "maximum snippet import depth (10000) exceeded");
    let e = err_of("(loop) {\n{ }\nimport loop\n}\nimport loop\n");
    assert_eq!(e.message, "maximum snippet import depth (10000) exceeded");

    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    std::fs::write(&a, format!("import {}", b.display())).unwrap();
    std::fs::write(&b, format!("import {}", a.display())).unwrap();
    let e = parse(&format!("import {}", a.display())).unwrap_err();
    assert_eq!(e.message, "maximum file import depth (10000) exceeded");
}

#[test]
fn glob_over_many_files_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..200 {
        std::fs::write(dir.path().join(format!("f_{i}")), "").unwrap();
    }
    assert_eq!(parse(&format!("import {}/*", dir.path().display())).unwrap(), vec![]);
}

#[test]
fn deep_snippet_chain_hits_the_cap_without_overflow() {
    fn chain(n: usize) -> String {
        let mut s = String::from("(s0) {\n whoami\n}\n");
        for i in 1..n {
            s.push_str(&format!("(s{i}) {{\n import s{}\n}}\n", i - 1));
        }
        s.push_str(&format!(". {{\n import s{}\n}}\n", n - 1));
        s
    }
    let b = parse(&chain(10_000)).unwrap();
    assert_eq!(shape(&b[0]), vec![("whoami", 1)]);
    let e = parse(&chain(10_001)).unwrap_err();
    assert_eq!(e.message, "maximum snippet import depth (10000) exceeded");
}

#[test]
fn snippet_imported_twice_glues_lines() {
    // The second copy's tokens keep their definition line numbers, which are not "later"
    // than the first copy's last token, so CoreDNS glues them onto the previous line.
    let b = parse("(s) {\n log\n}\n. {\n import s\n import s\n}").unwrap();
    assert_eq!(texts(&b[0], "log"), vec!["log", "log"]);
}

// ----- bad input -----

#[test]
fn invalid_utf8_is_an_error_not_a_panic() {
    let e = parse_bytes(b". {\n  whoami \xc3\x28\n}", "Corefile", &lax()).unwrap_err();
    assert_eq!((e.file.as_ref(), e.line, e.col), ("Corefile", 2, 10));
}

#[test]
fn random_bytes_do_not_panic() {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..2000 {
        let mut buf = Vec::new();
        for _ in 0..(x % 200) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf.push(b"{}\"\\#\n ab$%,(import)"[(x % 20) as usize]);
        }
        let _ = parse_bytes(&buf, "Corefile", &strict());
        let _ = parse_bytes(&buf, "Corefile", &lax());
    }
}

#[test]
fn ten_megabyte_corefile() {
    let mut s = String::with_capacity(10 << 20);
    let mut i = 0;
    while s.len() < 10 << 20 {
        s.push_str(&format!(
            "zone{i}.example:53 {{\n  errors\n  cache 30\n  forward . 10.0.0.{} {{\n    force_tcp\n  }}\n}}\n",
            i % 250
        ));
        i += 1;
    }
    let b = parse_str(&s, "Corefile", &strict()).unwrap();
    assert_eq!(b.len(), i);
    assert_eq!(shape(&b[i - 1]), vec![("errors", 1), ("cache", 2), ("forward", 6)]);
}
