//! `loop` directive syntax: no arguments, once per block.

use std::any::Any;
use std::sync::Arc;

use crate::corefile::{CorefileError, Dispenser};
use crate::plugin::template::common::normalize_zone;
use crate::plugin::{BuildContext, Plugin, PluginConfig, SetupContext};

/// Parsed `loop` configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The zone probed: the block's first key, or `.`.
    pub zone: String,
}

impl PluginConfig for Config {
    fn name(&self) -> &'static str {
        "loop"
    }

    fn describe(&self) -> String {
        format!("loop zone={}", self.zone)
    }

    fn build(&self, ctx: &BuildContext) -> Result<Option<Arc<dyn Plugin>>, String> {
        let l = super::handler::Loop::new(&self.zone, super::handler::exit_process());
        if let Some(label) = ctx.servers.first() {
            l.start_probe(label);
        }
        Ok(Some(l))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Parses the `loop` directive.
pub fn parse(d: &mut Dispenser, ctx: &SetupContext) -> Result<Box<dyn PluginConfig>, CorefileError> {
    let mut zone = ".".to_string();
    let mut seen = 0;
    while d.next() {
        if seen > 0 {
            return Err(CorefileError::once_per_block().in_plugin("loop"));
        }
        seen += 1;
        if d.next_arg() {
            return Err(d.arg_err().in_plugin("loop"));
        }
        if let Some(first) = ctx.zones.first() {
            zone = normalize_zone(first);
        }
    }
    Ok(Box::new(Config { zone }))
}
