//! `bind ADDRESS|IFACE... { except ADDRESS|IFACE... }`: every occurrence in a block adds
//! addresses; interface names expand to their addresses when the plan is built.

use std::any::Any;
use std::sync::Arc;

use crate::corefile::{CorefileError, Dispenser, ErrorKind};
use crate::plugin::{BuildContext, Plugin, PluginConfig, SetupContext};

use super::ifaces::Interfaces;

/// One `bind` line as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindLine {
    /// Addresses or interface names.
    pub addrs: Vec<String>,
    /// The `except` list of this line (the last `except` in its block wins, as in CoreDNS).
    pub except: Vec<String>,
}

/// Parsed `bind` configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The lines as written.
    pub lines: Vec<BindLine>,
    /// The resolved listen hosts (IPs; IPv6 link-local with `%iface`), in order.
    pub hosts: Vec<String>,
}

impl Config {
    /// The hosts the block listens on. Empty means every listed address was excepted, so the
    /// block gets no listener (CoreDNS behaves the same).
    pub fn listen_hosts(&self) -> Vec<String> {
        self.hosts.clone()
    }
}

impl PluginConfig for Config {
    fn name(&self) -> &'static str {
        "bind"
    }
    fn describe(&self) -> String {
        let lines: Vec<String> = self
            .lines
            .iter()
            .map(|l| {
                if l.except.is_empty() {
                    l.addrs.join(" ")
                } else {
                    format!("{} except {}", l.addrs.join(" "), l.except.join(" "))
                }
            })
            .collect();
        format!("{} → listen on [{}]", lines.join("; "), self.hosts.join(", "))
    }
    fn build(&self, _ctx: &BuildContext) -> Result<Option<Arc<dyn Plugin>>, String> {
        Ok(None)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Parses every `bind` occurrence in a block and resolves interface names.
pub fn parse(d: &mut Dispenser, _ctx: &SetupContext) -> Result<Box<dyn PluginConfig>, CorefileError> {
    let ifaces = match Interfaces::list() {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(
                target: "plugin/bind",
                "failed to get interfaces list, cannot bind by interface name: {e}"
            );
            Interfaces::default()
        }
    };
    parse_with(d, &ifaces)
}

/// [`parse`] against a given interface list.
pub fn parse_with(d: &mut Dispenser, ifaces: &Interfaces) -> Result<Box<dyn PluginConfig>, CorefileError> {
    let plain = |d: &Dispenser, msg: String| {
        let tok = d.token().cloned().unwrap_or_else(|| crate::corefile::Token::new("", Arc::from(""), 0, 0));
        CorefileError::at(ErrorKind::Plain, &tok, msg).in_plugin("bind")
    };
    let mut cfg = Config::default();
    while d.next() {
        let addrs = d.remaining_args();
        if addrs.is_empty() {
            return Err(plain(d, "at least one address or interface name is expected".into()));
        }
        let mut except = Vec::new();
        while d.next_block() {
            match d.val() {
                "except" => {
                    except = d.remaining_args();
                    if except.is_empty() {
                        return Err(plain(
                            d,
                            "at least one address or interface must be given to except subdirective".into(),
                        ));
                    }
                }
                other => return Err(plain(d, format!("invalid option {other:?}"))),
            }
        }
        let ips = list_ips(&addrs, ifaces).map_err(|m| plain(d, m))?;
        let excluded = list_ips(&except, ifaces).map_err(|m| plain(d, m))?;
        cfg.hosts.extend(ips.into_iter().filter(|ip| !excluded.contains(ip)));
        cfg.lines.push(BindLine { addrs, except });
    }
    Ok(Box::new(cfg))
}

/// Expands interface names to their addresses; other arguments must be IP addresses.
fn list_ips(args: &[String], ifaces: &Interfaces) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for a in args {
        if let Some(hosts) = ifaces.hosts_of(a) {
            out.extend(hosts);
        } else if a.parse::<std::net::IpAddr>().is_ok() {
            out.push(a.clone());
        } else {
            return Err(format!("not a valid IP address or interface name: {a:?}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::bind::ifaces::IfaceAddr;
    use pretty_assertions::assert_eq;

    fn fake_ifaces() -> Interfaces {
        let a = |name: &str, ip: &str| IfaceAddr { name: name.into(), ip: ip.parse().expect("test ip") };
        Interfaces {
            names: vec!["lo".into(), "eth0".into()],
            addrs: vec![a("lo", "127.0.0.1"), a("eth0", "10.1.1.1"), a("lo", "::1"), a("eth0", "fe80::1")],
        }
    }

    fn hosts(text: &str) -> Result<Vec<String>, String> {
        let mut d = Dispenser::from_text(text);
        parse_with(&mut d, &fake_ifaces())
            .map(|c| c.as_any().downcast_ref::<Config>().map(Config::listen_hosts).unwrap_or_default())
            .map_err(|e| e.coredns_message())
    }

    fn v(items: &[&str]) -> Result<Vec<String>, String> {
        Ok(items.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn accepted() {
        assert_eq!(hosts("bind 1.2.3.4"), v(&["1.2.3.4"]));
        assert_eq!(hosts("bind 1.2.3.4 ::5"), v(&["1.2.3.4", "::5"]));
        assert_eq!(hosts("bind ::1 1.2.3.4 ::5 127.9.9.0"), v(&["::1", "1.2.3.4", "::5", "127.9.9.0"]));
        assert_eq!(hosts("bind 1.2.3.4 lo"), v(&["1.2.3.4", "127.0.0.1", "::1"]));
        assert_eq!(hosts("bind lo {\nexcept 127.0.0.1\n}\n"), v(&["::1"]));
        assert_eq!(hosts("bind eth0"), v(&["10.1.1.1", "fe80::1%eth0"]));
        // Repeats merge; except applies to its own line only.
        assert_eq!(hosts("bind 127.0.0.1\nbind lo {\nexcept 127.0.0.1\n}"), v(&["127.0.0.1", "::1"]));
        assert_eq!(hosts("bind lo {\nexcept lo\n}"), v(&[]));
    }

    #[test]
    fn rejected() {
        assert_eq!(hosts("bind"), Err("plugin/bind: at least one address or interface name is expected".into()));
        assert_eq!(
            hosts("bind 1.2.3.invalid"),
            Err("plugin/bind: not a valid IP address or interface name: \"1.2.3.invalid\"".into())
        );
        assert_eq!(
            hosts("bind ::1 1.2.3.4 ::5 127.9.9.0 noone"),
            Err("plugin/bind: not a valid IP address or interface name: \"noone\"".into())
        );
        assert_eq!(hosts("bind lo {\nfoo 1.2.3.4\n}"), Err("plugin/bind: invalid option \"foo\"".into()));
        assert_eq!(
            hosts("bind lo {\nexcept\n}"),
            Err("plugin/bind: at least one address or interface must be given to except subdirective".into())
        );
    }

    #[test]
    fn real_loopback() {
        let mut d = Dispenser::from_text("bind lo");
        let got = parse(&mut d, &SetupContext::default())
            .map(|c| c.as_any().downcast_ref::<Config>().map(Config::listen_hosts).unwrap_or_default());
        assert_eq!(got.map(|h| h.first().cloned()), Ok(Some("127.0.0.1".to_string())));
    }
}
