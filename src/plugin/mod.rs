//! Plugins: each module holds one plugin's Corefile syntax (`setup`) beside its query handler.

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use hickory_proto::op::ResponseCode;

use crate::server::{Outcome, Request};

/// A plugin's query handler, one link of a server block's chain.
pub trait Plugin: Send + Sync + 'static {
    /// The plugin's directive name (metrics `plugin` label).
    fn name(&self) -> &'static str;

    /// Handles `req`; call `next.serve(req)` to pass it on down the chain.
    fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> BoxFuture<'a, Outcome>;

    /// Whether the plugin is ready (for the `ready` plugin). Default: always.
    fn ready(&self) -> bool {
        true
    }

    /// The concrete handler, for code that needs to reach one plugin's own state (the engine's
    /// cache snapshot, tests). Default: opaque.
    fn as_any(&self) -> Option<&dyn Any> {
        None
    }

    /// How the plugin stands towards the server's fast path. Default: it may change or answer
    /// anything, so the block has no fast path around it.
    fn fast_role(&self) -> fast::FastRole {
        fast::FastRole::Opaque
    }

    /// The plugin as an answerer from stored wire bytes, if it is one.
    fn fast_answer(self: Arc<Self>) -> Option<Arc<dyn fast::FastAnswer>> {
        None
    }

    /// The plugin as a direct upstream for misses, if it is one.
    fn fast_upstream(self: Arc<Self>) -> Option<Arc<dyn fast::FastUpstream>> {
        None
    }

    /// Whether the block records `coredns_dns_*` metrics because of this plugin.
    fn records_dns_metrics(&self) -> bool {
        false
    }
}

/// A built plugin chain, outermost handler first.
pub type Chain = Arc<[Arc<dyn Plugin>]>;

/// The rest of a chain after the current plugin.
#[derive(Clone, Copy)]
pub struct Next<'a> {
    chain: &'a Chain,
    index: usize,
}

impl<'a> Next<'a> {
    /// The whole chain, starting at its first plugin.
    pub fn start(chain: &'a Chain) -> Next<'a> {
        Next { chain, index: 0 }
    }

    /// True when there is no further plugin.
    pub fn is_empty(&self) -> bool {
        self.index >= self.chain.len()
    }

    /// Name of the next plugin, if any.
    pub fn peek_name(&self) -> Option<&'static str> {
        self.chain.get(self.index).map(|p| p.name())
    }

    /// Runs the remaining chain. With nothing left it returns SERVFAIL with
    /// `no next plugin found`, as CoreDNS does.
    pub fn serve<'b>(&self, req: &'b mut Request) -> BoxFuture<'b, Outcome>
    where
        'a: 'b,
    {
        match self.chain.get(self.index) {
            Some(p) => p.serve(req, Next { chain: self.chain, index: self.index + 1 }),
            None => Box::pin(std::future::ready(Outcome::unwritten(
                ResponseCode::ServFail,
                Some("no next plugin found".to_string()),
            ))),
        }
    }

    /// An owned handle to the same position, for background work (prefetch, stale refresh).
    pub fn to_owned(&self) -> OwnedNext {
        OwnedNext { chain: self.chain.clone(), index: self.index }
    }
}

/// An owned position in a chain, usable from spawned tasks.
#[derive(Clone)]
pub struct OwnedNext {
    chain: Chain,
    index: usize,
}

impl OwnedNext {
    /// Runs the remaining chain on `req`.
    pub async fn serve(&self, req: &mut Request) -> Outcome {
        Next { chain: &self.chain, index: self.index }.serve(req).await
    }
}

/// What plugin setup code knows about the server block it configures.
#[derive(Clone, Debug, Default)]
pub struct SetupContext {
    /// The block's zones, normalised (lower case, FQDN), in key order.
    pub zones: Vec<String>,
    /// The block's ports, parallel to `zones`.
    pub ports: Vec<u16>,
}

/// What building a runtime plugin from its configuration may use.
#[derive(Clone)]
pub struct BuildContext {
    /// The block's zones (normalised), in key order.
    pub zones: Vec<String>,
    /// Listener labels this block serves on, e.g. `dns://:53`.
    pub servers: Vec<String>,
    /// Process-wide metrics.
    pub metrics: Arc<crate::observe::Metrics>,
    /// State carried across reloads, keyed by plugin-chosen strings.
    pub carry: Arc<Carryover>,
    /// What runs after the plugin being built, in execution order (names and configuration,
    /// setup-only plugins left out; see [`answers_key`]). A plugin that keeps answers across
    /// reloads (the cache) makes it part of its carry-over key, so that a changed upstream
    /// or answering plugin after it starts it afresh.
    pub after: String,
}

/// Plugins that only set the server up and add nothing to the chain's answers.
const SETUP_ONLY: &[&str] = &["bind", "reload", "health", "ready", "debug"];

/// The names and configurations of `plugins` that can decide answers, as one string.
pub fn answers_key(plugins: &[Arc<dyn PluginConfig>]) -> String {
    plugins
        .iter()
        .filter(|c| !SETUP_ONLY.contains(&c.name()))
        .map(|c| format!("{}:{:?}", c.name(), c))
        .collect::<Vec<_>>()
        .join("|")
}

/// A typed plugin configuration, parsed from its directive.
pub trait PluginConfig: Debug + Send + Sync + Any {
    /// Directive name.
    fn name(&self) -> &'static str;

    /// Human-readable options for `-explain` (default: the Debug form).
    fn describe(&self) -> String {
        format!("{self:?}")
    }

    /// Builds the query handler. `Ok(None)` for setup-only plugins (bind, reload, health,
    /// ready) that add no handler to the chain.
    fn build(&self, ctx: &BuildContext) -> Result<Option<Arc<dyn Plugin>>, String>;

    /// For consumers that need the concrete type (e.g. the listener plan reading `bind`).
    fn as_any(&self) -> &dyn Any;

    /// TCP deadlines and limits the directive sets for its block's listeners (`timeouts`).
    fn server_timeouts(&self) -> Option<ServerTimeouts> {
        None
    }

    /// Whether the directive makes its block's listeners take queries of classes other than
    /// IN (CoreDNS enables this for `chaos` and `forward`).
    fn takes_any_class(&self) -> bool {
        false
    }

    /// The HTTP endpoint this plugin asks the process to serve (`health`, `ready`,
    /// `prometheus`); `None` for every other plugin.
    fn http_endpoint(&self) -> Option<crate::observe::http::EndpointSpec> {
        None
    }

    /// `ready`'s `monitor continuously`: keep asking handlers after they were ready once.
    /// `false` for every other plugin.
    fn ready_continuously(&self) -> bool {
        false
    }
}

/// TCP deadlines and limits for a listener; None keeps the server's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerTimeouts {
    /// Deadline for the first message on a connection.
    pub read: Option<std::time::Duration>,
    /// Deadline for writing a reply.
    pub write: Option<std::time::Duration>,
    /// Deadline between messages on a connection.
    pub idle: Option<std::time::Duration>,
    /// Queries per connection; -1 is unlimited.
    pub max_tcp_queries: Option<i64>,
}

/// State kept across reloads: plugin instances look up what the previous runtime left
/// (cache stores, upstream pools) by a key derived from their configuration. Each reload builds
/// with a new generation; items the new runtime does not ask for are dropped with the old one.
#[derive(Default)]
pub struct Carryover {
    items: parking_lot::Mutex<Vec<(String, Arc<dyn Any + Send + Sync>)>>,
    previous: parking_lot::Mutex<Vec<(String, Arc<dyn Any + Send + Sync>)>>,
}

impl Carryover {
    /// Returns the value stored under `key` if it has type `T` (in this generation or the
    /// previous one), else stores `make()`.
    pub fn get_or_insert<T: Any + Send + Sync>(&self, key: &str, make: impl FnOnce() -> T) -> Arc<T> {
        let mut items = self.items.lock();
        if let Some((_, v)) = items.iter().find(|(k, _)| k == key) {
            if let Ok(t) = v.clone().downcast::<T>() {
                return t;
            }
        }
        let mut previous = self.previous.lock();
        if let Some(pos) = previous.iter().position(|(k, _)| k == key) {
            let (k, v) = previous.swap_remove(pos);
            if let Ok(t) = v.clone().downcast::<T>() {
                items.push((k, v));
                return t;
            }
        }
        let v = Arc::new(make());
        items.retain(|(k, _)| k != key);
        items.push((key.to_string(), v.clone() as Arc<dyn Any + Send + Sync>));
        v
    }

    /// The items of type `T` in this generation, with their keys.
    pub fn items_of<T: Any + Send + Sync>(&self) -> Vec<(String, Arc<T>)> {
        self.items.lock().iter().filter_map(|(k, v)| v.clone().downcast::<T>().ok().map(|t| (k.clone(), t))).collect()
    }

    /// A new generation that can take over this one's items.
    pub fn next_generation(&self) -> Carryover {
        let items = self.items.lock().clone();
        Carryover { items: parking_lot::Mutex::new(Vec::new()), previous: parking_lot::Mutex::new(items) }
    }

    /// Drops items of the previous generation that were not taken over.
    pub fn seal(&self) {
        self.previous.lock().clear();
    }
}

pub mod any;
pub mod bind;
pub mod bufsize;
pub mod cache;
pub mod cancel;
pub mod debug;
pub mod errors;
pub mod fast;
pub mod forward;
pub mod health;
pub mod hosts;
pub mod loadbalance;
pub mod log;
pub mod loop_detect;
pub mod minimal;
pub mod prometheus;
pub mod ready;
pub mod reload;
pub mod rewrite;
pub mod template;
pub mod timeouts;
pub mod whoami;
