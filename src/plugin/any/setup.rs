//! `any` directive syntax: no arguments and no block.

use std::any::Any;
use std::sync::Arc;

use crate::corefile::{CorefileError, Dispenser};
use crate::plugin::{BuildContext, Plugin, PluginConfig, SetupContext};

/// Parsed `any` configuration (no options).
#[derive(Debug, Clone, Default)]
pub struct Config {}

impl PluginConfig for Config {
    fn name(&self) -> &'static str {
        "any"
    }
    fn describe(&self) -> String {
        "any".into()
    }
    fn build(&self, _ctx: &BuildContext) -> Result<Option<Arc<dyn Plugin>>, String> {
        Ok(Some(Arc::new(super::handler::AnyHandler)))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Parses the `any` directive.
pub fn parse(d: &mut Dispenser, _ctx: &SetupContext) -> Result<Box<dyn PluginConfig>, CorefileError> {
    if d.next() {
        if d.next_arg() {
            return Err(d.arg_err().in_plugin("any"));
        }
        if d.next_block() {
            return Err(d.err(format!("unknown property '{}'", d.val())).in_plugin("any"));
        }
    }
    Ok(Box::new(Config {}))
}
