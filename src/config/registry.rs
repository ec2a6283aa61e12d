//! Directive name → setup function for every plugin this engine implements.

use crate::corefile::{CorefileError, Dispenser};
use crate::plugin::{self, PluginConfig, SetupContext};

/// Parses one directive's tokens (every occurrence in a block) into its typed configuration.
/// The dispenser starts before the first directive-name token; setup functions loop with
/// `while d.next()` over occurrences, as CoreDNS plugins do.
pub type SetupFn = fn(&mut Dispenser, &SetupContext) -> Result<Box<dyn PluginConfig>, CorefileError>;

/// The setup function for `name`, or None when this engine does not implement it.
pub fn setup_fn(name: &str) -> Option<SetupFn> {
    let f: SetupFn = match name {
        "errors" => plugin::errors::setup::parse,
        "cache" => plugin::cache::setup::parse,
        "forward" => plugin::forward::setup::parse,
        "health" => plugin::health::setup::parse,
        "ready" => plugin::ready::setup::parse,
        "reload" => plugin::reload::setup::parse,
        "loop" => plugin::loop_detect::setup::parse,
        "bind" => plugin::bind::setup::parse,
        "prometheus" => plugin::prometheus::setup::parse,
        "log" => plugin::log::setup::parse,
        "template" => plugin::template::setup::parse,
        "hosts" => plugin::hosts::setup::parse,
        "whoami" => plugin::whoami::setup::parse,
        "debug" => plugin::debug::setup::parse,
        "any" => plugin::any::setup::parse,
        "cancel" => plugin::cancel::setup::parse,
        "minimal" => plugin::minimal::setup::parse,
        "loadbalance" => plugin::loadbalance::setup::parse,
        "bufsize" => plugin::bufsize::setup::parse,
        "rewrite" => plugin::rewrite::setup::parse,
        "timeouts" => plugin::timeouts::setup::parse,
        _ => return None,
    };
    Some(f)
}

/// Every directive this engine implements.
pub fn implemented() -> Vec<&'static str> {
    crate::config::order::PLUGIN_ORDER.iter().copied().filter(|n| setup_fn(n).is_some()).collect()
}
