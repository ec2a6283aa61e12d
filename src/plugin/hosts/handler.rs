//! The `hosts` handler and its file re-reading task.

use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, LazyLock, Once, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record};
use parking_lot::RwLock;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::hostsfile::{address_from_reverse, HostsMap};
use super::setup::Config;
use crate::plugin::template::common::{reply_to, zone_match};
use crate::plugin::{Next, Plugin};
use crate::server::{Outcome, Reply, Request};

static ENTRIES: LazyLock<Family<Vec<(String, String)>, Gauge>> = LazyLock::new(Family::default);
static RELOAD_TS: LazyLock<Gauge<f64, AtomicU64>> = LazyLock::new(Gauge::default);

fn register_metrics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        crate::observe::register(
            "coredns_hosts_entries",
            "The combined number of entries in hosts and Corefile.",
            ENTRIES.clone(),
        );
        crate::observe::register(
            "coredns_hosts_reload_timestamp_seconds",
            "The timestamp of the last reload of hosts file.",
            RELOAD_TS.clone(),
        );
    });
}

#[derive(Default)]
struct FileState {
    map: HostsMap,
    mtime: Option<SystemTime>,
    size: u64,
}

/// The running `hosts` plugin.
pub struct Hosts {
    cfg: Config,
    inline: HostsMap,
    file: RwLock<FileState>,
    entries: Gauge,
}

impl Hosts {
    /// Builds the handler, reads the file once and, when `reload` is set and a tokio runtime is
    /// running, starts the periodic re-read (it stops when the handler is dropped).
    pub fn start(cfg: Config) -> Arc<Hosts> {
        register_metrics();
        let inline = HostsMap::parse(&cfg.inline.join("\n"), &cfg.origins, cfg.auto_reverse);
        let entries = ENTRIES.get_or_create(&vec![("hostsfile".to_string(), cfg.path.clone())]).clone();
        let h = Arc::new(Hosts { cfg, inline, file: RwLock::new(FileState::default()), entries });
        h.read_hosts();
        if !h.cfg.reload.is_zero() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let weak: Weak<Hosts> = Arc::downgrade(&h);
                let every = h.cfg.reload;
                rt.spawn(async move {
                    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                    loop {
                        tick.tick().await;
                        let Some(h) = weak.upgrade() else { return };
                        h.read_hosts();
                    }
                });
            }
        }
        h
    }

    /// Re-reads the hosts file when its modification time or size changed.
    pub fn read_hosts(&self) {
        let Ok(meta) = std::fs::metadata(&self.cfg.path) else { return };
        let mtime = meta.modified().ok();
        {
            let st = self.file.read();
            if st.mtime.is_some() && st.mtime == mtime && st.size == meta.len() {
                return;
            }
        }
        let Ok(bytes) = std::fs::read(&self.cfg.path) else { return };
        let text = String::from_utf8_lossy(&bytes);
        let map = HostsMap::parse(&text, &self.cfg.origins, self.cfg.auto_reverse);
        tracing::debug!(target: "plugin/hosts", "Parsed hosts file into {} entries", map.len());
        let total = self.inline.len() + map.len();
        let mut st = self.file.write();
        st.map = map;
        st.mtime = mtime;
        st.size = meta.len();
        self.entries.set(total as i64);
        if let Some(secs) = mtime.and_then(|t| t.duration_since(UNIX_EPOCH).ok()) {
            RELOAD_TS.set(secs.as_secs_f64());
        }
    }

    fn lookup(&self, name: &str, v4: bool) -> Vec<IpAddr> {
        let mut ips = self.file.read().map.lookup(name, v4);
        ips.extend(self.inline.lookup(name, v4));
        ips
    }

    fn names(&self, addr: &IpAddr) -> Vec<String> {
        let mut names = self.file.read().map.names(addr);
        names.extend(self.inline.names(addr));
        names
    }

    /// The reply for `req`, or None to pass the query on (`Err` = unwritten SERVFAIL).
    fn handle(&self, req: &Request) -> Option<Result<Vec<Record>, ()>> {
        let qname = req.qname_lower.as_str();
        let in_zone = zone_match(&self.cfg.origins, qname).is_some();
        if !in_zone && req.qtype != 12 {
            return None;
        }
        let ttl = self.cfg.ttl;
        let owner = Name::from_ascii(qname).ok()?;
        let answers: Vec<Record> = match req.qtype {
            12 => {
                let names = address_from_reverse(qname).map(|a| self.names(&a)).unwrap_or_default();
                if names.is_empty() {
                    return None;
                }
                names
                    .iter()
                    .filter_map(|n| Name::from_ascii(n).ok())
                    .map(|n| Record::from_rdata(owner.clone(), ttl, RData::PTR(PTR(n))))
                    .collect()
            }
            1 => self
                .lookup(qname, true)
                .into_iter()
                .filter_map(|ip| match ip {
                    IpAddr::V4(v4) => Some(Record::from_rdata(owner.clone(), ttl, RData::A(A(v4)))),
                    IpAddr::V6(_) => None,
                })
                .collect(),
            28 => self
                .lookup(qname, false)
                .into_iter()
                .filter_map(|ip| match ip {
                    IpAddr::V6(v6) => Some(Record::from_rdata(owner.clone(), ttl, RData::AAAA(AAAA(v6)))),
                    IpAddr::V4(_) => None,
                })
                .collect(),
            _ => {
                if self.cfg.fallthrough_unsupported && self.cfg.fall.through(qname) {
                    return None;
                }
                Vec::new()
            }
        };
        if answers.is_empty() && self.lookup(qname, true).is_empty() && self.lookup(qname, false).is_empty() {
            if self.cfg.fall.through(qname) {
                return None;
            }
            return Some(Err(()));
        }
        Some(Ok(answers))
    }
}

impl Plugin for Hosts {
    fn name(&self) -> &'static str {
        "hosts"
    }

    fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            match self.handle(req) {
                None => next.serve(req).await,
                Some(Err(())) => Outcome::unwritten(ResponseCode::ServFail, None),
                Some(Ok(answers)) => match reply_to(req) {
                    Ok(mut m) => {
                        m.metadata.authoritative = true;
                        m.answers = answers;
                        Outcome::written("hosts", Reply::Message(Box::new(m)))
                    }
                    Err(e) => Outcome::unwritten(ResponseCode::ServFail, Some(format!("plugin/hosts: {e}"))),
                },
            }
        })
    }
}
