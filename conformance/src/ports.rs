//! Free loopback ports for the server under test and its HTTP endpoints.

use std::collections::BTreeSet;
use std::net::{TcpListener, UdpSocket};

/// Hands out distinct free ports on 127.0.0.1.
#[derive(Debug, Default)]
pub struct PortPicker {
    given: BTreeSet<u16>,
}

impl PortPicker {
    /// A port free for both UDP and TCP.
    pub fn dns(&mut self) -> Result<u16, String> {
        for _ in 0..200 {
            let tcp = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
            let port = tcp.local_addr().map_err(|e| e.to_string())?.port();
            if self.given.contains(&port) {
                continue;
            }
            if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
                self.given.insert(port);
                return Ok(port);
            }
        }
        Err("no free UDP+TCP port".into())
    }

    /// A port free for TCP.
    pub fn tcp(&mut self) -> Result<u16, String> {
        for _ in 0..200 {
            let tcp = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
            let port = tcp.local_addr().map_err(|e| e.to_string())?.port();
            if self.given.insert(port) {
                return Ok(port);
            }
        }
        Err("no free TCP port".into())
    }
}
