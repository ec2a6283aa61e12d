//! The engine: Corefile text → plan → runtime → running listeners, and reloads that swap the
//! runtime without dropping sockets. A reload that fails at any step keeps the old runtime.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use parking_lot::Mutex;

use crate::config::build::{build_plan, PlanOptions};
use crate::config::Plan;
use crate::corefile::{self, ParseOptions};
use crate::plugin::cache::store::Stores;
use crate::plugin::Carryover;
use crate::server::{runtime, Listeners, Runtime};

/// Where a Corefile comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A file on disk (re-read on every load).
    File(PathBuf),
    /// Text with a display name (stdin, the embedded default).
    Text {
        /// Name used in error messages.
        name: String,
        /// The Corefile.
        text: String,
    },
}

impl Source {
    /// The name used in messages.
    pub fn name(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::Text { name, .. } => name.clone(),
        }
    }

    /// Reads the current text.
    pub fn read(&self) -> Result<String, String> {
        match self {
            Source::File(p) => std::fs::read(p)
                .map_err(|e| format!("{}: {e}", p.display()))
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
            Source::Text { text, .. } => Ok(text.clone()),
        }
    }
}

/// A parsed and planned Corefile.
pub struct Loaded {
    /// The plan.
    pub plan: Plan,
    /// SHA-512 fingerprint of the parsed server blocks (reload change detection).
    pub fingerprint: String,
}

/// Whether `text` holds no Corefile tokens at all (only whitespace and comments). CoreDNS
/// would load such a file as its built-in `.:<port> { whoami log }` server; we refuse it.
pub fn is_blank(text: &str) -> bool {
    corefile::lexer::lex(text, &std::sync::Arc::from("")).is_empty()
}

/// The start-up error for a blank Corefile (see [`is_blank`]).
fn blank_error(name: &str) -> String {
    format!("Corefile {name} is empty (only whitespace and comments): refusing to load it\n")
}

/// Parses and plans `source`; errors come rendered compiler-style. A blank Corefile (see
/// [`is_blank`]) is an error.
pub fn load(source: &Source, default_port: u16) -> Result<Loaded, String> {
    let text = source.read()?;
    let name = source.name();
    if is_blank(&text) {
        return Err(blank_error(&name));
    }
    let blocks = corefile::parse_str(&text, &name, &ParseOptions::default())
        .map_err(|e| corefile::render_error(&e, Some((&name, &text))))?;
    let fingerprint = corefile::fingerprint(&blocks);
    let plan = build_plan(&blocks, &PlanOptions { default_port })
        .map_err(|e| corefile::render_error(&e, Some((&name, &text))))?;
    Ok(Loaded { plan, fingerprint })
}

/// Why a reload did not apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReloadError {
    /// The Corefile could not be read (CoreDNS skips that check silently).
    Read(String),
    /// The Corefile could not be read or tokenized into server blocks (CoreDNS logs
    /// `Corefile parse failed: ...` and tries again on the next check; not counted).
    Parse(String),
    /// The changed Corefile could not be planned, built or bound; the old runtime keeps
    /// serving and this content is not tried again until it changes.
    Failed(String),
    /// The Corefile (named here) has no tokens, only whitespace and comments: refused like a
    /// failed reload, so the running configuration (and its `reload`) stays.
    Empty(String),
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReloadError::Read(e) | ReloadError::Parse(e) | ReloadError::Failed(e) => f.write_str(e.trim_end()),
            ReloadError::Empty(name) => write!(f, "Corefile {name} is empty: keeping the running configuration"),
        }
    }
}

/// The change-detection fingerprint of `text`: the Corefile's server blocks as CoreDNS's reload
/// plugin sees them (imports and env expanded, directives not validated).
pub fn content_fingerprint(text: &str, name: &str) -> Result<String, String> {
    let opts = ParseOptions { validate_directives: false, ..ParseOptions::default() };
    let blocks = corefile::parse_str(text, name, &opts).map_err(|e| corefile::render_error(&e, Some((name, text))))?;
    Ok(corefile::fingerprint(&blocks))
}

/// The running engine.
pub struct Engine {
    listeners: Listeners,
    carry: Mutex<Arc<Carryover>>,
    current: ArcSwapOption<Runtime>,
    fingerprint: Mutex<String>,
    /// Fingerprint of the last content a change-driven reload tried (or the running one).
    attempted: Mutex<String>,
    /// Serialises reloads (watcher, poll and signal may race).
    reloading: Mutex<()>,
    /// A cache snapshot to load into the first runtime before its listeners open.
    preload: Mutex<Option<(Vec<u8>, String)>>,
    default_port: u16,
}

impl Engine {
    /// An engine with no listeners yet; `workers` UDP sockets per address.
    pub fn new(default_port: u16, workers: usize) -> Engine {
        Engine {
            listeners: Listeners::new(workers),
            carry: Mutex::new(Arc::new(Carryover::default())),
            current: ArcSwapOption::empty(),
            fingerprint: Mutex::new(String::new()),
            attempted: Mutex::new(String::new()),
            reloading: Mutex::new(()),
            preload: Mutex::new(None),
            default_port,
        }
    }

    /// Default DNS port (`-dns.port`).
    pub fn default_port(&self) -> u16 {
        self.default_port
    }

    /// Builds and applies `loaded`: the runtime is built (reusing carried cache stores and
    /// upstreams), then the DNS listeners are switched (new sockets bound before anything
    /// changes; kept sockets swap what they serve; removed ones stop), then the HTTP endpoints,
    /// readiness checks and `coredns_plugin_enabled` follow. On a build or DNS bind failure
    /// nothing changes. An HTTP endpoint that cannot start is reported as an error, but the new
    /// DNS runtime is already serving then and stays (CoreDNS may also lose HTTP listeners on
    /// such a reload).
    pub fn apply(&self, loaded: Loaded) -> Result<(), String> {
        let carry = Arc::new(self.carry.lock().next_generation());
        let rt = runtime::build(loaded.plan, carry.clone())?;
        if let Some((bytes, from)) = self.preload.lock().take() {
            load_snapshot(&carry, &bytes, &from);
        }
        self.listeners.apply(&rt)?;
        carry.seal();
        *self.carry.lock() = carry;
        *self.attempted.lock() = loaded.fingerprint.clone();
        *self.fingerprint.lock() = loaded.fingerprint;
        let rt = Arc::new(rt);
        self.current.store(Some(rt.clone()));
        publish_observability(&rt)
    }

    /// Gives the next runtime built a cache snapshot (`from` names its origin for the log), to
    /// load before its listeners open.
    pub fn preload_snapshot(&self, bytes: Vec<u8>, from: String) {
        *self.preload.lock() = Some((bytes, from));
    }

    /// Every cache of the running configuration as a snapshot ([`crate::plugin::cache::snapshot`]).
    pub fn cache_snapshot(&self) -> Vec<u8> {
        let carry = self.carry.lock().clone();
        crate::plugin::cache::snapshot::encode(&carry.items_of::<Stores>(), Instant::now())
    }

    /// Loads and applies `source`.
    pub fn start(&self, source: &Source) -> Result<(), String> {
        let loaded = load(source, self.default_port)?;
        self.apply(loaded)
    }

    /// Reloads `source` if its parsed content changed (or `force`). Returns whether a new
    /// runtime was applied. A text that already failed is not retried until it changes
    /// (unless forced).
    pub fn reload(&self, source: &Source, force: bool) -> Result<bool, String> {
        self.reload_checked(source, force).map_err(|e| e.to_string())
    }

    /// [`Engine::reload`] telling parse failures (retried) from failed reloads (remembered).
    /// Without `force`, content whose fingerprint equals the running configuration's, or the
    /// last one that failed, is skipped. A blank Corefile is refused ([`ReloadError::Empty`])
    /// and remembered even when forced, so a signal and the watcher seeing the same empty file
    /// report it once.
    pub fn reload_checked(&self, source: &Source, force: bool) -> Result<bool, ReloadError> {
        let _one = self.reloading.lock();
        let text = source.read().map_err(ReloadError::Read)?;
        let name = source.name();
        let fp = content_fingerprint(&text, &name).map_err(ReloadError::Parse)?;
        if !force && *self.attempted.lock() == fp {
            return Ok(false);
        }
        if is_blank(&text) {
            *self.attempted.lock() = fp;
            return Err(ReloadError::Empty(name));
        }
        if !force {
            *self.attempted.lock() = fp;
        }
        tracing::info!("Reloading");
        let fixed = Source::Text { name, text };
        let loaded = load(&fixed, self.default_port).map_err(ReloadError::Failed)?;
        self.apply(loaded).map(|_| true).map_err(ReloadError::Failed)
    }

    /// The current runtime.
    pub fn runtime(&self) -> Option<Arc<Runtime>> {
        self.current.load_full()
    }

    /// The fingerprint of the running configuration.
    pub fn fingerprint(&self) -> String {
        self.fingerprint.lock().clone()
    }

    /// Bound addresses of the listeners.
    pub fn bound(&self) -> Vec<std::net::SocketAddr> {
        self.listeners.bound().into_iter().map(|(_, a)| a).collect()
    }

    /// Stops all listeners.
    pub fn stop(&self) {
        self.listeners.stop_all();
    }

    /// A graceful stop's serving half: listeners stop taking new queries (see
    /// [`Listeners::quiesce`]), then queries already read are answered, each wait bounded by
    /// `limit`. Returns the queries still unanswered when the time ran out.
    pub fn quiesce(&self, limit: Duration) -> usize {
        let started = Instant::now();
        let draining = self.listeners.quiesce(limit);
        if draining > 0 {
            tracing::warn!(
                "{draining} UDP sockets still had queries queued after {}",
                crate::gocompat::duration::format_std(limit)
            );
        }
        crate::server::drain::wait_idle(limit.saturating_sub(started.elapsed()))
    }
}

/// Loads `bytes` into the caches `carry` holds, logging one line with the outcome.
fn load_snapshot(carry: &Carryover, bytes: &[u8], from: &str) {
    let started = Instant::now();
    match crate::plugin::cache::snapshot::load(bytes, &carry.items_of::<Stores>(), started) {
        Ok(s) => tracing::info!(
            "cache warmed from {from}: {} entries loaded, {} expired, {} caches of another configuration skipped ({} ms)",
            s.loaded,
            s.expired,
            s.unmatched_caches,
            started.elapsed().as_millis()
        ),
        Err(e) => tracing::warn!("cache snapshot from {from} ignored: {e}"),
    }
}

/// Starts/stops the health, ready and metrics endpoints the plan asks for, installs the
/// readiness checks of blocks that use `ready`, and sets `coredns_plugin_enabled`.
fn publish_observability(rt: &Runtime) -> Result<(), String> {
    let chains: Vec<crate::plugin::Chain> = rt.blocks.iter().map(|b| b.chain.clone()).collect();
    crate::observe::wiring::after_build(&rt.plan, &chains)
}

/// The embedded default served when no Corefile is given: a loopback cache forwarding to the
/// system resolvers.
pub const DEFAULT_COREFILE: &str =
    ".:5353 {\n    bind 127.0.0.1\n    errors\n    cache 30\n    forward . /etc/resolv.conf\n}\n";

/// Resolves the `-conf` flag CoreDNS's way: a path, `stdin`, else `./Corefile` if present, else
/// the embedded default.
pub fn source_from_flag(conf: Option<&str>) -> Result<Source, String> {
    match conf {
        Some("stdin") => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|e| format!("stdin: {e}"))?;
            Ok(Source::Text { name: "stdin".to_string(), text })
        }
        Some(p) if !p.is_empty() => Ok(Source::File(PathBuf::from(p))),
        _ if Path::new("Corefile").exists() => Ok(Source::File(PathBuf::from("Corefile"))),
        _ => Ok(Source::Text { name: "default".to_string(), text: DEFAULT_COREFILE.to_string() }),
    }
}
