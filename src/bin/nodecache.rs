//! `nodecache`: the engine with CoreDNS's flags (`-conf`, `-dns.port`/`-p`, `-pidfile`,
//! `-plugins`, `-version`, `-quiet`) plus `-validate` and `-explain`. Without `-conf` (and no
//! `./Corefile`) it serves an embedded loopback cache on 127.0.0.1:5353.

use nodecache::cli::{self, ServeOptions};
use nodecache::engine::{self, source_from_flag};
use nodecache::goflag::{self, Def, Kind, Parsed};

const DEFS: &[Def] = &[
    Def { name: "conf", kind: Kind::Value, alias_of: None },
    Def { name: "dns.port", kind: Kind::Value, alias_of: None },
    Def { name: "p", kind: Kind::Value, alias_of: Some("dns.port") },
    Def { name: "pidfile", kind: Kind::Value, alias_of: None },
    Def { name: "quiet", kind: Kind::Bool, alias_of: None },
    Def { name: "plugins", kind: Kind::Bool, alias_of: None },
    Def { name: "version", kind: Kind::Bool, alias_of: None },
    Def { name: "validate", kind: Kind::Bool, alias_of: None },
    Def { name: "explain", kind: Kind::Bool, alias_of: None },
    Def { name: "lint-policy", kind: Kind::Bool, alias_of: None },
    Def { name: "statedir", kind: Kind::Value, alias_of: None },
];

fn usage(argv0: &str) -> String {
    format!(
        "Usage of {argv0}:\n  -conf string\n    \tCorefile to load (default \"Corefile\", else an embedded loopback cache)\n  \
         -dns.port string\n    \tDefault port (default \"53\")\n  -explain\n    \tPrint the plan (listeners, zones, chains) and exit\n  \
         -p string\n    \tDefault port (default \"53\")\n  -pidfile string\n    \tPath to write pid file\n  \
         -plugins\n    \tList installed plugins\n  -quiet\n    \tQuiet mode (no initialization output)\n  \
         -statedir string\n    \tDirectory shared with other instances on the node: cache handover and snapshot\n  \
         -validate\n    \tCheck the Corefile and exit 0 (valid) or 1\n  -version\n    \tShow version\n"
    )
}

fn main() {
    nodecache::residency::fault_single_pages();
    let argv: Vec<String> = std::env::args().collect();
    let argv0 = argv.first().cloned().unwrap_or_else(|| "nodecache".to_string());
    let (values, rest) = match goflag::parse(DEFS, argv.get(1..).unwrap_or(&[])) {
        Ok(Parsed::Flags { values, rest }) => (values, rest),
        Ok(Parsed::Help) => {
            eprint!("{}", usage(&argv0));
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("{e}");
            eprint!("{}", usage(&argv0));
            std::process::exit(2);
        }
    };
    let flag = |n: &str| values.get(n).map(String::as_str);
    let on = |n: &str| flag(n) == Some("true");
    if on("lint-policy") {
        std::process::exit(lint_policies(&rest));
    }
    if !rest.is_empty() {
        eprintln!("[FATAL] extra command line arguments: {rest:?}");
        std::process::exit(1);
    }
    if on("version") {
        println!("{}", cli::version_line());
        return;
    }
    if on("plugins") {
        print!("{}", cli::plugins_listing());
        return;
    }
    let port = match flag("dns.port").unwrap_or("53").parse::<u16>() {
        Ok(p) => p,
        Err(_) => {
            eprintln!("[FATAL] invalid port: {}", flag("dns.port").unwrap_or(""));
            std::process::exit(1);
        }
    };
    let source = match source_from_flag(flag("conf")) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("[FATAL] {e}");
            std::process::exit(1);
        }
    };
    if on("validate") || on("explain") {
        match engine::load(&source, port) {
            Ok(loaded) => {
                if on("explain") {
                    print!("{}", nodecache::config::explain::explain(&loaded.plan));
                } else {
                    println!("{}: OK", source.name());
                }
                return;
            }
            Err(e) => {
                eprint!("{e}");
                std::process::exit(1);
            }
        }
    }
    nodecache::observe::logging::init(on("quiet"));
    // Never fatal: the outcome is logged at debug level.
    let _ = nodecache::lifecycle::raise_nofile_limit();
    let status = cli::serve(ServeOptions {
        source,
        port,
        pidfile: flag("pidfile").filter(|p| !p.is_empty()).map(Into::into),
        quiet: on("quiet"),
        exit_hooks: Vec::new(),
        on_started: None,
        registration: cli::register(flag("statedir").unwrap_or("")),
    });
    std::process::exit(status);
}

/// `-lint-policy FILE...`: prints one `[WARNING]` line per rule that lets pods reach kube-dns
/// but not node-local-dns; exits 0 when clean, 1 with warnings, 2 when a file cannot be read.
fn lint_policies(paths: &[String]) -> i32 {
    use nodecache::nodelocal::policy_lint::{lint_path, LintOptions};
    if paths.is_empty() {
        eprintln!("-lint-policy needs at least one file or directory");
        return 2;
    }
    let opts = LintOptions::default();
    let mut status = 0;
    for p in paths {
        match lint_path(std::path::Path::new(p), &opts) {
            Ok(warnings) => {
                for w in &warnings {
                    println!("[WARNING] {w}");
                }
                if !warnings.is_empty() && status == 0 {
                    status = 1;
                }
            }
            Err(e) => {
                eprintln!("[ERROR] {e}");
                status = 2;
            }
        }
    }
    if status == 0 {
        println!("OK: every policy that allows DNS to kube-dns also allows node-local-dns");
    }
    status
}
