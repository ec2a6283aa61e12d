//! The health plugin's self-probe: every second GET our own `/health`, record how long it took
//! in `coredns_health_request_duration_seconds` and count failures.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::gocompat::duration;
use crate::observe::dns_metrics::metrics;

/// Per-request limit of the probe's HTTP client.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Probes `http://<addr>/health` (as configured) by connecting to `bound` every second, forever.
pub async fn run(addr: String, bound: SocketAddr) {
    let url = format!("http://{addr}/health");
    let host = addr.clone();
    let target = if bound.ip().is_unspecified() {
        SocketAddr::new(
            if bound.is_ipv4() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { IpAddr::V6(std::net::Ipv6Addr::LOCALHOST) },
            bound.port(),
        )
    } else {
        bound
    };
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + Duration::from_secs(1), Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let start = Instant::now();
        let result = probe_once(target, &host).await;
        let elapsed = start.elapsed();
        metrics().health_duration.observe(elapsed.as_secs_f64());
        match result.err() {
            Some(e) => {
                metrics().health_failures.inc();
                tracing::warn!(target: "plugin/health", "Local health request to {url:?} failed: Get {url:?}: {e}");
            }
            None if elapsed > Duration::from_secs(1) => {
                tracing::warn!(
                    target: "plugin/health",
                    "Local health request to {url:?} took more than 1s: {}",
                    duration::format_std(elapsed)
                );
            }
            None => {}
        }
    }
}

/// One probe with the 3 s limit: `GET /health` on `target` with `Host: host`. Any HTTP
/// response counts as success (as with Go's client); the error reads like Go's
/// (`dial tcp 127.0.0.1:8080: connect: connection refused`).
pub async fn probe_once(target: SocketAddr, host: &str) -> Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, get(target, host)).await {
        Ok(r) => r,
        Err(_) => Err("context deadline exceeded (Client.Timeout exceeded while awaiting headers)".to_string()),
    }
}

async fn get(target: SocketAddr, host: &str) -> Result<(), String> {
    let mut stream = TcpStream::connect(target).await.map_err(|e| format!("dial tcp {target}: {}", dial_error(&e)))?;
    let request =
        format!("GET /health HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Go-http-client/1.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 512];
    let mut got = Vec::new();
    loop {
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(buf.get(..n).unwrap_or(&[]));
        if got.windows(2).any(|w| w == b"\r\n") {
            break;
        }
    }
    if got.starts_with(b"HTTP/1.") {
        Ok(())
    } else {
        Err("EOF".to_string())
    }
}

fn dial_error(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => "connect: connection refused".to_string(),
        _ => e.to_string(),
    }
}
