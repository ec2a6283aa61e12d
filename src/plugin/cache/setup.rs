//! `cache` directive syntax: every option, default and argument check of CoreDNS's cache setup.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use crate::corefile::{CorefileError, Dispenser};
use crate::dnsname;
use crate::gocompat::duration::{format_std, parse_duration, parse_nonneg};
use crate::plugin::{BuildContext, Plugin, PluginConfig, SetupContext};

/// Default capacity of each store.
pub const DEFAULT_CAP: usize = 10000;
/// Default maximum TTL of success entries (seconds).
pub const MAX_TTL: u32 = 3600;
/// Default maximum TTL of denial entries (seconds).
pub const MAX_NTTL: u32 = 1800;
/// Default minimum TTL (seconds).
pub const MIN_TTL: u32 = 5;

/// Parsed `cache` configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Zones cached (the arguments, else the block's zones), normalised.
    pub zones: Vec<String>,
    /// Success store capacity.
    pub pcap: usize,
    /// Success maximum TTL (s).
    pub pttl: u32,
    /// Success minimum TTL (s).
    pub minpttl: u32,
    /// Denial store capacity.
    pub ncap: usize,
    /// Denial maximum TTL (s).
    pub nttl: u32,
    /// Denial minimum TTL (s).
    pub minnttl: u32,
    /// How long SERVFAIL/NOTIMP replies are cached (0 = not cached).
    pub failttl: Duration,
    /// Prefetch AMOUNT (0 = off).
    pub prefetch: u32,
    /// Prefetch DURATION (popularity window).
    pub prefetch_window: Duration,
    /// Prefetch PERCENTAGE.
    pub percentage: u32,
    /// serve_stale DURATION (0 = off).
    pub stale_up_to: Duration,
    /// serve_stale `verify` mode (else `immediate`).
    pub verify_stale: bool,
    /// `verify` TIMEOUT (0 = wait for the upstream's own timeout).
    pub verify_timeout: Duration,
    /// TTL of stale replies (s).
    pub stale_ttl: u32,
    /// Delay after a failed stale refresh before another attempt.
    pub stale_recheck: Duration,
    /// `serve_stale_policy prefer_positive`.
    pub prefer_positive: bool,
    /// Zones where success caching is disabled.
    pub pexcept: Vec<String>,
    /// Zones where denial caching is disabled.
    pub nexcept: Vec<String>,
    /// `keepttl`.
    pub keepttl: bool,
}

impl Config {
    /// The defaults for a block with `zones`.
    pub fn new(zones: Vec<String>) -> Config {
        Config {
            zones,
            pcap: DEFAULT_CAP,
            pttl: MAX_TTL,
            minpttl: MIN_TTL,
            ncap: DEFAULT_CAP,
            nttl: MAX_NTTL,
            minnttl: MIN_TTL,
            failttl: Duration::from_secs(5),
            prefetch: 0,
            prefetch_window: Duration::from_secs(60),
            percentage: 10,
            stale_up_to: Duration::ZERO,
            verify_stale: false,
            verify_timeout: Duration::ZERO,
            stale_ttl: 0,
            stale_recheck: Duration::ZERO,
            prefer_positive: false,
            pexcept: Vec::new(),
            nexcept: Vec::new(),
            keepttl: false,
        }
    }

    /// Builds the typed handler (what [`PluginConfig::build`] returns as `dyn Plugin`), for a
    /// server that keeps the concrete type to call [`super::Cache::lookup_fast`].
    pub fn build_cache(&self, ctx: &BuildContext) -> Arc<super::Cache> {
        Arc::new(super::handler::Cache::build(self.clone(), ctx))
    }

    /// The `zones` metric label: the zones joined with `,`.
    pub fn zones_label(&self) -> String {
        self.zones.join(",")
    }
}

impl PluginConfig for Config {
    fn name(&self) -> &'static str {
        "cache"
    }

    fn describe(&self) -> String {
        let mut s = format!(
            "zones {}; success cap {} ttl {}s min {}s; denial cap {} ttl {}s min {}s; servfail {}",
            self.zones.join(" "),
            self.pcap,
            self.pttl,
            self.minpttl,
            self.ncap,
            self.nttl,
            self.minnttl,
            format_std(self.failttl)
        );
        if self.prefetch > 0 {
            s.push_str(&format!(
                "; prefetch {} {} {}%",
                self.prefetch,
                format_std(self.prefetch_window),
                self.percentage
            ));
        }
        if !self.stale_up_to.is_zero() {
            let mode = if self.verify_stale {
                format!("verify timeout {}", format_std(self.verify_timeout))
            } else {
                "immediate".to_string()
            };
            s.push_str(&format!(
                "; serve_stale {} {mode} ttl {}s recheck {}",
                format_std(self.stale_up_to),
                self.stale_ttl,
                format_std(self.stale_recheck)
            ));
            if self.prefer_positive {
                s.push_str(" prefer_positive");
            }
        }
        if !self.pexcept.is_empty() {
            s.push_str(&format!("; disable success {}", self.pexcept.join(" ")));
        }
        if !self.nexcept.is_empty() {
            s.push_str(&format!("; disable denial {}", self.nexcept.join(" ")));
        }
        if self.keepttl {
            s.push_str("; keepttl");
        }
        s
    }

    fn build(&self, ctx: &BuildContext) -> Result<Option<Arc<dyn Plugin>>, String> {
        Ok(Some(self.build_cache(ctx)))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn plain(msg: impl Into<String>) -> CorefileError {
    CorefileError::plain(msg).in_plugin("cache")
}

fn atoi(s: &str) -> Result<i64, CorefileError> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    let ok = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    if !ok {
        return Err(plain(format!("strconv.Atoi: parsing {s:?}: invalid syntax")));
    }
    s.parse::<i64>().map_err(|_| plain(format!("strconv.Atoi: parsing {s:?}: value out of range")))
}

fn secs(v: i64) -> u32 {
    v.clamp(0, u32::MAX as i64) as u32
}

fn duration(s: &str) -> Result<Duration, CorefileError> {
    let ns = parse_duration(s).map_err(plain)?;
    Ok(Duration::from_nanos(ns.max(0) as u64))
}

/// Normalises a zone argument as CoreDNS's `plugin.Host(..).NormalizeExact` does for the common
/// forms: an optional `dns://` style scheme and `:port` are dropped, the name is lower-cased and
/// made fully qualified, and an octet-aligned IPv4 CIDR becomes its `in-addr.arpa.` zone.
pub fn normalize_zone(arg: &str) -> String {
    let mut s = arg;
    if let Some(i) = s.find("://") {
        s = &s[i + 3..];
    }
    if let Some((net, bits)) = s.split_once('/') {
        if let (Ok(ip), Ok(bits)) = (net.parse::<std::net::Ipv4Addr>(), bits.parse::<u8>()) {
            if bits % 8 == 0 && bits <= 32 {
                let octets = ip.octets();
                let mut z: Vec<String> = octets[..(bits / 8) as usize].iter().rev().map(|o| o.to_string()).collect();
                z.push("in-addr.arpa.".into());
                return z.join(".");
            }
        }
    }
    if !s.starts_with('[') {
        if let Some((host, port)) = s.rsplit_once(':') {
            if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) {
                s = host;
            }
        }
    }
    dnsname::normalize(s)
}

/// Parses every `cache` occurrence in a block (only one is allowed).
pub fn parse(d: &mut Dispenser, ctx: &SetupContext) -> Result<Box<dyn PluginConfig>, CorefileError> {
    parse_config(d, ctx).map(|c| Box::new(c) as Box<dyn PluginConfig>)
}

/// Parses the directive into a [`Config`]; errors carry the `plugin/cache` prefix.
pub fn parse_config(d: &mut Dispenser, ctx: &SetupContext) -> Result<Config, CorefileError> {
    parse_inner(d, ctx).map_err(|e| e.in_plugin("cache"))
}

fn parse_inner(d: &mut Dispenser, ctx: &SetupContext) -> Result<Config, CorefileError> {
    let mut ca = Config::new(ctx.zones.clone());
    let mut seen = false;
    while d.next() {
        if seen {
            return Err(CorefileError::once_per_block().in_plugin("cache"));
        }
        seen = true;
        let mut args = d.remaining_args();
        if let Some(first) = args.first() {
            if let Ok(ttl) = atoi(first) {
                if ttl <= 0 {
                    return Err(plain(format!("cache TTL can not be zero or negative: {ttl}")));
                }
                ca.pttl = secs(ttl);
                ca.nttl = secs(ttl);
                args.remove(0);
            }
        }
        if !args.is_empty() {
            ca.zones = args.iter().map(|a| normalize_zone(a)).collect();
        }
        let mut stale_configured = false;
        let mut policy_configured = false;
        while d.next_block() {
            let opt = d.val().to_string();
            match opt.as_str() {
                "success" | "denial" => {
                    let args = d.remaining_args();
                    if args.is_empty() {
                        return Err(d.arg_err());
                    }
                    let cap = atoi(&args[0])?;
                    let (mut ttl, mut min) = (None, None);
                    if args.len() > 1 {
                        let t = atoi(&args[1])?;
                        if t <= 0 {
                            return Err(plain(format!("cache TTL can not be zero or negative: {t}")));
                        }
                        ttl = Some(secs(t));
                        if args.len() > 2 {
                            let m = atoi(&args[2])?;
                            if m < 0 {
                                return Err(plain(format!("cache min TTL can not be negative: {m}")));
                            }
                            min = Some(secs(m));
                        }
                    }
                    let cap = cap.max(0) as usize;
                    if opt == "success" {
                        ca.pcap = cap;
                        ca.pttl = ttl.unwrap_or(ca.pttl);
                        ca.minpttl = min.unwrap_or(ca.minpttl);
                    } else {
                        ca.ncap = cap;
                        ca.nttl = ttl.unwrap_or(ca.nttl);
                        ca.minnttl = min.unwrap_or(ca.minnttl);
                    }
                }
                "prefetch" => {
                    let args = d.remaining_args();
                    if args.is_empty() || args.len() > 3 {
                        return Err(d.arg_err());
                    }
                    let amount = atoi(&args[0])?;
                    if amount < 0 {
                        return Err(plain(format!("prefetch amount should be positive: {amount}")));
                    }
                    ca.prefetch = amount.min(u32::MAX as i64) as u32;
                    if args.len() > 1 {
                        ca.prefetch_window = duration(&args[1])?;
                    }
                    if args.len() > 2 {
                        let pct = &args[2];
                        let Some(num) = pct.strip_suffix('%') else {
                            let last = pct.chars().last().unwrap_or(' ');
                            return Err(plain(format!("last character of percentage should be `%`, but is: '{last}'")));
                        };
                        let n = atoi(num)?;
                        if !(10..=90).contains(&n) {
                            return Err(plain(format!("percentage should fall in range [10, 90]: {n}")));
                        }
                        ca.percentage = n as u32;
                    }
                }
                "serve_stale" => {
                    stale_configured = true;
                    parse_serve_stale(d, &mut ca)?;
                }
                "serve_stale_policy" => {
                    if policy_configured {
                        return Err(plain("serve_stale_policy can only be specified once"));
                    }
                    policy_configured = true;
                    let args = d.remaining_args();
                    if args.len() != 1 {
                        return Err(d.arg_err());
                    }
                    if args[0].eq_ignore_ascii_case("prefer_positive") {
                        ca.prefer_positive = true;
                    } else {
                        return Err(plain(format!("invalid serve_stale_policy: {}", args[0])));
                    }
                }
                "servfail" => {
                    let args = d.remaining_args();
                    if args.len() != 1 {
                        return Err(d.arg_err());
                    }
                    let v = parse_duration(&args[0]).map_err(plain)?;
                    if v < 0 {
                        return Err(plain("invalid negative ttl for servfail"));
                    }
                    let v = Duration::from_nanos(v as u64);
                    if v > Duration::from_secs(300) {
                        return Err(plain("caching SERVFAIL responses over 5 minutes is not permitted"));
                    }
                    ca.failttl = v;
                }
                "disable" => {
                    let args = d.remaining_args();
                    if args.is_empty() {
                        return Err(d.arg_err());
                    }
                    let zones: Vec<String> = if args.len() > 1 {
                        args[1..].iter().map(|z| dnsname::normalize(z)).collect()
                    } else {
                        vec![".".to_string()]
                    };
                    match args[0].as_str() {
                        "denial" => ca.nexcept = zones,
                        "success" => ca.pexcept = zones,
                        _ => return Err(plain("cache type for disable must be \"success\" or \"denial\"")),
                    }
                }
                "keepttl" => {
                    if !d.remaining_args().is_empty() {
                        return Err(d.arg_err());
                    }
                    ca.keepttl = true;
                }
                _ => return Err(d.arg_err()),
            }
        }
        if policy_configured && !stale_configured {
            return Err(plain("serve_stale_policy requires serve_stale"));
        }
    }
    Ok(ca)
}

fn parse_serve_stale(d: &mut Dispenser, ca: &mut Config) -> Result<(), CorefileError> {
    let args = d.remaining_args();
    if args.len() > 5 {
        return Err(d.arg_err());
    }
    ca.stale_up_to = Duration::from_secs(3600);
    ca.stale_ttl = 0;
    ca.stale_recheck = Duration::ZERO;
    if let Some(a) = args.first() {
        ca.stale_up_to = match parse_nonneg(a) {
            Ok(v) => v,
            Err(Some(e)) => return Err(plain(e)),
            Err(None) => return Err(plain("invalid negative duration for serve_stale")),
        };
    }
    ca.verify_stale = false;
    ca.verify_timeout = Duration::ZERO;
    if let Some(mode) = args.get(1) {
        let mode = mode.to_lowercase();
        if mode != "immediate" && mode != "verify" {
            return Err(plain(format!("invalid value for serve_stale refresh mode: {mode}")));
        }
        ca.verify_stale = mode == "verify";
    }
    if args.len() > 2 {
        if ca.verify_stale {
            ca.verify_timeout = match parse_nonneg(&args[2]) {
                Ok(v) => v,
                Err(Some(e)) => return Err(plain(format!("invalid serve_stale verify timeout: {e}"))),
                Err(None) => return Err(plain("invalid negative timeout for serve_stale verify")),
            };
            if let Some(a) = args.get(3) {
                ca.stale_ttl = parse_stale_ttl(a)?;
            }
            if let Some(a) = args.get(4) {
                ca.stale_recheck = parse_stale_recheck(a)?;
            }
        } else {
            if args.len() > 4 {
                return Err(d.arg_err());
            }
            ca.stale_ttl = parse_stale_ttl(&args[2])?;
            if let Some(a) = args.get(3) {
                ca.stale_recheck = parse_stale_recheck(a)?;
            }
        }
    }
    Ok(())
}

fn parse_stale_ttl(v: &str) -> Result<u32, CorefileError> {
    let ttl = match parse_nonneg(v) {
        Ok(t) => t,
        Err(Some(e)) => return Err(plain(format!("invalid serve_stale response TTL: {e}"))),
        Err(None) => return Err(plain("invalid negative response TTL for serve_stale")),
    };
    if ttl.subsec_nanos() != 0 {
        return Err(plain("serve_stale response TTL must be a whole number of seconds"));
    }
    if ttl.as_secs() > u32::MAX as u64 {
        return Err(plain("serve_stale response TTL exceeds the DNS TTL range"));
    }
    Ok(ttl.as_secs() as u32)
}

fn parse_stale_recheck(v: &str) -> Result<Duration, CorefileError> {
    let r = match parse_nonneg(v) {
        Ok(t) => t,
        Err(Some(e)) => return Err(plain(format!("invalid serve_stale failure recheck: {e}"))),
        Err(None) => return Err(plain("invalid negative failure recheck for serve_stale")),
    };
    if r > Duration::from_secs(300) {
        return Err(plain("serve_stale failure recheck cannot exceed 5 minutes"));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn ctx() -> SetupContext {
        SetupContext { zones: vec![".".into()], ports: vec![53] }
    }

    fn parse_text(text: &str) -> Result<Config, String> {
        let mut d = Dispenser::from_text(text);
        parse_config(&mut d, &ctx()).map_err(|e| e.coredns_message())
    }

    fn stale(text: &str) -> Result<Config, String> {
        parse_text(&format!("cache {{\n{text}\n}}"))
    }

    #[test]
    fn defaults_case_30() {
        let c = parse_text("cache").unwrap();
        assert_eq!(c, Config::new(vec![".".into()]));
        assert_eq!((c.pcap, c.ncap, c.pttl, c.nttl, c.minpttl, c.minnttl), (10000, 10000, 3600, 1800, 5, 5));
        assert_eq!(parse_text("cache {\n}").unwrap(), c);
        assert_eq!(
            c.describe(),
            "zones .; success cap 10000 ttl 3600s min 5s; denial cap 10000 ttl 1800s min 5s; servfail 5s"
        );
        let c = parse_text("cache 30 {\n prefetch 3\n serve_stale 1h verify 100ms 30s\n keepttl\n}").unwrap();
        assert_eq!(
            c.describe(),
            "zones .; success cap 10000 ttl 30s min 5s; denial cap 10000 ttl 30s min 5s; servfail 5s; \
             prefetch 3 1m0s 10%; serve_stale 1h0m0s verify timeout 100ms ttl 30s recheck 0s; keepttl"
        );
    }

    #[test]
    fn options_case_30() {
        let c = parse_text("cache 25 example.nl {\n success 10\n denial 10 15\n}").unwrap();
        assert_eq!((c.pcap, c.ncap, c.pttl, c.nttl, c.minpttl, c.minnttl), (10, 10, 25, 15, 5, 5));
        assert_eq!(c.zones, vec!["example.nl.".to_string()]);
        let c = parse_text("cache example.nl {\n success 10 1800 30\n}").unwrap();
        assert_eq!((c.pcap, c.pttl, c.minpttl, c.ncap), (10, 1800, 30, 10000));
        let c = parse_text("cache example.nl {\n success 10\n denial 10 15 2\n}").unwrap();
        assert_eq!((c.nttl, c.minnttl), (15, 2));
        let c = parse_text("cache aaa example.nl").unwrap();
        assert_eq!(c.zones, vec!["aaa.".to_string(), "example.nl.".to_string()]);
        assert_eq!(c.pttl, 3600);
        let c = parse_text("cache {\n prefetch 10\n}").unwrap();
        assert_eq!((c.prefetch, c.prefetch_window, c.percentage), (10, Duration::from_secs(60), 10));
        let c =
            parse_text("cache {\n prefetch 2 10m 25%\n servfail 0\n keepttl\n disable success a.org B.org\n}").unwrap();
        assert_eq!((c.prefetch, c.prefetch_window, c.percentage), (2, Duration::from_secs(600), 25));
        assert_eq!(c.failttl, Duration::ZERO);
        assert!(c.keepttl);
        assert_eq!(c.pexcept, vec!["a.org.".to_string(), "b.org.".to_string()]);
        let c = parse_text("cache {\n disable denial\n}").unwrap();
        assert_eq!(c.nexcept, vec![".".to_string()]);
    }

    #[test]
    fn errors_case_31() {
        let cases = [
            ("cache 0", "plugin/cache: cache TTL can not be zero or negative: 0"),
            ("cache -1 example.nl", "plugin/cache: cache TTL can not be zero or negative: -1"),
            (
                "cache example.nl {\n success\n denial 10 15\n}",
                "plugin/cache: Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'success'",
            ),
            ("cache example.nl {\n success 15\n denial aaa\n}", "plugin/cache: strconv.Atoi: parsing \"aaa\": invalid syntax"),
            (
                "cache example.nl {\n positive 15\n}",
                "plugin/cache: Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'positive'",
            ),
            ("cache\ncache", "plugin/cache: this plugin can only be used once per Server Block"),
            ("cache 1 example.nl {\n prefetch 0 blurp\n}", "plugin/cache: time: invalid duration \"blurp\""),
            ("cache {\n prefetch -1\n}", "plugin/cache: prefetch amount should be positive: -1"),
            ("cache {\n prefetch 1 1m 5%\n}", "plugin/cache: percentage should fall in range [10, 90]: 5"),
            ("cache {\n prefetch 1 1m 50\n}", "plugin/cache: last character of percentage should be `%`, but is: '0'"),
            ("cache {\n success 10 0\n}", "plugin/cache: cache TTL can not be zero or negative: 0"),
            ("cache {\n denial 10 10 -1\n}", "plugin/cache: cache min TTL can not be negative: -1"),
            ("cache {\n servfail 6m\n}", "plugin/cache: caching SERVFAIL responses over 5 minutes is not permitted"),
            ("cache {\n servfail -1s\n}", "plugin/cache: invalid negative ttl for servfail"),
            ("cache {\n disable foo\n}", "plugin/cache: cache type for disable must be \"success\" or \"denial\""),
            (
                "cache {\n keepttl x\n}",
                "plugin/cache: Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'x'",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_text(input).unwrap_err(), want, "input {input:?}");
        }
    }

    #[test]
    fn serve_stale_case_32() {
        let c = stale("serve_stale").unwrap();
        assert_eq!((c.stale_up_to, c.verify_stale, c.stale_ttl), (Duration::from_secs(3600), false, 0));
        let c = stale("serve_stale 0 VERIFY").unwrap();
        assert_eq!((c.stale_up_to, c.verify_stale), (Duration::ZERO, true));
        let c = stale("serve_stale 1h verify 100ms 30s").unwrap();
        assert_eq!((c.verify_stale, c.verify_timeout, c.stale_ttl), (true, Duration::from_millis(100), 30));
        let c = stale("serve_stale 1h immediate 30s 30s").unwrap();
        assert_eq!((c.stale_ttl, c.stale_recheck), (30, Duration::from_secs(30)));
        let c = stale("serve_stale 1h20m").unwrap();
        assert_eq!(c.stale_up_to, Duration::from_secs(4800));
        let c = stale("serve_stale 1h immediate 4294967295s").unwrap();
        assert_eq!(c.stale_ttl, u32::MAX);
        let c = stale("serve_stale 1h verify 0 0 5m").unwrap();
        assert_eq!(c.stale_recheck, Duration::from_secs(300));
        let c = stale("serve_stale\nserve_stale_policy PREFER_POSITIVE").unwrap();
        assert!(c.prefer_positive);
        for bad in [
            "serve_stale 20",
            "serve_stale -20m",
            "serve_stale aa",
            "serve_stale 1m nono",
            "serve_stale 1h immediate 100ms",
            "serve_stale 1h immediate 4294967296s",
            "serve_stale 1h immediate -1s",
            "serve_stale 1h immediate 30s extra",
            "serve_stale 1h verify -1ms",
            "serve_stale 1h verify 100ms 500ms",
            "serve_stale 1h verify 100ms 30s extra",
            "serve_stale 1h immediate 30s 5m1s",
            "serve_stale 1h verify 100ms 30s -1s",
            "serve_stale_policy prefer_positive",
            "serve_stale\nserve_stale_policy",
            "serve_stale\nserve_stale_policy invalid",
            "serve_stale\nserve_stale_policy prefer_positive\nserve_stale_policy prefer_positive",
        ] {
            assert!(stale(bad).is_err(), "{bad:?} should fail");
        }
        assert_eq!(
            stale("serve_stale 20").unwrap_err(),
            "plugin/cache: time: missing unit in duration \"20\"".to_string()
        );
    }

    #[test]
    fn zone_normalisation() {
        assert_eq!(normalize_zone("Example.ORG"), "example.org.");
        assert_eq!(normalize_zone("dns://example.org:53"), "example.org.");
        assert_eq!(normalize_zone("10.0.0.0/8"), "10.in-addr.arpa.");
        assert_eq!(normalize_zone("."), ".");
    }
}
