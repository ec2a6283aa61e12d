//! The benchmark's floor: a single-threaded UDP server that returns every datagram with the
//! QR bit set. Std only, built with plain `rustc -O`. Listens on 127.0.0.1 only.
use std::net::UdpSocket;

fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(15353);
    let sock = match UdpSocket::bind(("127.0.0.1", port)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("udp_echo: bind 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    let mut buf = [0u8; 4096];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf) {
            Ok(v) => v,
            Err(_) => continue,
        };
        if n >= 12 {
            buf[2] |= 0x80;
            let _ = sock.send_to(&buf[..n], peer);
        }
    }
}
