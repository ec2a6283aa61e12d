//! `whoami` directive syntax: no arguments.

use std::any::Any;
use std::sync::Arc;

use crate::corefile::{CorefileError, Dispenser};
use crate::plugin::{BuildContext, Plugin, PluginConfig, SetupContext};

/// Parsed `whoami` configuration (it has no options).
#[derive(Debug, Clone, Default)]
pub struct Config {}

impl PluginConfig for Config {
    fn name(&self) -> &'static str {
        "whoami"
    }
    fn describe(&self) -> String {
        "whoami".into()
    }
    fn build(&self, _ctx: &BuildContext) -> Result<Option<Arc<dyn Plugin>>, String> {
        Ok(Some(Arc::new(super::handler::Whoami)))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Parses every `whoami` occurrence in a block (arguments are an error).
pub fn parse(d: &mut Dispenser, _ctx: &SetupContext) -> Result<Box<dyn PluginConfig>, CorefileError> {
    while d.next() {
        if d.next_arg() {
            return Err(d.arg_err().in_plugin("whoami"));
        }
    }
    Ok(Box::new(Config {}))
}
