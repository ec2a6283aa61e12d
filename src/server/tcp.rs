//! The TCP accept loop and per-connection query loop (2-byte length framing, queries handled
//! in order, read/idle/write deadlines, a connection limit).

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
    loop {
        let lr = state.load_full();
        let deadline = if served == 0 { lr.tcp.read } else { lr.tcp.idle };
        let mut len = [0u8; 2];
        match timeout(deadline, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return Ok(()),
        }
        let n = u16::from_be_bytes(len) as usize;
        if n < super::wire::HEADER_LEN {
            return Ok(());
        }
        let mut msg = vec![0u8; n];
        match timeout(lr.tcp.read, stream.read_exact(&mut msg)).await {
            Ok(Ok(_)) => {}
            _ => return Ok(()),
        }
        served += 1;
        let reply = match super::fast::try_answer(&lr, &msg, client, Proto::Tcp) {
            Some(r) => Some(r),
            None => handle(&lr, msg, client, local, Proto::Tcp).await,
        };
        if let Some(reply) = reply {
            let Ok(rlen) = u16::try_from(reply.len()) else { return Ok(()) };
            let mut out = Vec::with_capacity(reply.len() + 2);
            out.extend_from_slice(&rlen.to_be_bytes());
            out.extend_from_slice(&reply);
            match timeout(lr.tcp.write, stream.write_all(&out)).await {
                Ok(Ok(_)) => {}
                _ => return Ok(()),
            }
        }
        if lr.tcp.max_queries.is_some_and(|m| served >= m) {
            return Ok(());
        }
    }
}
