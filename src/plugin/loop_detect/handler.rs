//! The `loop` handler (probe counting) and the startup probe task.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::future::BoxFuture;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use parking_lot::Mutex;

use crate::dnsname;
use crate::plugin::{Next, Plugin};
use crate::server::{Outcome, Request};

/// Metadata key set on requests carrying the loop probe: plugins that coalesce identical
/// in-flight queries (forward) must send such requests on their own.
pub const PROBE_METADATA: &str = "loop/probe";

/// What to do once a loop is detected (receives the fatal message).
pub type ExitAction = Arc<dyn Fn(&str) + Send + Sync>;

/// The production exit action: print `[FATAL] plugin/loop: <msg>` and exit with status 1.
pub fn exit_process() -> ExitAction {
    Arc::new(|msg: &str| crate::observe::logging::fatal(format!("plugin/loop: {msg}")))
}

#[derive(Default)]
struct State {
    seen: u32,
    off: bool,
    addr: String,
}

/// The running `loop` plugin.
pub struct Loop {
    zone: String,
    qname: String,
    state: Mutex<State>,
    exit: ExitAction,
}

fn random_label() -> String {
    (rand::random::<u64>() & ((1u64 << 62) - 1)).to_string()
}

/// The dial address and the display address (CoreDNS's `host:port`) for a listener label such
/// as `dns://127.0.0.1:5353`, `dns://[::1]:53` or `dns://:53` (wildcard → 127.0.0.1).
pub fn probe_target(label: &str) -> Option<(SocketAddr, String)> {
    let rest = label.split_once("://").map(|(_, r)| r).unwrap_or(label);
    let (host, port) = rest.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host_clean = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = if host_clean.is_empty() || host_clean == "0.0.0.0" || host_clean == "::" {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host_clean.split('%').next().unwrap_or(host_clean).parse().ok()?
    };
    Some((SocketAddr::new(ip, port), rest.to_string()))
}

impl Loop {
    /// A handler for `zone` with a fresh random probe name.
    pub fn new(zone: &str, exit: ExitAction) -> Arc<Loop> {
        let qname = if zone == "." {
            format!("{}.{}.", random_label(), random_label())
        } else {
            format!("{}.{}.{}", random_label(), random_label(), zone)
        };
        Arc::new(Loop { zone: zone.to_string(), qname, state: Mutex::new(State::default()), exit })
    }

    /// The probe name `<r1>.<r2>.<zone>`.
    pub fn qname(&self) -> &str {
        &self.qname
    }

    /// How often the probe has been seen since the last reset.
    pub fn seen(&self) -> u32 {
        self.state.lock().seen
    }

    /// True once the probe has succeeded or the 30s window is over.
    pub fn disabled(&self) -> bool {
        self.state.lock().off
    }

    /// Stops counting (after a successful probe).
    pub fn set_disabled(&self) {
        self.state.lock().off = true;
    }

    /// Records the address the probe is sent to (for the fatal message).
    pub fn set_address(&self, addr: &str) {
        self.state.lock().addr = addr.to_string();
    }

    fn reset(&self) {
        self.state.lock().seen = 0;
    }

    /// Spawns the probe on the current tokio runtime (no-op without one): send the probe to the
    /// block's first listener, retry every second for up to 30s, disable after success.
    pub fn start_probe(self: &Arc<Self>, label: &str) {
        let Some((dial, display)) = probe_target(label) else { return };
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let weak: Weak<Loop> = Arc::downgrade(self);
        let qname = self.qname.clone();
        rt.spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while tokio::time::Instant::now() < deadline {
                match weak.upgrade() {
                    Some(l) => l.set_address(&display),
                    None => return,
                }
                if exchange(&qname, dial).await.is_ok() {
                    break;
                }
                match weak.upgrade() {
                    Some(l) => l.reset(),
                    None => return,
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            if let Some(l) = weak.upgrade() {
                l.set_disabled();
            }
        });
    }

    /// Counts `req` if it is the probe; returns the fatal message when the count passes 2.
    pub fn check(&self, req: &Request) -> Option<String> {
        if req.qtype != u16::from(RecordType::HINFO) || !dnsname::in_zone_ignore_case(&self.zone, &req.qname_lower) {
            return None;
        }
        let mut st = self.state.lock();
        if st.off {
            return None;
        }
        if req.qname_lower == self.qname {
            st.seen += 1;
        }
        if st.seen > 2 {
            return Some(format!(
                "Loop ({} -> {}) detected for zone \"{}\", see https://coredns.io/plugins/loop#troubleshooting. Query: \"HINFO {}\"",
                req.client, st.addr, self.zone, self.qname
            ));
        }
        None
    }
}

/// One UDP exchange of the probe (2s timeout); Ok on any reply with the right ID.
async fn exchange(qname: &str, to: SocketAddr) -> Result<(), String> {
    let mut m = Message::new(rand::random::<u16>(), MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(qname).map_err(|e| e.to_string())?, RecordType::HINFO));
    let wire = m.to_vec().map_err(|e| e.to_string())?;
    crate::server::client::udp_exchange(to, &wire, Duration::from_secs(2)).await.map(|_| ())
}

impl Plugin for Loop {
    fn name(&self) -> &'static str {
        "loop"
    }

    fn fast_role(&self) -> crate::plugin::fast::FastRole {
        // Only its HINFO probe is its business; every other query passes untouched.
        crate::plugin::fast::FastRole::ActsOnType(u16::from(RecordType::HINFO))
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> BoxFuture<'a, Outcome> {
        // Everything here is synchronous, so the rest of the chain's future is returned as is
        // (no extra allocation on the hot path).
        if req.qtype == u16::from(RecordType::HINFO) {
            if let Some(msg) = self.check(req) {
                (self.exit)(&msg);
            }
            if req.qname_lower == self.qname {
                // Upstream plugins must not merge this query with an identical one in flight
                // (that would hide the loop); see PROBE_METADATA.
                req.set_metadata(PROBE_METADATA, "1".to_string());
            }
        }
        next.serve(req)
    }
}
