//! `forward` directive syntax: FROM, TO..., and the option block, with CoreDNS's defaults and
//! error wording. Several `forward` lines in one block form an ordered chain.

use std::any::Any;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;

use super::goparse::{self, normalize_exact};
use super::handler::{Forward, ForwardChain};
use super::policy::{PolicyKind, MAX_UPSTREAMS};
use super::resolve::{self, split_zone};
use super::tls::TlsFiles;
use super::upstream::{Scheme, Upstream, UpstreamOpts};
use crate::corefile::{CorefileError, Dispenser};
use crate::dnsname;
use crate::gocompat::duration::{duration_string, format_std, parse_duration, to_std};
use crate::gocompat::strconv::{atoi, parse_uint32};
use crate::plugin::{BuildContext, Plugin, PluginConfig, SetupContext};

/// Default idle expiry of pooled connections.
pub const DEFAULT_EXPIRE: Duration = Duration::from_secs(10);
/// Default read timeout per attempt.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Default health check interval.
pub const DEFAULT_HC_INTERVAL: Duration = Duration::from_millis(500);

/// One configured upstream.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UpstreamSpec {
    /// Address.
    pub addr: SocketAddr,
    /// Protocol.
    pub scheme: Scheme,
    /// Per-upstream TLS server name (`tls://IP%name`).
    pub sni: Option<String>,
}

/// One `forward` line with its options.
#[derive(Clone, Debug)]
pub struct Stanza {
    /// The zone forwarded (normalised).
    pub from: String,
    /// `except` zones (normalised).
    pub ignored: Vec<String>,
    /// Upstreams in config order, duplicates removed.
    pub upstreams: Vec<UpstreamSpec>,
    /// Number of TO entries as written (files count once).
    pub to_entries: usize,
    /// `max_fails` (default 2).
    pub max_fails: u32,
    /// `max_connect_attempts`, when set (0 = no cap).
    pub max_connect_attempts: Option<u32>,
    /// Health check interval.
    pub hc_interval: Duration,
    /// Health check name.
    pub hc_domain: String,
    /// RD on health checks (off with `no_rec`).
    pub hc_rd: bool,
    /// `force_tcp`.
    pub force_tcp: bool,
    /// `prefer_udp`.
    pub prefer_udp: bool,
    /// `tls` files.
    pub tls: TlsFiles,
    /// `tls_servername`.
    pub tls_servername: Option<String>,
    /// `expire`.
    pub expire: Duration,
    /// `max_age` (zero: unlimited).
    pub max_age: Duration,
    /// `max_idle_conns` (zero: unlimited).
    pub max_idle_conns: usize,
    /// `read_timeout`.
    pub read_timeout: Duration,
    /// `doh_method` (kept for compatibility; DoH is not implemented).
    pub doh_method: String,
    /// `policy`.
    pub policy: PolicyKind,
    /// `max_concurrent` (zero: unlimited).
    pub max_concurrent: u64,
    /// The `max_concurrent` argument as written (used in the rejection error).
    pub max_concurrent_text: String,
    /// `next` rcodes.
    pub next_rcodes: Vec<u16>,
    /// `next_on_nodata`.
    pub next_on_nodata: bool,
    /// `failfast_all_unhealthy_upstreams`.
    pub failfast: bool,
    /// `failover` rcodes.
    pub failover: Vec<u16>,
    /// `source_address`.
    pub source_address: Option<IpAddr>,
    /// `resolver` addresses used to resolve hostname TOs.
    pub resolver: Vec<String>,
}

impl Default for Stanza {
    fn default() -> Self {
        Stanza {
            from: ".".to_string(),
            ignored: Vec::new(),
            upstreams: Vec::new(),
            to_entries: 0,
            max_fails: 2,
            max_connect_attempts: None,
            hc_interval: DEFAULT_HC_INTERVAL,
            hc_domain: ".".to_string(),
            hc_rd: true,
            force_tcp: false,
            prefer_udp: false,
            tls: TlsFiles::default(),
            tls_servername: None,
            expire: DEFAULT_EXPIRE,
            max_age: Duration::ZERO,
            max_idle_conns: 0,
            read_timeout: DEFAULT_READ_TIMEOUT,
            doh_method: "POST".to_string(),
            policy: PolicyKind::Random,
            max_concurrent: 0,
            max_concurrent_text: "0".to_string(),
            next_rcodes: Vec::new(),
            next_on_nodata: false,
            failfast: false,
            failover: Vec::new(),
            source_address: None,
            resolver: Vec::new(),
        }
    }
}

impl Stanza {
    /// Settings every upstream of this stanza shares.
    pub fn upstream_opts(&self) -> UpstreamOpts {
        UpstreamOpts {
            expire: self.expire,
            max_age: self.max_age,
            max_idle_conns: self.max_idle_conns,
            read_timeout: self.read_timeout,
            source: self.source_address,
            hc_interval: self.hc_interval,
            hc_domain: self.hc_domain.clone(),
            hc_rd: self.hc_rd,
            hc_tcp: self.force_tcp,
        }
    }

    /// The key under which this stanza's upstream state survives reloads.
    pub fn carry_key(&self) -> String {
        format!("forward|{:?}|{:?}|{:?}|{:?}", self.upstreams, self.upstream_opts(), self.tls, self.tls_servername)
    }

    /// Creates the upstreams (TLS configs included).
    pub fn make_upstreams(&self) -> Result<Vec<Arc<Upstream>>, String> {
        let opts = self.upstream_opts();
        let mut client = None;
        let mut out = Vec::with_capacity(self.upstreams.len());
        for u in &self.upstreams {
            let tls = if u.scheme == Scheme::Tls {
                if client.is_none() {
                    client = Some(self.tls.client_config()?);
                }
                let cfg = client.clone().ok_or("tls")?;
                let name = match self.tls_servername.as_ref().or(u.sni.as_ref()) {
                    Some(n) => {
                        ServerName::try_from(n.clone()).map_err(|e| format!("invalid TLS server name {n}: {e}"))?
                    }
                    None => ServerName::IpAddress(u.addr.ip().into()),
                };
                Some((cfg, name))
            } else {
                None
            };
            out.push(Arc::new(Upstream::new(u.addr, u.scheme, tls, opts.clone())));
        }
        Ok(out)
    }
}

/// Parsed `forward` configuration: every `forward` line of the block, in order.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The lines, in order.
    pub stanzas: Vec<Stanza>,
}

impl Config {
    /// Builds the runtime chain of `forward` lines, reusing upstream state (health, pools)
    /// left by a previous build of an identical line.
    pub fn build_chain(&self, ctx: &BuildContext) -> Result<ForwardChain, String> {
        let mut forwards = Vec::with_capacity(self.stanzas.len());
        for s in &self.stanzas {
            let key = s.carry_key();
            let made = s.make_upstreams()?;
            let set = ctx.carry.get_or_insert(&key, || UpstreamSet(made));
            forwards.push(Forward::new(s, set.0.clone()));
        }
        Ok(ForwardChain::new(forwards))
    }
}

/// The upstreams of one stanza, as kept across reloads.
pub struct UpstreamSet(pub Vec<Arc<Upstream>>);

fn rcodes_text(r: &[u16]) -> String {
    r.iter().map(|c| super::metrics::rcode_name(*c)).collect::<Vec<_>>().join(" ")
}

impl PluginConfig for Config {
    fn name(&self) -> &'static str {
        "forward"
    }

    fn describe(&self) -> String {
        let mut out = String::new();
        for s in &self.stanzas {
            let ups: Vec<String> = s
                .upstreams
                .iter()
                .map(|u| {
                    let sni = u.sni.as_ref().map(|n| format!(" (servername {n})")).unwrap_or_default();
                    match u.scheme {
                        Scheme::Dns => format!("{}{sni}", u.addr),
                        other => format!("{}://{}{sni}", other.as_str(), u.addr),
                    }
                })
                .collect();
            let _ = writeln!(out, "forward {} -> {}", s.from, ups.join(", "));
            if !s.ignored.is_empty() {
                let _ = writeln!(out, "  except {}", s.ignored.join(" "));
            }
            let transport = match (s.force_tcp, s.prefer_udp) {
                (true, _) => "tcp (force_tcp)",
                (false, true) => "udp (prefer_udp)",
                _ => "same as client",
            };
            let _ = writeln!(
                out,
                "  policy {}, transport {transport}, max_fails {}, health_check {} domain {}{}",
                s.policy.as_str(),
                s.max_fails,
                format_std(s.hc_interval),
                s.hc_domain,
                if s.hc_rd { "" } else { " no_rec" }
            );
            let _ = writeln!(
                out,
                "  expire {}, max_age {}, max_idle_conns {}, read_timeout {}, max_concurrent {}, max_connect_attempts {}",
                format_std(s.expire),
                if s.max_age.is_zero() { "unlimited".to_string() } else { format_std(s.max_age) },
                if s.max_idle_conns == 0 { "unlimited".to_string() } else { s.max_idle_conns.to_string() },
                format_std(s.read_timeout),
                if s.max_concurrent == 0 { "unlimited".to_string() } else { s.max_concurrent.to_string() },
                match s.max_connect_attempts {
                    None => format!("{} (2 per upstream)", 2 * s.upstreams.len()),
                    Some(0) => "unlimited".to_string(),
                    Some(n) => n.to_string(),
                }
            );
            if !s.failover.is_empty() {
                let _ = writeln!(out, "  failover {}", rcodes_text(&s.failover));
            }
            if !s.next_rcodes.is_empty() || s.next_on_nodata {
                let _ = writeln!(
                    out,
                    "  next {}{}",
                    rcodes_text(&s.next_rcodes),
                    if s.next_on_nodata { " (and on NODATA)" } else { "" }
                );
            }
            if s.failfast {
                let _ = writeln!(out, "  failfast_all_unhealthy_upstreams");
            }
            if let Some(n) = &s.tls_servername {
                let _ = writeln!(out, "  tls_servername {n}");
            }
            if let Some(a) = s.source_address {
                let _ = writeln!(out, "  source_address {a}");
            }
        }
        out.trim_end().to_string()
    }

    fn build(&self, ctx: &BuildContext) -> Result<Option<Arc<dyn Plugin>>, String> {
        Ok(Some(Arc::new(self.build_chain(ctx)?)))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn takes_any_class(&self) -> bool {
        true
    }
}

/// Parses every `forward` occurrence in a block.
pub fn parse(d: &mut Dispenser, _ctx: &SetupContext) -> Result<Box<dyn PluginConfig>, CorefileError> {
    let mut stanzas = Vec::new();
    while d.next() {
        stanzas.push(parse_stanza(d).map_err(|e| e.in_plugin("forward"))?);
    }
    for s in &stanzas {
        if s.to_entries > MAX_UPSTREAMS {
            return Err(CorefileError::plain(format!("more than {MAX_UPSTREAMS} TOs configured: {}", s.to_entries))
                .in_plugin("forward"));
        }
    }
    Ok(Box::new(Config { stanzas }))
}

fn plain(msg: impl Into<String>) -> CorefileError {
    CorefileError::plain(msg)
}

/// Parses an rcode name as miekg's `StringToRcode` (case-insensitive).
pub fn rcode_from_name(s: &str) -> Option<u16> {
    let up = s.to_ascii_uppercase();
    let code = match up.as_str() {
        "NOERROR" => 0,
        "FORMERR" => 1,
        "SERVFAIL" => 2,
        "NXDOMAIN" => 3,
        "NOTIMP" | "NOTIMPL" => 4,
        "REFUSED" => 5,
        "YXDOMAIN" => 6,
        "YXRRSET" => 7,
        "NXRRSET" => 8,
        "NOTAUTH" => 9,
        "NOTZONE" => 10,
        "BADSIG" => 16,
        "BADKEY" => 17,
        "BADTIME" => 18,
        "BADMODE" => 19,
        "BADNAME" => 20,
        "BADALG" => 21,
        "BADTRUNC" => 22,
        "BADCOOKIE" => 23,
        _ => return None,
    };
    Some(code)
}

fn parse_stanza(d: &mut Dispenser) -> Result<Stanza, CorefileError> {
    let mut f = Stanza::default();
    if !d.next_arg() {
        return Err(d.arg_err());
    }
    let orig_from = d.val().to_string();
    let zones = normalize_exact(&orig_from);
    let Some(first) = zones.first() else {
        return Err(plain(format!("unable to normalize '{orig_from}'")));
    };
    f.from = first.clone();
    if zones.len() > 1 {
        tracing::warn!(
            target: "plugin/forward",
            "Unsupported CIDR notation: '{orig_from}' expands to multiple zones. Using only '{}'.",
            f.from
        );
    }
    let to = d.remaining_args();
    if to.is_empty() {
        return Err(d.arg_err());
    }
    while d.next_block() {
        parse_option(d, &mut f)?;
    }
    if !f.max_age.is_zero() && f.max_age < f.expire {
        return Err(plain(format!(
            "max_age ({}) must not be less than expire ({})",
            format_std(f.max_age),
            format_std(f.expire)
        )));
    }
    for addr in &to {
        let (scheme, h) = goparse::split_transport(addr);
        if scheme == "https" && h.contains('/') {
            return Err(plain(format!(
                "paths are not allowed in HTTPS upstream addresses (the /dns-query path is used by default): {addr}"
            )));
        }
    }
    let (entries, hosts) = resolve::expand(&to, &f.resolver).map_err(plain)?;
    f.to_entries = entries;
    if hosts.is_empty() {
        return Err(plain("no valid upstream addresses found"));
    }
    for host_with_zone in hosts {
        let (host, server_name) = split_zone(&host_with_zone);
        let (scheme, h) = goparse::split_transport(&host);
        let scheme = match scheme {
            "dns" => Scheme::Dns,
            "tls" => Scheme::Tls,
            "https" => Scheme::Https,
            other => {
                return Err(plain(format!("'{other}' is not supported as a destination protocol in forward: {host}")))
            }
        };
        let mut sni = None;
        if scheme == Scheme::Tls && !server_name.is_empty() {
            if let Some(global) = &f.tls_servername {
                return Err(plain(format!(
                    "both forward ('{global}') and proxy level ('{server_name}') TLS servernames are set for upstream proxy '{host}'"
                )));
            }
            sni = Some(server_name);
        }
        let addr = match resolve::split_host_port(h) {
            Some((ip, port)) => ip.parse::<IpAddr>().ok().zip(port.parse::<u16>().ok()),
            None => None,
        };
        let Some((ip, port)) = addr else {
            return Err(plain(format!("not an IP address or file: {h:?}")));
        };
        f.upstreams.push(UpstreamSpec { addr: SocketAddr::new(ip.to_canonical(), port), scheme, sni });
    }
    Ok(f)
}

fn one_arg(d: &mut Dispenser) -> Result<String, CorefileError> {
    if !d.next_arg() {
        return Err(d.arg_err());
    }
    Ok(d.val().to_string())
}

fn no_args(d: &mut Dispenser) -> Result<(), CorefileError> {
    if d.next_arg() {
        return Err(d.arg_err());
    }
    Ok(())
}

fn duration_arg(d: &mut Dispenser) -> Result<i64, CorefileError> {
    let v = one_arg(d)?;
    parse_duration(&v).map_err(plain)
}

fn rcode_list(d: &mut Dispenser, failover: bool) -> Result<Vec<u16>, CorefileError> {
    let args = d.remaining_args();
    if args.is_empty() {
        return Err(d.arg_err());
    }
    let mut out = Vec::new();
    for a in args {
        let rc = rcode_from_name(&a).ok_or_else(|| plain(format!("{a} is not a valid rcode")))?;
        if failover && rc == 0 {
            return Err(plain("NoError cannot be used in failover"));
        }
        out.push(rc);
    }
    Ok(out)
}

fn parse_option(d: &mut Dispenser, f: &mut Stanza) -> Result<(), CorefileError> {
    match d.val() {
        "except" => {
            let ignore = d.remaining_args();
            if ignore.is_empty() {
                return Err(d.arg_err());
            }
            for i in ignore {
                f.ignored.extend(normalize_exact(&i));
            }
        }
        "max_fails" => f.max_fails = parse_uint32(&one_arg(d)?).map_err(plain)?,
        "max_connect_attempts" => f.max_connect_attempts = Some(parse_uint32(&one_arg(d)?).map_err(plain)?),
        "health_check" => {
            let dur = duration_arg(d)?;
            if dur < 0 {
                return Err(plain(format!("health_check can't be negative: {dur}")));
            }
            f.hc_interval = to_std(dur);
            f.hc_domain = ".".to_string();
            while d.next_arg() {
                match d.val() {
                    "no_rec" => f.hc_rd = false,
                    "domain" => {
                        let dom = one_arg(d)?;
                        if !goparse::is_domain_name(&dom) {
                            return Err(plain(format!("health_check: invalid domain name {dom}")));
                        }
                        f.hc_domain = dnsname::normalize(&dom);
                    }
                    other => return Err(plain(format!("health_check: unknown option {other}"))),
                }
            }
        }
        "force_tcp" => {
            no_args(d)?;
            f.force_tcp = true;
        }
        "prefer_udp" => {
            no_args(d)?;
            f.prefer_udp = true;
        }
        "tls" => {
            let args = d.remaining_args();
            if args.len() > 3 {
                return Err(d.arg_err());
            }
            f.tls = TlsFiles::from_args(&args).map_err(plain)?;
        }
        "tls_servername" => f.tls_servername = Some(one_arg(d)?),
        "expire" => {
            let dur = duration_arg(d)?;
            if dur < 0 {
                return Err(plain(format!("expire can't be negative: {}", duration_string(dur))));
            }
            f.expire = to_std(dur);
        }
        "max_age" => {
            let dur = duration_arg(d)?;
            if dur < 0 {
                return Err(plain(format!("max_age can't be negative: {}", duration_string(dur))));
            }
            f.max_age = to_std(dur);
        }
        "max_idle_conns" => {
            let n = atoi(&one_arg(d)?).map_err(plain)?;
            if n < 0 {
                return Err(plain(format!("max_idle_conns can't be negative: {n}")));
            }
            f.max_idle_conns = n as usize;
        }
        "read_timeout" => {
            let dur = duration_arg(d)?;
            if dur <= 0 {
                return Err(plain(format!("read_timeout must be positive: {}", duration_string(dur))));
            }
            f.read_timeout = to_std(dur);
        }
        "doh_method" => {
            let m = one_arg(d)?;
            if m != "POST" && m != "GET" {
                return Err(plain("doh_method must be either POST or GET"));
            }
            f.doh_method = m;
        }
        "policy" => {
            let p = one_arg(d)?;
            f.policy = match p.as_str() {
                "random" => PolicyKind::Random,
                "round_robin" => PolicyKind::RoundRobin,
                "sequential" => PolicyKind::Sequential,
                _ => return Err(d.err(format!("unknown policy '{p}'"))),
            };
        }
        "max_concurrent" => {
            let text = one_arg(d)?;
            let n = atoi(&text).map_err(plain)?;
            if n < 0 {
                return Err(plain(format!("max_concurrent can't be negative: {n}")));
            }
            f.max_concurrent = n as u64;
            f.max_concurrent_text = text;
        }
        "next" => f.next_rcodes.extend(rcode_list(d, false)?),
        "next_on_nodata" => {
            no_args(d)?;
            f.next_on_nodata = true;
        }
        "failfast_all_unhealthy_upstreams" => {
            if !d.remaining_args().is_empty() {
                return Err(d.arg_err());
            }
            f.failfast = true;
        }
        "failover" => f.failover.extend(rcode_list(d, true)?),
        "resolver" => {
            let args = d.remaining_args();
            if args.is_empty() {
                return Err(d.arg_err());
            }
            for a in &args {
                let host = resolve::split_host_port(a).map(|(h, _)| h).unwrap_or_else(|| a.clone());
                if host.parse::<IpAddr>().is_err() {
                    return Err(plain(format!("resolver must be an IP address or IP:port: {a:?}")));
                }
            }
            f.resolver = args;
        }
        "source_address" => {
            let v = one_arg(d)?;
            let ip: IpAddr = v.parse().map_err(|_| d.err(format!("invalid IP address: {v}")))?;
            f.source_address = Some(ip.to_canonical());
        }
        other => return Err(d.err(format!("unknown property '{other}'"))),
    }
    Ok(())
}
