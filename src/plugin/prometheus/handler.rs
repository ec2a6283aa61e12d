//! Per-query recording: after the rest of the chain returns, one [`Observation`] goes to the
//! pre-resolved recorder of (server, zone). The zone is the longest block zone containing the
//! qname, else `.`.

use std::sync::Arc;

use arc_swap::ArcSwap;
use futures_util::future::BoxFuture;
use hickory_proto::op::ResponseCode;
use parking_lot::Mutex;

use crate::observe::dns_metrics::{self, Observation, ZoneRecorder};
use crate::plugin::{Next, Plugin};
use crate::server::{Outcome, Reply, Request};

/// Recorders for one server label: one per block zone (same order) plus `.`.
struct ServerSlot {
    server: Arc<str>,
    zones: Vec<Arc<ZoneRecorder>>,
    root: Arc<ZoneRecorder>,
}

impl ServerSlot {
    fn new(server: &str, zones: &[String]) -> ServerSlot {
        ServerSlot {
            server: Arc::from(server),
            zones: zones.iter().map(|z| dns_metrics::recorder(server, z)).collect(),
            root: dns_metrics::recorder(server, "."),
        }
    }
}

/// The `prometheus` query handler.
pub struct Prometheus {
    zones: Vec<String>,
    servers: ArcSwap<Vec<Arc<ServerSlot>>>,
    insert: Mutex<()>,
}

impl Prometheus {
    /// A handler for a block with `zones` (normalised) served on `servers` (listener labels).
    pub fn new(zones: Vec<String>, servers: &[String]) -> Prometheus {
        let slots = servers.iter().map(|s| Arc::new(ServerSlot::new(s, &zones))).collect();
        Prometheus { zones, servers: ArcSwap::from_pointee(slots), insert: Mutex::new(()) }
    }

    /// Records one finished query.
    pub fn report(&self, req: &Request, out: &Outcome) {
        let zone = longest_match(&self.zones, &req.qname_lower);
        let obs = observation(req, out);
        if let Some(slot) =
            self.servers.load().iter().find(|s| Arc::ptr_eq(&s.server, &req.server) || s.server == req.server)
        {
            pick(slot, zone).record(&obs);
            return;
        }
        // A listener label not known at build time: resolve it once.
        let _insert = self.insert.lock();
        let current = self.servers.load_full();
        let slot = match current.iter().find(|s| s.server == req.server) {
            Some(slot) => slot.clone(),
            None => {
                let slot = Arc::new(ServerSlot::new(&req.server, &self.zones));
                let mut next = (*current).clone();
                next.push(slot.clone());
                self.servers.store(Arc::new(next));
                slot
            }
        };
        pick(&slot, zone).record(&obs);
    }
}

fn pick(slot: &ServerSlot, zone: Option<usize>) -> &ZoneRecorder {
    zone.and_then(|i| slot.zones.get(i)).unwrap_or(&slot.root)
}

/// Index of the longest zone that `qname` equals or lies below (both lower-case FQDNs).
pub fn longest_match(zones: &[String], qname: &str) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for (i, z) in zones.iter().enumerate() {
        if crate::dnsname::in_zone(z, qname) && best.is_none_or(|(_, len)| z.len() > len) {
            best = Some((i, z.len()));
        }
    }
    best.map(|(i, _)| i)
}

/// Whether the server, not the chain, writes the reply for this returned rcode.
fn server_writes(rcode: ResponseCode) -> bool {
    matches!(rcode, ResponseCode::ServFail | ResponseCode::Refused | ResponseCode::FormErr | ResponseCode::NotImp)
}

fn reply_len(reply: &Reply) -> usize {
    match reply {
        Reply::Wire(w) => w.len(),
        Reply::Message(_) => reply.to_wire().map(|w| w.len()).unwrap_or(0),
    }
}

/// What CoreDNS's metrics plugin reports for a query and its outcome.
pub fn observation(req: &Request, out: &Outcome) -> Observation {
    let (rcode, plugin, response_size) = match &out.reply {
        Some(reply) => {
            let rcode = if server_writes(out.rcode) { u16::from(out.rcode) } else { reply.rcode() };
            (rcode, out.plugin, reply_len(reply))
        }
        None => (u16::from(out.rcode), "", 0),
    };
    Observation::from_request(req, rcode, plugin, response_size)
}

impl Plugin for Prometheus {
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn name(&self) -> &'static str {
        "prometheus"
    }

    fn fast_role(&self) -> crate::plugin::fast::FastRole {
        // The fast path records the same `coredns_dns_*` series itself.
        crate::plugin::fast::FastRole::Transparent
    }

    fn records_dns_metrics(&self) -> bool {
        true
    }

    fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let out = next.serve(req).await;
            self.report(req, &out);
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn longest_zone_wins_on_label_boundaries() {
        let zones = vec!["example.org.".to_string(), "sub.example.org.".to_string(), ".".to_string()];
        assert_eq!(longest_match(&zones, "a.sub.example.org."), Some(1));
        assert_eq!(longest_match(&zones, "example.org."), Some(0));
        assert_eq!(longest_match(&zones, "notexample.org."), Some(2));
        assert_eq!(longest_match(&zones[..2], "other.test."), None);
    }
}
