//! Shared command-line plumbing for the `nodecache` and `node-cache` binaries: running the
//! engine with signals, reload and pidfile, and CoreDNS's startup output.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::engine::{Engine, Source};
use crate::lifecycle::{ExitPlan, Signals};

/// How long a graceful stop waits for the queries already read (a forward attempt's longest
/// wait plus a retry).
pub const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The version string printed by `-version` and at startup.
pub fn version_line() -> String {
    format!("nodecache-{}", env!("CARGO_PKG_VERSION"))
}

/// CoreDNS's startup lines: `ZONE:PORT` per served zone, `on IP` for bound listeners.
pub fn startup_lines(engine: &Engine) -> Vec<String> {
    let Some(rt) = engine.runtime() else { return Vec::new() };
    let mut out = Vec::new();
    for l in &rt.plan.listeners {
        for (zone, _) in &l.zones {
            let mut line = format!("{}:{}", zone, l.addr.port());
            if !l.wildcard {
                line.push_str(&format!(" on {}", l.addr.ip()));
            }
            if !out.contains(&line) {
                out.push(line);
            }
        }
    }
    out
}

/// The `-plugins` listing.
pub fn plugins_listing() -> String {
    let mut s = String::from("Server types:\n  dns\n\nCaddyfile loaders:\n  flag\n  default\n\nOther plugins:\n");
    for p in crate::config::registry::implemented() {
        s.push_str(&format!("  dns.{p}\n"));
    }
    s
}

/// A callback run once the servers are up, given the engine and the reload trigger.
pub type OnStarted = Box<dyn FnOnce(Arc<Engine>, mpsc::UnboundedSender<crate::reload::Trigger>) + Send>;

/// Options for [`serve`].
pub struct ServeOptions {
    /// Corefile source.
    pub source: Source,
    /// Default port (`-dns.port`).
    pub port: u16,
    /// `-pidfile`.
    pub pidfile: Option<PathBuf>,
    /// `-quiet`.
    pub quiet: bool,
    /// Extra exit hooks run after the pidfile is removed (node-cache teardown).
    pub exit_hooks: Vec<Box<dyn FnOnce() + Send>>,
    /// Called once the servers are up (node-cache's setup loop starts here).
    pub on_started: Option<OnStarted>,
}

/// Runs the engine until a signal ends it; returns the process exit status.
pub fn serve(opts: ServeOptions) -> i32 {
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("[FATAL] cannot start runtime: {e}");
            return 1;
        }
    };
    rt.block_on(async move {
        let signals = match Signals::install() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("[FATAL] cannot install signal handlers: {e}");
                return 1;
            }
        };
        let engine = Arc::new(Engine::new(opts.port, workers));
        if let Err(e) = engine.start(&opts.source) {
            eprintln!("{e}");
            return 1;
        }
        if !opts.quiet {
            for line in startup_lines(&engine) {
                println!("{line}");
            }
            println!("{}", version_line());
        }
        crate::residency::release_startup_pages();
        if let Some(p) = &opts.pidfile {
            if let Err(e) = crate::lifecycle::write_pidfile(p) {
                eprintln!("[FATAL] Could not write pidfile: {e}");
                return 1;
            }
        }
        let (reload_tx, reload_rx) = mpsc::unbounded_channel();
        tokio::spawn(crate::reload::run(engine.clone(), opts.source.clone(), reload_rx));
        if let Some(f) = opts.on_started {
            f(engine.clone(), reload_tx.clone());
        }
        let mut exit = ExitPlan::default();
        if let Some(p) = opts.pidfile.clone() {
            exit.hooks.push(Box::new(move || {
                let _ = std::fs::remove_file(p);
            }));
        }
        exit.hooks.extend(opts.exit_hooks);
        let draining = engine.clone();
        exit.drain = Some(Box::new(move || {
            let left = draining.quiesce(DRAIN_LIMIT);
            if left > 0 {
                tracing::warn!(
                    "{left} queries still unanswered after {}",
                    crate::gocompat::duration::format_std(DRAIN_LIMIT)
                );
            }
        }));
        let status = signals.run(reload_tx, exit).await;
        engine.stop();
        status
    })
}
