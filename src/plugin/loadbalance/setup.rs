//! `loadbalance` directive syntax (placeholder: accepts any arguments until implemented).

use std::any::Any;
use std::sync::Arc;

use crate::corefile::{CorefileError, Dispenser};
use crate::plugin::{BuildContext, Plugin, PluginConfig, SetupContext};

/// Parsed `loadbalance` configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {}

impl PluginConfig for Config {
    fn name(&self) -> &'static str {
        "loadbalance"
    }
    fn build(&self, _ctx: &BuildContext) -> Result<Option<Arc<dyn Plugin>>, String> {
        Ok(None)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Parses every `loadbalance` occurrence in a block.
pub fn parse(d: &mut Dispenser, _ctx: &SetupContext) -> Result<Box<dyn PluginConfig>, CorefileError> {
    while d.next() {}
    Ok(Box::new(Config {}))
}
