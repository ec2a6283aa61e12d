//! `bufsize [SIZE]` syntax: 512–4096, default 1232.

use std::any::Any;
use std::sync::Arc;

use crate::corefile::{CorefileError, Dispenser};
use crate::plugin::{BuildContext, Plugin, PluginConfig, SetupContext};

/// The default size (the DNS flag day 2020 value).
pub const DEFAULT_SIZE: u16 = 1232;

/// Parsed `bufsize` configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The size queries are capped to.
    pub size: u16,
}

impl PluginConfig for Config {
    fn name(&self) -> &'static str {
        "bufsize"
    }
    fn describe(&self) -> String {
        format!("bufsize {}", self.size)
    }
    fn build(&self, _ctx: &BuildContext) -> Result<Option<Arc<dyn Plugin>>, String> {
        Ok(Some(Arc::new(super::handler::Bufsize { size: self.size })))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// CoreDNS wraps these errors with the plugin name twice.
fn twice(e: CorefileError) -> CorefileError {
    e.in_plugin("bufsize: plugin/bufsize")
}

/// Parses the `bufsize` directive.
pub fn parse(d: &mut Dispenser, _ctx: &SetupContext) -> Result<Box<dyn PluginConfig>, CorefileError> {
    if d.next() {
        let args = d.remaining_args();
        let size = match args.len() {
            0 => DEFAULT_SIZE,
            1 => match args[0].parse::<i64>() {
                Ok(n) if (512..=4096).contains(&n) => n as u16,
                _ => return Err(twice(d.arg_err())),
            },
            _ => return Err(twice(d.arg_err())),
        };
        return Ok(Box::new(Config { size }));
    }
    Err(twice(d.arg_err()))
}
