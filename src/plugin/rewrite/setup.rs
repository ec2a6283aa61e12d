//! `rewrite [continue|stop] TYPE ARGS...` syntax (one rule per occurrence; a brace block
//! supplies the arguments when the line has fewer than two).

use std::any::Any;
use std::sync::Arc;

use super::rules::{new_rule, Rule};
use crate::corefile::{CorefileError, Dispenser};
use crate::plugin::{BuildContext, Plugin, PluginConfig, SetupContext};

/// Parsed `rewrite` configuration: every rule of the block, in order.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Rules in Corefile order.
    pub rules: Vec<Rule>,
    /// The rules' argument text (for `describe`).
    pub texts: Vec<String>,
}

impl PluginConfig for Config {
    fn name(&self) -> &'static str {
        "rewrite"
    }
    fn describe(&self) -> String {
        self.texts.iter().map(|t| format!("rewrite {t}")).collect::<Vec<_>>().join("\n")
    }
    fn build(&self, ctx: &BuildContext) -> Result<Option<Arc<dyn Plugin>>, String> {
        let self_addr =
            ctx.servers.first().and_then(|l| crate::plugin::loop_detect::handler::probe_target(l)).map(|(a, _)| a);
        Ok(Some(Arc::new(super::handler::Rewrite { rules: self.rules.clone(), self_addr })))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Parses every `rewrite` occurrence in a block.
pub fn parse(d: &mut Dispenser, _ctx: &SetupContext) -> Result<Box<dyn PluginConfig>, CorefileError> {
    let mut cfg = Config::default();
    while d.next() {
        let mut args = d.remaining_args();
        if args.len() < 2 {
            while d.next_block() {
                args.push(d.val().to_string());
            }
        }
        let rule = new_rule(&args).map_err(|e| CorefileError::plain(e).in_plugin("rewrite"))?;
        cfg.texts.push(args.join(" "));
        cfg.rules.push(rule);
    }
    Ok(Box::new(cfg))
}
