//! One query through a listener: acceptance, class and EDNS checks, routing, the chain (with
//! panic containment), server-written error replies, and the scrub.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt;
use hickory_proto::op::ResponseCode;

use crate::observe::dns_metrics::{self, Observation};
use crate::plugin::Next;

use super::query::{self, Accepted};
use super::reply;
use super::request::{Proto, Reply, Request};
use super::runtime::ListenerRuntime;

/// The zone of a request before routing (shared, so no allocation per query).
static ROOT_ZONE: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from("."));

/// Rcodes for which the server writes the reply itself when the chain wrote nothing.
fn server_writes(rcode: ResponseCode) -> bool {
    matches!(rcode, ResponseCode::ServFail | ResponseCode::Refused | ResponseCode::FormErr | ResponseCode::NotImp)
}

/// Serves one message received on `lr`; returns the reply bytes, if any.
pub async fn handle(
    lr: &ListenerRuntime,
    buf: Vec<u8>,
    client: SocketAddr,
    local: SocketAddr,
    proto: Proto,
) -> Option<Vec<u8>> {
    let received_len = buf.len();
    let pq = match query::accept(&buf) {
        Accepted::Ignore => return None,
        Accepted::Reply(r) => return Some(r),
        Accepted::Dropped(r) => {
            let obs = Observation {
                proto,
                family: dns_metrics::family_of(&client),
                qtype: 0,
                do_bit: false,
                request_size: received_len,
                response_size: r.len(),
                rcode: 2,
                plugin: "",
                duration: std::time::Duration::ZERO,
            };
            dns_metrics::record_dropped(&lr.label, &obs);
            return Some(r);
        }
        Accepted::Query(q) => q,
    };
    let pq = *pq;
    let question = pq.question;
    let mut req = Request {
        wire: pq.normalized.unwrap_or(buf),
        received_len,
        qname: pq.qname,
        qname_lower: pq.qname_lower,
        qtype: pq.qtype,
        qclass: pq.qclass,
        edns: pq.edns,
        client,
        local,
        proto,
        server: lr.label.clone(),
        zone: ROOT_ZONE.clone(),
        started: Instant::now(),
        metadata: Vec::new(),
    };
    if !lr.class_chaos && req.qclass != 1 {
        return Some(refuse_dropped(&req));
    }
    if req.edns.as_ref().is_some_and(|e| e.version != 0) {
        return Some(query::badvers(&req.wire, &question));
    }
    let is_ds = req.qtype == 43;
    let Some((_, entry)) = lr.table.route(&req.qname_lower, is_ds) else {
        return Some(refuse_dropped(&req));
    };
    let block = &entry.block;
    if block.chain.is_empty() {
        return Some(refuse_dropped(&req));
    }
    req.zone = entry.zone.clone();
    let block = block.clone();
    if crate::observe::logging::debug_enabled() {
        // `debug`: no panic recovery, as CoreDNS.
        let outcome = Next::start(&block.chain).serve(&mut req).await;
        return finish(&req, outcome);
    }
    let outcome = AssertUnwindSafe(Next::start(&block.chain).serve(&mut req)).catch_unwind().await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_string());
            tracing::error!("Recovered from panic in server: \"{}\" {}", lr.label, msg);
            dns_metrics::panic_inc();
            return Some(reply::error_reply(&req, 2));
        }
    };
    finish(&req, outcome)
}

/// The bytes to send for a chain's outcome: its reply scrubbed, a server-written error reply,
/// or nothing.
fn finish(req: &Request, outcome: crate::server::Outcome) -> Option<Vec<u8>> {
    match outcome.reply {
        Some(Reply::Wire(w)) => Some(reply::scrub_wire(req, w)),
        Some(Reply::Message(m)) => Some(reply::scrub_message(req, *m)),
        None if server_writes(outcome.rcode) => Some(reply::error_reply(req, u16::from(outcome.rcode) & 0x0f)),
        None => None,
    }
}

/// REFUSED written by the server before any chain ran, recorded as `zone="dropped"`.
fn refuse_dropped(req: &Request) -> Vec<u8> {
    let out = reply::error_reply(req, 5);
    dns_metrics::record_dropped(
        &req.server,
        &Observation {
            proto: req.proto,
            family: dns_metrics::family_of(&req.client),
            qtype: req.qtype,
            do_bit: req.dnssec_ok(),
            request_size: req.received_len,
            response_size: out.len(),
            rcode: 5,
            plugin: "",
            duration: req.started.elapsed(),
        },
    );
    out
}
