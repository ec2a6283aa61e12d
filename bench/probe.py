#!/usr/bin/env python3
"""Cold-start probe: prints "ready", then sends one DNS query to 127.0.0.1:PORT every 2 ms until
any reply with its ID comes back and prints time.time_ns() of that moment. Bounded: gives up
after TIMEOUT seconds and prints -1."""
import socket
import struct
import sys
import time

port, qname = int(sys.argv[1]), sys.argv[2]
timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 15.0
wire = b"".join(bytes([len(l)]) + l.encode() for l in qname.strip(".").split(".")) + b"\0"
query = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + wire + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.002)
print("ready", flush=True)
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        s.sendto(query, ("127.0.0.1", port))
        data = s.recv(4096)
        if len(data) >= 12 and data[:2] == b"\x42\x42":
            print(time.time_ns(), flush=True)
            sys.exit(0)
    except (socket.timeout, ConnectionRefusedError, OSError):
        time.sleep(0.002)
print("-1", flush=True)
sys.exit(1)
