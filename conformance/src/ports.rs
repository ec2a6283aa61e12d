//! Free loopback ports for the server under test and its HTTP endpoints.
//!
//! Ports are picked at random below the kernel's ephemeral range (so client sockets and fixtures,
//! which take ephemeral ports, never land on a port picked for a server that has not bound it yet)
//! and are never handed out twice in one process (so cases running in parallel cannot collide).

use std::collections::BTreeSet;
use std::net::{TcpListener, UdpSocket};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

const LOW: u16 = 20000;
const HIGH: u16 = 32000;

static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
static SEED: Mutex<u64> = Mutex::new(0);

fn next_random() -> u64 {
    let mut s = SEED.lock().unwrap_or_else(|e| e.into_inner());
    if *s == 0 {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(1) as u64;
        *s = nanos ^ (u64::from(std::process::id()) << 32) | 1;
    }
    // xorshift64*
    let mut x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// Hands out distinct free ports on 127.0.0.1.
#[derive(Debug, Default)]
pub struct PortPicker;

impl PortPicker {
    fn pick(&mut self, udp_too: bool) -> Result<u16, String> {
        for _ in 0..2000 {
            let port = LOW + (next_random() % u64::from(HIGH - LOW)) as u16;
            let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
            if given.contains(&port) {
                continue;
            }
            let tcp_ok = TcpListener::bind(("127.0.0.1", port)).is_ok();
            let udp_ok = !udp_too || UdpSocket::bind(("127.0.0.1", port)).is_ok();
            if tcp_ok && udp_ok {
                given.insert(port);
                return Ok(port);
            }
        }
        Err("no free port".into())
    }

    /// A port free for both UDP and TCP.
    pub fn dns(&mut self) -> Result<u16, String> {
        self.pick(true)
    }

    /// A port free for TCP.
    pub fn tcp(&mut self) -> Result<u16, String> {
        self.pick(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_outside_the_ephemeral_range() {
        let mut a = PortPicker;
        let mut b = PortPicker;
        let mut seen = BTreeSet::new();
        for _ in 0..50 {
            for p in [a.dns().unwrap(), b.tcp().unwrap()] {
                assert!((LOW..HIGH).contains(&p));
                assert!(seen.insert(p), "port {p} handed out twice");
            }
        }
    }
}
