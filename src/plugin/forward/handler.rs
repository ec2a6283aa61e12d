//! The forward query handler (CoreDNS `forward.go ServeDNS`): zone matching, concurrency
//! limit, upstream selection, the attempt loop, and chaining of several `forward` lines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use hickory_proto::op::ResponseCode;
use rand::Rng;

use super::inflight::{Inflight, Role};
use super::metrics::families;
use super::msg;
use super::policy::{Policy, MAX_ORDER};
use super::setup::Stanza;
use super::upstream::{ExchangeError, Net, Upstream};
use crate::dnsname::in_zone;
use crate::plugin::fast::{ConcurrencySlot, DirectTarget, FastUpstream};
use crate::plugin::{Next, Plugin};
use crate::server::wire::{self, bits};
use crate::server::{Outcome, Proto, Reply, Request};

/// The whole-query deadline.
const QUERY_DEADLINE: Duration = Duration::from_secs(5);
/// Error when no upstream could be used.
pub const ERR_NO_HEALTHY: &str = "no healthy proxies";

/// What the attempt loop produced (shared between coalesced callers).
#[derive(Clone, Debug)]
enum LoopResult {
    /// An upstream reply (ID still the upstream one).
    Reply(Vec<u8>),
    /// The reply's question did not match: the client gets FORMERR.
    Mismatch,
    /// Nothing usable: SERVFAIL with this error.
    Failed(String),
}

#[derive(Clone, Debug)]
struct Shared {
    result: LoopResult,
    upstream: Option<Arc<str>>,
}

/// One `forward` line at run time.
pub struct Forward {
    from: String,
    ignored: Vec<String>,
    upstreams: Vec<Arc<Upstream>>,
    labels: Vec<Arc<str>>,
    policy: Policy,
    max_fails: u32,
    max_connect_attempts: u64,
    force_tcp: bool,
    prefer_udp: bool,
    max_concurrent: u64,
    /// Queries in flight through this line, on the chain and on the direct path alike.
    concurrent: Arc<AtomicU64>,
    limit_err: String,
    next_rcodes: Vec<u16>,
    next_on_nodata: bool,
    failfast: bool,
    failover: Vec<u16>,
    inflight: Inflight<Shared>,
    /// No option of this line needs the attempt loop for a UDP query (see
    /// [`Forward::direct_target`]).
    direct_ok: bool,
}

/// What one `forward` line decided.
enum Step {
    /// Answered (or failed) here.
    Done(Outcome),
    /// Hand the query to whatever follows this `forward` line.
    PassOn,
}

struct ConcurrencyGuard<'a>(&'a AtomicU64);

impl Drop for ConcurrencyGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Forward {
    /// A handler for `s` using `upstreams` (parallel to `s.upstreams`).
    pub fn new(s: &Stanza, mut upstreams: Vec<Arc<Upstream>>) -> Forward {
        if upstreams.len() > MAX_ORDER {
            tracing::warn!(target: "plugin/forward", "using only the first {MAX_ORDER} of {} upstreams", upstreams.len());
            upstreams.truncate(MAX_ORDER);
        }
        let n = upstreams.len() as u64;
        Forward {
            from: s.from.clone(),
            ignored: s.ignored.clone(),
            labels: upstreams.iter().map(|u| Arc::from(u.label.as_str())).collect(),
            upstreams,
            policy: Policy::new(s.policy),
            max_fails: s.max_fails,
            max_connect_attempts: match s.max_connect_attempts {
                Some(v) => v as u64,
                None => 2 * n,
            },
            force_tcp: s.force_tcp,
            prefer_udp: s.prefer_udp,
            max_concurrent: s.max_concurrent,
            concurrent: Arc::new(AtomicU64::new(0)),
            limit_err: format!("concurrent queries exceeded maximum {}", s.max_concurrent_text),
            next_rcodes: s.next_rcodes.clone(),
            next_on_nodata: s.next_on_nodata,
            failfast: s.failfast,
            failover: s.failover.clone(),
            inflight: Inflight::default(),
            direct_ok: s.failover.is_empty(),
        }
    }

    /// The upstreams, in config order.
    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.upstreams
    }

    /// For the server's fast miss path: the direct path (UDP, or TCP for `force_tcp` and for
    /// TCP clients without `prefer_udp`) of the upstream this line would try first for a
    /// query for `qname_lower` from a `client` over that transport, when the line handles the
    /// name, needs no failover, that upstream is not marked down and (with `max_concurrent`)
    /// a place is free, which the returned target then holds. Anything else (and any failure
    /// on the direct path) belongs to the chain: a query over the limit is refused and counted
    /// there, exactly once.
    pub fn direct_target(&self, qname_lower: &str, client: Proto) -> Option<DirectTarget<'_>> {
        if !self.direct_ok || !self.matches(qname_lower) {
            return None;
        }
        let net = self.net_for(client, self.force_tcp);
        if client == Proto::Tcp && net == Net::Udp {
            // A TCP client's reply over UDP may come back truncated: the attempt loop's business.
            return None;
        }
        let order = self.policy.order(self.upstreams.len());
        let idx = *order.as_slice().iter().find(|&&i| !self.upstreams[i as usize].down(self.max_fails))?;
        let up = &self.upstreams[idx as usize];
        let (path, conn): (&dyn crate::plugin::fast::DirectSend, usize) = match net {
            Net::Tcp => {
                let tcp = up.direct_tcp()?;
                (tcp.as_ref(), tcp.pick()?)
            }
            Net::Udp => (up.direct()?.as_ref(), 0),
        };
        let slot = if self.max_concurrent > 0 {
            Some(ConcurrencySlot::try_take(&self.concurrent, self.max_concurrent)?)
        } else {
            None
        };
        Some(DirectTarget { path, conn, slot })
    }

    /// Whether this line, followed by others, may hand a reply's query on to them (`next`).
    fn may_pass_on(&self) -> bool {
        !self.next_rcodes.is_empty() || self.next_on_nodata
    }

    fn matches(&self, qname: &str) -> bool {
        if !in_zone(&self.from, qname) {
            return false;
        }
        if qname == self.from {
            return true;
        }
        !self.ignored.iter().any(|z| in_zone(z, qname))
    }

    fn net_for(&self, client: Proto, force_tcp: bool) -> Net {
        if force_tcp {
            Net::Tcp
        } else if self.prefer_udp {
            Net::Udp
        } else {
            match client {
                Proto::Udp => Net::Udp,
                Proto::Tcp => Net::Tcp,
            }
        }
    }

    async fn handle(&self, req: &mut Request, has_following: bool) -> Step {
        if !self.matches(&req.qname_lower) {
            return Step::PassOn;
        }
        let _guard = if self.max_concurrent > 0 {
            let count = self.concurrent.fetch_add(1, Ordering::Relaxed) + 1;
            let g = ConcurrencyGuard(&self.concurrent);
            if count > self.max_concurrent {
                families().max_concurrent_rejects.inc();
                return Step::Done(Outcome::unwritten(ResponseCode::Refused, Some(self.limit_err.clone())));
            }
            Some(g)
        } else {
            None
        };

        let limit = req.client_size().max(512);
        let shared = self.coalesced(req, limit).await;
        if let Some(up) = &shared.upstream {
            req.set_metadata("forward/upstream", up.to_string());
        }
        match shared.result {
            LoopResult::Mismatch => {
                let reply = msg::rcode_reply(&req.wire, 1);
                Step::Done(Outcome::written("forward", Reply::Wire(reply)))
            }
            LoopResult::Failed(err) => Step::Done(Outcome::unwritten(ResponseCode::ServFail, Some(err))),
            LoopResult::Reply(mut reply) => {
                let rcode = wire::rcode(&reply);
                if has_following
                    && (self.next_rcodes.contains(&rcode)
                        || (self.next_on_nodata && rcode == 0 && msg::answer_empty(&reply)))
                {
                    return Step::PassOn;
                }
                wire::set_id(&mut reply, req.id());
                Step::Done(Outcome::written("forward", Reply::Wire(reply)))
            }
        }
    }

    /// Runs the attempt loop once per set of identical in-flight queries. HINFO queries are
    /// never shared: the `loop` plugin's probe must travel a forwarding loop hop by hop to be
    /// counted, and sharing would park each hop behind the previous one instead.
    async fn coalesced(&self, req: &Request, limit: usize) -> Shared {
        if req.qtype == u16::from(hickory_proto::rr::RecordType::HINFO) {
            return self.attempts(req, limit).await;
        }
        let mut key = Vec::with_capacity(req.wire.len() + 3);
        key.push(match req.proto {
            Proto::Udp => 0,
            Proto::Tcp => 1,
        });
        key.extend_from_slice(&(limit as u16).to_be_bytes());
        key.extend_from_slice(req.wire.get(2..).unwrap_or(&[]));
        match self.inflight.join(key) {
            Role::Leader(leader) => {
                let shared = self.attempts(req, limit).await;
                leader.finish(&shared);
                shared
            }
            Role::Follower(f) => match f.wait().await {
                Some(shared) => shared,
                None => self.attempts(req, limit).await,
            },
        }
    }

    /// CoreDNS's attempt loop.
    async fn attempts(&self, req: &Request, limit: usize) -> Shared {
        let order = self.policy.order(self.upstreams.len());
        let list = order.as_slice();
        let n = list.len();
        if n == 0 {
            return Shared { result: LoopResult::Failed(ERR_NO_HEALTHY.to_string()), upstream: None };
        }
        let deadline = tokio::time::Instant::now() + QUERY_DEADLINE;
        let mut framed = Vec::with_capacity(req.wire.len() + 2);
        framed.extend_from_slice(&(req.wire.len() as u16).to_be_bytes());
        framed.extend_from_slice(&req.wire);

        let (mut i, mut fails, mut failover_attempts, mut attempts) = (0usize, 0usize, 0usize, 0u64);
        let mut overloaded = 0usize;
        let mut last_err: Option<String> = None;
        let mut upstream: Option<Arc<str>> = None;
        while tokio::time::Instant::now() < deadline
            && (self.max_connect_attempts == 0 || attempts < self.max_connect_attempts)
        {
            if i >= list.len() {
                i = 0;
                fails = 0;
            }
            let Some(mut idx) = list.get(i).map(|&x| x as usize) else { break };
            i += 1;
            if self.upstreams[idx].down(self.max_fails) {
                fails += 1;
                if fails < n {
                    continue;
                }
                families().healthcheck_broken.inc();
                if self.failfast {
                    break;
                }
                idx = rand::rng().random_range(0..n);
            }
            let up = &self.upstreams[idx];
            upstream = Some(self.labels[idx].clone());

            let mut force_tcp = self.force_tcp;
            let result = loop {
                let id: u16 = rand::random();
                if let Some(b) = framed.get_mut(2..4) {
                    b.copy_from_slice(&id.to_be_bytes());
                }
                match up.exchange(&framed, self.net_for(req.proto, force_tcp), limit).await {
                    Err(ExchangeError::CachedClosed) => continue,
                    Ok(reply) if wire::flags(&reply) & bits::TC != 0 && !force_tcp && self.prefer_udp => {
                        force_tcp = true;
                        continue;
                    }
                    other => break other,
                }
            };
            match result {
                Err(ExchangeError::Mismatch) => return Shared { result: LoopResult::Mismatch, upstream },
                Err(ExchangeError::Overloaded) => {
                    // Not a health failure: the upstream has too many queries waiting already.
                    // Another upstream may have room; once each has said no, give up at once.
                    last_err = Some(format!("too many queries waiting for {}", up.label));
                    overloaded += 1;
                    if overloaded >= n {
                        break;
                    }
                    continue;
                }
                Err(e) => {
                    last_err = Some(e.to_string());
                    if self.max_fails != 0 {
                        up.healthcheck();
                    }
                    if self.max_connect_attempts > 0 {
                        attempts += 1;
                        if attempts >= self.max_connect_attempts {
                            break;
                        }
                    }
                    if fails < n {
                        continue;
                    }
                    break;
                }
                Ok(reply) => {
                    if !msg::question_matches(&req.wire, &reply) {
                        return Shared { result: LoopResult::Mismatch, upstream };
                    }
                    if self.failover.contains(&wire::rcode(&reply)) {
                        failover_attempts += 1;
                        if failover_attempts < n {
                            continue;
                        }
                    }
                    return Shared { result: LoopResult::Reply(reply), upstream };
                }
            }
        }
        let err = last_err.unwrap_or_else(|| ERR_NO_HEALTHY.to_string());
        Shared { result: LoopResult::Failed(err), upstream }
    }
}

/// The `forward` plugin: the block's `forward` lines in order; a line that does not handle a
/// query (FROM mismatch, `next`, `next_on_nodata`) hands it to the following line, the last
/// one to the rest of the chain.
pub struct ForwardChain {
    forwards: Vec<Forward>,
}

impl ForwardChain {
    /// Chains `forwards` in order.
    pub fn new(forwards: Vec<Forward>) -> ForwardChain {
        ForwardChain { forwards }
    }

    /// The lines, in order.
    pub fn forwards(&self) -> &[Forward] {
        &self.forwards
    }

    /// [`Forward::direct_target`] of the line that would handle `qname_lower`: the first line
    /// whose zone holds the name. None when that line may hand the query on to a later one
    /// (`next`), which needs the chain.
    pub fn direct_target(&self, qname_lower: &str, client: Proto) -> Option<DirectTarget<'_>> {
        let last = self.forwards.len().checked_sub(1)?;
        let (i, line) = self.forwards.iter().enumerate().find(|(_, f)| f.matches(qname_lower))?;
        if i < last && line.may_pass_on() {
            return None;
        }
        line.direct_target(qname_lower, client)
    }
}

impl FastUpstream for ForwardChain {
    fn direct_target(&self, qname_lower: &str, client: Proto) -> Option<DirectTarget<'_>> {
        ForwardChain::direct_target(self, qname_lower, client)
    }
}

impl Plugin for ForwardChain {
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn name(&self) -> &'static str {
        "forward"
    }

    fn fast_upstream(self: Arc<Self>) -> Option<Arc<dyn FastUpstream>> {
        Some(self)
    }

    fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let last = self.forwards.len().saturating_sub(1);
            for (i, f) in self.forwards.iter().enumerate() {
                match f.handle(req, i < last).await {
                    Step::Done(o) => return o,
                    Step::PassOn => continue,
                }
            }
            next.serve(req).await
        })
    }
}
