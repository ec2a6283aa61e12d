//! `reload [INTERVAL [JITTER]]`: defaults 30s and 15s; INTERVAL ≥ 2s; JITTER 0 or ≥ 1s,
//! capped at INTERVAL/2. Only the first `reload` line of a block is read.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use crate::corefile::{CorefileError, Dispenser, ErrorKind, Token};
use crate::gocompat::duration;
use crate::plugin::{BuildContext, Plugin, PluginConfig, SetupContext};

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_JITTER: Duration = Duration::from_secs(15);
const MIN_INTERVAL: Duration = Duration::from_secs(2);
const MIN_JITTER: Duration = Duration::from_secs(1);

/// Parsed `reload` configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    interval: Duration,
    jitter: Duration,
    period: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config::new(DEFAULT_INTERVAL, DEFAULT_JITTER)
    }
}

impl Config {
    /// A configuration with the given interval and (already capped) jitter; the check period
    /// is chosen now, as CoreDNS does at setup.
    pub fn new(interval: Duration, jitter: Duration) -> Config {
        let mut period = interval;
        if !jitter.is_zero() {
            let j = jitter.as_nanos() as i128;
            let offset = rand::rng().random_range(0..j) - j / 2;
            period = Duration::from_nanos((interval.as_nanos() as i128 + offset).max(0) as u64);
        }
        Config { interval, jitter, period }
    }

    /// The configured interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The jitter after capping at interval/2 (zero means none).
    pub fn jitter(&self) -> Duration {
        self.jitter
    }

    /// The check period: interval plus a uniform random offset in [-jitter/2, jitter/2),
    /// chosen once at setup.
    pub fn period(&self) -> Duration {
        self.period
    }
}

impl PluginConfig for Config {
    fn name(&self) -> &'static str {
        "reload"
    }
    fn describe(&self) -> String {
        format!(
            "interval {} jitter {} (period {})",
            duration::format_std(self.interval),
            duration::format_std(self.jitter),
            duration::format_std(self.period)
        )
    }
    fn build(&self, _ctx: &BuildContext) -> Result<Option<Arc<dyn Plugin>>, String> {
        Ok(None)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Parses the first `reload` line of a block.
pub fn parse(d: &mut Dispenser, _ctx: &SetupContext) -> Result<Box<dyn PluginConfig>, CorefileError> {
    let plain = |d: &Dispenser, msg: String| {
        let tok = d.token().cloned().unwrap_or_else(|| Token::new("", Arc::from(""), 0, 0));
        CorefileError::at(ErrorKind::Plain, &tok, msg).in_plugin("reload")
    };
    d.next();
    let args = d.remaining_args();
    if args.len() > 2 {
        return Err(d.arg_err().in_plugin("reload"));
    }
    let interval = match args.first() {
        Some(a) => duration::parse_duration(a).map_err(|e| plain(d, e))?,
        None => DEFAULT_INTERVAL.as_nanos() as i64,
    };
    if interval < MIN_INTERVAL.as_nanos() as i64 {
        return Err(plain(d, "interval value must be greater or equal to 2s".into()));
    }
    let mut jitter = match args.get(1) {
        Some(a) => duration::parse_duration(a).map_err(|e| plain(d, e))?,
        None => DEFAULT_JITTER.as_nanos() as i64,
    };
    if jitter != 0 && jitter < MIN_JITTER.as_nanos() as i64 {
        return Err(plain(d, "jitter value must be 0 or greater or equal to 1s".into()));
    }
    if jitter > 0 && jitter > interval / 2 {
        jitter = interval / 2;
    }
    Ok(Box::new(Config::new(Duration::from_nanos(interval as u64), Duration::from_nanos(jitter.max(0) as u64))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn parse_text(text: &str) -> Result<(Duration, Duration, Duration), String> {
        let mut d = Dispenser::from_text(text);
        parse(&mut d, &SetupContext::default())
            .map(|c| {
                let c = c.as_any().downcast_ref::<Config>().cloned().unwrap_or_default();
                (c.interval(), c.jitter(), c.period())
            })
            .map_err(|e| e.coredns_message())
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn case_43_accepted() {
        let (i, j, p) = parse_text("reload").expect("reload");
        assert_eq!((i, j), (secs(30), secs(15)));
        assert!(p >= Duration::from_millis(22_500) && p < Duration::from_millis(37_500), "{p:?}");
        let (i, j, p) = parse_text("reload 10s").expect("reload 10s");
        // The default jitter 15s is capped at interval/2.
        assert_eq!((i, j), (secs(10), secs(5)));
        assert!(p >= Duration::from_millis(7_500) && p < Duration::from_millis(12_500), "{p:?}");
        let (i, j, _) = parse_text("reload 10s 2s").expect("reload 10s 2s");
        assert_eq!((i, j), (secs(10), secs(2)));
        assert_eq!(parse_text("reload 2s 0s"), Ok((secs(2), secs(0), secs(2))));
        // Only the first line is read.
        assert_eq!(parse_text("reload 5s 0\nreload 1s"), Ok((secs(5), secs(0), secs(5))));
    }

    #[test]
    fn case_43_rejected() {
        assert_eq!(parse_text("reload foo"), Err("plugin/reload: time: invalid duration \"foo\"".into()));
        assert_eq!(parse_text("reload 10s foo"), Err("plugin/reload: time: invalid duration \"foo\"".into()));
        assert_eq!(
            parse_text("reload 10s 2s 3s"),
            Err("plugin/reload: Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after '3s'"
                .into())
        );
        assert_eq!(parse_text("reload 1s"), Err("plugin/reload: interval value must be greater or equal to 2s".into()));
        assert_eq!(parse_text("reload 0s"), Err("plugin/reload: interval value must be greater or equal to 2s".into()));
        assert_eq!(
            parse_text("reload 3s 0.5s"),
            Err("plugin/reload: jitter value must be 0 or greater or equal to 1s".into())
        );
    }
}
