//! The runtime: a plan's blocks built into plugin chains and each listener's zone table.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Plan, Transport};
use crate::plugin::fast::FastBlock;
use crate::plugin::{BuildContext, Carryover, Chain, Plugin, ServerTimeouts};

use super::zones::ZoneTable;

/// One server block, built.
pub struct Block {
    /// Index in [`Plan::blocks`].
    pub index: usize,
    /// The handler chain, outermost first; empty means REFUSED.
    pub chain: Chain,
    /// The block's zones.
    pub zones: Vec<String>,
    /// The block's fast path (answers from stored bytes, misses sent upstream directly),
    /// planned from its plugins; None when every query must run the chain.
    pub fast: Option<FastBlock>,
    /// Whether the block records `coredns_dns_*` metrics (has `prometheus`).
    pub has_metrics: bool,
}

/// What a listener routes a zone to.
pub struct ZoneEntry {
    /// The zone, shared into every request routed here.
    pub zone: Arc<str>,
    /// The block serving the zone.
    pub block: Arc<Block>,
    /// Pre-resolved metrics series for (listener, zone), when the block has `prometheus`.
    pub recorder: Option<Arc<crate::observe::dns_metrics::ZoneRecorder>>,
}

/// TCP timeouts and limits of a listener (CoreDNS defaults: read 3s, write 5s, idle 10s,
/// unlimited queries per connection). The connection limits are nodecache's own (CoreDNS has
/// none): 1,000 per listener and 256 per client IP; a new connection over a limit evicts the
/// connection that has waited longest for its next message (see [`super::tcp_conns`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpLimits {
    /// Deadline for the first message on a connection (from accept until it has fully
    /// arrived), and for each later message from its first byte.
    pub read: Duration,
    /// Deadline for writing a reply.
    pub write: Duration,
    /// Deadline for the first byte of each later message, from when the previous reply was
    /// written.
    pub idle: Duration,
    /// Queries per connection; None = unlimited.
    pub max_queries: Option<u64>,
    /// Concurrent connections per listener.
    pub max_connections: usize,
    /// Concurrent connections per client IP address (IPv4-mapped IPv6 counts as IPv4).
    pub max_per_client: usize,
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits {
            read: Duration::from_secs(3),
            write: Duration::from_secs(5),
            idle: Duration::from_secs(10),
            max_queries: None,
            max_connections: 1000,
            max_per_client: 256,
        }
    }
}

/// What one listener serves.
pub struct ListenerRuntime {
    /// Label for logs and metrics, e.g. `dns://:53`.
    pub label: Arc<str>,
    /// Zone routing.
    pub table: ZoneTable<ZoneEntry>,
    /// Whether a block here has `chaos` or `forward` (then non-IN classes are not refused).
    pub class_chaos: bool,
    /// TCP settings.
    pub tcp: TcpLimits,
}

/// Identity of a listener socket.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ListenerKey {
    /// Transport.
    pub transport: Transport,
    /// Address.
    pub addr: SocketAddr,
}

/// Everything built from a plan.
pub struct Runtime {
    /// The plan this runtime was built from.
    pub plan: Plan,
    /// Listeners and what they serve.
    pub listeners: Vec<(ListenerKey, Arc<ListenerRuntime>)>,
    /// Every built block, in plan order.
    pub blocks: Vec<Arc<Block>>,
}

/// Builds the runtime for `plan`, reusing carried state from `carry`.
pub fn build(plan: Plan, carry: Arc<Carryover>) -> Result<Runtime, String> {
    let metrics = Arc::new(crate::observe::Metrics::default());
    let mut blocks: Vec<Arc<Block>> = Vec::with_capacity(plan.blocks.len());
    for (index, bp) in plan.blocks.iter().enumerate() {
        let servers: Vec<String> = plan
            .listeners
            .iter()
            .filter(|l| l.zones.iter().any(|(_, b)| *b == index))
            .map(|l| l.label.clone())
            .collect();
        let ctx = BuildContext {
            zones: bp.keys.iter().map(|k| k.zone.clone()).collect(),
            servers,
            metrics: metrics.clone(),
            carry: carry.clone(),
            after: String::new(),
        };
        let mut handlers: Vec<Arc<dyn Plugin>> = Vec::new();
        for (i, cfg) in bp.plugins.iter().enumerate() {
            let ctx = BuildContext {
                after: crate::plugin::answers_key(bp.plugins.get(i + 1..).unwrap_or(&[])),
                ..ctx.clone()
            };
            if let Some(h) = cfg.build(&ctx).map_err(|e| format!("plugin/{}: {e}", cfg.name()))? {
                handlers.push(h);
            }
        }
        let fast = FastBlock::plan(&handlers);
        let has_metrics = handlers.iter().any(|h| h.records_dns_metrics());
        blocks.push(Arc::new(Block { index, chain: handlers.into(), zones: ctx.zones, fast, has_metrics }));
    }
    let mut listeners = Vec::with_capacity(plan.listeners.len());
    for lp in &plan.listeners {
        if lp.transport != Transport::Dns {
            return Err(format!(
                "{}:// listeners are not supported by nodecache ({})",
                lp.transport.scheme(),
                lp.label
            ));
        }
        let mut table = ZoneTable::default();
        let mut class_chaos = false;
        let mut tcp = TcpLimits::default();
        for (zone, bi) in &lp.zones {
            let Some(block) = blocks.get(*bi) else { continue };
            let recorder = block.has_metrics.then(|| crate::observe::dns_metrics::recorder(&lp.label, zone));
            table.insert(zone, Arc::new(ZoneEntry { zone: Arc::from(zone.as_str()), block: block.clone(), recorder }));
            if let Some(bp) = plan.blocks.get(*bi) {
                class_chaos |= bp.plugins.iter().any(|p| p.takes_any_class());
                for t in bp.plugins.iter().filter_map(|p| p.server_timeouts()) {
                    apply_timeouts(&t, &mut tcp);
                }
            }
        }
        listeners.push((
            ListenerKey { transport: lp.transport, addr: lp.addr },
            Arc::new(ListenerRuntime { label: Arc::from(lp.label.as_str()), table, class_chaos, tcp }),
        ));
    }
    Ok(Runtime { plan, listeners, blocks })
}

/// Applies a block's `timeouts` to its listener (a negative query limit means unlimited).
fn apply_timeouts(t: &ServerTimeouts, tcp: &mut TcpLimits) {
    if let Some(d) = t.read {
        tcp.read = d;
    }
    if let Some(d) = t.write {
        tcp.write = d;
    }
    if let Some(d) = t.idle {
        tcp.idle = d;
    }
    if let Some(n) = t.max_tcp_queries {
        tcp.max_queries = u64::try_from(n).ok().filter(|n| *n > 0);
    }
}
