//! `debug` directive syntax: no arguments.

use std::any::Any;
use std::sync::Arc;

use crate::corefile::{CorefileError, Dispenser};
use crate::plugin::{BuildContext, Plugin, PluginConfig, SetupContext};

/// Parsed `debug` configuration (no options).
#[derive(Debug, Clone, Default)]
pub struct Config {}

impl PluginConfig for Config {
    fn name(&self) -> &'static str {
        "debug"
    }
    fn describe(&self) -> String {
        "debug".into()
    }
    /// Sets the process-wide flag; adds no handler.
    fn build(&self, _ctx: &BuildContext) -> Result<Option<Arc<dyn Plugin>>, String> {
        super::set_enabled(true);
        Ok(None)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Parses every `debug` occurrence in a block.
pub fn parse(d: &mut Dispenser, _ctx: &SetupContext) -> Result<Box<dyn PluginConfig>, CorefileError> {
    while d.next() {
        if d.next_arg() {
            return Err(d.arg_err().in_plugin("debug"));
        }
    }
    Ok(Box::new(Config {}))
}
