//! A one-shot DNS client over UDP, for plugins that ask a server themselves (the `loop`
//! probe, `template`'s upstream look-ups through this server's listener).

use std::net::SocketAddr;
use std::time::Duration;

/// Sends `query` (wire form) to `to` from a fresh socket and returns the first reply with the
/// same message ID, waiting at most `limit` (`i/o timeout` after that, as Go words it).
pub async fn udp_exchange(to: SocketAddr, query: &[u8], limit: Duration) -> Result<Vec<u8>, String> {
    let bind: SocketAddr = if to.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let sock = tokio::net::UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
    sock.connect(to).await.map_err(|e| e.to_string())?;
    sock.send(query).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65535];
    let wait = async {
        loop {
            let n = sock.recv(&mut buf).await.map_err(|e| e.to_string())?;
            if n >= 2 && query.len() >= 2 && buf[..2] == query[..2] {
                return Ok(buf[..n].to_vec());
            }
        }
    };
    tokio::time::timeout(limit, wait).await.map_err(|_| "i/o timeout".to_string())?
}
