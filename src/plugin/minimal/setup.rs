//! `minimal` directive syntax: no arguments.

use std::any::Any;
use std::sync::Arc;

use crate::corefile::{CorefileError, Dispenser};
use crate::plugin::{BuildContext, Plugin, PluginConfig, SetupContext};

/// Parsed `minimal` configuration (no options).
#[derive(Debug, Clone, Default)]
pub struct Config {}

impl PluginConfig for Config {
    fn name(&self) -> &'static str {
        "minimal"
    }
    fn describe(&self) -> String {
        "minimal".into()
    }
    fn build(&self, _ctx: &BuildContext) -> Result<Option<Arc<dyn Plugin>>, String> {
        Ok(Some(Arc::new(super::handler::Minimal)))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Parses the `minimal` directive.
pub fn parse(d: &mut Dispenser, _ctx: &SetupContext) -> Result<Box<dyn PluginConfig>, CorefileError> {
    if d.next() && d.next_arg() {
        return Err(d.arg_err().in_plugin("minimal"));
    }
    Ok(Box::new(Config {}))
}
