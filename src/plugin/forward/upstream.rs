//! One upstream server: its pooled connections, one exchange, failure count and health probe.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::direct::DirectUdp;
use super::direct_tcp::DirectTcp;
use super::metrics::{Dropped, UpstreamMetrics};
use super::waiting::{default_cap, WaitLimit};
use crate::server::wire;

/// The write deadline of one exchange.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Dial timeout bounds.
const MIN_DIAL: Duration = Duration::from_secs(1);
const MAX_DIAL: Duration = Duration::from_secs(30);
/// Timeouts of one health probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Idle connections kept per transport when `max_idle_conns` is unlimited, so that a burst of
/// concurrency does not leave thousands of sockets open until they expire.
const IDLE_CAP: usize = 1024;
/// How often idle connections are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// The destination protocol of an upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain DNS over UDP/TCP.
    Dns,
    /// DNS over TLS.
    Tls,
    /// DNS over HTTPS (accepted by setup, not implemented).
    Https,
}

impl Scheme {
    /// URL scheme spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Dns => "dns",
            Scheme::Tls => "tls",
            Scheme::Https => "https",
        }
    }
}

/// Transport one exchange uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Net {
    /// Datagram.
    Udp,
    /// Stream (TCP, or TLS for `tls://` upstreams).
    Tcp,
}

/// Per-upstream settings, taken from the `forward` options.
#[derive(Clone, Debug)]
pub struct UpstreamOpts {
    /// Idle time after which a pooled connection is dropped.
    pub expire: Duration,
    /// Age after which a connection is dropped regardless of use (zero: unlimited).
    pub max_age: Duration,
    /// Idle connections kept per transport (zero: unlimited).
    pub max_idle_conns: usize,
    /// Read timeout per exchange.
    pub read_timeout: Duration,
    /// Local address to send from.
    pub source: Option<IpAddr>,
    /// Health probe interval.
    pub hc_interval: Duration,
    /// Health probe name (FQDN).
    pub hc_domain: String,
    /// RD bit on probes.
    pub hc_rd: bool,
    /// Probe over TCP (`force_tcp`).
    pub hc_tcp: bool,
}

/// Why an exchange failed.
#[derive(Debug)]
pub enum ExchangeError {
    /// A pooled stream had been closed by the peer; retry with another connection.
    CachedClosed,
    /// Any other I/O failure, worded like Go's net errors.
    Io(String),
    /// Over UDP, only replies for another question arrived before the read timeout (from the
    /// upstream's address, with the query's ID): the client gets FORMERR, as CoreDNS answers a
    /// reply whose question does not match.
    Mismatch,
    /// Every waiting slot of the upstream is taken; nothing was sent.
    Overloaded,
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExchangeError::CachedClosed => f.write_str("cached connection was closed by peer"),
            ExchangeError::Io(s) => f.write_str(s),
            ExchangeError::Mismatch => f.write_str("dns: reply question does not match the query"),
            ExchangeError::Overloaded => f.write_str("too many queries waiting for the upstream"),
        }
    }
}

/// A connection of one of the transports.
enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// A pooled connection with its timestamps.
struct Pooled {
    conn: Conn,
    created: Instant,
    used: Instant,
}

/// One upstream server and its state (kept across reloads when the configuration is unchanged).
pub struct Upstream {
    /// Destination.
    pub addr: SocketAddr,
    /// `IP:port`, the metrics `to` label and `forward/upstream` metadata.
    pub label: String,
    /// Protocol.
    pub scheme: Scheme,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    opts: UpstreamOpts,
    fails: AtomicU32,
    probing: AtomicBool,
    sweeping: AtomicBool,
    avg_dial_nanos: AtomicI64,
    pools: [Mutex<VecDeque<Pooled>>; 2],
    metrics: UpstreamMetrics,
    /// Queries waiting for this upstream (direct paths and exchanges), bounded.
    waiting: Arc<WaitLimit>,
    /// The shared UDP path of the server's fast miss path, opened on first use (None when it
    /// could not be opened).
    direct: std::sync::OnceLock<Option<Arc<DirectUdp>>>,
    /// The shared TCP path of the fast miss path (`force_tcp`), created on first use.
    direct_tcp: std::sync::OnceLock<Arc<DirectTcp>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").field("addr", &self.addr).field("scheme", &self.scheme).finish()
    }
}

fn go_net_err(op: &str, net: &str, local: Option<SocketAddr>, remote: SocketAddr, e: &io::Error) -> String {
    // Go wraps syscall errors as `read: connection refused`; a closed stream is a bare `EOF`.
    let what = match e.kind() {
        io::ErrorKind::TimedOut => "i/o timeout".to_string(),
        io::ErrorKind::ConnectionRefused => format!("{op}: connection refused"),
        io::ErrorKind::ConnectionReset => format!("{op}: connection reset by peer"),
        io::ErrorKind::BrokenPipe => format!("{op}: broken pipe"),
        io::ErrorKind::UnexpectedEof => return "EOF".to_string(),
        _ => e.to_string(),
    };
    match local {
        Some(l) => format!("{op} {net} {l}->{remote}: {what}"),
        None => format!("{op} {net} {remote}: {what}"),
    }
}

fn timeout_err() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "i/o timeout")
}

impl Upstream {
    /// An upstream at `addr`; `tls` carries the client configuration and server name for `tls://`.
    pub fn new(
        addr: SocketAddr,
        scheme: Scheme,
        tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
        opts: UpstreamOpts,
    ) -> Upstream {
        let label = addr.to_string();
        Upstream {
            metrics: UpstreamMetrics::new("forward", &label),
            label,
            addr,
            scheme,
            tls: tls.map(|(c, n)| (TlsConnector::from(c), n)),
            opts,
            fails: AtomicU32::new(0),
            probing: AtomicBool::new(false),
            sweeping: AtomicBool::new(false),
            avg_dial_nanos: AtomicI64::new((MAX_DIAL / 2).as_nanos() as i64),
            pools: [Mutex::new(VecDeque::new()), Mutex::new(VecDeque::new())],
            waiting: WaitLimit::new(default_cap()),
            direct: std::sync::OnceLock::new(),
            direct_tcp: std::sync::OnceLock::new(),
        }
    }

    /// The shared TCP path to this upstream (plain DNS only); its connections open on demand.
    pub fn direct_tcp(self: &Arc<Self>) -> Option<&Arc<DirectTcp>> {
        if self.scheme != Scheme::Dns || self.tls.is_some() {
            return None;
        }
        Some(
            self.direct_tcp
                .get_or_init(|| DirectTcp::new(self, self.opts.source, self.waiting.clone(), self.opts.read_timeout)),
        )
    }

    /// The shared UDP path to this upstream (plain DNS only), opened and its responder thread
    /// started on first use.
    pub fn direct(self: &Arc<Self>) -> Option<&Arc<DirectUdp>> {
        if self.scheme != Scheme::Dns || self.tls.is_some() {
            return None;
        }
        self.direct
            .get_or_init(|| {
                DirectUdp::start(self, self.opts.source, self.waiting.clone(), self.opts.read_timeout)
                    .map_err(|e| tracing::debug!("direct UDP path to {} unavailable: {e}", self.addr))
                    .ok()
            })
            .as_ref()
    }

    /// Records a reply received on the direct UDP path: the request's duration under the
    /// reply's rcode, as for an exchange.
    pub fn record_direct(&self, rcode: u16, took: Duration) {
        self.metrics.observe_duration(rcode, took.as_secs_f64());
    }

    /// Counts a UDP socket opened for one query (never a cached connection).
    pub fn record_udp_socket(&self) {
        self.metrics.conn_miss(0);
    }

    /// Counts a datagram dropped because it was not the reply to the query on its socket.
    pub fn record_dropped_reply(&self, why: Dropped) {
        self.metrics.dropped_reply(why);
    }

    /// Queries waiting for this upstream now.
    pub fn waiting(&self) -> usize {
        self.waiting.waiting()
    }

    /// [`Upstream::record_direct`] for a reply on the direct TCP path.
    pub fn record_direct_tcp(&self, rcode: u16, took: Duration) {
        self.metrics.conn_hit(1);
        self.metrics.observe_duration(rcode, took.as_secs_f64());
    }

    /// Counts a connection the direct TCP path opened (a connection cache miss).
    pub fn record_direct_dial(&self) {
        self.metrics.conn_miss(1);
    }

    /// Failed health checks since the last success.
    pub fn fails(&self) -> u32 {
        self.fails.load(Ordering::Relaxed)
    }

    /// Down means more than `max_fails` failed checks; `max_fails` 0 means never down.
    pub fn down(&self, max_fails: u32) -> bool {
        max_fails != 0 && self.fails() > max_fails
    }

    /// Idle pooled connections per transport (udp, stream), for tests and debugging.
    pub fn idle_conns(&self) -> (usize, usize) {
        (self.pools[0].lock().len(), self.pools[1].lock().len())
    }

    fn proto_index(&self, net: Net) -> usize {
        match (net, self.tls.is_some()) {
            (_, true) => 2,
            (Net::Udp, false) => 0,
            (Net::Tcp, false) => 1,
        }
    }

    fn dial_timeout(&self) -> Duration {
        let avg = Duration::from_nanos(self.avg_dial_nanos.load(Ordering::Relaxed).max(0) as u64);
        if avg < MIN_DIAL {
            MIN_DIAL
        } else if avg < MAX_DIAL / 2 {
            avg * 2
        } else {
            MAX_DIAL
        }
    }

    fn record_dial(&self, took: Duration) {
        let avg = self.avg_dial_nanos.load(Ordering::Relaxed);
        self.avg_dial_nanos.fetch_add((took.as_nanos() as i64 - avg) / 4, Ordering::Relaxed);
    }

    /// Takes a pooled connection (oldest first), dropping expired ones. UDP is never pooled:
    /// every UDP query leaves from a fresh socket on a random ephemeral port, so that a port
    /// seen once tells an attacker nothing about the next query's.
    fn checkout(&self, net: Net) -> Option<(Conn, Instant)> {
        if net == Net::Udp && self.tls.is_none() {
            return None;
        }
        let pool = &self.pools[if self.tls.is_some() { 1 } else { net as usize }];
        let now = Instant::now();
        let mut q = pool.lock();
        while let Some(pc) = q.pop_front() {
            if now.duration_since(pc.used) > self.opts.expire {
                continue;
            }
            if !self.opts.max_age.is_zero() && now.duration_since(pc.created) > self.opts.max_age {
                continue;
            }
            return Some((pc.conn, pc.created));
        }
        None
    }

    fn yield_conn(&self, conn: Conn, created: Instant) {
        let idx = match conn {
            Conn::Udp(_) => 0,
            _ => 1,
        };
        let mut q = self.pools[idx].lock();
        let cap = if self.opts.max_idle_conns > 0 { self.opts.max_idle_conns } else { IDLE_CAP };
        if q.len() >= cap {
            return;
        }
        q.push_back(Pooled { conn, created, used: Instant::now() });
    }

    fn unspecified(&self) -> IpAddr {
        match (self.opts.source, self.addr) {
            (Some(ip), _) => ip,
            (None, SocketAddr::V4(_)) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            (None, SocketAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }
    }

    async fn dial(&self, net: Net, timeout: Duration) -> Result<Conn, String> {
        let net_name = if net == Net::Udp && self.tls.is_none() { "udp" } else { "tcp" };
        let res: io::Result<Conn> = async {
            if net == Net::Udp && self.tls.is_none() {
                let sock = UdpSocket::bind(SocketAddr::new(self.unspecified(), 0)).await?;
                sock.connect(self.addr).await?;
                return Ok(Conn::Udp(sock));
            }
            let sock = if self.addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
            if self.opts.source.is_some() {
                sock.bind(SocketAddr::new(self.unspecified(), 0))?;
            }
            let tcp = tokio::time::timeout(timeout, sock.connect(self.addr)).await.map_err(|_| timeout_err())??;
            let _ = tcp.set_nodelay(true);
            match &self.tls {
                None => Ok(Conn::Tcp(tcp)),
                Some((connector, name)) => {
                    let tls = tokio::time::timeout(timeout, connector.connect(name.clone(), tcp))
                        .await
                        .map_err(|_| timeout_err())??;
                    Ok(Conn::Tls(Box::new(tls)))
                }
            }
        }
        .await;
        res.map_err(|e| {
            let what = match e.kind() {
                io::ErrorKind::TimedOut => "i/o timeout".to_string(),
                io::ErrorKind::ConnectionRefused => "connect: connection refused".to_string(),
                _ => e.to_string(),
            };
            format!("dial {net_name} {}: {what}", self.addr)
        })
    }

    /// Starts the idle-connection sweeper once (needs a runtime; called from the query path).
    fn ensure_sweeper(self: &Arc<Self>) {
        if self.sweeping.load(Ordering::Relaxed) || self.sweeping.swap(true, Ordering::Relaxed) {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(up) = weak.upgrade() else { return };
                up.sweep();
            }
        });
    }

    /// Drops pooled connections idle longer than `expire` or older than `max_age`.
    pub fn sweep(&self) {
        let now = Instant::now();
        for pool in &self.pools {
            pool.lock().retain(|pc| {
                now.duration_since(pc.used) <= self.opts.expire
                    && (self.opts.max_age.is_zero() || now.duration_since(pc.created) <= self.opts.max_age)
            });
        }
    }

    /// One exchange: `framed` is the query with a 2-byte length prefix and the ID to match.
    /// `limit` is the largest UDP reply accepted before it is turned into an empty TC reply.
    /// Records the request duration on success.
    pub async fn exchange(self: &Arc<Self>, framed: &[u8], net: Net, limit: usize) -> Result<Vec<u8>, ExchangeError> {
        if self.scheme == Scheme::Https {
            return Err(ExchangeError::Io(format!("DNS-over-HTTPS to {} is not supported", self.label)));
        }
        self.ensure_sweeper();
        let Some(_slot) = self.waiting.try_acquire() else {
            self.metrics.waiting_rejected();
            return Err(ExchangeError::Overloaded);
        };
        let start = Instant::now();
        let net = if self.tls.is_some() { Net::Tcp } else { net };
        let pi = self.proto_index(net);
        let (conn, cached, created) = match self.checkout(net) {
            Some((c, created)) => {
                self.metrics.conn_hit(pi);
                (c, true, created)
            }
            None => {
                self.metrics.conn_miss(pi);
                let t0 = Instant::now();
                let r = self.dial(net, self.dial_timeout()).await;
                self.record_dial(t0.elapsed());
                (r.map_err(ExchangeError::Io)?, false, Instant::now())
            }
        };
        let id = wire::id(framed.get(2..).unwrap_or(&[])).unwrap_or(0);
        let reply = match conn {
            // A UDP socket carries one query and is closed after it (see `checkout`).
            Conn::Udp(sock) => self.udp_exchange(&sock, framed.get(2..).unwrap_or(&[]), id, limit).await?,
            Conn::Tcp(mut s) => {
                let local = s.local_addr().ok();
                let r = self.stream_exchange(&mut s, framed, id, cached, "tcp", local).await;
                if r.is_ok() {
                    self.yield_conn(Conn::Tcp(s), created);
                }
                r?
            }
            Conn::Tls(mut s) => {
                let local = s.get_ref().0.local_addr().ok();
                let r = self.stream_exchange(&mut *s, framed, id, cached, "tcp", local).await;
                if r.is_ok() {
                    self.yield_conn(Conn::Tls(s), created);
                }
                r?
            }
        };
        self.metrics.observe_duration(wire::rcode(&reply), start.elapsed().as_secs_f64());
        Ok(reply)
    }

    async fn udp_exchange(
        &self,
        sock: &UdpSocket,
        query: &[u8],
        id: u16,
        limit: usize,
    ) -> Result<Vec<u8>, ExchangeError> {
        let local = sock.local_addr().ok();
        let err = |op: &str, e: io::Error| ExchangeError::Io(go_net_err(op, "udp", local, self.addr, &e));
        match tokio::time::timeout(WRITE_TIMEOUT, sock.send(query)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(err("write", e)),
            Err(_) => return Err(err("write", timeout_err())),
        }
        let deadline = tokio::time::Instant::now() + self.opts.read_timeout;
        // Spare capacity, not zero-filled: one byte more than the limit reveals an overflow.
        let mut buf = Vec::with_capacity(limit + 1);
        let mut mismatched = false;
        loop {
            buf.clear();
            let n = match tokio::time::timeout_at(deadline, sock.recv_buf(&mut buf)).await {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(err("read", e)),
                Err(_) if mismatched => return Err(ExchangeError::Mismatch),
                Err(_) => return Err(err("read", timeout_err())),
            };
            // The socket is connected, so the kernel passed only the upstream's datagrams;
            // one that is not the reply to this query is dropped and the wait goes on.
            if n < wire::HEADER_LEN || wire::id(&buf[..n]) != Some(id) {
                self.metrics.dropped_reply(Dropped::Id);
                continue;
            }
            if !super::msg::question_matches(query, &buf[..n]) {
                self.metrics.dropped_reply(Dropped::Question);
                mismatched = true;
                continue;
            }
            if n > limit {
                return super::msg::truncated_reply(&buf[..n])
                    .ok_or_else(|| ExchangeError::Io(format!("read udp {}: bad reply", self.addr)));
            }
            buf.truncate(n);
            if !super::msg::well_formed(&buf) {
                return Err(ExchangeError::Io(format!("dns: overflow unpacking reply from {}", self.addr)));
            }
            return Ok(buf);
        }
    }

    async fn stream_exchange<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        s: &mut S,
        framed: &[u8],
        id: u16,
        cached: bool,
        net: &str,
        local: Option<SocketAddr>,
    ) -> Result<Vec<u8>, ExchangeError> {
        let fail = |op: &str, e: io::Error| {
            if cached
                && matches!(
                    e.kind(),
                    io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                )
            {
                ExchangeError::CachedClosed
            } else {
                ExchangeError::Io(go_net_err(op, net, local, self.addr, &e))
            }
        };
        let write = async {
            s.write_all(framed).await?;
            s.flush().await
        };
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(fail("write", e)),
            Err(_) => return Err(fail("write", timeout_err())),
        }
        let deadline = tokio::time::Instant::now() + self.opts.read_timeout;
        loop {
            let read = async {
                let mut len = [0u8; 2];
                s.read_exact(&mut len).await?;
                let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
                s.read_exact(&mut buf).await?;
                Ok::<_, io::Error>(buf)
            };
            let buf = match tokio::time::timeout_at(deadline, read).await {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => return Err(fail("read", e)),
                Err(_) => return Err(fail("read", timeout_err())),
            };
            if buf.len() < wire::HEADER_LEN {
                return Err(ExchangeError::Io(format!("dns: short read from {}", self.addr)));
            }
            if wire::id(&buf) != Some(id) {
                continue;
            }
            if !super::msg::well_formed(&buf) {
                return Err(ExchangeError::Io(format!("dns: overflow unpacking reply from {}", self.addr)));
            }
            return Ok(buf);
        }
    }

    /// Starts the health probe loop unless one is running: probe, and while probes fail,
    /// wait the interval and probe again.
    pub fn healthcheck(self: &Arc<Self>) {
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak: Weak<Upstream> = Arc::downgrade(self);
        let interval = self.opts.hc_interval.max(Duration::from_millis(10));
        tokio::spawn(async move {
            loop {
                let Some(up) = weak.upgrade() else { return };
                if up.check().await {
                    up.probing.store(false, Ordering::Release);
                    return;
                }
                drop(up);
                tokio::time::sleep(interval).await;
            }
        });
    }

    /// One health probe; updates the failure count and metric. Returns whether it passed.
    pub async fn check(&self) -> bool {
        let ok = self.probe().await.is_ok();
        if ok {
            self.fails.store(0, Ordering::Relaxed);
        } else {
            self.metrics.healthcheck_failed();
            let _ = self.fails.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |f| f.checked_add(1));
        }
        ok
    }

    /// Sends `<domain> NS` on a fresh connection; any reply counts as healthy.
    async fn probe(&self) -> Result<(), String> {
        if self.scheme == Scheme::Https {
            return Err("DNS-over-HTTPS health checks are not supported".to_string());
        }
        let id: u16 = rand::random();
        let query = super::msg::build_query(id, &self.opts.hc_domain, 2, self.opts.hc_rd)?;
        let net = if self.tls.is_some() || self.opts.hc_tcp { Net::Tcp } else { Net::Udp };
        let conn = self.dial(net, PROBE_TIMEOUT).await?;
        let io = |e: io::Error| e.to_string();
        let run = async {
            match conn {
                Conn::Udp(sock) => {
                    sock.send(&query).await.map_err(io)?;
                    let mut buf = [0u8; 512];
                    loop {
                        let n = sock.recv(&mut buf).await.map_err(io)?;
                        if n >= wire::HEADER_LEN && wire::id(&buf[..n]) == Some(id) {
                            return Ok(());
                        }
                    }
                }
                Conn::Tcp(mut s) => stream_probe(&mut s, &query).await,
                Conn::Tls(mut s) => stream_probe(&mut *s, &query).await,
            }
        };
        tokio::time::timeout(PROBE_TIMEOUT * 2, run).await.map_err(|_| "i/o timeout".to_string())?
    }
}

async fn stream_probe<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, query: &[u8]) -> Result<(), String> {
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
    framed.extend_from_slice(query);
    s.write_all(&framed).await.map_err(|e| e.to_string())?;
    s.flush().await.map_err(|e| e.to_string())?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await.map_err(|e| e.to_string())?;
    Ok(())
}
