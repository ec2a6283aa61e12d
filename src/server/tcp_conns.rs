//! The open TCP connections of one listener, for its connection limits: a total limit and a
//! per-client-IP limit. When a new connection would exceed a limit, the connection that has
//! waited longest for its next message (idle between messages, or stalled mid-message; ranked
//! by when it was accepted or last answered) is evicted in its place. A connection whose query
//! is being processed is never evicted. Only when nothing can be evicted is the new connection
//! refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::Notify;

/// Slot state: a query is being processed (never evicted).
const BUSY: u64 = 0;
/// Slot state: evicted (terminal).
const EVICTED: u64 = u64::MAX;

/// How many times admission re-scans when the chosen victim changed state under it.
const EVICT_ATTEMPTS: usize = 16;

/// Which limit a new connection ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// Connections per listener.
    Listener,
    /// Connections per client IP.
    Client,
}

impl Limit {
    /// Label value for logs and the metric.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Listener => "listener",
            Limit::Client => "client",
        }
    }
}

/// One open connection as the table sees it.
struct Slot {
    id: u64,
    ip: IpAddr,
    /// [`BUSY`], [`EVICTED`], or (waiting) 1 + nanoseconds since the table's epoch at which
    /// the connection was accepted or last finished answering.
    state: AtomicU64,
    /// Woken when the slot is evicted.
    evict: Notify,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    total: usize,
    by_ip: HashMap<IpAddr, Vec<Arc<Slot>>>,
}

impl Inner {
    fn remove(&mut self, slot: &Slot) -> bool {
        let Some(list) = self.by_ip.get_mut(&slot.ip) else { return false };
        let Some(pos) = list.iter().position(|s| s.id == slot.id) else { return false };
        list.swap_remove(pos);
        if list.is_empty() {
            self.by_ip.remove(&slot.ip);
        }
        self.total = self.total.saturating_sub(1);
        true
    }

    /// Evicts the waiting connection with the oldest timestamp (of `ip` only, when given).
    fn evict_oldest(&mut self, ip: Option<IpAddr>) -> bool {
        for _ in 0..EVICT_ATTEMPTS {
            let victim = match ip {
                Some(ip) => self.by_ip.get(&ip).into_iter().flatten().filter_map(waiting).min_by_key(|(_, v)| *v),
                None => self.by_ip.values().flatten().filter_map(waiting).min_by_key(|(_, v)| *v),
            }
            .map(|(s, v)| (s.clone(), v));
            let Some((slot, seen)) = victim else { return false };
            // The connection may have started on a query since the scan; then pick again.
            if slot.state.compare_exchange(seen, EVICTED, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                self.remove(&slot);
                slot.evict.notify_one();
                return true;
            }
        }
        false
    }
}

/// The slot and its timestamp when it is waiting (evictable).
fn waiting(s: &Arc<Slot>) -> Option<(&Arc<Slot>, u64)> {
    let v = s.state.load(Ordering::Acquire);
    (v != BUSY && v != EVICTED).then_some((s, v))
}

/// The open connections of one listener.
pub struct ConnTable {
    epoch: Instant,
    server: Arc<str>,
    inner: Mutex<Inner>,
}

impl ConnTable {
    /// An empty table for the listener labelled `server` (for logs and the metric).
    pub fn new(server: Arc<str>) -> Arc<ConnTable> {
        Arc::new(ConnTable { epoch: Instant::now(), server, inner: Mutex::new(Inner::default()) })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(EVICTED - 1).saturating_add(1).min(EVICTED - 1)
    }

    /// Admits a connection from `ip` under the limits `max_total` and `max_per_client`,
    /// evicting waiting connections as needed; `Err` names the limit when nothing could be
    /// evicted (the caller then drops the new connection).
    pub fn admit(self: &Arc<Self>, ip: IpAddr, max_total: usize, max_per_client: usize) -> Result<Conn, Limit> {
        let ip = ip.to_canonical();
        let mut inner = self.inner.lock();
        while inner.by_ip.get(&ip).map_or(0, Vec::len) >= max_per_client.max(1) {
            if !inner.evict_oldest(Some(ip)) {
                drop(inner);
                self.shed(Limit::Client, "refused", ip);
                return Err(Limit::Client);
            }
            self.shed(Limit::Client, "evicted", ip);
        }
        while inner.total >= max_total.max(1) {
            if !inner.evict_oldest(None) {
                drop(inner);
                self.shed(Limit::Listener, "refused", ip);
                return Err(Limit::Listener);
            }
            self.shed(Limit::Listener, "evicted", ip);
        }
        inner.next_id += 1;
        let slot = Arc::new(Slot { id: inner.next_id, ip, state: AtomicU64::new(self.now()), evict: Notify::new() });
        inner.by_ip.entry(ip).or_default().push(slot.clone());
        inner.total += 1;
        Ok(Conn { table: self.clone(), slot })
    }

    /// Open (not evicted) connections: total and from `ip`.
    pub fn counts(&self, ip: IpAddr) -> (usize, usize) {
        let inner = self.inner.lock();
        (inner.total, inner.by_ip.get(&ip.to_canonical()).map_or(0, Vec::len))
    }

    fn shed(&self, limit: Limit, action: &'static str, ip: IpAddr) {
        let what = if action == "evicted" {
            "evicted the longest-waiting connection"
        } else {
            "nothing evictable, dropped it"
        };
        tracing::debug!(
            "{}: TCP {} connection limit reached by a connection from {ip}: {what}",
            self.server,
            limit.as_str()
        );
        shed_counter(&self.server, limit, action).inc();
    }
}

/// A connection's place in its [`ConnTable`]; dropping it frees the place.
pub struct Conn {
    table: Arc<ConnTable>,
    slot: Arc<Slot>,
}

impl Conn {
    /// Marks the connection as processing a query (not evictable); false when it was evicted.
    pub fn busy(&self) -> bool {
        self.slot.state.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| (v != EVICTED).then_some(BUSY)).is_ok()
    }

    /// Marks the connection as waiting for its next message from now on (evictable).
    pub fn waiting(&self) {
        let now = self.table.now();
        let _ = self.slot.state.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| (v != EVICTED).then_some(now));
    }

    /// Whether the connection was evicted.
    pub fn is_evicted(&self) -> bool {
        self.slot.state.load(Ordering::Acquire) == EVICTED
    }

    /// Completes once the connection is evicted.
    pub async fn evicted(&self) {
        if self.is_evicted() {
            return;
        }
        self.slot.evict.notified().await;
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if !self.is_evicted() {
            self.table.inner.lock().remove(&self.slot);
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ShedLabels {
    server: String,
    limit: String,
    action: String,
}

/// Metric name as registered (the encoder appends `_total`). CoreDNS has no such metric.
pub const SHED_NAME: &str = "nodecache_tcp_connections_shed";
/// Help text.
pub const SHED_HELP: &str =
    "Counter of TCP connections evicted or refused because a per-listener or per-client connection limit was reached";

static SHED: LazyLock<Family<ShedLabels, Counter>> = LazyLock::new(|| {
    let family = Family::default();
    crate::observe::register(SHED_NAME, SHED_HELP, family.clone());
    family
});

/// The counter for (`server`, `limit`, `action`); the family is registered on first use, so
/// metrics pages look like CoreDNS's until a limit was hit.
fn shed_counter(server: &str, limit: Limit, action: &'static str) -> Counter {
    SHED.get_or_create(&ShedLabels {
        server: server.to_string(),
        limit: limit.as_str().to_string(),
        action: action.to_string(),
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn per_client_limit_evicts_that_clients_oldest_waiting_connection() {
        let t = ConnTable::new(Arc::from("dns://:0"));
        let a1 = t.admit(ip(1), 10, 2).expect("a1");
        let b1 = t.admit(ip(2), 10, 2).expect("b1");
        let a2 = t.admit(ip(1), 10, 2).expect("a2");
        a2.waiting();
        let a3 = t.admit(ip(1), 10, 2).expect("a3");
        assert!(a1.is_evicted(), "oldest of 127.0.0.1 goes");
        assert!(!b1.is_evicted() && !a2.is_evicted() && !a3.is_evicted());
        assert_eq!(t.counts(ip(1)), (3, 2));
    }

    #[test]
    fn busy_connections_are_never_evicted_and_a_full_busy_table_refuses() {
        let t = ConnTable::new(Arc::from("dns://:0"));
        let a = t.admit(ip(1), 2, 10).expect("a");
        let b = t.admit(ip(2), 2, 10).expect("b");
        assert!(a.busy());
        let c = t.admit(ip(3), 2, 10).expect("c");
        assert!(!a.is_evicted() && b.is_evicted());
        assert!(!b.busy(), "an evicted connection cannot start a query");
        assert!(c.busy());
        assert_eq!(t.admit(ip(4), 2, 10).err(), Some(Limit::Listener));
        a.waiting();
        let d = t.admit(ip(4), 2, 10).expect("d");
        assert!(a.is_evicted() && !c.is_evicted());
        drop(d);
        assert_eq!(t.counts(ip(4)), (1, 0));
    }

    #[test]
    fn ranking_follows_the_last_answer_not_the_accept() {
        let t = ConnTable::new(Arc::from("dns://:0"));
        let a = t.admit(ip(1), 2, 10).expect("a");
        let b = t.admit(ip(2), 2, 10).expect("b");
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(a.busy());
        a.waiting();
        let _c = t.admit(ip(3), 2, 10).expect("c");
        assert!(b.is_evicted() && !a.is_evicted());
    }

    #[test]
    fn ipv4_mapped_clients_count_as_their_ipv4_address() {
        let t = ConnTable::new(Arc::from("dns://:0"));
        let _a = t.admit(ip(1), 10, 1).expect("a");
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().expect("addr");
        let _b = t.admit(mapped, 10, 1).expect("b");
        assert_eq!(t.counts(ip(1)), (1, 1));
    }

    #[tokio::test]
    async fn eviction_wakes_the_victim() {
        let t = ConnTable::new(Arc::from("dns://:0"));
        let a = Arc::new(t.admit(ip(1), 1, 10).expect("a"));
        let waiter = {
            let a = a.clone();
            tokio::spawn(async move { a.evicted().await })
        };
        tokio::task::yield_now().await;
        let _b = t.admit(ip(2), 1, 10).expect("b");
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.expect("woken").expect("join");
    }
}
