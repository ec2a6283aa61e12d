//! `loadbalance [round_robin | weighted FILE { reload D }] { prefer CIDR... }` syntax.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use crate::corefile::{CorefileError, Dispenser};
use crate::gocompat::duration::parse_duration;
use crate::plugin::{BuildContext, Plugin, PluginConfig, SetupContext};

/// A subnet in `prefer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// Network address (host bits cleared).
    pub addr: std::net::IpAddr,
    /// Prefix length.
    pub len: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n` or `x::/n` like Go's `net.ParseCIDR`.
    pub fn parse(text: &str) -> Option<Cidr> {
        let (ip, len) = text.split_once('/')?;
        let addr: std::net::IpAddr = ip.parse().ok()?;
        if len.is_empty() || !len.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let len: u8 = len.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return None;
        }
        let c = Cidr { addr, len };
        Some(Cidr { addr: c.mask(addr), len })
    }

    fn mask(&self, ip: std::net::IpAddr) -> std::net::IpAddr {
        match ip {
            std::net::IpAddr::V4(v4) => {
                let m = if self.len == 0 { 0 } else { u32::MAX << (32 - self.len) };
                std::net::IpAddr::V4((u32::from(v4) & m).into())
            }
            std::net::IpAddr::V6(v6) => {
                let m = if self.len == 0 { 0 } else { u128::MAX << (128 - self.len) };
                std::net::IpAddr::V6((u128::from(v6) & m).into())
            }
        }
    }

    /// True when `ip` is inside the subnet (same family).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && self.mask(ip) == self.addr
    }
}

/// The shuffle policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// Random round robin (the default).
    RoundRobin,
    /// Weighted by a weight file: the first address is drawn by weight.
    Weighted {
        /// Weight file path.
        file: String,
        /// Re-read interval.
        reload: Duration,
    },
}

/// Parsed `loadbalance` configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Shuffle policy.
    pub policy: Policy,
    /// Preferred subnets, in order.
    pub prefer: Vec<Cidr>,
}

impl PluginConfig for Config {
    fn name(&self) -> &'static str {
        "loadbalance"
    }
    fn describe(&self) -> String {
        format!("loadbalance {:?} prefer={:?}", self.policy, self.prefer)
    }
    fn build(&self, _ctx: &BuildContext) -> Result<Option<Arc<dyn Plugin>>, String> {
        let weighted = match &self.policy {
            Policy::Weighted { file, reload } => Some(super::weighted::WeightedRR::start(file, *reload)?),
            Policy::RoundRobin => None,
        };
        Ok(Some(Arc::new(super::handler::LoadBalance { prefer: self.prefer.clone(), weighted })))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Parses the `loadbalance` directive.
pub fn parse(d: &mut Dispenser, _ctx: &SetupContext) -> Result<Box<dyn PluginConfig>, CorefileError> {
    parse_config(d).map(|c| Box::new(c) as Box<dyn PluginConfig>).map_err(|e| e.in_plugin("loadbalance"))
}

/// Parses into the concrete configuration.
pub fn parse_config(d: &mut Dispenser) -> Result<Config, CorefileError> {
    let mut cfg = Config { policy: Policy::RoundRobin, prefer: Vec::new() };
    while d.next() {
        let args = d.remaining_args();
        if let Some(first) = args.first() {
            match first.as_str() {
                "round_robin" => {
                    if args.len() > 1 {
                        return Err(d.err(format!("unknown property for {first}")));
                    }
                    cfg.policy = Policy::RoundRobin;
                }
                "weighted" => {
                    if args.len() < 2 {
                        return Err(d.err("missing weight file argument"));
                    }
                    if args.len() > 2 {
                        return Err(d.err("unexpected argument(s)"));
                    }
                    let mut reload = Duration::from_secs(30);
                    while d.next_block() {
                        match d.val() {
                            "reload" => {
                                let t = d.remaining_args();
                                if t.is_empty() {
                                    return Err(d.err("reload duration value is missing"));
                                }
                                if t.len() > 1 {
                                    return Err(d.err("unexpected argument"));
                                }
                                let ns = parse_duration(&t[0])
                                    .map_err(|_| d.err(format!("invalid reload duration '{}'", t[0])))?;
                                reload = Duration::from_nanos(ns.max(0) as u64);
                            }
                            other => return Err(d.err(format!("unknown property '{other}'"))),
                        }
                    }
                    cfg.policy = Policy::Weighted { file: args[1].clone(), reload };
                }
                other => return Err(CorefileError::plain(format!("unknown policy: {other}"))),
            }
        }
        while d.next_block() {
            match d.val() {
                "prefer" => {
                    for c in d.remaining_args() {
                        let cidr = Cidr::parse(&c)
                            .ok_or_else(|| d.err(format!("invalid CIDR {c:?}: invalid CIDR address: {c}")))?;
                        cfg.prefer.push(cidr);
                    }
                }
                other => return Err(d.err(format!("unknown property '{other}'"))),
            }
        }
    }
    Ok(cfg)
}
