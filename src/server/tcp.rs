//! The TCP accept loop and per-connection query loop (2-byte length framing, queries handled
//! in order with pipelined ones answered in one write, read/idle/write deadlines, connection
//! limits per listener and per client IP that evict the longest-waiting connection).
//!
//! Deadlines: the first message must have fully arrived within the `read` timeout of the
//! accept. After a reply is written, the first byte of the next message must arrive within
//! the `idle` timeout, and that message must then be complete within the `read` timeout of its
//! first byte. A deadline covers the whole message: bytes trickling in do not extend it.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{timeout, timeout_at, Instant};

use super::fast::{try_serve, Fast, MissRoute};
use super::handle::handle;
use super::request::Proto;
use super::runtime::ListenerRuntime;
use super::tcp_conns::{Conn, ConnTable};

/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 4096;

/// Accepts connections until `stop` flips.
pub async fn serve(listener: TcpListener, state: Arc<ArcSwap<ListenerRuntime>>, mut stop: watch::Receiver<bool>) {
    let table = ConnTable::new(state.load().label.clone());
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
            _ = stop.changed() => {
                adopt_queued(&listener, &state, &table);
                return;
            }
        };
        // Limits are read per accept, so a reload that changes them applies at once.
        let tcp = state.load().tcp;
        let conn = match table.admit(client.ip(), tcp.max_connections, tcp.max_per_client) {
            Ok(conn) => conn,
            // Every connection counted in the limit is processing a query: drop the new one
            // (the table logs and counts it).
            Err(_) => {
                drop(stream);
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _ = connection(stream, client, state, conn).await;
        });
    }
}

/// On stop: connections the kernel already completed (waiting in the accept queue) are taken
/// and served to the end, so closing the listener resets none of them.
fn adopt_queued(listener: &TcpListener, state: &Arc<ArcSwap<ListenerRuntime>>, table: &Arc<ConnTable>) {
    use futures_util::FutureExt;
    while let Some(Ok((stream, client))) = listener.accept().now_or_never() {
        let tcp = state.load().tcp;
        let Ok(conn) = table.admit(client.ip(), tcp.max_connections, tcp.max_per_client) else { continue };
        let state = state.clone();
        tokio::spawn(async move {
            let _ = connection(stream, client, state, conn).await;
        });
    }
}

/// Whether `buf` starts with a whole length-framed message, or with a length too short for
/// a DNS header (which ends the connection).
fn frame_ready(buf: &[u8]) -> bool {
    match buf.get(..2) {
        Some(b) => {
            let len = u16::from_be_bytes([b[0], b[1]]) as usize;
            len < super::wire::HEADER_LEN || buf.len() >= 2 + len
        }
        None => false,
    }
}

async fn connection(
    mut stream: TcpStream,
    client: SocketAddr,
    state: Arc<ArcSwap<ListenerRuntime>>,
    conn: Conn,
) -> std::io::Result<()> {
    let accepted = Instant::now();
    let local = stream.local_addr()?;
    let mut served: u64 = 0;
    // Received bytes not yet handled, and framed replies not yet written: queries that arrive
    // together (pipelined) are answered in order with one write.
    let mut inbuf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::new();
    // When the connection last began waiting for a message with nothing received.
    let mut waiting_since = accepted;
    // When the message now partly received began (its first byte, or the end of the previous
    // reply when bytes of it were already buffered).
    let mut partial_since: Option<Instant> = None;
    loop {
        let lr = state.load_full();
        if frame_ready(&inbuf) {
            // From here until the replies are written the connection cannot be evicted.
            if !conn.busy() {
                return Ok(());
            }
            let mut used = 0;
            while let Some(len) = inbuf.get(used..used + 2).map(|b| u16::from_be_bytes([b[0], b[1]]) as usize) {
                if len < super::wire::HEADER_LEN {
                    let _ = timeout(lr.tcp.write, stream.write_all(&out)).await;
                    return Ok(());
                }
                let Some(msg) = inbuf.get(used + 2..used + 2 + len) else { break };
                used += 2 + len;
                served += 1;
                let reply = match try_serve(&lr, msg, client, Proto::Tcp, MissRoute::Tcp(&lr, local)) {
                    Fast::Reply(r) => Some(r),
                    Fast::Waiting(answer) => {
                        let _in_flight = super::drain::InFlight::start();
                        match answer.await {
                            Ok(Some(r)) => Some(r),
                            // The direct path gave up: the chain asks again.
                            _ => handle(&lr, msg.to_vec(), client, local, Proto::Tcp).await,
                        }
                    }
                    Fast::Forwarded | Fast::Slow => {
                        let msg = msg.to_vec();
                        let _in_flight = super::drain::InFlight::start();
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
            let now = Instant::now();
            conn.waiting();
            waiting_since = now;
            // Processing time does not count against a pipelined message already begun.
            partial_since = (!inbuf.is_empty()).then_some(now);
        }
        let deadline = match (served, partial_since) {
            (0, _) => accepted + lr.tcp.read,
            (_, Some(began)) => began + lr.tcp.read,
            (_, None) => waiting_since + lr.tcp.idle,
        };
        inbuf.reserve(READ_CHUNK);
        tokio::select! {
            biased;
            _ = conn.evicted() => return Ok(()),
            r = timeout_at(deadline, stream.read_buf(&mut inbuf)) => match r {
                Ok(Ok(n)) if n > 0 => {
                    if partial_since.is_none() {
                        partial_since = Some(Instant::now());
                    }
                }
                _ => return Ok(()),
            },
        }
    }
}
