//! `timeouts { read D; write D; idle D; maxtcpqueries N }` syntax with CoreDNS's range checks.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use crate::corefile::{CorefileError, Dispenser};
use crate::gocompat::duration::{duration_string, parse_duration};
use crate::plugin::{BuildContext, Plugin, PluginConfig, SetupContext};

/// Parsed `timeouts` configuration; unset values keep the server defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    read: Option<Duration>,
    write: Option<Duration>,
    idle: Option<Duration>,
    max_tcp_queries: Option<i64>,
}

impl Config {
    /// First-read timeout for TCP connections (server default 3s).
    pub fn read(&self) -> Option<Duration> {
        self.read
    }
    /// Write timeout (server default 5s).
    pub fn write(&self) -> Option<Duration> {
        self.write
    }
    /// Idle timeout between queries on a TCP connection (server default 10s).
    pub fn idle(&self) -> Option<Duration> {
        self.idle
    }
    /// Queries per TCP connection, -1 unlimited (server default -1).
    pub fn max_tcp_queries(&self) -> Option<i64> {
        self.max_tcp_queries
    }
}

impl PluginConfig for Config {
    fn name(&self) -> &'static str {
        "timeouts"
    }
    fn describe(&self) -> String {
        format!(
            "timeouts read={:?} write={:?} idle={:?} maxtcpqueries={:?}",
            self.read, self.write, self.idle, self.max_tcp_queries
        )
    }
    fn build(&self, _ctx: &BuildContext) -> Result<Option<Arc<dyn Plugin>>, String> {
        Ok(None)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn server_timeouts(&self) -> Option<crate::plugin::ServerTimeouts> {
        Some(crate::plugin::ServerTimeouts {
            read: self.read,
            write: self.write,
            idle: self.idle,
            max_tcp_queries: self.max_tcp_queries,
        })
    }
}

/// CoreDNS's `durations.NewDurationFromArg`: a bare integer means seconds.
fn duration_from_arg(arg: &str) -> Result<i64, String> {
    let text = if arg.parse::<i64>().is_ok() { format!("{arg}s") } else { arg.to_string() };
    parse_duration(&text).map_err(|_| format!("failed to parse duration '{text}'"))
}

/// Parses the `timeouts` directive.
pub fn parse(d: &mut Dispenser, _ctx: &SetupContext) -> Result<Box<dyn PluginConfig>, CorefileError> {
    parse_config(d).map(|c| Box::new(c) as Box<dyn PluginConfig>).map_err(|e| e.in_plugin("timeouts"))
}

/// Parses into the concrete configuration.
pub fn parse_config(d: &mut Dispenser) -> Result<Config, CorefileError> {
    let mut cfg = Config::default();
    while d.next() {
        if !d.remaining_args().is_empty() {
            return Err(d.arg_err().in_plugin("timeouts: plugin/timeouts"));
        }
        let mut set = 0;
        while d.next_block() {
            let block = d.val().to_string();
            let args = d.remaining_args();
            if args.len() != 1 {
                return Err(d.arg_err());
            }
            if block == "maxtcpqueries" {
                let n: i64 = args[0].parse().map_err(|_| {
                    d.err(format!(
                        "invalid value for maxtcpqueries '{}': strconv.Atoi: parsing {:?}: invalid syntax",
                        args[0], args[0]
                    ))
                })?;
                if n == 0 || n < -1 {
                    return Err(d.err(format!(
                        "maxtcpqueries provided '{n}' needs to be -1 (unlimited) or a positive integer"
                    )));
                }
                cfg.max_tcp_queries = Some(n);
                set += 1;
                continue;
            }
            let ns = duration_from_arg(&args[0]).map_err(|e| d.err(e))?;
            if !(1_000_000_000..=86_400_000_000_000).contains(&ns) {
                return Err(d.err(format!(
                    "timeout provided '{}' needs to be between 1 second and 24 hours",
                    duration_string(ns)
                )));
            }
            let dur = Some(Duration::from_nanos(ns as u64));
            match block.as_str() {
                "read" => cfg.read = dur,
                "write" => cfg.write = dur,
                "idle" => cfg.idle = dur,
                other => return Err(d.err(format!("unknown option: '{other}'"))),
            }
            set += 1;
        }
        if set == 0 {
            return Err(d.err("timeouts block with no timeouts specified").in_plugin("timeouts: plugin/timeouts"));
        }
    }
    Ok(cfg)
}
