//! Applies a freshly built plan to the observability side: HTTP endpoints, readiness checks and
//! `coredns_plugin_enabled`. Call [`after_build`] once a (re)load has built every chain.

use std::sync::Arc;

use crate::config::Plan;
use crate::observe::dns_metrics;
use crate::observe::http;
use crate::observe::readiness::{self, ReadyFn};
use crate::plugin::Chain;

/// Wires `plan` whose block `i` was built into `chains[i]`:
/// - every `health`, `ready` and `prometheus` line's endpoint is started (others stopped);
/// - `/ready` asks the handlers of the blocks that use `ready`;
/// - `coredns_plugin_enabled{server,zone,view,name}` is rewritten for the blocks that use
///   `prometheus`, per listener label and zone, one series per handler.
///
/// Returns the endpoint start errors (`listen tcp ...`), which CoreDNS treats as fatal.
pub fn after_build(plan: &Plan, chains: &[Chain]) -> Result<(), String> {
    let mut checks: Vec<(String, ReadyFn)> = Vec::new();
    let mut continuously = false;
    let mut endpoints = Vec::new();
    for (i, block) in plan.blocks.iter().enumerate() {
        endpoints.extend(block.plugins.iter().filter_map(|cfg| http::endpoint_for(cfg.as_ref())));
        let Some(ready) = block.plugin("ready") else { continue };
        continuously |= ready.ready_continuously();
        for handler in chains.get(i).map(|c| c.iter()).into_iter().flatten() {
            let h = handler.clone();
            checks.push((handler.name().to_string(), Arc::new(move || h.ready())));
        }
    }
    readiness::set_ready_checks(checks, continuously);

    dns_metrics::reset_plugin_enabled();
    for listener in &plan.listeners {
        for (zone, bi) in &listener.zones {
            let uses_prometheus = plan.blocks.get(*bi).is_some_and(|b| b.plugin("prometheus").is_some());
            if !uses_prometheus {
                continue;
            }
            for handler in chains.get(*bi).map(|c| c.iter()).into_iter().flatten() {
                dns_metrics::set_plugin_enabled(&listener.label, zone, handler.name());
            }
        }
    }
    http::apply(endpoints)
}
