//! The TCP accept loop and per-connection query loop (2-byte length framing, queries handled
//! in order with pipelined ones answered in one write, read/idle/write deadlines, a connection
//! limit).

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::timeout;

use super::handle::handle;
use super::request::Proto;
use super::runtime::ListenerRuntime;

/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 4096;

/// Accepts connections until `stop` flips.
pub async fn serve(listener: TcpListener, state: Arc<ArcSwap<ListenerRuntime>>, mut stop: watch::Receiver<bool>) {
    let limit = Arc::new(Semaphore::new(state.load().tcp.max_connections));
    loop {
        let (stream, client) = tokio::select! {
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!("tcp accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _ = connection(stream, client, state).await;
            drop(permit);
        });
    }
}

async fn connection(
    mut stream: TcpStream,
    client: SocketAddr,
    state: Arc<ArcSwap<ListenerRuntime>>,
) -> std::io::Result<()> {
    let local = stream.local_addr()?;
    let mut served: u64 = 0;
    // Received bytes not yet handled, and framed replies not yet written: queries that arrive
    // together (pipelined) are answered in order with one write.
    let mut inbuf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::new();
    loop {
        let lr = state.load_full();
        let mut used = 0;
        while let Some(len) = inbuf.get(used..used + 2).map(|b| u16::from_be_bytes([b[0], b[1]]) as usize) {
            if len < super::wire::HEADER_LEN {
                let _ = timeout(lr.tcp.write, stream.write_all(&out)).await;
                return Ok(());
            }
            let Some(msg) = inbuf.get(used + 2..used + 2 + len) else { break };
            used += 2 + len;
            served += 1;
            let reply = match super::fast::try_answer(&lr, msg, client, Proto::Tcp) {
                Some(r) => Some(r),
                None => {
                    let msg = msg.to_vec();
                    handle(&lr, msg, client, local, Proto::Tcp).await
                }
            };
            if let Some(reply) = reply {
                let Ok(rlen) = u16::try_from(reply.len()) else { return Ok(()) };
                out.extend_from_slice(&rlen.to_be_bytes());
                out.extend_from_slice(&reply);
            }
            if lr.tcp.max_queries.is_some_and(|m| served >= m) {
                let _ = timeout(lr.tcp.write, stream.write_all(&out)).await;
                return Ok(());
            }
        }
        inbuf.drain(..used);
        if !out.is_empty() {
            match timeout(lr.tcp.write, stream.write_all(&out)).await {
                Ok(Ok(_)) => out.clear(),
                _ => return Ok(()),
            }
        }
        // A partial message must complete within the read timeout; between messages the
        // connection may idle (the first message gets the read timeout too).
        let deadline = if served == 0 || !inbuf.is_empty() { lr.tcp.read } else { lr.tcp.idle };
        inbuf.reserve(READ_CHUNK);
        match timeout(deadline, stream.read_buf(&mut inbuf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return Ok(()),
        }
    }
}
