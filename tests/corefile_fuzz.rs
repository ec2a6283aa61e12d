//! Property tests: the Corefile front end never panics, whatever the bytes.

use std::collections::HashMap;

use nodecache::corefile::{fingerprint, parse_bytes, parse_str, render_error, ParseOptions};
use proptest::prelude::*;

fn opts(validate: bool) -> ParseOptions {
    let env: HashMap<String, String> =
        [("X", "a b"), ("Y", "{"), ("Z", "import")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    ParseOptions { validate_directives: validate, env: Some(env) }
}

/// Pieces that exercise every lexer and parser rule; `import` only names snippets or files
/// that do not exist, so the file system is never walked.
const PIECES: &[&str] = &[
    "{",
    "}",
    "\"",
    "\\",
    "\\\"",
    "#",
    "\n",
    "\r\n",
    " ",
    "\t",
    ",",
    "(s)",
    "(t)",
    "import s",
    "import t",
    "import nofile",
    "import",
    "{$X}",
    "{$Y}",
    "{%X%}",
    "{$}",
    "log",
    "cache",
    "forward",
    ".:53",
    "a",
    "é",
    "\u{a0}",
    "\u{feff}",
    "\"\"",
];

fn corefile_like() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(PIECES), 0..40).prop_map(|v| v.concat())
}

fn check(bytes: &[u8]) {
    for validate in [true, false] {
        match parse_bytes(bytes, "Corefile", &opts(validate)) {
            Ok(blocks) => {
                let fp = fingerprint(&blocks);
                assert_eq!(fp.len(), 128);
            }
            Err(e) => {
                let text = String::from_utf8_lossy(bytes);
                let rendered = render_error(&e, Some(("Corefile", &text)));
                assert!(!rendered.is_empty());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
        check(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn corefile_shaped_text_never_panics(text in corefile_like()) {
        check(text.as_bytes());
        // Parsing is deterministic.
        let a = parse_str(&text, "Corefile", &opts(false));
        let b = parse_str(&text, "Corefile", &opts(false));
        prop_assert_eq!(a, b);
    }
}
