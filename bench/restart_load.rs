//! Load generator and upstream for `bench/restart.sh` (issue 14). Std only, built with plain
//! `rustc -O`; loopback only.
//!
//! `restart_load load --server 127.0.0.1:P [--rate Q] [--duration S] [--names N] [--sockets K]
//!     [--timeline FILE] [--mark FILE] [--bind 127.0.0.1:0]`
//!   Sends `n<i>.bench.test. A` (i cycling over N) at a fixed rate, a batch per millisecond tick,
//!   round-robin over K connected UDP sockets; the query ID is the query's sequence number on
//!   its socket, so each socket has its own ID space. Every query sent counts: it is answered
//!   if a reply with its ID arrives within 1 s, lost otherwise (a failed send, e.g. refused by
//!   an earlier ICMP error or with the address gone, counts as sent and lost). SERVFAIL and other non-NOERROR/NXDOMAIN replies are answered and
//!   reported separately. Prints one `key=value` line (see `Summary`).
//!   `--mark FILE`: the first tick at which FILE exists is the mark (if FILE holds a Unix time in
//!   ms, that time is used); the gap and the lost queries are also given relative to it.
//!
//! `restart_load upstream --port P --timeline FILE`
//!   Answers every A query on 127.0.0.1:P (UDP and TCP) with NOERROR, one A record, TTL 300,
//!   the question echoed (other types: NOERROR, no answer). Appends `<unix_ms> <total queries>`
//!   to FILE every 100 ms.
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Marks a send time whose send was refused (an ICMP error reported on the socket).
const REFUSED: u64 = 1 << 63;
const ANSWER_WITHIN_US: u64 = 1_000_000;

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

extern "C" {
    fn setsockopt(fd: i32, level: i32, name: i32, val: *const std::ffi::c_void, len: u32) -> i32;
}

/// A 4 MiB receive buffer (SO_RCVBUFFORCE as root, else SO_RCVBUF up to rmem_max), so bursts
/// are not dropped by the measuring side.
fn big_rcvbuf(s: &UdpSocket) {
    use std::os::unix::io::AsRawFd;
    let v: i32 = 4 << 20;
    let p = &v as *const i32 as *const std::ffi::c_void;
    // SOL_SOCKET = 1, SO_RCVBUFFORCE = 33, SO_RCVBUF = 8 (Linux).
    unsafe {
        if setsockopt(s.as_raw_fd(), 1, 33, p, 4) != 0 {
            setsockopt(s.as_raw_fd(), 1, 8, p, 4);
        }
    }
}

fn die(msg: &str) -> ! {
    eprintln!("restart_load: {msg}");
    std::process::exit(2);
}

/// `--key value` pairs after the mode.
fn parse_opts(args: &[String]) -> HashMap<String, String> {
    let mut m = HashMap::new();
    let mut i = 0;
    while i < args.len() {
        let k = args[i].strip_prefix("--").unwrap_or_else(|| die(&format!("unexpected argument {}", args[i])));
        let v = args.get(i + 1).unwrap_or_else(|| die(&format!("--{k} needs a value")));
        m.insert(k.to_string(), v.clone());
        i += 2;
    }
    m
}

fn opt<T: std::str::FromStr>(m: &HashMap<String, String>, k: &str, def: T) -> T {
    match m.get(k) {
        Some(v) => v.parse().unwrap_or_else(|_| die(&format!("bad --{k} {v}"))),
        None => def,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opts = parse_opts(args.get(2..).unwrap_or(&[]));
    match args.get(1).map(String::as_str) {
        Some("load") => load(&opts),
        Some("upstream") => upstream(&opts),
        _ => die("usage: restart_load load|upstream --opt value ... (see the source's header)"),
    }
}

// ------------------------------------------------------------------------------------------
// Load.

/// A query for `n<i>.bench.test. A` with ID `id`, RD set, no EDNS.
fn query(id: u16, i: usize) -> Vec<u8> {
    let mut q = Vec::with_capacity(40);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    let label = format!("n{i}");
    q.push(label.len() as u8);
    q.extend_from_slice(label.as_bytes());
    for l in ["bench", "test"] {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// One reply as seen by a receiver: ID, arrival (µs since start), RCODE.
struct Reply {
    id: u16,
    at_us: u64,
    rcode: u8,
}

fn load(o: &HashMap<String, String>) {
    let server: String = o.get("server").cloned().unwrap_or_else(|| die("--server is required"));
    let rate: u64 = opt(o, "rate", 20000);
    let duration: f64 = opt(o, "duration", 12.0);
    let names: usize = opt(o, "names", 2000);
    let total = (rate as f64 * duration).round() as u64;
    // Each socket's IDs must not wrap within a run.
    let min_socks = total.div_ceil(60000).max(1) as usize;
    let nsock: usize = opt(o, "sockets", 4usize).max(min_socks);
    let timeline: Option<String> = o.get("timeline").cloned();
    let mark_file: Option<String> = o.get("mark").cloned();
    let bind: String = o.get("bind").cloned().unwrap_or_else(|| "127.0.0.1:0".into());

    let socks: Vec<UdpSocket> = (0..nsock)
        .map(|_| {
            let s = UdpSocket::bind(&bind).unwrap_or_else(|e| die(&format!("bind {bind}: {e}")));
            s.connect(&server).unwrap_or_else(|e| die(&format!("connect {server}: {e}")));
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            big_rcvbuf(&s);
            s
        })
        .collect();

    let start = Instant::now();
    let start_unix_ms = unix_ms();
    let stop = Arc::new(AtomicBool::new(false));
    let receivers: Vec<_> = socks
        .iter()
        .map(|s| {
            let s = s.try_clone().unwrap();
            let stop = stop.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    match s.recv(&mut buf) {
                        Ok(n) if n >= 12 && buf[2] & 0x80 != 0 => got.push(Reply {
                            id: u16::from_be_bytes([buf[0], buf[1]]),
                            at_us: start.elapsed().as_micros() as u64,
                            rcode: buf[3] & 0x0f,
                        }),
                        // Short datagrams, timeouts and ICMP errors (ECONNREFUSED) carry no reply.
                        _ => {}
                    }
                }
                got
            })
        })
        .collect();

    // Sending: per socket, the send time (µs) of each sequence number, | REFUSED if refused.
    let mut sent_at: Vec<Vec<u64>> = vec![Vec::with_capacity((total as usize) / nsock + 1); nsock];
    let mut send_errors = 0u64;
    let mut mark_us: Option<u64> = None;
    let mut seq = 0u64;
    let tick = Duration::from_millis(1);
    let mut ms = 0u64;
    while seq < total {
        ms += 1;
        let due = ((rate * ms) / 1000).min(total);
        let at = start + tick * ms as u32;
        let now = Instant::now();
        if at > now {
            thread::sleep(at - now);
        }
        if mark_us.is_none() {
            if let Some(f) = &mark_file {
                if let Ok(text) = std::fs::read_to_string(f) {
                    let now_us = start.elapsed().as_micros() as u64;
                    mark_us = Some(match text.trim().parse::<u64>() {
                        Ok(u) if u >= start_unix_ms => (u - start_unix_ms) * 1000,
                        _ => now_us,
                    });
                }
            }
        }
        while seq < due {
            let k = (seq % nsock as u64) as usize;
            let id = sent_at[k].len() as u16;
            let q = query(id, (seq % names as u64) as usize);
            let t = start.elapsed().as_micros() as u64;
            match socks[k].send(&q) {
                Ok(_) => sent_at[k].push(t),
                Err(_) => {
                    sent_at[k].push(t | REFUSED);
                    send_errors += 1;
                }
            }
            seq += 1;
        }
    }
    let send_end_us = start.elapsed().as_micros() as u64;
    thread::sleep(Duration::from_millis(1100));
    stop.store(true, Ordering::Relaxed);
    let replies: Vec<Vec<Reply>> = receivers.into_iter().map(|h| h.join().unwrap()).collect();

    // Match replies to queries: the first reply per ID counts.
    let slots = (send_end_us / 100_000 + 13) as usize;
    let mut tl_sent = vec![0u64; slots];
    let mut tl_answered = vec![0u64; slots];
    let mut tl_lost = vec![0u64; slots];
    let mut tl_arrived = vec![0u64; slots];
    let (mut answered, mut servfail, mut other_rcode, mut late, mut dup) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut arrivals: Vec<u64> = Vec::new();
    let mut lost_times: Vec<u64> = Vec::new();
    for (k, rs) in replies.iter().enumerate() {
        let mut first: Vec<Option<(u64, u8)>> = vec![None; sent_at[k].len()];
        for r in rs {
            arrivals.push(r.at_us);
            tl_arrived[((r.at_us / 100_000) as usize).min(slots - 1)] += 1;
            match first.get_mut(r.id as usize) {
                Some(slot @ None) => *slot = Some((r.at_us, r.rcode)),
                Some(Some(_)) => dup += 1,
                None => {}
            }
        }
        for (i, &t) in sent_at[k].iter().enumerate() {
            let (t, refused) = (t & !REFUSED, t & REFUSED != 0);
            let b = ((t / 100_000) as usize).min(slots - 1);
            tl_sent[b] += 1;
            let ok = match (refused, first[i]) {
                (true, _) | (_, None) => false,
                (_, Some((at, _))) if at.saturating_sub(t) > ANSWER_WITHIN_US => {
                    late += 1;
                    false
                }
                (_, Some((_, rc))) => {
                    match rc {
                        0 | 3 => {}
                        2 => servfail += 1,
                        _ => other_rcode += 1,
                    }
                    true
                }
            };
            if ok {
                answered += 1;
                tl_answered[b] += 1;
            } else {
                tl_lost[b] += 1;
                lost_times.push(t);
            }
        }
    }
    let sent: u64 = sent_at.iter().map(|v| v.len() as u64).sum();
    let lost = sent - answered;

    // The longest stretch with no reply at all while queries were being sent.
    arrivals.sort_unstable();
    // Also the longest such stretch that ends after the mark (the restart's own gap).
    let (mut gap, mut gap_from, mut mgap) = (0u64, 0u64, 0u64);
    let mut prev = 0u64;
    for &a in arrivals.iter().filter(|&&a| a <= send_end_us).chain(std::iter::once(&send_end_us)) {
        if a - prev > gap {
            gap = a - prev;
            gap_from = prev;
        }
        if mark_us.is_some_and(|m| a >= m) && a - prev > mgap {
            mgap = a - prev;
        }
        prev = a;
    }
    lost_times.sort_unstable();
    let rel = |t: u64| -> String {
        match mark_us {
            Some(m) => format!("{:.1}", (t as f64 - m as f64) / 1000.0),
            None => "na".into(),
        }
    };
    let (lost_first, lost_last) = match (lost_times.first(), lost_times.last()) {
        (Some(&a), Some(&b)) => (rel(a), rel(b)),
        _ => ("na".into(), "na".into()),
    };
    println!(
        "sent={sent} answered={answered} lost={lost} servfail={servfail} other_rcode={other_rcode} \
         send_errors={send_errors} late={late} dup={dup} gap_ms={:.1} gap_from_mark_ms={} gap_after_mark_ms={:.1} \
         lost_first_from_mark_ms={lost_first} lost_last_from_mark_ms={lost_last} mark_unix_ms={} \
         start_unix_ms={start_unix_ms} sockets={nsock} send_secs={:.3}",
        gap as f64 / 1000.0,
        rel(gap_from),
        mgap as f64 / 1000.0,
        mark_us.map(|m| (start_unix_ms + m / 1000).to_string()).unwrap_or_else(|| "na".into()),
        send_end_us as f64 / 1e6,
    );
    if let Some(path) = timeline {
        let mut f = std::fs::File::create(&path).unwrap_or_else(|e| die(&format!("{path}: {e}")));
        writeln!(f, "# t_ms\tt_from_mark_ms\tsent\tanswered\tlost\treplies_arrived").unwrap();
        for b in 0..slots {
            let t = b as u64 * 100_000;
            writeln!(f, "{}\t{}\t{}\t{}\t{}\t{}", t / 1000, rel(t), tl_sent[b], tl_answered[b], tl_lost[b], tl_arrived[b])
                .unwrap();
        }
    }
}

// ------------------------------------------------------------------------------------------
// Upstream.

/// The reply to `q`, or None if it is not a query with one parseable question.
fn answer(q: &[u8]) -> Option<Vec<u8>> {
    if q.len() < 12 || q[2] & 0x80 != 0 || u16::from_be_bytes([q[4], q[5]]) != 1 {
        return None;
    }
    let mut i = 12;
    loop {
        let l = *q.get(i)? as usize;
        if l == 0 {
            i += 1;
            break;
        }
        if l & 0xc0 != 0 {
            return None;
        }
        i += 1 + l;
    }
    let qend = i + 4;
    if q.len() < qend {
        return None;
    }
    let is_a = q[i..i + 4] == [0, 1, 0, 1];
    let mut r = Vec::with_capacity(qend + 16);
    r.extend_from_slice(&q[0..2]);
    r.push(0x84 | (q[2] & 0x79)); // QR, AA, opcode and RD copied
    r.push(0x80); // RA, NOERROR
    r.extend_from_slice(&[0, 1, 0, is_a as u8, 0, 0, 0, 0]);
    r.extend_from_slice(&q[12..qend]);
    if is_a {
        r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4, 127, 0, 2, 1]);
    }
    Some(r)
}

fn tcp_conn(mut c: TcpStream, count: Arc<AtomicU64>) {
    let mut len = [0u8; 2];
    while c.read_exact(&mut len).is_ok() {
        let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
        if c.read_exact(&mut q).is_err() {
            return;
        }
        count.fetch_add(1, Ordering::Relaxed);
        if let Some(r) = answer(&q) {
            let mut out = (r.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(&r);
            if c.write_all(&out).is_err() {
                return;
            }
        }
    }
}

fn upstream(o: &HashMap<String, String>) {
    let port: u16 = opt(o, "port", 15454);
    let timeline: String = o.get("timeline").cloned().unwrap_or_else(|| die("--timeline is required"));
    let udp = UdpSocket::bind(("127.0.0.1", port)).unwrap_or_else(|e| die(&format!("udp 127.0.0.1:{port}: {e}")));
    big_rcvbuf(&udp);
    let tcp = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| die(&format!("tcp 127.0.0.1:{port}: {e}")));
    let count = Arc::new(AtomicU64::new(0));
    {
        let count = count.clone();
        thread::spawn(move || {
            for c in tcp.incoming().flatten() {
                let count = count.clone();
                thread::spawn(move || tcp_conn(c, count));
            }
        });
    }
    {
        let count = count.clone();
        thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&timeline)
                .unwrap_or_else(|e| die(&format!("{timeline}: {e}")));
            loop {
                let _ = writeln!(f, "{} {}", unix_ms(), count.load(Ordering::Relaxed));
                thread::sleep(Duration::from_millis(100));
            }
        });
    }
    let mut buf = [0u8; 4096];
    loop {
        let (n, peer) = match udp.recv_from(&mut buf) {
            Ok(v) => v,
            Err(_) => continue,
        };
        count.fetch_add(1, Ordering::Relaxed);
        if let Some(r) = answer(&buf[..n]) {
            let _ = udp.send_to(&r, peer);
        }
    }
}
