//! `health [ADDRESS] { lameduck DURATION }`.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use crate::corefile::{CorefileError, Dispenser};
use crate::gocompat::duration;
use crate::observe::http::listen::optional_addr_arg;
use crate::observe::http::EndpointSpec;
use crate::plugin::{BuildContext, Plugin, PluginConfig, SetupContext};

/// Address used when none is given.
pub const DEFAULT_ADDR: &str = ":8080";

/// Parsed `health` configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Listen address (`:8080` by default).
    pub addr: String,
    /// How long final shutdown keeps serving after SIGTERM.
    pub lameduck: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config { addr: DEFAULT_ADDR.to_string(), lameduck: Duration::ZERO }
    }
}

impl Config {
    /// The HTTP endpoint this configuration asks for.
    pub fn endpoint(&self) -> EndpointSpec {
        EndpointSpec::health(&self.addr, self.lameduck)
    }
}

impl PluginConfig for Config {
    fn name(&self) -> &'static str {
        "health"
    }
    fn describe(&self) -> String {
        if self.lameduck.is_zero() {
            format!("listen {}", self.addr)
        } else {
            format!("listen {}, lameduck {}", self.addr, duration::format_std(self.lameduck))
        }
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
}

/// Parses every `health` occurrence in a block (a later address wins, as in CoreDNS).
pub fn parse(d: &mut Dispenser, _ctx: &SetupContext) -> Result<Box<dyn PluginConfig>, CorefileError> {
    parse_config(d).map(|c| Box::new(c) as Box<dyn PluginConfig>).map_err(|e| e.in_plugin("health"))
}

/// [`parse`] returning the concrete type.
pub fn parse_config(d: &mut Dispenser) -> Result<Config, CorefileError> {
    let mut cfg = Config::default();
    while d.next() {
        if let Some(addr) = optional_addr_arg(d)? {
            cfg.addr = addr;
        }
        while d.next_block() {
            match d.val() {
                "lameduck" => {
                    let args = d.remaining_args();
                    let [value] = args.as_slice() else { return Err(d.arg_err()) };
                    cfg.lameduck = duration::parse_nonneg(value).map_err(|e| {
                        let e = e.unwrap_or_else(|| format!("negative duration \"{value}\""));
                        CorefileError::plain(format!("unable to parse lameduck duration value: '{value}' : {e}"))
                    })?;
                }
                other => return Err(d.err(format!("unknown property '{other}'"))),
            }
        }
    }
    Ok(cfg)
}
