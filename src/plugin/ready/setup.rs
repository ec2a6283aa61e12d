//! `ready [ADDRESS] { monitor until-ready|continuously }`, once per block.

use std::any::Any;
use std::sync::Arc;

use crate::corefile::{CorefileError, Dispenser};
use crate::observe::http::listen::optional_addr_arg;
use crate::observe::http::EndpointSpec;
use crate::plugin::{BuildContext, Plugin, PluginConfig, SetupContext};

/// Address used when none is given.
pub const DEFAULT_ADDR: &str = ":8181";

/// Parsed `ready` configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Listen address (`:8181` by default).
    pub addr: String,
    /// `monitor continuously`: keep asking plugins after they were ready once.
    pub continuously: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config { addr: DEFAULT_ADDR.to_string(), continuously: false }
    }
}

impl Config {
    /// The HTTP endpoint this configuration asks for.
    pub fn endpoint(&self) -> EndpointSpec {
        EndpointSpec::ready(&self.addr)
    }
}

impl PluginConfig for Config {
    fn name(&self) -> &'static str {
        "ready"
    }
    fn describe(&self) -> String {
        let monitor = if self.continuously { "continuously" } else { "until-ready" };
        format!("listen {}, monitor {monitor}", self.addr)
    }
    fn build(&self, _ctx: &BuildContext) -> Result<Option<Arc<dyn Plugin>>, String> {
        Ok(None)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn http_endpoint(&self) -> Option<EndpointSpec> {
        Some(self.endpoint())
    }
    fn ready_continuously(&self) -> bool {
        self.continuously
    }
}

/// Parses the `ready` directive of a block.
pub fn parse(d: &mut Dispenser, _ctx: &SetupContext) -> Result<Box<dyn PluginConfig>, CorefileError> {
    parse_config(d).map(|c| Box::new(c) as Box<dyn PluginConfig>).map_err(|e| e.in_plugin("ready"))
}

/// [`parse`] returning the concrete type.
pub fn parse_config(d: &mut Dispenser) -> Result<Config, CorefileError> {
    let mut cfg = Config::default();
    let mut seen = false;
    while d.next() {
        if seen {
            return Err(CorefileError::once_per_block());
        }
        seen = true;
        if let Some(addr) = optional_addr_arg(d)? {
            cfg.addr = addr;
        }
        while d.next_block() {
            match d.val() {
                "monitor" => {
                    let args = d.remaining_args();
                    let [mode] = args.as_slice() else { return Err(d.arg_err()) };
                    cfg.continuously = match mode.as_str() {
                        "until-ready" => false,
                        "continuously" => true,
                        other => return Err(d.err(format!("monitor type '{other}' not supported"))),
                    };
                }
                other => return Err(d.err(format!("unknown property '{other}'"))),
            }
        }
    }
    Ok(cfg)
}
