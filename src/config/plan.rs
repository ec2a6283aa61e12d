//! The plan: what a Corefile asks the server to run, as a printable value. Listeners → zone
//! table → one plugin chain per server block, chains in CoreDNS's fixed order.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::plugin::PluginConfig;

/// A server-block key's transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// `dns://` (default), port 53.
    Dns,
    /// `tls://`, port 853.
    Tls,
    /// `quic://`, port 853.
    Quic,
    /// `grpc://`, port 443.
    Grpc,
    /// `https://`, port 443.
    Https,
    /// `https3://`, port 443.
    Https3,
}

impl Transport {
    /// The scheme text without `://`.
    pub fn scheme(self) -> &'static str {
        match self {
            Transport::Dns => "dns",
            Transport::Tls => "tls",
            Transport::Quic => "quic",
            Transport::Grpc => "grpc",
            Transport::Https => "https",
            Transport::Https3 => "https3",
        }
    }
}

/// One normalised server-block key (after reverse-CIDR expansion).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ZoneKey {
    /// Transport.
    pub transport: Transport,
    /// Lower-case FQDN zone, `.` for the root.
    pub zone: String,
    /// Port.
    pub port: u16,
}

impl ZoneKey {
    /// CoreDNS's string form, e.g. `dns://example.org.:53`.
    pub fn to_uri(&self) -> String {
        format!("{}://{}:{}", self.transport.scheme(), self.zone, self.port)
    }
}

/// One server block as planned.
#[derive(Debug, Clone)]
pub struct BlockPlan {
    /// The block's keys, expanded and normalised.
    pub keys: Vec<ZoneKey>,
    /// Every plugin configured in the block, in CoreDNS's fixed execution order (setup-only
    /// plugins such as bind and reload included; their `build` returns no handler).
    pub plugins: Vec<Arc<dyn PluginConfig>>,
    /// Listen hosts from `bind` (IP text, v6 link-local with `%iface`); empty = wildcard.
    pub listen_hosts: Vec<String>,
}

impl BlockPlan {
    /// The configuration of plugin `name`, if the block has it.
    pub fn plugin(&self, name: &str) -> Option<&Arc<dyn PluginConfig>> {
        self.plugins.iter().find(|p| p.name() == name)
    }
}

/// One UDP+TCP listener and the zones it dispatches.
#[derive(Debug, Clone)]
pub struct ListenerPlan {
    /// Transport of the keys grouped here.
    pub transport: Transport,
    /// Socket address; the wildcard host is `[::]` (dual-stack) or `0.0.0.0`.
    pub addr: SocketAddr,
    /// True when no `bind` restricted this listener (CoreDNS's `:PORT`).
    pub wildcard: bool,
    /// Label used in logs and metrics, e.g. `dns://:53` or `dns://169.254.20.10:53`.
    pub label: String,
    /// (zone, index into [`Plan::blocks`]) for every zone served here.
    pub zones: Vec<(String, usize)>,
}

/// The whole plan.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Server blocks in Corefile order.
    pub blocks: Vec<BlockPlan>,
    /// Listeners, grouped CoreDNS's way.
    pub listeners: Vec<ListenerPlan>,
}
