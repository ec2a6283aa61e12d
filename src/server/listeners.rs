//! The set of running listeners: applying a new runtime keeps sockets whose address is
//! unchanged (swapping what they serve), binds new ones first, and stops removed ones.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use tokio::sync::watch;

use super::runtime::{ListenerKey, ListenerRuntime, Runtime};
use super::{sockets, tcp, udp};

struct Running {
    state: Arc<ArcSwap<ListenerRuntime>>,
    stop: watch::Sender<bool>,
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
                let addr = udps.first().and_then(|s: &tokio::net::UdpSocket| s.local_addr().ok()).unwrap_or(key.addr);
                let s = sockets::udp(addr).map_err(|e| format!("listen udp {}: {e}", key.addr))?;
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
            }
            keep
        });
        for (key, lr, udps, tcp, bound) in fresh {
            let state = Arc::new(ArcSwap::new(lr));
            let (stop, rx) = watch::channel(false);
            for s in udps {
                tokio::spawn(udp::serve(Arc::new(s), state.clone(), rx.clone()));
            }
            tokio::spawn(tcp::serve(tcp, state.clone(), rx));
            running.insert(key, Running { state, stop, bound });
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
        }
    }
}
