//! `cancel [TIMEOUT]` syntax (default 5001ms).

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use crate::corefile::{CorefileError, Dispenser};
use crate::gocompat::duration::parse_duration;
use crate::plugin::{BuildContext, Plugin, PluginConfig, SetupContext};

/// Parsed `cancel` configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Per-query deadline.
    pub timeout: Duration,
}

impl PluginConfig for Config {
    fn name(&self) -> &'static str {
        "cancel"
    }
    fn describe(&self) -> String {
        format!("cancel {:?}", self.timeout)
    }
    fn build(&self, _ctx: &BuildContext) -> Result<Option<Arc<dyn Plugin>>, String> {
        Ok(Some(Arc::new(super::handler::Cancel { timeout: self.timeout })))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Parses the `cancel` directive.
pub fn parse(d: &mut Dispenser, _ctx: &SetupContext) -> Result<Box<dyn PluginConfig>, CorefileError> {
    let mut timeout = Duration::from_millis(5001);
    while d.next() {
        let args = d.remaining_args();
        match args.len() {
            0 => timeout = Duration::from_millis(5001),
            1 => {
                let ns = parse_duration(&args[0]).map_err(|_| {
                    CorefileError::plain(format!("invalid duration: {:?}", args[0])).in_plugin("cancel")
                })?;
                if ns <= 0 {
                    return Err(
                        CorefileError::plain(format!("invalid negative duration: {:?}", args[0])).in_plugin("cancel")
                    );
                }
                timeout = Duration::from_nanos(ns as u64);
            }
            _ => return Err(d.arg_err().in_plugin("cancel")),
        }
    }
    Ok(Box::new(Config { timeout }))
}
