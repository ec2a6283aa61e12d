#!/usr/bin/env python3
"""TCP trickle probe (issue 12): holds N connections to a DNS server that each send one byte
every INTERVAL seconds (the start of a message that never completes), reopens the ones the
server closes (so the pressure stays), and once a second asks one query over a fresh TCP
connection. Prints `answered X of Y` at the end.

Usage: tcp_trickle.py HOST:PORT [-n 1100] [--interval 2] [--duration 45] [--qname whoami.example.]
                      [--sources 127.0.0.2,127.0.0.3] [--query-source 127.0.0.1] [--no-reopen]

python3 standard library only; raises its open-file soft limit to the hard limit.
"""
import argparse
import random
import resource
import selectors
import socket
import struct
import threading
import time


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, need)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        raise SystemExit(f"open-file limit {soft} < {need} needed; raise it (ulimit -n)")


def query_wire(qname, qid):
    labels = [l for l in qname.strip(".").split(".") if l]
    name = b"".join(bytes([len(l)]) + l.encode() for l in labels) + b"\0"
    msg = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + name + struct.pack(">HH", 1, 1)
    return struct.pack(">H", len(msg)) + msg


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def ask(server, qname, source, timeout):
    """One query over a fresh TCP connection; True when a reply with its ID arrives."""
    qid = random.randrange(1, 0xFFFF)
    try:
        with socket.create_connection(server, timeout=timeout, source_address=(source, 0) if source else None) as s:
            s.settimeout(timeout)
            s.sendall(query_wire(qname, qid))
            head = recv_exact(s, 2)
            if head is None:
                return False
            body = recv_exact(s, struct.unpack(">H", head)[0])
            return body is not None and len(body) >= 2 and struct.unpack(">H", body[:2])[0] == qid
    except OSError:
        return False


class Crowd:
    """The trickling connections, driven from one thread."""

    def __init__(self, server, n, interval, sources, reopen):
        self.server, self.n, self.interval, self.sources, self.reopen = server, n, interval, sources, reopen
        self.sel = selectors.DefaultSelector()
        self.socks = {}  # fileno -> (socket, next send time, source)
        self.opened = self.closed_by_server = self.failed_opens = 0
        self.stop = threading.Event()

    def open_one(self, source, now):
        s = socket.socket(socket.AF_INET6 if ":" in self.server[0] else socket.AF_INET, socket.SOCK_STREAM)
        try:
            if source:
                s.bind((source, 0))
            s.settimeout(2)
            s.connect(self.server)
            s.setblocking(False)
            s.send(b"\x02")  # the first byte of a 512+ byte length prefix
        except OSError:
            s.close()
            self.failed_opens += 1
            return
        self.opened += 1
        self.socks[s.fileno()] = (s, now + self.interval * random.random(), source)
        self.sel.register(s, selectors.EVENT_READ)

    def drop(self, fd):
        s, _, source = self.socks.pop(fd)
        self.sel.unregister(s)
        s.close()
        return source

    def run(self):
        now = time.monotonic()
        for i in range(self.n):
            self.open_one(self.sources[i % len(self.sources)] if self.sources else None, now)
        print(f"opened {self.opened} trickling connections ({self.failed_opens} failed)", flush=True)
        while not self.stop.is_set():
            gone = []
            for key, _ in self.sel.select(timeout=0.05):
                try:
                    data = key.fileobj.recv(1)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    gone.append(key.fd)
            now = time.monotonic()
            for fd, (s, due, _) in list(self.socks.items()):
                if due <= now and fd not in gone:
                    try:
                        s.send(b"\x00")
                        self.socks[fd] = (s, now + self.interval, self.socks[fd][2])
                    except BlockingIOError:
                        pass
                    except OSError:
                        gone.append(fd)
            for fd in gone:
                self.closed_by_server += 1
                source = self.drop(fd)
                if self.reopen:
                    self.open_one(source, now)
        for fd in list(self.socks):
            self.drop(fd)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("server", help="HOST:PORT, e.g. 127.0.0.1:1053 or [::1]:1053")
    p.add_argument("-n", type=int, default=1100, help="trickling connections (default 1100)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between a connection's bytes (default 2)")
    p.add_argument("--duration", type=float, default=45.0, help="seconds of probing (default 45)")
    p.add_argument("--qname", default="whoami.example.", help="name asked by the probe queries")
    p.add_argument("--sources", default="", help="comma-separated source addresses for the crowd")
    p.add_argument("--query-source", default="", help="source address of the probe queries")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds a probe query waits (default 2)")
    p.add_argument("--no-reopen", action="store_true", help="do not reopen connections the server closes")
    a = p.parse_args()
    host, _, port = a.server.rpartition(":")
    server = (host.strip("[]"), int(port))
    raise_fd_limit(a.n + 64)
    sources = [s for s in a.sources.split(",") if s]
    crowd = Crowd(server, a.n, a.interval, sources, not a.no_reopen)
    t = threading.Thread(target=crowd.run, daemon=True)
    t.start()
    while crowd.opened + crowd.failed_opens < a.n and t.is_alive():
        time.sleep(0.05)
    asked = answered = 0
    end = time.monotonic() + a.duration
    while time.monotonic() < end:
        started = time.monotonic()
        asked += 1
        answered += ask(server, a.qname, a.query_source or None, a.timeout)
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
    crowd.stop.set()
    t.join(timeout=10)
    print(f"crowd: {crowd.opened} opened, {crowd.closed_by_server} closed by the server", flush=True)
    print(f"answered {answered} of {asked}", flush=True)


if __name__ == "__main__":
    main()
