//! The set of running listeners: applying a new runtime keeps sockets whose address is
//! unchanged (swapping what they serve), binds new ones first, and stops removed ones.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use tokio::sync::watch;

use super::runtime::{ListenerKey, ListenerRuntime, Runtime};
use super::{sockets, tcp, udp_batch};

struct Running {
    state: Arc<ArcSwap<ListenerRuntime>>,
    stop: watch::Sender<bool>,
    udp_ctl: Arc<AtomicU8>,
    /// UDP threads of this listener still running.
    udp_live: Arc<AtomicUsize>,
    /// Its UDP sockets (shared with their threads).
    udp_socks: Vec<Arc<std::net::UdpSocket>>,
    bound: SocketAddr,
}

/// All listeners of the process.
pub struct Listeners {
    running: Mutex<HashMap<ListenerKey, Running>>,
    udp_sockets_per_addr: usize,
}

impl Listeners {
    /// An empty set; UDP addresses get `udp_sockets_per_addr` SO_REUSEPORT sockets each.
    pub fn new(udp_sockets_per_addr: usize) -> Listeners {
        Listeners { running: Mutex::new(HashMap::new()), udp_sockets_per_addr: udp_sockets_per_addr.max(1) }
    }

    /// Makes the running listeners match `rt`. New sockets are bound before anything changes;
    /// if one fails, nothing changes and the error is returned.
    pub fn apply(&self, rt: &Runtime) -> Result<(), String> {
        let mut running = self.running.lock();
        let mut fresh = Vec::new();
        for (key, lr) in &rt.listeners {
            if running.contains_key(key) {
                continue;
            }
            let mut udps = Vec::new();
            for _ in 0..self.udp_sockets_per_addr {
                let addr = udps.first().and_then(|s: &std::net::UdpSocket| s.local_addr().ok()).unwrap_or(key.addr);
                let s = sockets::udp_blocking(addr).map_err(|e| format!("listen udp {}: {e}", key.addr))?;
                udps.push(s);
            }
            let bound = udps.first().and_then(|s| s.local_addr().ok()).unwrap_or(key.addr);
            let tcp = sockets::tcp(bound).map_err(|e| format!("listen tcp {}: {e}", key.addr))?;
            fresh.push((key.clone(), lr.clone(), udps, tcp, bound));
        }
        for (key, lr) in &rt.listeners {
            if let Some(r) = running.get(key) {
                r.state.store(lr.clone());
            }
        }
        let wanted: Vec<&ListenerKey> = rt.listeners.iter().map(|(k, _)| k).collect();
        running.retain(|k, r| {
            let keep = wanted.contains(&k);
            if !keep {
                let _ = r.stop.send(true);
                r.udp_ctl.store(udp_batch::STOP, Ordering::Relaxed);
            }
            keep
        });
        for (key, lr, udps, tcp, bound) in fresh {
            let state = Arc::new(ArcSwap::new(lr));
            let (stop, rx) = watch::channel(false);
            let udp_ctl = Arc::new(AtomicU8::new(udp_batch::RUN));
            let udp_live = Arc::new(AtomicUsize::new(0));
            let rt = tokio::runtime::Handle::current();
            let udp_socks: Vec<Arc<std::net::UdpSocket>> = udps.into_iter().map(Arc::new).collect();
            for (i, s) in udp_socks.iter().cloned().enumerate() {
                let (state, udp_ctl, live, rt) = (state.clone(), udp_ctl.clone(), udp_live.clone(), rt.clone());
                live.fetch_add(1, Ordering::AcqRel);
                let spawned = std::thread::Builder::new().name(format!("udp-{}-{i}", bound.port())).spawn(move || {
                    udp_batch::serve(s, state, udp_ctl, rt);
                    live.fetch_sub(1, Ordering::AcqRel);
                });
                if let Err(e) = spawned {
                    udp_live.fetch_sub(1, Ordering::AcqRel);
                    tracing::error!("cannot start a UDP thread for {bound}: {e}");
                }
            }
            tokio::spawn(tcp::serve(tcp, state.clone(), rx));
            running.insert(key, Running { state, stop, udp_ctl, udp_live, udp_socks, bound });
        }
        Ok(())
    }

    /// The actual bound address of each listener (useful with port 0).
    pub fn bound(&self) -> Vec<(ListenerKey, SocketAddr)> {
        self.running.lock().iter().map(|(k, r)| (k.clone(), r.bound)).collect()
    }

    /// Stops every listener.
    pub fn stop_all(&self) {
        for (_, r) in self.running.lock().drain() {
            let _ = r.stop.send(true);
            r.udp_ctl.store(udp_batch::STOP, Ordering::Relaxed);
        }
    }

    /// The first half of a graceful stop: TCP listeners stop accepting (connections already
    /// completed are served), and UDP sockets bound to one address leave their SO_REUSEPORT
    /// group, so that another instance on the same addresses gets every new query, then answer
    /// what is queued on them. Waits up to `limit` for the UDP sockets to empty; returns how
    /// many UDP threads were still draining. Wildcard UDP sockets keep serving until exit.
    pub fn quiesce(&self, limit: Duration) -> usize {
        let running = self.running.lock();
        for r in running.values() {
            let _ = r.stop.send(true);
            // Out of the group first, so that a thread that sees LEAVE finds no new datagrams
            // coming.
            for sock in &r.udp_socks {
                // Expected after node-cache's teardown removed the address: nothing can reach
                // the socket any more, and its thread still wakes and drains.
                if let Err(e) = udp_batch::leave_reuseport_group(sock) {
                    tracing::debug!("udp {}: cannot leave the SO_REUSEPORT group: {e}", r.bound);
                }
            }
            r.udp_ctl.store(udp_batch::LEAVE, Ordering::Relaxed);
        }
        let leaving: Vec<&Running> = running.values().filter(|r| !r.bound.ip().is_unspecified()).collect();
        let deadline = Instant::now() + limit;
        loop {
            let live: usize = leaving.iter().map(|r| r.udp_live.load(Ordering::Acquire)).sum();
            if live == 0 || Instant::now() >= deadline {
                return live;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
