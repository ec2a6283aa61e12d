//! Shared command-line plumbing for the `nodecache` and `node-cache` binaries: running the
//! engine with signals, reload and pidfile, and CoreDNS's startup output.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::engine::{Engine, Source};
use crate::lifecycle::{ExitPlan, Signals};
use crate::statedir::{handover, Registration, StateDir};

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
    /// This instance's place in the `-statedir` shared with other instances on the node (cache
    /// handover and snapshot; the exit hooks run only in the last instance to leave). See
    /// [`register`].
    pub registration: Option<Registration>,
}

/// Joins the state directory `-statedir` names (`None` for an empty flag). Must run before
/// the node setup, so that an instance leaving meanwhile sees this one. An unusable directory
/// is logged and the instance runs without it.
pub fn register(statedir: &str) -> Option<Registration> {
    if statedir.is_empty() {
        return None;
    }
    match StateDir::open(statedir).and_then(|d| d.register()) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!("state directory {statedir}: {e}; running without it");
            None
        }
    }
}

/// How an instance leaves the node: its place in the state directory (if any) and the teardown
/// hooks, used once (by a graceful stop, else by the exit hooks).
struct Departure {
    registration: Option<Registration>,
    teardown: Vec<Box<dyn FnOnce() + Send>>,
}

impl Departure {
    /// Leaves the state directory and runs the teardown if no other instance is left serving
    /// (always, without a state directory). Returns whether this instance was the last.
    fn depart(self) -> bool {
        let run = move || self.teardown.into_iter().for_each(|h| h());
        let Some(reg) = self.registration else {
            run();
            return true;
        };
        match reg.leave(run) {
            Ok(true) => true,
            Ok(false) => {
                tracing::info!("another instance serves on this node: leaving the node setup in place");
                false
            }
            Err(e) => {
                tracing::error!("state directory: cannot leave cleanly: {e}");
                false
            }
        }
    }
}

/// How many workers serve: `GOMAXPROCS` when it is a positive number (the setting operators
/// already give CoreDNS and node-cache), else the CPUs this process may run on (its affinity
/// mask and cgroup CPU quota, as `std::thread::available_parallelism` reads them).
pub fn worker_count(gomaxprocs: Option<&str>) -> usize {
    if let Some(n) = gomaxprocs.and_then(|v| v.trim().parse::<usize>().ok()).filter(|n| *n > 0) {
        return n.min(256);
    }
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

/// Runs the engine until a signal ends it; returns the process exit status.
pub fn serve(opts: ServeOptions) -> i32 {
    let workers = worker_count(std::env::var("GOMAXPROCS").ok().as_deref());
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
        let registration = opts.registration;
        if let Some((bytes, from)) = registration.as_ref().and_then(handover::fetch) {
            engine.preload_snapshot(bytes, from);
        }
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
        if let Some(reg) = &registration {
            if let Err(e) = handover::serve(reg, engine.clone()) {
                tracing::warn!("cache handover socket not started: {e}");
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
        let statedir = registration.as_ref().map(|r| (r.dir().clone(), r.id().to_string()));
        let departure = Arc::new(parking_lot::Mutex::new(Some(Departure { registration, teardown: opts.exit_hooks })));
        let leaving = departure.clone();
        exit.hooks.push(Box::new(move || {
            if let Some(d) = leaving.lock().take() {
                d.depart();
            }
        }));
        let draining = engine.clone();
        exit.drain = Some(Box::new(move || {
            // The last instance on the node tears the setup down while it still serves (the
            // teardown takes a while, and the DNS sockets keep answering until the interface
            // goes); one with a successor leaves the setup and hands its traffic over.
            let last = departure.lock().take().is_none_or(Departure::depart);
            let left = draining.quiesce(DRAIN_LIMIT);
            if left > 0 {
                tracing::warn!(
                    "{left} queries still unanswered after {}",
                    crate::gocompat::duration::format_std(DRAIN_LIMIT)
                );
            }
            if let (true, Some((dir, id))) = (last, &statedir) {
                handover::save_if_alone(dir, id, &draining);
            }
        }));
        let status = signals.run(reload_tx, exit).await;
        engine.stop();
        status
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gomaxprocs_sets_the_workers_when_it_is_a_positive_number() {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        assert_eq!(worker_count(Some("3")), 3);
        assert_eq!(worker_count(Some(" 1 ")), 1);
        assert_eq!(worker_count(Some("100000")), 256);
        assert_eq!(worker_count(Some("0")), cpus);
        assert_eq!(worker_count(Some("many")), cpus);
        assert_eq!(worker_count(None), cpus);
    }
}
