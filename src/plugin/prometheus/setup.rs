//! `prometheus [ADDRESS] { runtime_metrics | tls CONFIG_PATH }`, once per block.

use std::any::Any;
use std::sync::Arc;

use super::handler::Prometheus;
use crate::corefile::{CorefileError, Dispenser};
use crate::observe::dns_metrics;
use crate::observe::http::listen::optional_addr_arg;
use crate::observe::http::{webconfig, EndpointSpec};
use crate::plugin::{BuildContext, Plugin, PluginConfig, SetupContext};

/// Address used when none is given.
pub const DEFAULT_ADDR: &str = "localhost:9153";

/// Parsed `prometheus` configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Listen address of `/metrics` (`localhost:9153` by default).
    pub addr: String,
    /// `runtime_metrics` (Go runtime metrics in CoreDNS; accepted, nothing extra to export).
    pub runtime_metrics: bool,
    /// `tls CONFIG_PATH` (a Prometheus exporter-toolkit web config).
    pub tls_config: Option<String>,
    /// The block's zones, for the `zone` label.
    pub zones: Vec<String>,
}

impl Config {
    /// The HTTP endpoint this configuration asks for.
    pub fn endpoint(&self) -> EndpointSpec {
        match &self.tls_config {
            Some(path) => EndpointSpec::metrics_tls(&self.addr, path),
            None => EndpointSpec::metrics(&self.addr),
        }
    }
}

impl PluginConfig for Config {
    fn name(&self) -> &'static str {
        "prometheus"
    }
    fn describe(&self) -> String {
        let mut s = format!("listen {}", self.addr);
        if self.runtime_metrics {
            s.push_str(", runtime_metrics");
        }
        if let Some(t) = &self.tls_config {
            s.push_str(&format!(", tls {t}"));
        }
        s
    }
    fn build(&self, ctx: &BuildContext) -> Result<Option<Arc<dyn Plugin>>, String> {
        if let Some(path) = &self.tls_config {
            if !std::path::Path::new(path).exists() {
                return Err(format!("TLS config file does not exist: {path}"));
            }
            if let Some(settings) = webconfig::load(path)? {
                webconfig::server_config(&settings)?;
            }
        }
        dns_metrics::init();
        dns_metrics::set_build_info(env!("CARGO_PKG_VERSION"), option_env!("NODECACHE_REVISION").unwrap_or(""), "rust");
        let zones = if self.zones.is_empty() { ctx.zones.clone() } else { self.zones.clone() };
        Ok(Some(Arc::new(Prometheus::new(zones, &ctx.servers))))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn http_endpoint(&self) -> Option<EndpointSpec> {
        Some(self.endpoint())
    }
}

/// Parses the `prometheus` directive of a block.
pub fn parse(d: &mut Dispenser, ctx: &SetupContext) -> Result<Box<dyn PluginConfig>, CorefileError> {
    parse_config(d, ctx).map(|c| Box::new(c) as Box<dyn PluginConfig>).map_err(|e| e.in_plugin("prometheus"))
}

/// [`parse`] returning the concrete type.
pub fn parse_config(d: &mut Dispenser, ctx: &SetupContext) -> Result<Config, CorefileError> {
    let mut cfg =
        Config { addr: DEFAULT_ADDR.to_string(), runtime_metrics: false, tls_config: None, zones: ctx.zones.clone() };
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
                "runtime_metrics" => {
                    if !d.remaining_args().is_empty() {
                        return Err(d.arg_err());
                    }
                    cfg.runtime_metrics = true;
                }
                "tls" => {
                    if cfg.tls_config.is_some() {
                        return Err(d.err("tls block already specified"));
                    }
                    let args = d.remaining_args();
                    let [path] = args.as_slice() else { return Err(d.arg_err()) };
                    cfg.tls_config = Some(path.clone());
                }
                other => return Err(d.err(format!("unknown option: {other}"))),
            }
        }
    }
    Ok(cfg)
}
