//! Corefile generation from node-cache's template (`-basecorefile`) and the kube-dns
//! configuration, byte-for-byte as node-cache's `updateCorefile`, except that stub-domain
//! blocks come in sorted domain order (node-cache follows random Go map order).
//!
//! [`render`] is the pure part; [`update_corefile`] is the whole write procedure (validate,
//! read the template, render, write, log, count `configmap` errors).

use std::net::IpAddr;
use std::path::Path;

use super::goparse;
use super::kubedns::KubeDnsConfig;
use super::metrics::{self, SetupErrorKind};

/// Filled with the upstream servers (or `/etc/resolv.conf`).
pub const UPSTREAM_SERVERS_VAR: &str = "__PILLAR__UPSTREAM__SERVERS__";
/// Filled with the upstream Service's ClusterIP.
pub const CLUSTER_DNS_VAR: &str = "__PILLAR__CLUSTER__DNS__";
/// Filled with all `-localip` values, space-separated.
pub const LOCAL_DNS_VAR: &str = "__PILLAR__LOCAL__DNS__";
/// Deleted when left over (IPVS mode).
pub const DNS_SERVER_VAR: &str = "__PILLAR__DNS__SERVER__";
/// Filled with `-prometheus-listen-address` (kubernetes-sigs/node-local-dns).
pub const PROMETHEUS_ENDPOINT_VAR: &str = "__PROMETHEUS__ENDPOINT__";

/// The `forward` block that custom upstreams replace (indents 4/12/4).
const UPSTREAM_TCP_BLOCK: &str = "\n    forward . __PILLAR__UPSTREAM__SERVERS__ {\n            force_tcp\n    }\n";

/// The fallback warning when the TCP block is not found.
pub const NO_TCP_BLOCK_WARNING: &str =
    "Did not find TCP upstream block to replace, assuming upstreams already use UDP.";

/// Inputs of the rendering that come from flags and the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateParams {
    /// `-localip` as given (comma-separated).
    pub local_ip_str: String,
    /// `-dns.port`.
    pub dns_port: String,
    /// The upstream Service's ClusterIP; `None` renders as `<nil>`.
    pub cluster_dns_ip: Option<IpAddr>,
    /// `-prometheus-listen-address`.
    pub prometheus_listen_address: String,
}

/// Why a Corefile was not produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateError {
    /// `ValidateNodeLocalCacheConfig` failed (logged as `Invalid config: …`).
    Invalid(String),
    /// The template could not be read.
    ReadTemplate(String),
    /// The Corefile could not be written.
    Write(String),
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemplateError::Invalid(e) => write!(f, "Invalid config: {e}"),
            TemplateError::ReadTemplate(e) | TemplateError::Write(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for TemplateError {}

/// A rendering with the facts node-cache logs about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// The Corefile text.
    pub text: String,
    /// The upstream servers used (`/etc/resolv.conf` when none are configured).
    pub upstream_servers: String,
    /// Number of stub domains rendered.
    pub stub_domains: usize,
    /// True when the TCP forward block was not found and the placeholder was filled directly.
    pub tcp_block_missing: bool,
}

/// One stub-domain block (`\n<domain>:<port> {` … `}\n`, 4-space indent).
pub fn stub_domain_block(domain: &str, port: &str, local_ips_spaced: &str, servers: &[String]) -> String {
    format!(
        "\n{domain}:{port} {{\n    errors\n    cache 30\n    bind {local_ips_spaced}\n    forward . {}\n}}\n",
        servers.join(" ")
    )
}

/// Renders the Corefile: validation, stub blocks, upstream servers, then the other
/// placeholders, exactly in node-cache's order.
pub fn render_detailed(
    template: &str,
    cfg: &KubeDnsConfig,
    params: &TemplateParams,
) -> Result<Rendered, TemplateError> {
    cfg.validate_node_local_cache().map_err(TemplateError::Invalid)?;
    let local_spaced = params.local_ip_str.replace(',', " ");
    let stubs: String = cfg
        .stub_domains
        .iter()
        .map(|(domain, servers)| stub_domain_block(domain, &params.dns_port, &local_spaced, servers))
        .collect();
    let mut text = template.to_string();
    let mut tcp_block_missing = false;
    let upstream_servers = if cfg.upstream_nameservers.is_empty() {
        let servers = "/etc/resolv.conf".to_string();
        text = text.replace(UPSTREAM_SERVERS_VAR, &servers);
        servers
    } else {
        let servers = cfg.upstream_nameservers.join(" ");
        let udp_block = format!("\n    forward . {servers}\n");
        text = text.replace(UPSTREAM_TCP_BLOCK, &udp_block);
        if text.contains(UPSTREAM_SERVERS_VAR) {
            tcp_block_missing = true;
            text = text.replace(UPSTREAM_SERVERS_VAR, &servers);
        }
        servers
    };
    text = text.replace(CLUSTER_DNS_VAR, &goparse::opt_ip_string(params.cluster_dns_ip.as_ref()));
    text = text.replace(LOCAL_DNS_VAR, &local_spaced);
    text = text.replace(DNS_SERVER_VAR, "");
    text = text.replace(PROMETHEUS_ENDPOINT_VAR, &params.prometheus_listen_address);
    text.push_str(&stubs);
    Ok(Rendered { text, upstream_servers, stub_domains: cfg.stub_domains.len(), tcp_block_missing })
}

/// [`render_detailed`], returning only the text (the fallback warning is logged).
pub fn render(template: &str, cfg: &KubeDnsConfig, params: &TemplateParams) -> Result<String, TemplateError> {
    let r = render_detailed(template, cfg, params)?;
    if r.tcp_block_missing {
        tracing::warn!("{NO_TCP_BLOCK_WARNING}");
    }
    Ok(r.text)
}

/// Writes the Corefile with mode 0666 (before umask), as Go's `os.WriteFile` does, but whole:
/// into a temporary file beside it, then renamed over it, so that a reader (this process's
/// reload watcher, or another instance sharing the path during a surge update) never sees it
/// empty or half-written. Where the rename is impossible (a file bind-mounted on its own),
/// it is written in place as node-cache does.
pub fn write_corefile(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let in_place = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o666).open(path)?;
        f.write_all(text.as_bytes())
    };
    let Some(name) = path.file_name() else { return in_place() };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let whole = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o666)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .and_then(|_| std::fs::rename(&tmp, path));
    match whole {
        Ok(()) => Ok(()),
        Err(_) => {
            let _ = std::fs::remove_file(&tmp);
            in_place()
        }
    }
}

/// node-cache's `updateCorefile`: validate, read `base_corefile`, render, write to `corefile`,
/// log `Updated Corefile …` and `Using config file:`; each failure is logged and counted as
/// `configmap`. Returns the written text. The reload signal (`-reloadwithsignal`) is the
/// caller's job after an `Ok`.
pub fn update_corefile(
    base_corefile: &Path,
    corefile: &Path,
    cfg: &KubeDnsConfig,
    params: &TemplateParams,
) -> Result<String, TemplateError> {
    let fail = |e: TemplateError| {
        tracing::error!("{e}");
        metrics::inc(SetupErrorKind::Configmap);
        Err(e)
    };
    if let Err(e) = cfg.validate_node_local_cache() {
        return fail(TemplateError::Invalid(e));
    }
    let template = match std::fs::read_to_string(base_corefile) {
        Ok(t) => t,
        Err(e) => {
            return fail(TemplateError::ReadTemplate(format!(
                "Failed to read node-cache coreFile {} - {}",
                base_corefile.display(),
                go_io_text("open", base_corefile, &e)
            )))
        }
    };
    let rendered = match render_detailed(&template, cfg, params) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if rendered.tcp_block_missing {
        tracing::warn!("{NO_TCP_BLOCK_WARNING}");
    }
    if let Err(e) = write_corefile(corefile, &rendered.text) {
        return fail(TemplateError::Write(format!(
            "Failed to write config file {} - err {}",
            corefile.display(),
            go_io_text("open", corefile, &e)
        )));
    }
    tracing::info!(
        "Updated Corefile with {} custom stubdomains and upstream servers {}",
        rendered.stub_domains,
        rendered.upstream_servers
    );
    tracing::info!("Using config file:\n{}", rendered.text);
    Ok(rendered.text)
}

fn go_io_text(op: &str, path: &Path, e: &std::io::Error) -> String {
    let mut reason = e.to_string();
    if let Some(i) = reason.find(" (os error") {
        reason.truncate(i);
    }
    format!("{op} {}: {}", path.display(), reason.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn params() -> TemplateParams {
        TemplateParams {
            local_ip_str: "169.254.20.10,10.96.0.10".into(),
            dns_port: "53".into(),
            cluster_dns_ip: Some("10.96.143.7".parse().unwrap()),
            prometheus_listen_address: ":9253".into(),
        }
    }

    #[test]
    fn stub_block_shape() {
        assert_eq!(
            stub_domain_block("corp.example", "53", "169.254.20.10 10.96.0.10", &["10.0.0.53".into()]),
            "\ncorp.example:53 {\n    errors\n    cache 30\n    bind 169.254.20.10 10.96.0.10\n    forward . 10.0.0.53\n}\n"
        );
    }

    #[test]
    fn tcp_block_is_replaced_with_udp_forward() {
        let tpl = ".:53 {\n    errors\n    forward . __PILLAR__UPSTREAM__SERVERS__ {\n            force_tcp\n    }\n    cache 30\n}\n";
        let cfg =
            KubeDnsConfig { upstream_nameservers: vec!["1.1.1.1".into(), "8.8.8.8".into()], ..Default::default() };
        let r = render_detailed(tpl, &cfg, &params()).unwrap();
        assert!(!r.tcp_block_missing);
        assert_eq!(r.text, ".:53 {\n    errors\n    forward . 1.1.1.1 8.8.8.8\n    cache 30\n}\n");
        // Without custom upstreams the TCP block stays and gets /etc/resolv.conf.
        let r = render_detailed(tpl, &KubeDnsConfig::default(), &params()).unwrap();
        assert_eq!(
            r.text,
            ".:53 {\n    errors\n    forward . /etc/resolv.conf {\n            force_tcp\n    }\n    cache 30\n}\n"
        );
        assert_eq!(r.upstream_servers, "/etc/resolv.conf");
    }

    #[test]
    fn missing_ip_and_leftover_placeholders() {
        let tpl = "a __PILLAR__CLUSTER__DNS__ b __PILLAR__LOCAL__DNS__ __PILLAR__DNS__SERVER__ c __PROMETHEUS__ENDPOINT__ __PILLAR__DNS__DOMAIN__\n";
        let mut p = params();
        p.cluster_dns_ip = None;
        assert_eq!(
            render(tpl, &KubeDnsConfig::default(), &p).unwrap(),
            "a <nil> b 169.254.20.10 10.96.0.10  c :9253 __PILLAR__DNS__DOMAIN__\n"
        );
    }

    #[test]
    fn invalid_config_is_refused() {
        let cfg = KubeDnsConfig { upstream_nameservers: vec!["grpc://1.1.1.1".into()], ..Default::default() };
        assert_eq!(
            render("x", &cfg, &params()),
            Err(TemplateError::Invalid(
                "invalid upstream nameservers [grpc://1.1.1.1]: unsupported transport grpc of nameserver grpc://1.1.1.1:443"
                    .into()
            ))
        );
    }
}
