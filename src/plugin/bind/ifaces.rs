//! The host's network interfaces and their addresses, for `bind IFACE`.

use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One interface address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfaceAddr {
    /// Interface name, e.g. `lo`.
    pub name: String,
    /// The address.
    pub ip: IpAddr,
}

/// Every interface name (in the order the kernel lists them) and every IPv4/IPv6 address.
/// Interfaces without addresses are listed in `names` only.
#[derive(Clone, Debug, Default)]
pub struct Interfaces {
    /// Interface names, each once.
    pub names: Vec<String>,
    /// Addresses, in kernel order.
    pub addrs: Vec<IfaceAddr>,
}

impl Interfaces {
    /// Reads the interfaces with `getifaddrs(3)`.
    pub fn list() -> std::io::Result<Interfaces> {
        let mut out = Interfaces::default();
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        // SAFETY: getifaddrs fills `head` with a list we free below with freeifaddrs.
        if unsafe { libc::getifaddrs(&mut head) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut cur = head;
        while !cur.is_null() {
            // SAFETY: `cur` is a node of the list returned by getifaddrs, valid until freeifaddrs.
            let ifa = unsafe { &*cur };
            cur = ifa.ifa_next;
            if ifa.ifa_name.is_null() {
                continue;
            }
            // SAFETY: ifa_name is a NUL-terminated string owned by the list.
            let name = unsafe { CStr::from_ptr(ifa.ifa_name) }.to_string_lossy().into_owned();
            if !out.names.contains(&name) {
                out.names.push(name.clone());
            }
            if ifa.ifa_addr.is_null() {
                continue;
            }
            // SAFETY: ifa_addr points to a sockaddr whose family tells its real type.
            let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            let ip = match family {
                libc::AF_INET => {
                    // SAFETY: family AF_INET means the sockaddr is a sockaddr_in.
                    let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                    IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
                }
                libc::AF_INET6 => {
                    // SAFETY: family AF_INET6 means the sockaddr is a sockaddr_in6.
                    let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                    IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
                }
                _ => continue,
            };
            out.addrs.push(IfaceAddr { name, ip });
        }
        // SAFETY: `head` came from a successful getifaddrs call and is freed once.
        unsafe { libc::freeifaddrs(head) };
        Ok(out)
    }

    /// The listen-host strings of interface `name`: IPv4 as text, IPv6 link-local with `%name`.
    /// None when there is no such interface.
    pub fn hosts_of(&self, name: &str) -> Option<Vec<String>> {
        if !self.names.iter().any(|n| n == name) {
            return None;
        }
        let v4 = self.addrs.iter().filter(|a| a.name == name && a.ip.is_ipv4());
        let v6 = self.addrs.iter().filter(|a| a.name == name && a.ip.is_ipv6());
        Some(
            v4.chain(v6)
                .map(|a| match a.ip {
                    IpAddr::V6(v6) if is_link_local_v6(&v6) => format!("{v6}%{name}"),
                    ip => ip.to_string(),
                })
                .collect(),
        )
    }
}

/// fe80::/10 unicast or ff02::/16-style link-local multicast.
fn is_link_local_v6(ip: &Ipv6Addr) -> bool {
    let s = ip.segments();
    (s[0] & 0xffc0) == 0xfe80 || (s[0] & 0xff0f) == 0xff02
}

/// The index of interface `name` (for IPv6 scope ids), 0 when unknown.
pub fn index_of(name: &str) -> u32 {
    let Ok(c) = std::ffi::CString::new(name) else {
        return 0;
    };
    // SAFETY: `c` is a valid NUL-terminated string.
    unsafe { libc::if_nametoindex(c.as_ptr()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn loopback_has_127_0_0_1() {
        let ifs = Interfaces::list().unwrap_or_default();
        let lo = ifs.hosts_of("lo").unwrap_or_default();
        assert_eq!(lo.first().map(String::as_str), Some("127.0.0.1"));
        assert_eq!(ifs.hosts_of("no-such-iface0"), None);
        assert!(index_of("lo") > 0);
    }

    #[test]
    fn link_local_detection() {
        assert!(is_link_local_v6(&"fe80::1".parse().unwrap_or(Ipv6Addr::UNSPECIFIED)));
        assert!(!is_link_local_v6(&"2001:db8::1".parse().unwrap_or(Ipv6Addr::UNSPECIFIED)));
    }
}
