//! The UDP receive loop of one socket.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::handle::handle;
use super::request::Proto;
use super::runtime::ListenerRuntime;

/// CoreDNS reads UDP queries into a 512-byte buffer (miekg/dns's default UDPSize); longer
/// datagrams are cut there and then fail to parse.
const UDP_READ_SIZE: usize = 512;

/// Receives queries until `stop` flips, handling each on its own task so slow upstreams do
/// not block the socket.
pub async fn serve(sock: Arc<UdpSocket>, state: Arc<ArcSwap<ListenerRuntime>>, mut stop: watch::Receiver<bool>) {
    let Ok(local) = sock.local_addr() else { return };
    let mut buf = vec![0u8; UDP_READ_SIZE];
    loop {
        let (n, client) = tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!("udp recv on {local}: {e}");
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let lr = state.load_full();
        if let Some(reply) = super::fast::try_answer(&lr, &buf[..n], client, Proto::Udp) {
            let _ = sock.send_to(&reply, client).await;
            continue;
        }
        let msg = buf[..n].to_vec();
        let sock = sock.clone();
        tokio::spawn(async move {
            if let Some(reply) = handle(&lr, msg, client, local, Proto::Udp).await {
                let _ = sock.send_to(&reply, client).await;
            }
        });
    }
}
