//! `hosts [FILE [ZONES...]] { INLINE...; ttl; no_reverse; reload; fallthrough;
//! fallthrough_unsupported }` syntax.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use crate::corefile::{CorefileError, Dispenser};
use crate::gocompat::duration::parse_duration;
use crate::plugin::template::common::{origins_from_args_or_block, Fall};
use crate::plugin::{BuildContext, Plugin, PluginConfig, SetupContext};

/// Parsed `hosts` configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Hosts file path (default `/etc/hosts`).
    pub path: String,
    /// Zones served.
    pub origins: Vec<String>,
    /// Inline host lines from the block.
    pub inline: Vec<String>,
    /// Answer TTL (default 3600).
    pub ttl: u32,
    /// Whether PTR records are synthesised (off with `no_reverse`).
    pub auto_reverse: bool,
    /// Re-read interval (default 5s, zero disables).
    pub reload: Duration,
    /// Fallthrough zones.
    pub fall: Fall,
    /// Pass unsupported query types to the next plugin (with fallthrough).
    pub fallthrough_unsupported: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            path: "/etc/hosts".into(),
            origins: Vec::new(),
            inline: Vec::new(),
            ttl: 3600,
            auto_reverse: true,
            reload: Duration::from_secs(5),
            fall: Fall::default(),
            fallthrough_unsupported: false,
        }
    }
}

impl PluginConfig for Config {
    fn name(&self) -> &'static str {
        "hosts"
    }

    fn describe(&self) -> String {
        format!(
            "hosts {} zones={:?} inline={:?} ttl={} reverse={} reload={:?} fallthrough={:?} fallthrough_unsupported={}",
            self.path,
            self.origins,
            self.inline,
            self.ttl,
            self.auto_reverse,
            self.reload,
            self.fall.zones,
            self.fallthrough_unsupported
        )
    }

    fn build(&self, _ctx: &BuildContext) -> Result<Option<Arc<dyn Plugin>>, String> {
        Ok(Some(super::handler::Hosts::start(self.clone())))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Parses the `hosts` directive (once per block).
pub fn parse(d: &mut Dispenser, ctx: &SetupContext) -> Result<Box<dyn PluginConfig>, CorefileError> {
    parse_config(d, ctx).map(|c| Box::new(c) as Box<dyn PluginConfig>).map_err(|e| e.in_plugin("hosts"))
}

/// Parses into the concrete configuration.
pub fn parse_config(d: &mut Dispenser, ctx: &SetupContext) -> Result<Config, CorefileError> {
    let mut cfg = Config::default();
    let mut seen = 0;
    while d.next() {
        if seen > 0 {
            return Err(CorefileError::once_per_block());
        }
        seen += 1;
        let mut args = d.remaining_args();
        if !args.is_empty() {
            cfg.path = args.remove(0);
            match std::fs::metadata(&cfg.path) {
                Ok(m) if m.is_dir() => {
                    tracing::warn!(target: "plugin/hosts", "Hosts file {:?} is a directory", cfg.path)
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::warn!(target: "plugin/hosts", "File does not exist: {}", cfg.path)
                }
                Err(e) => return Err(d.err(format!("unable to access hosts file '{}': {}", cfg.path, e))),
            }
        }
        cfg.origins = origins_from_args_or_block(&args, &ctx.zones);
        while d.next_block() {
            match d.val() {
                "fallthrough" => {
                    let a = d.remaining_args();
                    cfg.fall.set_from_args(&a);
                }
                "fallthrough_unsupported" => {
                    if !d.remaining_args().is_empty() {
                        return Err(d.arg_err());
                    }
                    cfg.fallthrough_unsupported = true;
                }
                "no_reverse" => cfg.auto_reverse = false,
                "ttl" => {
                    let rest = d.remaining_args();
                    let first = rest.first().ok_or_else(|| d.err("ttl needs a time in second"))?;
                    let ttl: i64 = first.parse().map_err(|_| d.err("ttl needs a number of second"))?;
                    if ttl <= 0 || ttl > 65535 {
                        return Err(d.err("ttl provided is invalid"));
                    }
                    cfg.ttl = ttl as u32;
                }
                "reload" => {
                    let rest = d.remaining_args();
                    if rest.len() != 1 {
                        return Err(d.err("reload needs a duration (zero seconds to disable)"));
                    }
                    let ns = parse_duration(&rest[0])
                        .map_err(|_| d.err(format!("invalid duration for reload '{}'", rest[0])))?;
                    if ns < 0 {
                        return Err(d.err(format!("invalid negative duration for reload '{}'", rest[0])));
                    }
                    cfg.reload = Duration::from_nanos(ns as u64);
                }
                other => {
                    if cfg.fall.zones.is_empty() {
                        let mut line = vec![other.to_string()];
                        line.extend(d.remaining_args());
                        cfg.inline.push(line.join(" "));
                        continue;
                    }
                    return Err(d.err(format!("unknown property '{other}'")));
                }
            }
        }
    }
    if cfg.fallthrough_unsupported && cfg.fall.zones.is_empty() {
        return Err(d.err("fallthrough_unsupported requires fallthrough"));
    }
    Ok(cfg)
}
