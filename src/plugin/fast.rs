//! The fast path's capabilities: what a block's plugins offer the server for a plain query
//! that need not run the chain. A plugin that can answer from stored wire bytes implements
//! [`FastAnswer`]; one that can send a miss upstream without the chain implements
//! [`FastUpstream`]; every other plugin says through [`FastRole`] whether it may sit in front
//! of or between them. [`FastBlock::plan`] puts a block's capabilities together once, when the
//! block is built; the server then uses only what this module names.

use std::cell::RefCell;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::Plugin;
use crate::server::request::Proto;

/// How a plugin stands towards the fast path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FastRole {
    /// The plugin may change or answer any query: a block holding it before the answerer has
    /// no fast path, and one holding it after the answerer sends no miss upstream directly.
    Opaque,
    /// The plugin changes nothing on a query or its reply that the server's fast path does not
    /// also do (metrics, error logging): it may run in front of the answerer.
    Transparent,
    /// The plugin acts on queries of this type only and passes every other on untouched: it
    /// may sit between the answerer and the upstream, which then leaves that type to the chain.
    ActsOnType(u16),
}

/// A query as the server's fast path sees it, before a full request exists.
#[derive(Clone, Copy, Debug)]
pub struct FastQuery<'a> {
    /// The listener label (`dns://:53`), for metrics.
    pub server: &'a str,
    /// The client's whole query in wire form (header and question; ID, opcode, RD, CD and AD
    /// are read from it, and a reply's question is spelled as it is here).
    pub query: &'a [u8],
    /// The first question's name, lower-cased, with the trailing dot.
    pub qname_lower: &'a str,
    /// Question type.
    pub qtype: u16,
    /// Question class.
    pub qclass: u16,
    /// The DO bit of the client's OPT (false without OPT).
    pub do_bit: bool,
    /// The instant of the look-up.
    pub now: Instant,
}

/// What [`FastAnswer::lookup_fast`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum FastLookup {
    /// A fresh hit: the reply (without OPT), counted.
    Hit(Vec<u8>),
    /// Nothing stored; nothing counted yet.
    Absent,
    /// The chain must handle the query; nothing counted.
    Pass,
}

impl FastLookup {
    /// The reply of a hit.
    pub fn hit(self) -> Option<Vec<u8>> {
        match self {
            FastLookup::Hit(out) => Some(out),
            FastLookup::Absent | FastLookup::Pass => None,
        }
    }
}

/// A plugin that answers plain queries from stored wire bytes (the `cache`).
pub trait FastAnswer: Send + Sync {
    /// Answers `fq` if it can: [`FastLookup::Hit`] is a complete reply without OPT, counted as
    /// the chain would count it; the caller adds the client's OPT and truncates. [`FastLookup::
    /// Absent`] means the chain would find nothing either: the caller runs the chain, or
    /// completes the miss itself with [`FastAnswer::count_fast_miss`], the query sent on with
    /// AD set, and the reply handed to [`FastAnswer::store_miss_reply`].
    fn lookup_fast(&self, fq: &FastQuery<'_>) -> FastLookup;

    /// Counts a miss the server completes itself, as the chain would.
    fn count_fast_miss(&self, server: &str);

    /// Processes the upstream's `reply` to a miss exactly as a reply written down the chain
    /// (stored when allowed) and returns what the client gets.
    fn store_miss_reply(&self, fq: &FastQuery<'_>, reply: Vec<u8>) -> Vec<u8>;
}

/// A plugin that can send a cache miss upstream without the chain (`forward`).
pub trait FastUpstream: Send + Sync {
    /// Where a query for `qname_lower` from a `client` over this transport would go first,
    /// when the plugin would handle it with a plain exchange and a direct path is open; None
    /// leaves the query to the chain.
    fn direct_target(&self, qname_lower: &str, client: Proto) -> Option<DirectTarget<'_>>;
}

/// How a query sent on a direct path ended.
#[derive(Debug, PartialEq, Eq)]
pub enum DirectOutcome {
    /// The upstream's reply, checked, with the client's message ID restored.
    Reply(Vec<u8>),
    /// No usable reply (timeout, mismatch, malformed, too large to judge there).
    Failed,
}

/// A datagram a completion wants sent; the path's responder sends a wake-up's worth together.
pub struct Datagram {
    /// The socket to send from.
    pub sock: Arc<UdpSocket>,
    /// The destination.
    pub to: SocketAddr,
    /// The payload.
    pub bytes: Vec<u8>,
}

/// Called once with a direct query's outcome, on the path's responder thread; returns a
/// datagram to send, if any.
pub type Completion = Box<dyn FnOnce(DirectOutcome) -> Option<Datagram> + Send>;

/// One way to an upstream that a query can be sent on without the chain.
pub trait DirectSend: Send + Sync {
    /// Sends `query` (the client's ID in it; the path puts its own on the wire) on connection
    /// `conn` of the path; a UDP reply longer than `limit` is judged by the chain. `done` runs
    /// once with the outcome. Err hands `done` back unsent.
    fn send(&self, conn: usize, query: Vec<u8>, limit: usize, done: Completion) -> Result<(), Completion>;
}

/// A place under a concurrency limit, given back when dropped.
#[derive(Debug)]
pub struct ConcurrencySlot(Arc<AtomicU64>);

impl ConcurrencySlot {
    /// Takes a place in `counter` if fewer than `limit` are taken. Never raises the counter
    /// past the limit, so a query that finds no place does not make a concurrent one
    /// over-count.
    pub fn try_take(counter: &Arc<AtomicU64>, limit: u64) -> Option<ConcurrencySlot> {
        counter
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < limit).then_some(n + 1))
            .ok()
            .map(|_| ConcurrencySlot(counter.clone()))
    }
}

impl Drop for ConcurrencySlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where [`FastUpstream::direct_target`] sends a query, and the concurrency place it holds.
pub struct DirectTarget<'a> {
    /// The path.
    pub path: &'a dyn DirectSend,
    /// The path's connection to use.
    pub conn: usize,
    /// The query's place under a concurrency limit (None without a limit). Keep it until the
    /// query ends; drop it before handing the query to the chain, which counts it again.
    pub slot: Option<ConcurrencySlot>,
}

/// A block's fast path, planned from its plugins when the block is built.
pub struct FastBlock {
    /// The plugin that answers from stored bytes.
    pub answer: Arc<dyn FastAnswer>,
    /// The plugin that sends misses upstream, when only plugins acting on other query types
    /// sit between it and the answerer, and it is last.
    upstream: Option<Arc<dyn FastUpstream>>,
    /// Query types the plugins between them act on (those misses need the chain).
    chain_types: Vec<u16>,
    /// The answerer's name, for the `plugin` label of a reply it wrote.
    pub answer_name: &'static str,
    /// The upstream plugin's name, for the `plugin` label of a miss's reply.
    pub upstream_name: &'static str,
}

impl FastBlock {
    /// The fast path of a chain (outermost first): an answerer with only transparent plugins
    /// in front of it, and an upstream when it is last and every plugin between the two acts
    /// on one query type only. None when the block has no fast path.
    pub fn plan(chain: &[Arc<dyn Plugin>]) -> Option<FastBlock> {
        let at = chain.iter().position(|p| p.clone().fast_answer().is_some())?;
        if !chain[..at].iter().all(|p| p.fast_role() == FastRole::Transparent) {
            return None;
        }
        let answer = chain[at].clone().fast_answer()?;
        let answer_name = chain[at].name();
        let mut chain_types = Vec::new();
        let mut upstream_name = "";
        let upstream = chain.get(at + 1..).and_then(|rest| {
            let (last, between) = rest.split_last()?;
            for p in between {
                match p.fast_role() {
                    FastRole::ActsOnType(t) => chain_types.push(t),
                    FastRole::Opaque | FastRole::Transparent => return None,
                }
            }
            upstream_name = last.name();
            last.clone().fast_upstream()
        });
        Some(FastBlock { answer, upstream, chain_types, answer_name, upstream_name })
    }

    /// The upstream a miss of type `qtype` may be sent to directly.
    pub fn upstream_for(&self, qtype: u16) -> Option<&dyn FastUpstream> {
        if self.chain_types.contains(&qtype) {
            return None;
        }
        self.upstream.as_deref()
    }

    /// Whether misses may be sent upstream directly at all.
    pub fn has_upstream(&self) -> bool {
        self.upstream.is_some()
    }
}

/// A direct path whose replies a listener thread may collect itself while it has misses out,
/// instead of leaving them to the path's own thread: one thread then both reads the clients'
/// queries and completes their misses, with no hand-over between two threads per reply.
pub trait ReplyPump: Send + Sync {
    /// A descriptor (an epoll set) that is readable while replies are waiting to be read.
    fn ready_fd(&self) -> RawFd;
    /// Whether queries sent on the path are waiting for their replies.
    fn waiting(&self) -> bool;
    /// Completes, without blocking, the queries whose replies have arrived, and sends the
    /// clients' replies. Does nothing while another thread is at it.
    fn pump(&self);
    /// A listener thread starts (true) or stops (false) watching [`ReplyPump::ready_fd`];
    /// while any does, the path's own thread only sweeps (timeouts, idle sockets).
    fn watch(&self, on: bool);
    /// Whether the path still serves (false once a reload dropped it): a watcher lets go of
    /// a pump that is not.
    fn alive(&self) -> bool;
    /// The key it was offered under (see [`offer_pump`]).
    fn key(&self) -> u64;
}

/// A thread's offered pumps: those its listener loop has not taken yet, and the keys of all
/// it has offered and still holds.
#[derive(Default)]
struct Offered {
    fresh: Vec<Arc<dyn ReplyPump>>,
    keys: Vec<u64>,
}

thread_local! {
    static OFFERED: RefCell<Offered> = RefCell::new(Offered::default());
}

/// A key for a new path to offer its pump under (unique in the process).
pub fn new_pump_key() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Called by a path after it sent a query: the first time on this thread, `make` gives the
/// pump for the thread's listener loop to take with [`take_offered_pumps`].
pub fn offer_pump(key: u64, make: impl FnOnce() -> Option<Arc<dyn ReplyPump>>) {
    OFFERED.with(|o| {
        let mut o = o.borrow_mut();
        if o.keys.contains(&key) {
            return;
        }
        if let Some(p) = make() {
            o.keys.push(key);
            o.fresh.push(p);
        }
    });
}

/// The pumps offered on this thread since the last call.
pub fn take_offered_pumps() -> Vec<Arc<dyn ReplyPump>> {
    OFFERED.with(|o| {
        let mut o = o.borrow_mut();
        if o.fresh.is_empty() {
            Vec::new()
        } else {
            std::mem::take(&mut o.fresh)
        }
    })
}

/// Forgets a pump this thread let go of (a later query on its path offers it anew).
pub fn forget_offered_pump(key: u64) {
    OFFERED.with(|o| o.borrow_mut().keys.retain(|k| *k != key));
}
